"""The ablation ladder: each change against the current default, several seeds, two
regimes, as held-out bits per byte.

    python benchmarks/ladder.py list                    # the rungs and their flags
    python benchmarks/ladder.py run [--regimes a b] [--rungs NAME ...] [--seeds 1 2 3]
                                    [--seconds 600] [--results ladder.jsonl] [--workdir DIR]
    python benchmarks/ladder.py report [--results ladder.jsonl] [--out-dir DIR] [--brief BPB]

Data: the shared TinyStories head (../shared/data/tinystories/validation_head_stories.txt,
1,064 stories), split by story as benchmarks/bench_train.py does: train.txt the first 80 %,
validation.txt the next 10 % (what a run keeps its best checkpoint by), test.txt the last 10 %
(what every run is scored on: nothing trains on it or selects with it).

Regimes:

  (a) many passes: ``tinyllm train --data SPLIT --max-time 600`` — 10 CPU minutes over train.txt
      (~160 K tokens with the default 4,096-token BPE), which the default model sees ~15 times.
  (b) one pass: every training token is a target exactly once. There is no bigger
      TinyStories-like text here (~1 MB in all), so the budget is made short enough instead: one
      epoch of train.txt cut into disjoint windows of context + 1 tokens, in a shuffled order
      (``one_pass_batches``), ~78 steps of the default batch, ~40 CPU-seconds. It is the start
      of a run on the real TinyStories (470 M tokens), where each token is seen about once;
      being short, it also favours what learns fast. Otherwise the run is ``tinyllm train``'s,
      unchanged (``--max-steps`` set to the pass; ``Run.batches`` replaced in that process).

Each run is a separate process with OMP_NUM_THREADS=1, two at a time (``--parallel 2`` on the
2-core machine): runs go side by side in pairs, so that every run sees the same load. The
result of each (rung, regime, seed) is appended to ``--results`` as one JSON line as soon as
it is done; ``run`` skips the ones already there, so a long ladder resumes where it stopped.
``report`` pairs every rung's seed with the default's same seed (same initial weights and, in
(a), the same batches): Δ = bits per byte (rung) - bits per byte (default), mean ± sd over the
seeds; a change is "better" when mean + 2·sd/√n < 0, "worse" when mean - 2·sd/√n > 0, else
"within noise". It also draws each regime's runs with ``tinyllm compare``.

Smoke test (seconds, tiny model): ``python benchmarks/ladder.py run --seconds 4 --seeds 1 2
--rungs default rotary --pass-fraction 0.1 --extra "--layers 1 --hidden 32 --heads 4"
--workdir /tmp/ladder_smoke --results /tmp/ladder_smoke/results.jsonl``, then ``report``.
"""
import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STORIES = REPO.parent / "shared" / "data" / "tinystories" / "validation_head_stories.txt"
EOT = "<|endoftext|>"

# name: tinyllm train flags, each an ablation against the default (the first rung). The README's
# tables were measured at commit a55b4af, whose default was today's --arch gpt-neo with dropout
# 0.1 and weight decay 2.0 whatever the passes (the rules they led to are today's defaults).
RUNGS = {
    "default": [],
    "gpt-neo": ["--arch", "gpt-neo"],       # learned positions: the default before the ladder
    "rotary": ["--position", "rotary"],
    "rmsnorm": ["--norm", "rmsnorm"],
    "swiglu": ["--mlp", "gated", "--activation", "silu"],
    "relu2": ["--activation", "relu2"],
    "no-bias": ["--no-bias"],
    "qk-norm": ["--qk-norm"],
    "softcap-15": ["--logit-softcap", "15"],
    "zero-init": ["--zero-init"],
    "wsd": ["--schedule", "wsd"],
    "llama": ["--arch", "llama"],
    "llama+qk-norm+zero-init+wsd": ["--arch", "llama", "--qk-norm", "--zero-init",
                                    "--schedule", "wsd"],
    # the changes that won alone in regime (b), together (GPT-Neo's norm and MLP kept)
    "rotary+zero-init+wsd": ["--position", "rotary", "--zero-init", "--schedule", "wsd"],
    "rotary+zero-init+wsd+no-bias+qk-norm": ["--position", "rotary", "--zero-init", "--schedule",
                                             "wsd", "--no-bias", "--qk-norm"],
    # regularisation, to set tinyllm.train_config.REGULARIZATION for each regime
    "weight-decay-0.1": ["--weight-decay", "0.1"],
    "weight-decay-0.5": ["--weight-decay", "0.5"],
    "dropout-0": ["--dropout", "0"],
    # the candidate defaults, against a55b4af's default: in (b) with the one-pass regularisation
    "rotary+zero-init": ["--position", "rotary", "--zero-init"],
    "rotary+one-pass-reg": ["--position", "rotary", "--dropout", "0", "--weight-decay", "0.1"],
    "rotary+zero-init+one-pass-reg": ["--position", "rotary", "--zero-init", "--dropout", "0",
                                      "--weight-decay", "0.1"],
}
REGIMES = {"a": "many passes (10 CPU minutes over 80 % of the head)",
           "b": "one pass (each training token once)"}


