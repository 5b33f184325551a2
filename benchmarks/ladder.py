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

The rungs are a sweep file, ``benchmarks/ladder.toml`` (each a named set of ``tinyllm train``
options; its seeds, 1 2 3), and ``run`` is a ``tinyllm sweep`` of them per regime
(``tinyllm.train.sweep``), in WORKDIR/sweeps/a-600s/ and WORKDIR/sweeps/b-pass1/, each run an
ordinary run directory (RUNG/seed-N/). Each run is a separate process, two at a time
(``--parallel 2`` on the 2-core machine, one thread each), so that every run sees the same load;
its command is this file's ``job``, which trains it (for (b): the one-pass order) and then
scores its best checkpoint on test.txt (RUN/ladder_score.json). The sweep is resumable: ``run``
again continues it — finished runs are not redone, a stopped one continues from its checkpoint
(in (b), at the same place in its one-pass order). As each run is finished its result (rung,
regime, seed, test bits per byte, steps, passes...) is appended to ``--results`` as one JSON
line, the format this file always wrote. ``report`` pairs every rung's seed with the default's
same seed (same initial weights and, in (a), the same batches) and gives the sweep's verdict
(``tinyllm.train.sweep.verdict``): Δ = bits per byte (rung) - bits per byte (default), mean ± sd
over the seeds; a change is "better" when mean + 2·sd/√n < 0, "worse" when mean - 2·sd/√n > 0,
else "within noise". It also draws each regime's runs with ``tinyllm compare``.

Smoke test (tiny model, about a minute on 2 cores): ``python benchmarks/ladder.py run --seconds
4 --seeds 1 2 --rungs default rotary --pass-fraction 0.1 --extra "--layers 1 --hidden 32 --heads
4" --workdir /tmp/ladder_smoke --results /tmp/ladder_smoke/results.jsonl``, then ``report
--results /tmp/ladder_smoke/results.jsonl --out-dir /tmp/ladder_smoke``.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))        # tinyllm from this checkout, also when not installed
from tinyllm.train.peak import cpu_name  # noqa: E402
from tinyllm.train.sweep import Sweep, read_config, summarize  # noqa: E402

STORIES = REPO.parent / "shared" / "data" / "tinystories" / "validation_head_stories.txt"
EOT = "<|endoftext|>"
RUNGS_FILE = Path(__file__).with_name("ladder.toml")
SCORE = "ladder_score.json"          # a run's score on test.txt, written by ``job``
LADDER = read_config(RUNGS_FILE)     # baseline, seeds, train and the rungs (settings)
RUNGS = LADDER["settings"]
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

