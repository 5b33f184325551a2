"""Does the compiled one-token step pay? ``generate(..., compile=True)`` against eager.

``compile=True`` runs the model's own decode step through a ``StaticKVCache`` (every buffer the
full context, the length a tensor, the whole buffer masked), exported and compiled ahead of time
to C++ by AOTInductor, once per model shape, into ``$TINYLLM_HOME/compiled``
(``tinyllm.model.compiled``).

For each model shape the benchmark prints eager and compiled generation's time per token
(min/median/max), the first compiled call's extra seconds in a fresh process twice — with an
empty ``$TINYLLM_HOME`` (and Inductor cache): the compile; then with the program the first left
on disk: the load — and the break-even length: those seconds ÷ the time saved per token. Every
compiled run's greedy tokens are checked equal to eager generation's.

    OMP_NUM_THREADS=1 python benchmarks/bench_compiled_decode.py            # ~2 minutes
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

SHAPES = ("default", "brief")
NEW = 60                 # greedy tokens per timing (within the brief's 64-token context)


def model_of(shape: str):
    from tinyllm.model import GPT, Config
    from tinyllm.model.presets import default_model
    from tinyllm.tokenizer import Tokenizer
    torch.manual_seed(0)
    if shape == "default":       # tinyllm train's shape with the built-in 1,024-token BPE
        return GPT(Tokenizer("builtin"), default_model()).eval()
    return GPT(None, Config(vocab_size=50257)).eval()       # the brief's Config(), GPT-2's head


def measure(shape: str, repeats: int) -> dict:
    """In this process: per-token seconds eager and compiled, and the first compiled call's
    seconds beyond a later one's (compiling, or loading the program on disk)."""
    torch.set_num_threads(1)
    model = model_of(shape)
    start = torch.zeros(1, 1, dtype=torch.long)

    def run(compile):
        return model.generate(start, max_new_tokens=NEW, temperature=0, eos_token_id=None,
                              compile=compile)
    expected = run(False)
    t0 = time.perf_counter()
    first = run(True)
    first_s = time.perf_counter() - t0
    if not torch.equal(first, expected) or not torch.equal(run(True), expected):
        raise AssertionError(f"the compiled step's greedy tokens differ ({shape})")
    times = {"eager": [], "compiled": []}
    for _ in range(repeats):                                 # interleaved
        for name, compile in (("eager", False), ("compiled", True)):
            t0 = time.perf_counter()
            run(compile)
            times[name].append((time.perf_counter() - t0) / NEW)
    first_s -= NEW * sorted(times["compiled"])[repeats // 2]   # beyond a later call's time
    return {"first_call_s": first_s, **{k: sorted(v) for k, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timings of each (default 5)")
    parser.add_argument("--measure", metavar="SHAPE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeats)))
        return
    from tinyllm.train.peak import cpu_name
    print(f"CPU: {cpu_name()}, torch {torch.__version__}, one thread, {NEW} greedy tokens, "
          f"{args.repeats} timings")
    print("| shape | eager µs/token (min/median/max) | compiled µs/token | speed-up "
          "| first call: compile | later process: load | break-even, compile / load |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for shape in SHAPES:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "TINYLLM_HOME": cache, "OMP_NUM_THREADS": "1",
                   "TORCHINDUCTOR_CACHE_DIR": os.path.join(cache, "inductor")}
            runs = [json.loads(subprocess.run(
                [sys.executable, __file__, "--measure", shape, "--repeats", str(args.repeats)],
                env=env, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
                for _ in range(2)]                     # cold, then warm
        eager = [t * 1e6 for t in runs[1]["eager"]]
        fast = [t * 1e6 for t in runs[1]["compiled"]]
        cold, warm = runs[0]["first_call_s"], runs[1]["first_call_s"]
        saved = (_median(eager) - _median(fast)) / 1e6
        even = f"{cold / saved:,.0f} / {warm / saved:,.0f} tokens" if saved > 0 else "never"
        spread = "/".join(f"{t:.0f}" for t in (eager[0], _median(eager), eager[-1]))
        spread_c = "/".join(f"{t:.0f}" for t in (fast[0], _median(fast), fast[-1]))
        print(f"| {shape} | {spread} | {spread_c} | {_median(eager) / _median(fast):.2f}× | "
              f"{cold:.1f} s | {warm * 1e3:.0f} ms | {even} |", flush=True)


def _median(values):
    return sorted(values)[len(values) // 2]


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