# -- data ---------------------------------------------------------------------------------------

def write_split(out: Path) -> Path:
    """train.txt (the first 80 % of the stories), validation.txt (the next 10 %), test.txt (the
    last 10 %), stories separated by <|endoftext|> lines."""
    from tinyllm.data.documents import open_source
    stories = list(open_source(STORIES).documents())
    n = len(stories)
    parts = {"train": stories[:int(0.8 * n)], "validation": stories[int(0.8 * n):int(0.9 * n)],
             "test": stories[int(0.9 * n):]}
    out.mkdir(parents=True, exist_ok=True)
    for name, part in parts.items():
        tmp = out / f".{name}.txt.tmp"
        tmp.write_text(f"\n{EOT}\n".join(part) + "\n", encoding="utf-8")
        os.replace(tmp, out / f"{name}.txt")
    return out


def one_pass_batches(tokens, batch_size: int, context: int, seed: int):
    """Batches (B, context + 1) of the disjoint windows tokens[i·T : i·T + T + 1], every window
    once, in a shuffled order: each token is a target exactly once. After the pass (never
    reached with ``--max-steps`` = windows // B) a new shuffled pass starts."""
    import numpy as np
    import torch
    tokens = np.asarray(tokens)
    windows = (len(tokens) - 1) // context
    offsets = np.arange(context + 1)
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(windows, generator=generator).numpy()
        for i in range(0, windows - batch_size + 1, batch_size):
            starts = order[i:i + batch_size, None] * context
            yield torch.from_numpy(tokens[starts + offsets].astype(np.int64))


# -- one run (in its own process) --------------------------------------------------------------

