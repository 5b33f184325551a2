"""`tinyllm sweep`: a grid (and/or named option sets) × seeds as ordinary run directories, run one
or several at a time, resumable after a kill, ending in one row per setting with the ladder's
verdict, and tinyllm compare's pictures."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyllm.cli import build_parser, main
from tinyllm.cli.sweep import build
from tinyllm.errors import TinyLLMError
from tinyllm.files import read_metrics
from tinyllm.train.compare import read_run
from tinyllm.train.sweep import STATE, Sweep, format_table, read_config, summarize, verdict

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STEPS = 120
TINY = ["--data", "sample", "--layers", "1", "--hidden", "32", "--heads", "4", "--context",
        "32", "--max-steps", str(STEPS), "--eval-every", "20", "--eval-batches", "2"]


# -- the verdict and the table, on numbers -----------------------------------------------------

@pytest.mark.parametrize("deltas, said", [
    ([-0.030, -0.031, -0.029], "better"),
    ([0.020, 0.022, 0.019], "worse"),
    ([-0.030, 0.030, 0.001], "within noise"),
    ([-1.5, -2.5], "better"),          # mean -2, 2·sd/√2 = 1: -2 + 1 < 0
    ([-1.0, -3.0], "within noise"),    # mean -2, 2·sd/√2 = 2: exactly on the line, not beyond
    ([-0.5], "within noise"),          # one seed: never better or worse
    ([0.5], "within noise"),
])
def test_the_verdict_rule(deltas, said):
    v = verdict(deltas)
    assert v["verdict"] == said
    assert v["paired"] == len(deltas) and v["delta"] == pytest.approx(sum(deltas) / len(deltas))
    assert math.isnan(v["delta_sd"]) if len(deltas) == 1 else v["delta_sd"] > 0


def test_the_table_pairs_seeds_with_the_baseline():
    rows = summarize({"base": {1: 1.50, 2: 1.60, 3: 1.55},
                      "good": {1: 1.40, 2: 1.51, 3: 1.44},
                      "one": {2: 1.70},                       # a single seed, paired with 2
                      "none": {}}, "base")
    base, good, one, none = rows
    assert base["baseline"] and "verdict" not in base and base["bpb"] == pytest.approx(1.55)
    assert base["bpb_sd"] == pytest.approx(0.05)
    assert good["delta"] == pytest.approx(-0.10) and good["paired"] == 3
    assert good["verdict"] == "better"
    assert one["paired"] == 1 and one["delta"] == pytest.approx(0.10)
    assert one["verdict"] == "within noise" and math.isnan(one["bpb_sd"])
    assert none["runs"] == 0 and none["bpb"] is None and "verdict" not in none
    lines = format_table(rows).splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["good", "base", "one", "none"]  # best first
    assert lines[2].split()[-1] == "better" and "-0.1000 ± " in lines[2]
    assert "baseline" in lines[3] and lines[-1].endswith("no finished run")


# -- settings, TOML, the command line ----------------------------------------------------------

def test_a_grid_with_named_sets_and_its_runs(tmp_path):
    sweep = Sweep(tmp_path, vary={"lr": ["1e-3", "3e-3"]},
                  settings={"base": [], "rotary": ["--position", "rotary"]},
                  seeds=[1, 2], train=["--data", "sample"])
    assert sweep.options() == {
        "base,lr=1e-3": ["--lr", "1e-3"], "base,lr=3e-3": ["--lr", "3e-3"],
        "rotary,lr=1e-3": ["--position", "rotary", "--lr", "1e-3"],
        "rotary,lr=3e-3": ["--position", "rotary", "--lr", "3e-3"]}
    runs = sweep.runs()
    assert [r.key for r in runs[:4]] == [f"{label}/seed-1" for label in sweep.options()]
    assert runs[5].dir == tmp_path / "base,lr=3e-3" / "seed-2"
    assert runs[5].argv == ["--data", "sample", "--lr", "3e-3", "--seed", "2", "--out",
                            str(runs[5].dir), "--resume-if-exists"]
    assert sweep.baseline_label == "base,lr=1e-3"
    assert list(Sweep(tmp_path, seeds=[1]).options()) == ["default"]     # seeds only


def test_a_sweep_file_and_the_command_line_over_it(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('out = "sweeps/x"\nseeds = 3\nseed = 10\nbaseline = "rotary,lr=0.001"\n'
                    'parallel = 2\ntrain = "--data sample --max-time 120"\n'
                    '[vary]\nlr = [0.001, "3e-3"]\n'
                    '[settings]\nrotary = "--position rotary"\nswiglu = ["--mlp", "gated"]\n')
    config = read_config(path)
    assert config["seeds"] == [10, 11, 12] and config["parallel"] == 2
    assert config["vary"] == {"lr": ["0.001", "3e-3"]}
    assert config["settings"] == {"rotary": ["--position", "rotary"], "swiglu": ["--mlp", "gated"]}
    sweep, parallel = build(build_parser().parse_args(["sweep", "--config", str(path)]))
    assert (str(sweep.out), parallel, sweep.baseline) == ("sweeps/x", 2, "rotary,lr=0.001")
    assert len(sweep.runs()) == 12 and sweep.train == ["--data", "sample", "--max-time", "120"]

    args = build_parser().parse_args([
        "sweep", "--config", str(path), "--out", str(tmp_path / "y"), "--seeds", "1",
        "--parallel", "1", "--vary", "lr=1e-2", "--setting", "swiglu=--mlp gated --activation silu",
        "--baseline", "swiglu,lr=1e-2", "--", "--max-time", "60"])
    sweep, parallel = build(args)
    assert sweep.out == tmp_path / "y" and parallel == 1 and sweep.seeds == [10]
    assert sweep.options() == {"rotary,lr=1e-2": ["--position", "rotary", "--lr", "1e-2"],
                               "swiglu,lr=1e-2": ["--mlp", "gated", "--activation", "silu",
                                                  "--lr", "1e-2"]}
    assert sweep.train[-2:] == ["--max-time", "60"]        # after the file's: argparse's last wins


@pytest.mark.parametrize("argv, toml, says", [
    (["--vary", "lr"], None, "--vary 'lr': write NAME=VALUE[,VALUE...]"),
    (["--vary", "lr=1,2", "--baseline", "lr=3"], None, "baseline 'lr=3' is none of the settings"),
    (["--setting", "a/b=--lr 1"], None, "setting 'a/b' cannot name a directory"),
    (["--vary", "lr=1", "--", "--seed", "3"], None, "--seed is the sweep's to set for each run"),
    (["--vary", "lr=1", "--", "--lr", "3"], None, "--lr is both varied and in the training"),
    (["--vary", "lr=1", "--seeds", "0"], None, "--seeds must be 1 or more"),
    ([], 'out = "x"\n[vary\nlr = [1]\n', "is not valid TOML: Expected ']'"),
    ([], 'out = "x"\nsed = 1\n', "unknown key 'sed' (a sweep file has out, seeds,"),
    ([], 'out = "x"\n[vary]\nlr = []\n', "vary.lr must be a non-empty list of values"),
    ([], 'out = "x"\nseeds = "three"\n', "seeds must be a whole number, not 'three'"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, toml, says):
    if toml is not None:
        (tmp_path / "s.toml").write_text(toml)
        argv = ["--config", str(tmp_path / "s.toml"), *argv]
    else:
        argv = ["--out", str(tmp_path / "sweep"), *argv]
    assert main(["sweep", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinyllm sweep: error: ") and says in err and err.count("\n") == 1, err
    assert not (tmp_path / "sweep" / STATE).exists()


def test_a_directory_holding_another_sweep_is_one_line(tmp_path, capsys):
    out = tmp_path / "sweep"
    out.mkdir()
    options = ["--data", "sample", "--max-steps", "5", "--lr", "1"]
    (out / STATE).write_text(json.dumps({"runs": {"lr=1/seed-1337": {
        "options": options, "finished": True, "best_bpb": 2.0}}}))
    assert main(["sweep", "--out", str(out), "--vary", "lr=1", "--", "--data", "sample",
                 "--max-steps", "6"]) == 1
    err = capsys.readouterr().err
    assert err == (f"tinyllm sweep: error: {out} holds another sweep: its run lr=1/seed-1337 was "
                   "trained with '--max-steps 5' where this one gives '--max-steps 6': give the "
                   "same options to continue it, or another --out\n")
    # the same options: that run is finished, and a new seed extends the sweep
    sweep = Sweep(out, vary={"lr": ["1"]}, seeds=[1337, 1338], train=options[:-2])
    assert list(sweep.finished()) == ["lr=1/seed-1337"]


def test_a_run_with_options_train_rejects_stops_the_sweep(tmp_path, home, capsys):
    assert main(["sweep", "--out", str(tmp_path / "s"), "--vary", "lrr=1", "--parallel", "2",
                 "--", "--data", "sample"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("tinyllm sweep: error: run lrr=1/seed-1337 failed (exit status 2: "
                              "tinyllm train: error: unrecognized option --lrr: did you mean "
                              "--lr?)")
    assert "the sweep stopped: fix its options and run it again" in err[-1]
    log = (tmp_path / "s" / "lrr=1" / "seed-1337.log").read_text()
    assert "unrecognized option --lrr: did you mean --lr?" in log


# -- a real sweep: 2 × 2 × 2 seeds, killed in the middle, continued ----------------------------

def _files(directory: Path) -> dict:
    return {str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _finished(out: Path) -> list[str]:
    try:
        runs = json.loads((out / STATE).read_text())["runs"]
    except (OSError, ValueError):
        return []
    return [key for key, run in runs.items() if run["finished"]]


def _step(run: Path) -> int:
    try:
        return max(row.get("step", 0) for row in read_metrics(run / "metrics.jsonl"))
    except (OSError, ValueError):
        return STEPS


def _processes_naming(path: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(path).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_sweep_continues_without_redoing_finished_runs(tmp_path, home, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", "--out", str(out), "--vary", "lr=1e-3,3e-3", "--vary", "batch-size=4,8",
            "--seeds", "2", "--parallel", "2", "--", *TINY]
    with open(tmp_path / "first.txt", "w") as log:
        sweep = subprocess.Popen([sys.executable, "-m", "tinyllm", *argv], stdout=log,
                                 stderr=subprocess.STDOUT, env={**os.environ})
    # kill it (SIGKILL) once two runs are finished and another is under way with a checkpoint
    deadline, halfway = time.monotonic() + 120, None
    while halfway is None:
        assert sweep.poll() is None, "the sweep ended before it could be killed in the middle"
        assert time.monotonic() < deadline, "the sweep took too long"
        done = _finished(out)
        going = [d for d in out.glob("*/seed-*") if d.is_dir() and
                 f"{d.parent.name}/{d.name}" not in done and (d / "last").is_dir()
                 and _step(d) <= STEPS // 2]                  # far from its end
        if len(done) >= 2 and going:
            kept = {key: _files(out / key) for key in done}
            halfway = going[0]
            os.kill(sweep.pid, signal.SIGKILL)
        time.sleep(0.05)
    sweep.wait()
    while _processes_naming(out):            # its runs got SIGTERM: each saves and stops
        assert time.monotonic() < deadline + 30, "the runs went on after the sweep was killed"
        time.sleep(0.1)
    assert _finished(out) == list(kept) and len(kept) < 8

    assert main([*argv[:-len(TINY) - 1], "--table", "--json", "--", *TINY]) == 0   # so far,
    partial = json.loads(capsys.readouterr().out)                           # training nothing
    assert sum(row["runs"] for row in partial["settings"]) == len(kept)
    assert _finished(out) == list(kept) and all(_files(out / k) == f for k, f in kept.items())

    assert main(argv) == 0                   # the same command continues it
    printed = capsys.readouterr()
    assert f"continuing the sweep in {out}: {len(kept)} of 8 runs finished" in printed.err
    for key, files in kept.items():          # finished runs were not touched, nor redone
        assert _files(out / key) == files, key
        assert f"{key} started" not in printed.err
    said = halfway.with_name(f"{halfway.name}.log").read_text()   # saved on SIGTERM, continued
    assert "(SIGTERM); checkpoint saved" in said and "continuing from step" in said
    assert len(_finished(out)) == 8

    state = json.loads((out / STATE).read_text())["runs"]
    best = {}
    for key, run in state.items():
        seen = read_run(f"run={out / key}")
        assert run["best_bpb"] == seen["best_bpb"] and seen["steps"] == STEPS
        best[key] = seen["best_bpb"]
    labels = ["lr=1e-3,batch-size=4", "lr=1e-3,batch-size=8", "lr=3e-3,batch-size=4",
              "lr=3e-3,batch-size=8"]
    lines = printed.out.splitlines()
    assert lines[0].split()[:2] == ["setting", "runs"] and lines[-1] == f"wrote {out / 'compare.png'}"
    rows = {line.split()[0]: line for line in lines[2:-1]}
    assert sorted(rows) == labels
    base = labels[0]
    for label in labels:
        seeds = [best[f"{label}/seed-{s}"] for s in (1337, 1338)]
        mean = sum(seeds) / 2
        assert f"{mean:.4f} ± " in rows[label] and rows[label].split()[1] == "2"
        if label == base:
            assert "baseline" in rows[label]
        else:
            deltas = [best[f"{label}/seed-{s}"] - best[f"{base}/seed-{s}"] for s in (1337, 1338)]
            v = verdict(deltas)
            assert f"{v['delta']:+.4f}" in rows[label] and rows[label].endswith(v["verdict"])
    png = out / "compare.png"
    assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 10_000

    assert main(argv) == 0                   # all finished: nothing is trained again
    again = capsys.readouterr()
    assert "started" not in again.err and again.out == printed.out


def test_a_sweep_file_runs_named_settings(tmp_path, home, capsys):
    """Two named settings, one seed, one run at a time (its output shared), from a file."""
    path = tmp_path / "s.toml"
    quick = " ".join(TINY).replace(str(STEPS), "10", 1)
    path.write_text(f'out = "{tmp_path / "s"}"\nbaseline = "wide"\ntrain = "{quick}"\n'
                    '[settings]\nnarrow = ""\nwide = "--hidden 64"\n')
    assert main(["sweep", "--config", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {row["setting"]: row for row in report["settings"]}
    assert rows["wide"]["baseline"] and rows["narrow"]["paired"] == 1
    assert rows["narrow"]["verdict"] == "within noise" and rows["narrow"]["bpb_sd"] is None
    assert read_run(f"x={tmp_path / 's' / 'wide' / 'seed-1337'}")["parameters"] > \
        read_run(f"x={tmp_path / 's' / 'narrow' / 'seed-1337'}")["parameters"]
    assert report["png"] == str(tmp_path / "s" / "compare.png") and not report["failed"]


def test_the_library_raises_what_the_command_line_prints(tmp_path):
    with pytest.raises(TinyLLMError, match="seeds must be different whole numbers"):
        Sweep(tmp_path, seeds=[1, 1])
    with pytest.raises(TinyLLMError, match="sweep file .*nowhere.toml does not exist"):
        read_config(tmp_path / "nowhere.toml")
    with pytest.raises(TinyLLMError, match="--parallel must be 1 or more"):
        Sweep(tmp_path / "s").run(parallel=0)
