"""Greedy generation speed: ``GPT.generate`` (key/value cache) side by side with the brief's loop.

The brief generates with

    text = 'Once upon a'
    for i in range(n):
        text += gpt.next_token(text)

where each call re-encodes the whole text, runs the full model over it (the brief's ``forward``
keeps the *first* ``context_size`` tokens) and sends every position through the head.
``brief_next_token`` below reproduces that call faithfully (under ``torch.no_grad``, which only
makes the baseline faster).

    (a) the brief's model, Config(): 60 new tokens after 'Once upon a' (inside its 64-token context)
    (b) a TinyStories-1M-shaped model, Config(context_size=512, window_size=256,
        attention_layers=['global', 'local'] * 4): 500 new tokens

Both use GPT-2's 50,257-token vocabulary, untrained weights (speed does not depend on them) and
never stop at eos. Their texts differ: the brief re-tokenizes the text it generated, which merges
tokens differently (the tests hold ``generate`` equal to the model run without a cache). Runs are interleaved (brief, cached, brief, cached, ...) so that machine noise
hits both alike; the table gives min / median / max tokens per second and the ratio of medians.

    OMP_NUM_THREADS=1 python benchmarks/bench_generate.py            # the real measurement
    OMP_NUM_THREADS=1 python benchmarks/bench_generate.py --quick    # a few seconds
"""
import argparse
import statistics
import time
from pathlib import Path

import torch

from tinyllm.model.config import Config
from tinyllm.files import home
from tinyllm.model import GPT
from tinyllm.tokenizer import Tokenizer

PROMPT = "Once upon a"
SHARED_GPT2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpt2"


@torch.no_grad()
def brief_next_token(gpt, text: str) -> str:
    """The brief's ``next_token``: encode everything, full forward (first context_size tokens),
    greedy pick of the last position."""
    X = torch.tensor([gpt.tokenizer.encode(text)], device=gpt.device)
    X = X[:, :gpt.config.context_size]             # the brief's forward keeps the first tokens
    logits = gpt(X)                                # (1, T, V): every position through the head
    return gpt.tokenizer.decode([int(logits[0, -1].argmax())])


def run_brief(gpt, n: int) -> str:
    text = PROMPT
    for _ in range(n):
        text += brief_next_token(gpt, text)
    return text


def run_cached(gpt, n: int) -> str:
    return gpt.generate(PROMPT, max_new_tokens=n, temperature=0, eos_token_id=None)


def bench(name: str, gpt, n: int, repeats: int) -> None:
    run_brief(gpt, 2), run_cached(gpt, 2)          # warm up allocators and the tokenizer
    speeds = {"brief next_token loop": [], "generate (kv cache)": []}
    for _ in range(repeats):
        for label, fn in zip(speeds, (run_brief, run_cached)):
            t0 = time.perf_counter()
            fn(gpt, n)
            speeds[label].append(n / (time.perf_counter() - t0))
    print(f"\n{name}: {n} new tokens, {repeats} interleaved repeats, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"  {'':24s} {'min':>9s} {'median':>9s} {'max':>9s}   tokens/s")
    for label, s in speeds.items():
        print(f"  {label:24s} {min(s):9.1f} {statistics.median(s):9.1f} {max(s):9.1f}")
    brief, cached = (statistics.median(s) for s in speeds.values())
    print(f"  speed-up (median): {cached / brief:.1f}x")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, 60 tokens on (b)")
    parser.add_argument("--repeats", type=int, default=None, help="default 5 (a) / 3 (b)")
    parser.add_argument("--tokenizer", default=None, help="a GPT-2 tokenizer directory")
    args = parser.parse_args(argv)

    if args.tokenizer is None and not (home() / "gpt2" / "merges.txt").is_file() and SHARED_GPT2.is_dir():
        args.tokenizer = SHARED_GPT2               # the repository's neighbour: no download
    tokenizer = Tokenizer(args.tokenizer)
    torch.manual_seed(0)
    brief = GPT(tokenizer, Config())
    torch.manual_seed(0)
    ts1m = GPT(tokenizer, Config(context_size=512, window_size=256,
                                 attention_layers=["global", "local"] * 4))
    bench("(a) brief Config()", brief, 60, 1 if args.quick else args.repeats or 5)
    bench("(b) TinyStories-1M shape", ts1m, 60 if args.quick else 500,
          1 if args.quick else args.repeats or 3)


if __name__ == "__main__":
    main()
