"""Benchmark: preparing a corpus's tokens, brief-style loop vs ``tinyllm.data.tokens.prepare``.

    python benchmarks/bench_prepare.py            # 100 MB of text (the real measurement)
    python benchmarks/bench_prepare.py --quick    # ~5 MB, a smoke run

The text is TinyStories' validation head (``../shared/data/tinystories``) replicated to the
asked size in a temporary directory (never in the repository). Two ways to tokenize it, each
in its own process so that its peak RSS is its own:

1. the brief's loop: transformers' GPT-2 (= GPT-Neo) tokenizer called once per story,
   ``tokenizer(story)['input_ids']``, collected as a Python list of lists. It runs on the first
   ``--baseline-stories`` stories; time and memory are extrapolated linearly to the whole file
   (the loop is linear: same work per story, one more list per story).
2. ``prepare``: batched fast encoding on every core, streamed to a flat uint16 file.

Reported: tokens/s, tokens per CPU-second (the work itself, less sensitive to a busy
machine), wall seconds (measured or extrapolated), CPU/wall (cores kept busy), peak
RSS above the RSS just before the work starts (Linux VmHWM, reset there), and the speed-up.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
STORIES = SHARED / "tinystories" / "validation_head_stories.txt"
GPT2 = SHARED / "gpt2"


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


def reset_peak_rss() -> float:
    """Reset the peak-RSS mark (Linux: VmHWM) to the current RSS, and return it in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass          # cannot reset: the peak then also covers the imports
    return _status_mb("VmRSS:")


def peak_rss_mb() -> float:
    return _status_mb("VmHWM:")


def build_text(path: Path, size_mb: float) -> None:
    chunk = STORIES.read_text("utf-8").rstrip("\n") + "\n<|endoftext|>\n"
    copies = max(1, round(size_mb * 2 ** 20 / len(chunk.encode("utf-8")) + 0.5))
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(copies):
            f.write(chunk)


def child_baseline(text: Path, max_stories: int) -> dict:
    """The brief's way: one tokenizer call per story, a Python list of lists."""
    import itertools
    from transformers import GPT2TokenizerFast
    from tinyllm.data.sources import iter_stories
    tok = GPT2TokenizerFast.from_pretrained(str(GPT2))      # the brief: AutoTokenizer, GPT-Neo
    total_stories = sum(1 for _ in iter_stories(text))
    stories = list(itertools.islice(iter_stories(text), max_stories))
    base_rss = reset_peak_rss()
    w, c = time.perf_counter(), time.process_time()
    data = [tok(story)["input_ids"] for story in stories]
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    grown = peak_rss_mb() - base_rss
    n_tokens = sum(len(d) for d in data)
    scale = total_stories / len(stories)
    return {"stories": len(stories), "tokens": n_tokens, "wall_s": wall, "cpu_per_wall": cpu / wall,
            "tokens_per_cpu_s": n_tokens / cpu,
            "tokens_per_s": n_tokens / wall, "extrapolated_to_stories": total_stories,
            "extrapolated_wall_s": wall * scale, "rss_growth_mb": grown,
            "extrapolated_rss_growth_mb": grown * scale,
            "digest": digest(itertools.chain.from_iterable(d + [tok.eos_token_id] for d in data))}


def digest(ids) -> str:
    """A hash of a token sequence, to check that both ways give the same tokens."""
    import numpy as np
    return hashlib.sha256(np.fromiter(ids, np.uint16).tobytes()).hexdigest()[:16]


def child_prepare(text: Path, cache: Path, compare_stories: int) -> dict:
    from tinyllm.data.tokens import prepare
    from tinyllm.tokenizer import Tokenizer
    tok = Tokenizer(GPT2)
    tok.fingerprint                    # noqa: B018  (hash the vocabulary before timing)
    base_rss = reset_peak_rss()
    w, c = time.perf_counter(), time.process_time()
    tf = prepare(text, tok, cache_dir=cache)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    w2 = time.perf_counter()
    again = prepare(text, tok, cache_dir=cache)
    reuse = time.perf_counter() - w2
    assert again.directory == tf.directory
    return {"stories": tf.num_stories, "tokens": tf.num_tokens, "wall_s": wall,
            "cpu_per_wall": cpu / wall, "tokens_per_s": tf.num_tokens / wall,
            "tokens_per_cpu_s": tf.num_tokens / cpu,
            "peak_rss_growth_mb": peak_rss_mb() - base_rss, "reuse_s": reuse,
            "token_file_mb": (tf.directory / "tokens.bin").stat().st_size / 2 ** 20,
            "digest": digest(tf.tokens[:tf.story_starts[compare_stories]])}


def run_child(*args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--child", *map(str, args)], env=env,
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="~5 MB of text instead of 100 MB")
    p.add_argument("--size-mb", type=float, default=None, help="text size (default 100, quick 5)")
    p.add_argument("--baseline-stories", type=int, default=None,
                   help="stories run through the per-story loop (default 20000, quick 2000)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        kind, *rest = args.child
        result = (child_baseline(Path(rest[0]), int(rest[1])) if kind == "baseline"
                  else child_prepare(Path(rest[0]), Path(rest[1]), int(rest[2])))
        print(json.dumps(result))
        return

    if not STORIES.is_file():
        sys.exit(f"{STORIES} not found: this benchmark needs ../shared/data beside the repository")
    size_mb = args.size_mb or (5 if args.quick else 100)
    n_base = args.baseline_stories or (2000 if args.quick else 20000)
    work = Path(tempfile.mkdtemp(prefix="tinyllm-bench-prepare-"))
    try:
        text = work / "stories.txt"
        build_text(text, size_mb)
        mb = text.stat().st_size / 2 ** 20
        print(f"text: {mb:.1f} MB ({text}), {os.cpu_count()} CPUs")
        base = run_child("baseline", text, n_base)
        prep = run_child("prepare", text, work / "cache", base["stories"])
        assert base["digest"] == prep["digest"], "the two tokenizations disagree"
        speedup = prep["tokens_per_s"] / base["tokens_per_s"]
        print(f"{'':24} {'tokens/s':>10} {'tok/CPU-s':>10} {'wall s':>8} {'cpu/wall':>8} "
              f"{'RSS +MB':>8}")
        print(f"{'per-story loop (brief)':24} {base['tokens_per_s']:10,.0f} "
              f"{base['tokens_per_cpu_s']:10,.0f} "
              f"{base['extrapolated_wall_s']:8.1f} {base['cpu_per_wall']:8.2f} "
              f"{base['extrapolated_rss_growth_mb']:8.0f}   (measured on {base['stories']:,} of "
              f"{base['extrapolated_to_stories']:,} stories, time and RSS extrapolated)")
        print(f"{'tinyllm prepare':24} {prep['tokens_per_s']:10,.0f} "
              f"{prep['tokens_per_cpu_s']:10,.0f} {prep['wall_s']:8.1f} "
              f"{prep['cpu_per_wall']:8.2f} {prep['peak_rss_growth_mb']:8.0f}   "
              f"({prep['tokens']:,} tokens, {prep['token_file_mb']:.1f} MB token file; "
              f"reuse {prep['reuse_s']:.2f} s)")
        print(f"speed-up: {speedup:.1f}x (tokens/s; CPU/wall < cores means other processes "
              "shared the CPUs)")
        if args.json:
            results = {"text_mb": mb, "cpus": os.cpu_count(), "baseline": base, "prepare": prep,
                       "speedup": speedup}
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
