"""Kill a real training run at random moments and check that it always resumes exactly.

    python benchmarks/bench_kill.py [--kills 20] [--steps 40] [--seed 0] [--torchrun-kills 5]

A reference run trains ``--steps`` steps on the built-in corpus with a checkpoint every 2 steps
(so that many kills land inside a checkpoint write). Then, ``--kills`` times: the same run is
started in a fresh directory, killed with SIGKILL after a random delay (uniform over the
reference's duration), and continued with ``tinyllm train --resume DIR`` — or, when the kill
came before the first checkpoint, started again as a user would. A run counts as exact when
every step's loss in its ``metrics.jsonl`` equals the reference's (to 1e-6, the tolerance of
the tests) and its final weights equal the reference's. Leftovers are the hidden entries
(``.*``) of the run directory and the token cache's temporaries after the resumed run ends;
the goal is 20/20 exact and 0 leftovers.

The torchrun case (``--torchrun-kills N``, 0 to skip): the same run as two processes under
``torchrun --max-restarts 1``, the worker of rank 1 killed with SIGKILL at a random step; torchrun
restarts the group, whose same command line continues from last/. Exact: it finishes by itself
(status 0) with every step's loss and the final weights within 1e-5 of an uninterrupted
two-process run; the seconds from the kill to the end are reported.
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
sys.path.insert(0, str(REPO))            # the torchrun case finds its workers as the tests do
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


def same_weights(a: Path, b: Path, atol: float = 1e-6) -> bool:
    x, y = load_file(str(a / "last" / "model.safetensors")), load_file(str(b / "last" / "model.safetensors"))
    return x.keys() == y.keys() and all(torch.allclose(x[k], y[k], rtol=0, atol=atol) for k in x)


def torchrun(args, home):
    from tests.train.test_distributed import free_port
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TINYLLM_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                             "2", "--max-restarts", "1", "--master_addr", "127.0.0.1",
                             "--master_port", str(free_port()), "-m", "tinyllm", "train", *args],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def torchrun_kills(kills, steps, rng, work, home) -> None:
    from tests.train.test_distributed import worker_pid
    budget = ["--max-steps", str(steps)]
    ref = torchrun(["--out", str(work / "tref"), *budget, *TINY], home)
    assert ref.wait() == 0, ref.stderr.read()
    reference = losses(work / "tref")
    exact = 0
    for i in range(kills):
        run, step = work / f"trun{i}", rng.randint(3, steps - 8)
        proc = torchrun(["--out", str(run), *budget, *TINY], home)
        while proc.poll() is None and not ((run / "metrics.jsonl").is_file()
                                           and len(losses(run)) >= step):
            time.sleep(0.01)
        pid = worker_pid(proc.pid, 1) if proc.poll() is None else None
        if pid is None:
            print(f"torchrun kill {i + 1}: the run ended before step {step}: not killed")
            proc.communicate()
            continue
        os.kill(pid, signal.SIGKILL)
        killed = time.perf_counter()
        _, err = proc.communicate()
        took = time.perf_counter() - killed
        got = losses(run)
        far = [n for n, (x, y) in enumerate(zip(got, reference), 1) if abs(x - y) > 1e-5]
        weights = same_weights(run, work / "tref", atol=1e-5)
        ok = proc.returncode == 0 and len(got) == len(reference) and not far and weights
        exact += ok
        if not ok:
            err = (f"{len(got)} steps of {len(reference)}, losses apart from step "
                   f"{far[:1] or 'none'}, weights {'equal' if weights else 'apart'}")
        again = next((line for line in err.splitlines() if line.startswith("continuing")), "")
        said = [line for line in err.splitlines() if line.startswith("tinyllm train: error")]
        print(f"torchrun kill {i + 1}: rank 1 at step {step}; the survivor said "
              f"{len(said)} line(s) ({said[0][22:80] + '...' if said else ''}); finished "
              f"{took:.1f} s after the kill, status {proc.returncode}, "
              f"{again.split(':')[0] or 'not continued'}; "
              f"{'exact' if ok else 'DIFFERENT: ' + err}", flush=True)
    print(f"torchrun: {exact}/{kills} finished by themselves exactly")


def hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".")) \
        if directory.is_dir() else []


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torchrun-kills", type=int, default=5)
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
    if args.torchrun_kills:
        torchrun_kills(args.torchrun_kills, args.steps, rng, work, home)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
