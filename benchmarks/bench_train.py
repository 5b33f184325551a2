"""Training benchmarks against the blog series' recipe, and the vocabulary sweep.

    python benchmarks/bench_train.py throughput [--steps 8 --repeats 3]
        tokens/s of one training step at the brief's config (8 layers, 64 wide, 16 heads,
        context 64, GPT-2 vocabulary, batch 32): the brief's recipe (transformers' GPTNeoBlock
        model, plain Adam, full-logit cross-entropy) vs tinyllm's (own model, fused chunked
        loss, fused AdamW), interleaved, min/median/max.

    python benchmarks/bench_train.py bpb --recipe brief|tinyllm [--tokenizer SPEC] --seconds 600
        trains for a wall-clock budget on 80 % of the TinyStories validation head and reports
        bits per byte on a held-out 10 % (another 10 % is tinyllm's validation split, which it
        uses to keep its best checkpoint; the brief's recipe has no such thing). tinyllm runs
        through its own command line with its defaults; only --tokenizer varies in the sweep.

    python benchmarks/bench_train.py split --out DIR   # just write train/validation/test.txt

Run two bpb jobs side by side (OMP_NUM_THREADS=1 each) to compare them under the same load.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from brief_recipe import GPTNeoBlockModel, brief_step  # noqa: E402
from ladder import write_split  # noqa: E402  the 80 / 10 / 10 % split of the shared head

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
STORIES = SHARED / "tinystories" / "validation_head_stories.txt"
EOT = "<|endoftext|>"


def gpt2_home() -> Path:
    """A TINYLLM_HOME holding GPT-2's tokenizer files (from ../shared/data)."""
    home = Path(tempfile.gettempdir()) / "tinyllm_bench_home"
    (home / "gpt2").mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        if not (home / "gpt2" / name).exists():
            (home / "gpt2" / name).write_bytes((SHARED / "gpt2" / name).read_bytes())
    os.environ["TINYLLM_HOME"] = str(home)
    return home


# -- 1. throughput ----------------------------------------------------------------------------

def throughput(args):
    from tinyllm.model.config import Config
    from tinyllm.model import GPT
    from tinyllm.train import TrainConfig
    from tinyllm.train.loop import LossModule, optimizer_step
    from tinyllm.train.optim import make_optimizer
    from tinyllm.train.plan import plan_run
    torch.manual_seed(0)
    V, B, T = 50257, 32, 64
    batches = [torch.randint(0, V, (B, T + 1)) for _ in range(4)]
    brief = GPTNeoBlockModel(vocab_size=V)
    brief_opt = torch.optim.Adam(brief.parameters())
    ours = GPT(None, Config(vocab_size=V))
    cfg = plan_run(TrainConfig(device="cpu", precision="fp32", compile=args.compile), None,
                   model=ours.config).cfg
    ours_opt = make_optimizer(ours, cfg, torch.device("cpu"))
    loss_fn = torch.compile(LossModule(ours)) if args.compile else LossModule(ours)
    params = list(ours.parameters())

    def run_brief(batch):
        brief_step(brief, brief_opt, batch)

    def run_ours(batch):
        optimizer_step(loss_fn, ours_opt, [batch], cfg, torch.device("cpu"), params)

    for f in (run_brief, run_ours):        # warm-up (and compilation)
        for b in batches[:2]:
            f(b)
    times = {"brief": [], "tinyllm": []}
    for r in range(args.repeats):
        for name, f in (("brief", run_brief), ("tinyllm", run_ours)):
            start = time.perf_counter()
            for i in range(args.steps):
                f(batches[i % len(batches)])
            times[name].append((time.perf_counter() - start) / args.steps)
    tok = B * T
    print(f"training step, brief's config, batch {B} x {T}, {torch.get_num_threads()} threads, "
          f"{args.steps} steps x {args.repeats} repeats (interleaved)")
    for name, ts in times.items():
        print(f"  {name:8s} s/step min {min(ts):.3f} median {statistics.median(ts):.3f} "
              f"max {max(ts):.3f}   tokens/s median {tok / statistics.median(ts):,.0f}")
    ratios = [b / o for b, o in zip(times["brief"], times["tinyllm"])]
    print(f"  speed-up (brief time / tinyllm time, per repeat): min {min(ratios):.2f}x "
          f"median {statistics.median(ratios):.2f}x max {max(ratios):.2f}x")


# -- 2. bits per byte after a time budget ----------------------------------------------------