def job(args) -> dict:
    """Train one (rung, regime, seed) through tinyllm's command line, score it on test.txt."""
    from tinyllm.cli import main as tinyllm
    split, out = Path(args.workdir) / "split", Path(args.out)
    flags = shlex.split(args.flags)
    shutil.rmtree(out, ignore_errors=True)               # a fresh run, never a resumed one
    command = ["train", "--data", str(split), "--out", str(out), "--seed", str(args.seed),
               "--quiet", *flags]
    info = {}
    if args.regime == "a":
        command += ["--max-time", str(args.seconds)]
    else:
        steps, info = _one_pass(command, args.pass_fraction)
        command += ["--max-steps", str(steps), "--eval-every", str(max(1, steps // 8))]
    if tinyllm(command) != 0:
        raise SystemExit(f"tinyllm {' '.join(command)} failed")
    return {**_score(out, split / "test.txt"), **info}


def _one_pass(command: list, fraction: float) -> tuple[int, dict]:
    """Steps of one pass for ``command``'s configuration; makes this process's runs train on
    ``one_pass_batches`` instead of random windows."""
    from dataclasses import replace
    from tinyllm.cli import build_parser
    from tinyllm.cli.options import config_changes
    from tinyllm.data.tokenizer import load_tokenizer
    from tinyllm.model.presets import ARCHITECTURES
    from tinyllm.train import Run, TrainConfig
    from tinyllm.train.plan import plan_run
    from tinyllm.train.start import run_splits
    parsed = build_parser().parse_args(command)
    base = TrainConfig(model=ARCHITECTURES[parsed.arch or "gpt-neo"]())
    cfg = plan_run(replace(base, **config_changes(parsed, base)), None).cfg   # batch, tokenizer
    tokens = run_splits(cfg, load_tokenizer(cfg.tokenizer, cfg.data)).train.tokens
    windows = (len(tokens) - 1) // cfg.model.context_size
    steps = max(1, int(windows // cfg.batch_size * fraction))
    Run.batches = lambda run, train_tokens: one_pass_batches(
        train_tokens.tokens, run.cfg.batch_size, run.model.config.context_size, run.cfg.seed)
    return steps, {"one_pass_steps": steps, "windows": windows}


def _score(run: Path, test: Path) -> dict:
    """Held-out bits per byte of the run's best checkpoint on ``test`` (``tinyllm eval``), and
    what its metrics say about the run."""
    import io
    from contextlib import redirect_stdout
    from tinyllm.cli import main as tinyllm
    from tinyllm.train.compare import read_run
    from tinyllm.data.tokens import load_splits
    from tinyllm.model import GPT
    printed = io.StringIO()
    with redirect_stdout(printed):
        if tinyllm(["eval", "--model", str(run), "--data", str(test), "--json"]) != 0:
            raise SystemExit(f"tinyllm eval of {run} failed")
    scored = json.loads(printed.getvalue().strip().splitlines()[-1])
    seen = read_run(str(run))
    train_tokens = len(load_splits(str(test.parent), GPT.from_pretrained(run).tokenizer).train)
    last = seen["tokens"][-1]
    return {"test_bpb": scored["bits_per_byte"], "test_loss": scored["loss"],
            "best_val_bpb": seen["best_bpb"], "steps": seen["steps"], "tokens": last,
            "train_tokens": train_tokens, "passes": round(last / train_tokens, 2),
            "tokens_per_s": seen["tokens_per_s"], "seconds": seen["seconds"][-1],
            "parameters": seen["parameters"]}


# -- the ladder ---------------------------------------------------------------------------------

def run_ladder(args) -> None:
    workdir = Path(args.workdir)
    results = Path(args.results)
    os.environ.setdefault("TINYLLM_HOME", str(workdir / "home"))
    if not (workdir / "split" / "test.txt").is_file():
        write_split(workdir / "split")
    # the tokenizer and the token cache, once, before runs share them
    subprocess.run([sys.executable, "-m", "tinyllm", "data", "--data", str(workdir / "split")],
                   check=True, stdout=subprocess.DEVNULL)
    done = {_key(r) for r in read_results(results)}
    todo = [(regime, rung, seed) for regime in args.regimes for rung in args.rungs
            for seed in args.seeds if _key(_row(args, regime, rung, seed)) not in done]
    seconds = sum(args.seconds if regime == "a" else 60 for regime, _, _ in todo)
    hours = seconds / 3600 / args.parallel
    print(f"{len(todo)} runs to do ({len(done)} already in {results}), about {hours:.1f} h",
          flush=True)
    cpu = _cpu_model()

    def one(item):
        regime, rung, seed = item
        row = _row(args, regime, rung, seed)
        out = workdir / "runs" / regime / f"{rung}-seed{seed}"
        command = [sys.executable, __file__, "job", "--regime", regime, "--seed", str(seed),
                   "--seconds", str(args.seconds), "--pass-fraction", str(args.pass_fraction),
                   "--workdir", str(workdir), "--out", str(out), f"--flags={row['flags']}"]  # = : flags may start with --
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        started = time.time()
        done_ = subprocess.run(command, env=env, capture_output=True, text=True)
        if done_.returncode != 0:
            print(f"FAILED {regime} {rung} seed {seed}:\n{done_.stderr[-2000:]}", flush=True)
            return
        result = json.loads(done_.stdout.strip().splitlines()[-1])
        row.update(result, run=str(out), cpu=cpu, wall=round(time.time() - started, 1))
        with open(results, "a", encoding="utf-8") as f:     # one writer: this process
            f.write(json.dumps(row) + "\n")
        print(f"{regime} {rung:28s} seed {seed}: {row['test_bpb']:.4f} bits/byte, "
              f"{row['steps']} steps, {row['passes']} passes", flush=True)

    results.parent.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.parallel) as pool:
        list(pool.map(one, todo))


def _row(args, regime: str, rung: str, seed: int) -> dict:
    flags = shlex.join(RUNGS[rung]) + (" " + args.extra if args.extra else "")
    budget = args.seconds if regime == "a" else args.pass_fraction
    return {"regime": regime, "rung": rung, "flags": flags.strip(), "seed": seed,
            "budget": budget}


def _key(row: dict) -> tuple:
    return row["regime"], row["rung"], row["flags"], row["seed"], row["budget"]


def read_results(path: Path) -> list[dict]:
    if not Path(path).is_file():
        return []
    return [json.loads(line) for line in Path(path).read_text("utf-8").splitlines() if line.strip()]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


# -- the report -----------------------------------------------------------------------------------

def summarise(rows: list[dict]) -> dict:
    """{regime: [one dict per rung: n, bits per byte mean/sd, Δ vs the default mean/sd (paired
    by seed), verdict, steps, tokens/s, passes]}."""
    out = {}
    for regime in sorted({r["regime"] for r in rows}):
        mine = [r for r in rows if r["regime"] == regime]
        default = {r["seed"]: r["test_bpb"] for r in mine if r["rung"] == "default"}
        table = []
        for rung in dict.fromkeys(r["rung"] for r in mine):
            runs = [r for r in mine if r["rung"] == rung]
            bpb = [r["test_bpb"] for r in runs]
            deltas = [r["test_bpb"] - default[r["seed"]] for r in runs if r["seed"] in default]
            entry = {"rung": rung, "flags": runs[0]["flags"], "n": len(runs),
                     "bpb": statistics.mean(bpb), "bpb_sd": _sd(bpb),
                     "steps": statistics.mean(r["steps"] for r in runs),
                     "tokens_per_s": statistics.mean(r["tokens_per_s"] or 0 for r in runs),
                     "passes": statistics.mean(r["passes"] for r in runs),
                     "runs": [r["run"] for r in runs]}
            if rung != "default" and deltas:
                mean, sd = statistics.mean(deltas), _sd(deltas)
                margin = 2 * sd / math.sqrt(len(deltas)) if len(deltas) > 1 else math.inf
                entry.update(delta=mean, delta_sd=sd, paired=len(deltas),
                             verdict="better" if mean + margin < 0 else
                             "worse" if mean - margin > 0 else "within noise")
            table.append(entry)
        out[regime] = table
    return out


def _sd(values) -> float:
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def report(args) -> None:
    rows = read_results(Path(args.results))
    if not rows:
        raise SystemExit(f"no results in {args.results}: run the ladder first")
    from tinyllm.train.compare import compare, format_table
    out_dir = Path(args.out_dir)
    for regime, table in summarise(rows).items():
        print(f"\n### Regime ({regime}): {REGIMES[regime]}\n")
        brief = "" if args.brief is None or regime != "a" else " vs the brief's recipe |"
        print("| change | flags | seeds | held-out bits per byte | Δ vs default | verdict | "
              f"steps | tokens/s | passes |{brief}")
        print("|---|---|---:|---:|---:|---|---:|---:|---:|" + ("---:|" if brief else ""))
        for e in table:
            delta = (f"{e['delta']:+.4f} ± {e['delta_sd']:.4f}" if "delta" in e else "—")
            line = (f"| {e['rung']} | `{e['flags'] or '(none)'}` | {e['n']} | "
                    f"{e['bpb']:.4f} ± {e['bpb_sd']:.4f} | {delta} | {e.get('verdict', '')} | "
                    f"{e['steps']:,.0f} | {e['tokens_per_s']:,.0f} | {e['passes']:.2f} |")
            if brief:
                line += f" {100 * (e['bpb'] / args.brief - 1):+.1f} % |"
            print(line)
        existing = [(e["rung"], run) for e in table for run in e["runs"] if Path(run).is_dir()]
        if existing:
            png = out_dir / f"ladder_{regime}.png"
            drawn = compare([f"{rung}={run}" for rung, run in existing], out=png)
            print(f"\n{format_table(drawn)}\n\nwrote {png}")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("list", help="the rungs and their flags")
    r = sub.add_parser("run", help="run the runs not yet in --results")
    r.add_argument("--regimes", nargs="+", choices=list(REGIMES), default=list(REGIMES))
    r.add_argument("--rungs", nargs="+", choices=list(RUNGS), default=list(RUNGS))
    r.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    r.add_argument("--seconds", type=float, default=600, help="regime (a)'s budget")
    r.add_argument("--pass-fraction", type=float, default=1.0,
                   help="regime (b): the part of the pass to train on (1: all; less: smoke tests)")
    r.add_argument("--extra", default="", help="flags added to every run (smoke tests: a tiny "
                                               "model)")
    r.add_argument("--parallel", type=int, default=2, help="runs side by side (one core each)")
    r.add_argument("--workdir", default="/tmp/tinyllm_ladder")
    r.add_argument("--results", default="benchmarks/ladder.jsonl")
    j = sub.add_parser("job", help="(internal) one run, in its own process")
    j.add_argument("--regime", choices=list(REGIMES), required=True)
    j.add_argument("--seed", type=int, required=True)
    j.add_argument("--seconds", type=float, required=True)
    j.add_argument("--pass-fraction", type=float, default=1.0)
    j.add_argument("--workdir", required=True)
    j.add_argument("--out", required=True)
    j.add_argument("--flags", default="")
    s = sub.add_parser("report", help="mean ± sd of Δ bits per byte per rung; compare PNGs")
    s.add_argument("--results", default="benchmarks/ladder.jsonl")
    s.add_argument("--out-dir", default="benchmarks")
    s.add_argument("--brief", type=float, help="the brief's recipe's bits per byte in regime (a) "
                                               "(bench_train.py), to print each rung against it")
    sp = sub.add_parser("split", help="just write train/validation/test.txt")
    sp.add_argument("--out", required=True)
    args = p.parse_args()
    if args.what == "list":
        for name, flags in RUNGS.items():
            print(f"{name:30s} {shlex.join(flags) or '(the default)'}")
    elif args.what == "run":
        run_ladder(args)
    elif args.what == "job":
        print(json.dumps(job(args)))
    elif args.what == "report":
        report(args)
    else:
        print(write_split(Path(args.out)))


if __name__ == "__main__":
    main()
