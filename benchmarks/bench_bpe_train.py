"""Time tinyllm's two BPE trainers on N MB of text.

    python benchmarks/bench_bpe_train.py                    # 20 MB, 4,096 merges
    python benchmarks/bench_bpe_train.py --mb 5 --merges 1024
    python benchmarks/bench_bpe_train.py --quick            # 1 MB, 256 merges: a smoke run

The text is --data (default: TinyStories' validation head from ../shared/data beside the
repository, else tinyllm's built-in sample) repeated until it reaches --mb megabytes. Repeating
keeps the set of distinct words small, as in TinyStories itself; real text of the same size has
more distinct words and makes the from-scratch trainer somewhat slower. The script also checks
that both trainers learn the same merges.

Threads: the fast trainer is parallel (rayon); set RAYON_NUM_THREADS (and OMP_NUM_THREADS) to
compare on a fixed number of cores. The from-scratch trainer is single-threaded Python.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from tinyllm.tokenizer.bpe_train import train_bpe, train_bpe_fast
from tinyllm.data.sources import sample_corpus_path

REPO = Path(__file__).resolve().parents[1]
SHARED_TEXT = REPO.parent / "shared" / "data" / "tinystories" / "validation_head.txt"


def make_corpus(source: Path, megabytes: float, directory: Path) -> Path:
    """``source`` repeated (whole paragraphs) up to ``megabytes`` MB, in ``directory``."""
    text = source.read_text(encoding="utf-8")
    target = int(megabytes * 1e6)
    path = directory / f"corpus_{megabytes:g}MB.txt"
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < target:
            piece = text[: target - written] if target - written < len(text) else text
            f.write(piece)
            written += len(piece.encode("utf-8"))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="UTF-8 text to repeat")
    parser.add_argument("--mb", type=float, default=20.0, help="corpus size in MB (default 20)")
    parser.add_argument("--merges", type=int, default=4096, help="merges to learn (default 4096)")
    parser.add_argument("--quick", action="store_true", help="1 MB, 256 merges")
    parser.add_argument("--skip-slow", action="store_true", help="time the fast trainer only")
    args = parser.parse_args(argv)
    if args.quick:
        args.mb, args.merges = 1.0, 256
    source = args.data or (SHARED_TEXT if SHARED_TEXT.is_file() else sample_corpus_path())
    vocab_size = 256 + args.merges + 1  # bytes + merges + <|endoftext|>

    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')} "
          f"RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', '-')}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_corpus(source, args.mb, Path(tmp))
        size = corpus.stat().st_size / 1e6
        print(f"corpus: {source.name} repeated to {size:.1f} MB; {args.merges} merges")
        print(f"{'trainer':<24}{'seconds':>10}{'MB/s':>10}{'merges':>10}")
        results = {}
        trainers = [("tokenizers (fast)", train_bpe_fast)]
        if not args.skip_slow:
            trainers.append(("tinyllm (from scratch)", train_bpe))
        for name, trainer in trainers:
            start = time.perf_counter()
            vocab, merges = trainer(corpus, vocab_size)
            seconds = time.perf_counter() - start
            results[name] = merges
            print(f"{name:<24}{seconds:>10.2f}{size / seconds:>10.2f}{len(merges):>10}")
    if len(results) == 2:
        same = len({tuple(m) for m in results.values()}) == 1
        print("merges identical:", same)
        if not same:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
