"""Kill a real training run at random moments and check that it always resumes exactly.

    python benchmarks/bench_kill.py [--kills 20] [--steps 40] [--seed 0]

A reference run trains ``--steps`` steps on the built-in corpus with a checkpoint every 2 steps
(so that many kills land inside a checkpoint write). Then, ``--kills`` times: the same run is
started in a fresh directory, killed with SIGKILL after a random delay (uniform over the
reference's duration), and continued with ``tinyllm train --resume DIR`` — or, when the kill
came before the first checkpoint, started again as a user would. A run counts as exact when
every step's loss in its ``metrics.jsonl`` equals the reference's (to 1e-6, the tolerance of
the tests) and its final weights equal the reference's. Leftovers are the hidden entries
(``.*``) of the run directory and the token cache's temporaries after the resumed run ends;
the goal is 20/20 exact and 0 leftovers.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
TINY = ["--data", "sample", "--layers", "2", "--hidden", "32", "--heads", "4", "--context", "32",
        "--batch-size", "4", "--warmup", "2", "--dropout", "0.1", "--log-every", "1",
        "--eval-every", "4", "--save-every", "2", "--device", "cpu", "--quiet"]


def tinyllm(args, home, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TINYLLM_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "tinyllm", "train", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)


def losses(run: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "loss" in r]


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(str(a / "last" / "model.safetensors")), load_file(str(b / "last" / "model.safetensors"))
    return x.keys() == y.keys() and all(torch.allclose(x[k], y[k], rtol=0, atol=1e-6) for k in x)


def hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".")) \
        if directory.is_dir() else []


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench_kill-"))
    home = work / "home"
    budget = ["--max-steps", str(args.steps)]

    t0 = time.perf_counter()
    ref = tinyllm(["--out", str(work / "ref"), *budget, *TINY], home)
    assert ref.wait() == 0, ref.stderr.read()
    duration = time.perf_counter() - t0
    reference = losses(work / "ref")
    print(f"reference: {len(reference)} steps in {duration:.1f} s; killing {args.kills} runs at "
          f"random moments in [0, {duration:.1f}] s", flush=True)

    exact = restarted = inside_write = 0
    leftover_total = 0
    for i in range(args.kills):
        run = work / f"run{i}"
        delay = rng.uniform(0.0, duration)
        proc = tinyllm(["--out", str(run), *budget, *TINY], home)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        left_by_kill = hidden(run)
        inside_write += any(".tmp-" in n or n == ".last.old" for n in left_by_kill)
        how = "resumed"
        if (run / "last").is_dir() or (run / ".last.old").is_dir():
            again = tinyllm(["--resume", str(run), *budget, "--quiet"], home)
        else:                                   # killed before the first checkpoint: start again
            how = "started again"
            restarted += 1
            shutil.rmtree(run, ignore_errors=True)
            again = tinyllm(["--out", str(run), *budget, *TINY], home)
        _, err = again.communicate()
        ok = again.returncode == 0 and losses(run) == reference and same_weights(run, work / "ref")
        exact += ok
        cache_left = [p.name for p in (home / "tokens").glob(".*")] if (home / "tokens").is_dir() else []
        left = hidden(run) + cache_left
        leftover_total += len(left)
        print(f"kill {i + 1:2d} at {delay:5.2f} s: left by the kill {left_by_kill or 'nothing'}; "
              f"{how}: "
              f"{'exact' if ok else 'DIFFERENT ' + err.strip()[-200:]}; leftovers after: {left or 0}",
              flush=True)
    print(f"\n{exact}/{args.kills} continued exactly ({restarted} killed before their first "
          f"checkpoint and started again; {inside_write} killed inside a checkpoint write); "
          f"{leftover_total} leftovers after the next start")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
