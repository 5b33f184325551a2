"""tinyllm on a machine that is doing something else too: tokens/s of training and generation
alone and beside busy competitors, the code now against an earlier commit, side by side.

    python benchmarks/bench_busy.py [--ref eb80099] [--repeats 3] [--budget 30]
    python benchmarks/bench_busy.py --quick          # one repeat, the main rows
    python benchmarks/bench_busy.py --repeats 6 --beside alone    # idle speed alone

What runs (each in its own process, as a user runs them; ``--ref`` is extracted with
``git archive`` into a temporary directory and run the same way):

  train     ``python -m tinyllm train --data sample --max-steps 40 --log-every 5 --eval-every 0
            --quiet``: the median tokens/s of the metrics rows after step 10
  generate  the default model's shape (4 layers, 128 wide, vocabulary 4,096), random weights,
            greedy, 200 new tokens after 3, threads set as ``tinyllm generate`` sets them (the
            earlier code: PyTorch's default): the best of three passes

beside: nothing; one spinning Python process (one core's worth of work); two of them; another
run of the same code (for training: two runs started together, both measured). The table gives
min / median / max over the repeats and the median against the same code alone. ``--budget S``
also times ``tinyllm train --max-time S``: the command's wall time, from start to exit.

Nothing else should run meanwhile (no test suite): the competitors are the ones this starts.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_before_after import extract
from tinyllm.train.peak import cpu_name

REPO = Path(__file__).resolve().parents[1]
SPIN = [sys.executable, "-c", "while True: pass"]
TRAIN = ["-m", "tinyllm", "train", "--data", "sample", "--max-steps", "40", "--log-every", "5",
         "--eval-every", "0", "--quiet", "--device", "cpu"]
GENERATE = r"""
import statistics, sys, time
import torch
try:                                   # threads as `tinyllm generate` sets them
    from tinyllm.cli.options import cpu_threads
    import argparse
    cpu_threads(argparse.Namespace(threads=None))
except ImportError:                    # the earlier code: PyTorch's default
    pass
from tinyllm.model import GPT, Config
torch.manual_seed(0)
gpt = GPT(None, Config(vocab_size=4096, hidden_size=128, embedding_size=128, num_layers=4,
                       num_heads=4, context_size=256, attention_layers=["global"] * 4))
gpt.eval()
ids = torch.tensor([[1, 2, 3]])
gpt.generate(ids, max_new_tokens=20, temperature=0, eos_token_id=None)
rates = []
for _ in range(3):
    t0 = time.perf_counter()
    out = gpt.generate(ids, max_new_tokens=200, temperature=0, eos_token_id=None)
    rates.append((out.shape[-1] - 3) / (time.perf_counter() - t0))
print(max(rates))
"""


def env_for(root: Path, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "PYTHONPATH")}
    return {**env, "PYTHONPATH": str(root), "TINYLLM_HOME": str(home)}


def start_train(env, where: Path, *more) -> tuple:
    out = where / f"run{time.monotonic_ns()}"
    return subprocess.Popen([sys.executable, *TRAIN, "--out", str(out), *more], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), out


def train_rate(proc, out: Path) -> float:
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"tinyllm train failed: {err.decode()[-500:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["tokens_per_s"] for r in rows if "loss" in r and r["step"] > 10)


def generate_rate(env) -> float:
    done = subprocess.run([sys.executable, "-c", GENERATE], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"generation failed: {done.stderr[-500:]}")
    return float(done.stdout.split()[-1])


def measure(what: str, beside: str, env, where: Path) -> list[float]:
    """tokens/s of ``what`` (train, generate) beside ``beside``: one or two numbers (two for two
    training runs started together)."""
    others = []
    if beside.startswith("spin"):
        others = [subprocess.Popen(SPIN) for _ in range(int(beside[-1]))]
        time.sleep(0.5)
    elif beside == "tinyllm" and what == "generate":
        others = [start_train(env, where, "--max-steps", "100000")[0]]   # killed after
        time.sleep(4)                                # past its start-up, into its steps
    try:
        if what == "generate":
            return [generate_rate(env)]
        runs = [start_train(env, where) for _ in range(2 if beside == "tinyllm" else 1)]
        return [train_rate(proc, out) for proc, out in runs]
    finally:
        for p in others:
            p.kill()
            p.wait()


def budget(seconds: float, env, where: Path) -> float:
    """Wall seconds of ``tinyllm train --max-time seconds``, from start to exit."""
    out = where / f"budget{time.monotonic_ns()}"
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "tinyllm", "train", "--data", "sample", "--max-time",
                    str(seconds), "--quiet", "--device", "cpu", "--out", str(out)], env=env,
                   check=True, capture_output=True)
    return time.monotonic() - t0


def spread(values) -> str:
    return f"{min(values):,.0f} / {statistics.median(values):,.0f} / {max(values):,.0f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ref", default="eb80099", help="the earlier commit (default eb80099)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget", type=float, help="also time a --max-time S run")
    p.add_argument("--beside", default="alone,spin1,spin2,tinyllm",
                   help="the rows, from alone, spin1, spin2, tinyllm (default: all)")
    p.add_argument("--quick", action="store_true", help="one repeat, alone and beside one spinner")
    args = p.parse_args()
    besides = ["alone", "spin1"] if args.quick else args.beside.split(",")
    if "alone" not in besides:
        besides.insert(0, "alone")                 # the reference of every ratio
    repeats = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home = tmp / "home"
        codes = {"before": env_for(extract(args.ref, tmp / "before_code"), home),
                 "now": env_for(REPO, home)}
        for env in codes.values():               # the sample's tokenizer and tokens, cached once
            train_rate(*start_train(env, tmp))
        rates = {}
        for _ in range(repeats):                 # interleaved: noise hits both alike
            for what in ("train", "generate"):
                for beside in besides:
                    for code, env in codes.items():
                        rates.setdefault((what, beside, code), []).extend(
                            measure(what, beside, env, tmp))
        print(f"{os.cpu_count()}-core {cpu_name()}, {repeats} repeat(s); tokens/s min / median / "
              "max, and the median against the same code alone\n")
        print("| what | beside | before | vs alone | now | vs alone | now / before |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for what in ("train", "generate"):
            for beside in besides:
                b, n = rates[(what, beside, "before")], rates[(what, beside, "now")]
                b0 = statistics.median(rates[(what, "alone", "before")])
                n0 = statistics.median(rates[(what, "alone", "now")])
                print(f"| {what} | {beside} | {spread(b)} | {statistics.median(b) / b0:.2f} | "
                      f"{spread(n)} | {statistics.median(n) / n0:.2f} | "
                      f"{statistics.median(n) / statistics.median(b):.2f} |")
        if args.budget:
            print(f"\n--max-time {args.budget:g}: wall seconds of the command, start to exit")
            for code, env in codes.items():
                walls = [budget(args.budget, env, tmp) for _ in range(repeats)]
                print(f"  {code}: {spread(walls)}")


if __name__ == "__main__":
    main()