class _BriefForEval(torch.nn.Module):
    """The brief's model with the ``loss``/``config``/``device`` that tinyllm.evaluate uses."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = type("C", (), {"context_size": model.context_size})()

    @property
    def device(self):
        return self.model.device

    def loss(self, x, y, reduction="mean"):
        logits = self.model(x)
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(),
                                                 reduction=reduction)


def bpb_brief(split: Path, seconds: float, seed: int) -> dict:
    """The brief's recipe for ``seconds``: padded per-story batches of 32, plain Adam."""
    from torch.utils.data import DataLoader
    from tinyllm.data.tokens import prepare, token_byte_lengths
    from tinyllm.dataset import TinyDataset
    from tinyllm.train.evaluate import evaluate
    from tinyllm.tokenizer import Tokenizer
    torch.manual_seed(seed)
    tokenizer = Tokenizer()
    dataset = TinyDataset(tokenizer, 65, path=split / "train.txt")
    loader = DataLoader(dataset, batch_size=32, shuffle=True)
    model = GPTNeoBlockModel(vocab_size=tokenizer.vocab_size)
    optimizer = torch.optim.Adam(model.parameters())
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for batch in loader:
            brief_step(model, optimizer, batch)
            steps += 1
            if time.perf_counter() - start >= seconds:
                break
    test = prepare(split / "test.txt", tokenizer, cache_dir=split / "cache").span()
    result = evaluate(_BriefForEval(model).eval(), test, token_byte_lengths(tokenizer))
    return {"recipe": "brief", "steps": steps, **result}


def bpb_tinyllm(split: Path, seconds: float, seed: int, tokenizer: str | None, extra: list) -> dict:
    """tinyllm's defaults through its own command line, then evaluated on test.txt."""
    from tinyllm.data.tokens import prepare, token_byte_lengths
    from tinyllm.train.evaluate import evaluate
    from tinyllm.model import GPT
    flags = "".join(c if c.isalnum() else "_" for c in "".join(extra)) or "defaults"
    out = split / f"run-{tokenizer or 'default'}-{seed}-{flags}"
    shutil.rmtree(out, ignore_errors=True)             # a fresh run, not a resumed one
    cmd = [sys.executable, "-m", "tinyllm", "train", "--data", str(split), "--out", str(out),
           "--max-time", str(seconds), "--seed", str(seed), "--quiet"]
    if tokenizer:
        cmd += ["--tokenizer", tokenizer]
    subprocess.run(cmd + extra, check=True)
    model = GPT.from_pretrained(out)
    test = prepare(split / "test.txt", model.tokenizer, cache_dir=split / "cache").span()
    result = evaluate(model, test, token_byte_lengths(model.tokenizer))
    summary = [json.loads(line) for line in open(out / "metrics.jsonl")]
    steps = max((row.get("step", 0) for row in summary), default=0)
    return {"recipe": "tinyllm", "tokenizer": tokenizer or "default", "flags": " ".join(extra),
            "vocab_size": model.tokenizer.vocab_size, "steps": steps, **result}


def bpb(args):
    gpt2_home()
    split = Path(args.workdir)
    if not (split / "test.txt").exists():   # written once: concurrent runs share it
        write_split(split)
    if args.recipe == "brief":
        result = bpb_brief(split, args.seconds, args.seed)
    else:
        result = bpb_tinyllm(split, args.seconds, args.seed, args.tokenizer, args.extra)
    result.update(seconds=args.seconds, seed=args.seed, threads=torch.get_num_threads())
    print(json.dumps(result))
    if args.results:
        with open(args.results, "a") as f:
            f.write(json.dumps(result) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--steps", type=int, default=8)
    t.add_argument("--repeats", type=int, default=3)
    t.add_argument("--compile", action="store_true")
    t.add_argument("--quick", action="store_true", help="2 steps x 1 repeat")
    b = sub.add_parser("bpb")
    b.add_argument("--recipe", choices=["brief", "tinyllm"], required=True)
    b.add_argument("--tokenizer", help="tinyllm --tokenizer SPEC (default: the CLI's default)")
    b.add_argument("--seconds", type=float, default=600)
    b.add_argument("--seed", type=int, default=1337)
    b.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "tinyllm_bench_split"))
    b.add_argument("--results", help="append the result as a JSON line to this file")
    b.add_argument("--quick", action="store_true", help="20 seconds")
    b.add_argument("extra", nargs="*", help="more tinyllm train flags (after --)")
    s = sub.add_parser("split")
    s.add_argument("--out", required=True)
    args = p.parse_args()
    if args.what == "throughput":
        if args.quick:
            args.steps, args.repeats = 2, 1
        throughput(args)
    elif args.what == "bpb":
        if args.quick:
            args.seconds = 20
        bpb(args)
    else:
        print(write_split(Path(args.out)))


if __name__ == "__main__":
    main()