def job(args, train: list[str]) -> int:
    """Train one run (``train``: its ``tinyllm train`` options, from the sweep) through
    tinyllm's command line, then score its best checkpoint on test.txt into RUN/ladder_score.json."""
    from tinyllm.cli import build_parser, main as tinyllm
    from tinyllm.files import write_json
    parsed = build_parser().parse_args(["train", *train])
    out, split = Path(parsed.out), Path(parsed.data)
    info = {}
    if args.regime == "b":
        steps, info = _one_pass(["train", *train], args.pass_fraction)
        train = [*train, "--max-steps", str(steps), "--eval-every", str(max(1, steps // 8))]
    code = tinyllm(["train", *train])
    if code == 0:
        write_json(out / SCORE, {**_score(out, split / "test.txt"), **info})
    return code


def _one_pass(command: list, fraction: float) -> tuple[int, dict]:
    """Steps of one pass for ``command``'s configuration; makes this process's runs train on
    ``one_pass_batches`` instead of random windows (a resumed run where it was in that order)."""
    import itertools
    from dataclasses import replace
    from tinyllm.cli import build_parser
    from tinyllm.cli.options import config_changes
    from tinyllm.data.tokenizer import load_tokenizer
    from tinyllm.model.presets import ARCHITECTURES
    from tinyllm.train import Run, TrainConfig
    from tinyllm.train.plan import plan_run
    from tinyllm.train.start import run_splits
    parsed = build_parser().parse_args(command)
    base = TrainConfig(model=ARCHITECTURES[parsed.arch or "tinyllm"]())
    cfg = plan_run(replace(base, **config_changes(parsed, base)), None).cfg   # batch, tokenizer
    tokens = run_splits(cfg, load_tokenizer(cfg.tokenizer, cfg.data)).train.tokens
    windows = (len(tokens) - 1) // cfg.model.context_size
    steps = max(1, int(windows // cfg.batch_size * fraction))
    Run.batches = lambda run, train_tokens: itertools.islice(one_pass_batches(
        train_tokens.tokens, run.cfg.batch_size, run.model.config.context_size, run.cfg.seed),
        run.state.step * run.cfg.grad_accum, None)
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
    seen = read_run(f"{run.parent.name}={run}")
    train_tokens = len(load_splits(str(test.parent), GPT.from_pretrained(run).tokenizer).train)
    last = seen["tokens"][-1]
    return {"test_bpb": scored["bits_per_byte"], "test_loss": scored["loss"],
            "best_val_bpb": seen["best_bpb"], "steps": seen["steps"], "tokens": last,
            "train_tokens": train_tokens, "passes": round(last / train_tokens, 2),
            "tokens_per_s": seen["tokens_per_s"], "seconds": seen["seconds"][-1],
            "parameters": seen["parameters"]}


# -- the ladder: a sweep per regime -----------------------------------------------------------

def regime_sweep(args, regime: str) -> Sweep:
    """The sweep of ``args.rungs`` × ``args.seeds`` in ``regime``, in WORKDIR/sweeps/REGIME-BUDGET."""
    split = Path(args.workdir) / "split"
    budget = (["--max-time", f"{args.seconds:g}"] if regime == "a" else [])
    name = f"a-{args.seconds:g}s" if regime == "a" else f"b-pass{args.pass_fraction:g}"
    return Sweep(Path(args.workdir) / "sweeps" / name,
                 settings={rung: RUNGS[rung] for rung in args.rungs}, seeds=args.seeds,
                 train=[*LADDER["train"], "--data", str(split), *budget,
                        *shlex.split(args.extra)],
                 baseline=LADDER["baseline"] if LADDER["baseline"] in args.rungs else None)


def run_ladder(args) -> None:
    workdir = Path(args.workdir)
    results = Path(args.results)
    os.environ.setdefault("TINYLLM_HOME", str(workdir / "home"))
    if not (workdir / "split" / "test.txt").is_file():
        write_split(workdir / "split")
    # the tokenizer and the token cache, once, before runs share them
    subprocess.run([sys.executable, "-m", "tinyllm", "data", "--data", str(workdir / "split")],
                   check=True, stdout=subprocess.DEVNULL)
    sweeps = {regime: regime_sweep(args, regime) for regime in args.regimes}
    todo = {regime: len(s.runs()) - len(s.finished()) for regime, s in sweeps.items()}
    seconds = sum(n * (args.seconds if regime == "a" else 60) for regime, n in todo.items())
    print(f"{sum(todo.values())} runs to do (in {', '.join(str(s.out) for s in sweeps.values())}"
          f"), about {seconds / 3600 / args.parallel:.1f} h", flush=True)
    results.parent.mkdir(parents=True, exist_ok=True)
    cpu, started = cpu_name(), {}
    for regime, sweep in sweeps.items():
        def record(event, run, regime=regime):
            if event == "start":
                started[run.key] = time.time()
            if event != "done":
                print(f"{regime} {run.label:28s} seed {run.seed}: {event}", flush=True)
                return
            row = _row(args, regime, run.label, run.seed)
            if _key(row) in {_key(r) for r in read_results(results)}:
                return
            row.update(json.loads((run.dir / SCORE).read_text("utf-8")), run=str(run.dir),
                       cpu=cpu, wall=round(time.time() - started.get(run.key, time.time()), 1))
            with open(results, "a", encoding="utf-8") as f:     # one writer: this process
                f.write(json.dumps(row) + "\n")
            print(f"{regime} {run.label:28s} seed {run.seed}: {row['test_bpb']:.4f} bits/byte, "
                  f"{row['steps']} steps, {row['passes']} passes", flush=True)

        command = [sys.executable, __file__, "job", "--regime", regime,
                   "--pass-fraction", str(args.pass_fraction), "--"]
        for run, why in sweep.run(args.parallel, command=command, on_event=record):
            print(f"FAILED {regime} {run.key}: {why}", flush=True)


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


# -- the report -----------------------------------------------------------------------------------

def summarise(rows: list[dict]) -> dict:
    """{regime: [the sweep's row per rung (``summarize``: runs, bits per byte mean/sd, Δ vs the
    default mean/sd paired by seed, verdict), with its flags, steps, tokens/s, passes, runs]}."""
    out = {}
    for regime in sorted({r["regime"] for r in rows}):
        mine = [r for r in rows if r["regime"] == regime]
        by_rung = {}
        for r in sorted(mine, key=lambda r: list(RUNGS).index(r["rung"]) if r["rung"] in RUNGS
                        else len(RUNGS)):                 # in the rungs file's order
            by_rung.setdefault(r["rung"], {})[r["seed"]] = r
        table = summarize({rung: {seed: r["test_bpb"] for seed, r in runs.items()}
                           for rung, runs in by_rung.items()}, LADDER["baseline"])
        for entry in table:
            runs = list(by_rung[entry["setting"]].values())
            entry.update(flags=runs[0]["flags"],
                         steps=statistics.mean(r["steps"] for r in runs),
                         tokens_per_s=statistics.mean(r["tokens_per_s"] or 0 for r in runs),
                         passes=statistics.mean(r["passes"] for r in runs),
                         dirs=[r["run"] for r in runs])
        out[regime] = table
    return out


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
            line = (f"| {e['setting']} | `{e['flags'] or '(none)'}` | {e['runs']} | "
                    f"{e['bpb']:.4f} ± {e['bpb_sd']:.4f} | {delta} | {e.get('verdict', '')} | "
                    f"{e['steps']:,.0f} | {e['tokens_per_s']:,.0f} | {e['passes']:.2f} |")
            if brief:
                line += f" {100 * (e['bpb'] / args.brief - 1):+.1f} % |"
            print(line)
        existing = [(e["setting"], run) for e in table for run in e["dirs"]
                    if Path(run).is_dir()]
        if existing:
            png = out_dir / f"ladder_{regime}.png"
            drawn = compare([f"{rung}={run}" for rung, run in existing], out=png)
            print(f"\n{format_table(drawn)}\n\nwrote {png}")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("list", help="the rungs and their flags")
    r = sub.add_parser("run", help="run (or continue) the sweep of each regime")
    r.add_argument("--regimes", nargs="+", choices=list(REGIMES), default=list(REGIMES))
    r.add_argument("--rungs", nargs="+", choices=list(RUNGS), default=list(RUNGS))
    r.add_argument("--seeds", nargs="+", type=int, default=LADDER["seeds"])
    r.add_argument("--seconds", type=float, default=600, help="regime (a)'s budget")
    r.add_argument("--pass-fraction", type=float, default=1.0,
                   help="regime (b): the part of the pass to train on (1: all; less: smoke tests)")
    r.add_argument("--extra", default="", help="flags added to every run (smoke tests: a tiny "
                                               "model)")
    r.add_argument("--parallel", type=int, default=2, help="runs side by side (the cores split "
                                                           "between them)")
    r.add_argument("--workdir", default="/tmp/tinyllm_ladder")
    r.add_argument("--results", default="benchmarks/ladder.jsonl")
    j = sub.add_parser("job", help="(internal) train one run of the sweep and score it; its "
                                   "sweep's command")
    j.add_argument("--regime", choices=list(REGIMES), required=True)
    j.add_argument("--pass-fraction", type=float, default=1.0)
    j.add_argument("train", nargs=argparse.REMAINDER, help="after --: tinyllm train's options")
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
        sys.exit(job(args, args.train[1:] if args.train[:1] == ["--"] else args.train))
    elif args.what == "report":
        report(args)
    else:
        print(write_split(Path(args.out)))


if __name__ == "__main__":
    main()
