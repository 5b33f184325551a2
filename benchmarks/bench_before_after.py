"""tinyllm now against tinyllm at an earlier commit, side by side in one process on this CPU.

    python benchmarks/bench_before_after.py [--ref eb80099] [--repeats 9]

``--ref`` (default: eb80099, the code before the package was laid out in layers: model/,
tokenizer/, data/, formats/, train/, check/, cli/) is extracted with ``git archive`` into a
temporary directory as the package ``tinyllm_before`` (it imports itself only relatively), so
both versions run in this process, interleaved repeat by repeat:

  training step, tinyllm train's default model (4 layers, 128 wide, context 128, vocabulary
      4,096, batch 16, Muon + AdamW, dropout 0.1 as in a many-pass run, fp32): the same model
      on both sides (rotary positions; a ``--ref`` older than rotary positions gets its own
      default, learned positions)
  training step, the blog series' config (``Config()``, GPT-2's vocabulary, batch 32, Adam)
  greedy generation, the series' config and the default model, 60 new tokens after 3 prompt
      tokens (one thread)

Each: min / median / max, and the per-repeat speed-up (time before / time now).
"""
import argparse
import dataclasses
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from tinyllm.train.peak import cpu_name
from tinyllm.model import GPT, Config
from tinyllm.model.presets import default_model, gpt_neo_model
from tinyllm.train import Run, TrainConfig
from tinyllm.train.device import cpu_has_bf16_units
from tinyllm.train.plan import plan_run

REPO = Path(__file__).resolve().parents[1]


def extract(ref: str, where: Path) -> Path:
    """The package as it was at ``ref``, in ``where/tinyllm`` (``git archive``)."""
    where.mkdir(exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "tinyllm"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


def load_before(ref: str, where: Path):
    """The package as it was at ``ref``, importable as ``tinyllm_before``."""
    extract(ref, where)
    (where / "tinyllm").rename(where / "tinyllm_before")
    sys.path.insert(0, str(where))
    return {m: importlib.import_module(f"tinyllm_before.{m}")
            for m in ("config", "model", "train", "optim")}


def before_config(old, config: Config):
    """``config`` as the old ``Config`` (the fields it had)."""
    names = {f.name for f in dataclasses.fields(old["config"].Config)}
    return old["config"].Config(**{k: v for k, v in dataclasses.asdict(config).items()
                                   if k in names})


def before_step(old, config: Config, batch_size: int, **train):
    torch.manual_seed(0)
    model = old["model"].GPT(None, before_config(old, config)).train()
    cfg = old["train"].TrainConfig(precision="fp32", **train)
    device = torch.device("cpu")
    optimizer = old["optim"].make_optimizer(model, cfg, device)
    loss_fn, params = old["train"].LossModule(model), list(model.parameters())
    batch = torch.randint(0, config.vocab_size, (batch_size, config.context_size + 1))
    return lambda: old["train"].optimizer_step(loss_fn, optimizer, [batch], cfg, device, params)


def now_step(config: Config, batch_size: int, **train):
    torch.manual_seed(0)
    model = GPT(None, config)
    cfg = TrainConfig(model=config, batch_size=batch_size, precision="fp32", **train)
    run = Run(model, plan_run(cfg, None, model=model.config))
    batch = torch.randint(0, config.vocab_size, (batch_size, config.context_size + 1))
    return lambda: run.step([batch])


def generation(model_class, config, n: int = 60):
    torch.manual_seed(0)
    model = model_class(None, config).eval()
    ids = torch.tensor([[7454, 2402, 257]]) % config.vocab_size
    return lambda: model.generate(ids, max_new_tokens=n, temperature=0, eos_token_id=None)


def compare(name: str, sides: dict, repeats: int, threads: int) -> None:
    torch.set_num_threads(threads)
    for run in sides.values():        # warm up
        run()
        run()
    times = {side: [] for side in sides}
    for _ in range(repeats):
        for side, run in sides.items():
            t0 = time.perf_counter()
            run()
            times[side].append(time.perf_counter() - t0)
    b, a = times["before"], times["now"]
    speed = [x / y for x, y in zip(b, a)]
    fmt = lambda t: "/".join(f"{1000 * v:.0f}" for v in (min(t), statistics.median(t), max(t)))
    print(f"{name} ({threads} threads): before {fmt(b)} ms, now {fmt(a)} ms (min/median/max); "
          f"speed-up per repeat {min(speed):.2f} / {statistics.median(speed):.2f} / "
          f"{max(speed):.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ref", default="eb80099")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    print(f"{cpu_name()}, AMX: {cpu_has_bf16_units()}; before = {args.ref}, now = the work tree")
    with tempfile.TemporaryDirectory() as where:
        old = load_before(args.ref, Path(where))
        many_pass = dict(residual_dropout=0.1, embedding_dropout=0.1, vocab_size=4096)
        muon = dict(optimizer="muon", lr=3e-3, weight_decay=2.0)
        rotary_before = "position" in {f.name for f in dataclasses.fields(old["config"].Config)}
        before_default = (default_model() if rotary_before else gpt_neo_model()).replace(**many_pass)
        compare("training step, tinyllm train's default model", {
            "before": before_step(old, before_default, 16, **muon),
            "now": now_step(default_model().replace(**many_pass), 16, **muon)},
            args.repeats, threads)
        adam = dict(optimizer="adam", lr=1e-3, weight_decay=0.0)
        series = Config(vocab_size=50257)          # GPT-2's vocabulary
        compare("training step, the series' config", {
            "before": before_step(old, series, 32, **adam),
            "now": now_step(series, 32, **adam)}, args.repeats, threads)
        compare("greedy generation, the series' config, 60 tokens", {
            "before": generation(old["model"].GPT, before_config(old, series)),
            "now": generation(GPT, series)}, args.repeats, 1)
        default = default_model().replace(vocab_size=4096, residual_dropout=0.0,
                                          embedding_dropout=0.0)
        compare("greedy generation, the default model, 60 tokens", {
            "before": generation(old["model"].GPT, before_config(old, before_default.replace(
                residual_dropout=0.0, embedding_dropout=0.0))),
            "now": generation(GPT, default)}, args.repeats, 1)


if __name__ == "__main__":
    main()
