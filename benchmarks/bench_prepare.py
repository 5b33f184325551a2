"""Benchmark: token preparation (``tinyllm.data.tokens.prepare``) for every data format, side by
side with the code before the general document reader (a .txt of stories only).

    python benchmarks/bench_prepare.py             # 100 MB of text per format (the measurement)
    python benchmarks/bench_prepare.py --quick     # ~5 MB, a smoke run

The text is TinyStories' validation head (``../shared/data/tinystories``) replicated to the
asked size, in a temporary directory (never in the repository), written as:

    stories.txt        stories separated by <|endoftext|> lines (the only input the old code took)
    stories.jsonl.gz   one {"text": story} per line, gzip
    stories.parquet    a "text" column, row groups of 10,000 stories
    book.txt           the validation head with its blank lines, no separator: ONE document

Each preparation runs in its own process (so that its peak RSS is its own), with GPT-2's
tokenizer, into an empty cache. The old code is the ``tinyllm`` package of ``--baseline-rev``
(the last commit before this data layer), extracted with ``git archive`` into the temporary
directory and imported from there. Reported per row: tokens/s, tokens per CPU-second (the work
itself, less sensitive to a busy machine), wall seconds, CPU/wall (cores kept busy), peak RSS
above the RSS just before the work starts (Linux VmHWM, reset there), and the time to reuse the
prepared cache from a fresh process (what the next run pays: the source's identity, from the
memoised file hash, and the cache check). The token streams of the stories rows are checked
equal to the old code's.
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
STORIES = SHARED / "tinystories" / "validation_head_stories.txt"
HEAD = SHARED / "tinystories" / "validation_head.txt"
GPT2 = SHARED / "gpt2"
BASELINE_REV = "c6f9fb4"    # the code before the general document reader
EOT = "<|endoftext|>"


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


# ----------------------------------------------------------------------------- the inputs

def build_inputs(work: Path, size_mb: float) -> dict:
    """The four inputs, each about ``size_mb`` MB of text. Returns {row name: path}."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    stories = [s.strip() for s in STORIES.read_text("utf-8").split(f"\n{EOT}\n") if s.strip()]
    per_copy = sum(len(s.encode("utf-8")) + 1 for s in stories)
    copies = max(1, round(size_mb * 2 ** 20 / per_copy + 0.5))
    paths = {".txt (stories)": work / "stories.txt", ".jsonl.gz": work / "stories.jsonl.gz",
             ".parquet": work / "stories.parquet", ".txt, one document": work / "book.txt"}
    with open(paths[".txt (stories)"], "w", encoding="utf-8") as f:
        for _ in range(copies):
            f.write("".join(s + f"\n{EOT}\n" for s in stories))
    with gzip.open(paths[".jsonl.gz"], "wt", encoding="utf-8", compresslevel=6) as f:
        lines = "".join(json.dumps({"text": s}) + "\n" for s in stories)
        for _ in range(copies):
            f.write(lines)
    schema = pa.schema([("text", pa.string())])
    with pq.ParquetWriter(paths[".parquet"], schema) as writer:
        rows = stories * copies
        for i in range(0, len(rows), 10_000):
            writer.write_table(pa.table({"text": rows[i:i + 10_000]}, schema=schema))
    head = HEAD.read_text("utf-8").strip()
    copies = max(1, round(size_mb * 2 ** 20 / len(head.encode("utf-8")) + 0.5))
    with open(paths[".txt, one document"], "w", encoding="utf-8") as f:
        for _ in range(copies):
            f.write(head + "\n\n")
    old = time.time() - 3600    # as a corpus lying on disk is: old enough to memoise its hash
    for p in paths.values():
        os.utime(p, (old, old))
    return paths


def extract_baseline(rev: str, into: Path) -> Path:
    """The ``tinyllm`` package as it was at ``rev`` (read from git, the work tree untouched)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "tinyllm"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


# ----------------------------------------------------------------------------- the children

def child_prepare(data: Path, cache: Path) -> dict:
    """Prepare ``data`` into ``cache`` (with whichever tinyllm is on the path)."""
    import hashlib
    import importlib
    import tinyllm
    importlib.import_module("pyarrow.parquet")   # loading its ~50 MB of libraries is not preparation
    from tinyllm.data.tokens import prepare
    from tinyllm.tokenizer import Tokenizer
    tok = Tokenizer(GPT2)
    tok.fingerprint                    # noqa: B018  (hash the vocabulary before timing)
    base_rss = reset_peak_rss()
    w, c = time.perf_counter(), time.process_time()
    tf = prepare(data, tok, cache_dir=cache)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    grown = peak_rss_mb() - base_rss
    sha = hashlib.sha256()
    with open(tf.directory / "tokens.bin", "rb") as f:
        while block := f.read(1 << 24):
            sha.update(block)
    documents = getattr(tf, "num_documents", None) or tf.num_stories
    return {"package": str(Path(tinyllm.__file__).parent), "documents": documents,
            "tokens": tf.num_tokens, "wall_s": wall, "cpu_per_wall": cpu / wall,
            "tokens_per_s": tf.num_tokens / wall, "tokens_per_cpu_s": tf.num_tokens / cpu,
            "peak_rss_growth_mb": grown, "digest": sha.hexdigest()[:16],
            "token_file_mb": (tf.directory / "tokens.bin").stat().st_size / 2 ** 20}


def child_reuse(data: Path, cache: Path) -> dict:
    """The time a fresh process takes to find ``data``'s prepared tokens in ``cache``."""
    from tinyllm.data.tokens import prepare
    from tinyllm.tokenizer import Tokenizer
    tok = Tokenizer(GPT2)
    tok.fingerprint                    # noqa: B018
    w = time.perf_counter()
    tf = prepare(data, tok, cache_dir=cache)
    seconds = time.perf_counter() - w
    assert tf.meta.get("prepare_seconds") is not None
    return {"reuse_s": seconds}


def run_child(kind: str, *args, pythonpath: Path = None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, __file__, "--child", kind, *map(str, args)], env=env,
                         check=True, capture_output=True, text=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- main

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="~5 MB of text per input, not 100 MB")
    p.add_argument("--size-mb", type=float, default=None, help="text per input (default 100)")
    p.add_argument("--baseline-rev", default=BASELINE_REV,
                   help=f"git revision of the old code (default {BASELINE_REV})")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        kind, data, cache = args.child
        work = child_prepare if kind == "prepare" else child_reuse
        print(json.dumps(work(Path(data), Path(cache))))
        return

    if not STORIES.is_file():
        sys.exit(f"{STORIES} not found: this benchmark needs ../shared/data beside the repository")
    size_mb = args.size_mb or (5 if args.quick else 100)
    work = Path(tempfile.mkdtemp(prefix="tinyllm-bench-prepare-"))
    try:
        inputs = build_inputs(work, size_mb)
        old_package = extract_baseline(args.baseline_rev, work / "baseline")
        print(f"{size_mb:g} MB per input in {work}, {os.cpu_count()} CPUs, GPT-2 tokenizer")
        rows = {}
        rows[f"before ({args.baseline_rev}), .txt"] = dict(
            **run_child("prepare", inputs[".txt (stories)"], work / "cache-old",
                        pythonpath=old_package),
            **run_child("reuse", inputs[".txt (stories)"], work / "cache-old",
                        pythonpath=old_package),
            mb=inputs[".txt (stories)"].stat().st_size / 2 ** 20)
        assert rows[f"before ({args.baseline_rev}), .txt"]["package"].startswith(str(old_package))
        for name, path in inputs.items():
            cache = work / f"cache-{path.name}"
            rows[name] = dict(**run_child("prepare", path, cache),
                              **run_child("reuse", path, cache),
                              mb=path.stat().st_size / 2 ** 20)
        reference = rows[f"before ({args.baseline_rev}), .txt"]["digest"]
        for name in (".txt (stories)", ".jsonl.gz", ".parquet"):
            assert rows[name]["digest"] == reference, f"{name}: other tokens than the old code's"

        print(f"{'':24} {'file MB':>8} {'documents':>10} {'tokens':>12} {'tokens/s':>10} "
              f"{'tok/CPU-s':>10} {'wall s':>7} {'cpu/wall':>8} {'RSS +MB':>8} {'reuse s':>8}")
        for name, r in rows.items():
            print(f"{name:24} {r['mb']:8.1f} {r['documents']:10,} {r['tokens']:12,} "
                  f"{r['tokens_per_s']:10,.0f} {r['tokens_per_cpu_s']:10,.0f} {r['wall_s']:7.1f} "
                  f"{r['cpu_per_wall']:8.2f} {r['peak_rss_growth_mb']:8.0f} {r['reuse_s']:8.3f}")
        print("the stories rows give the same tokens as the old code (checked); CPU/wall < "
              "cores means other processes shared the CPUs")
        if args.json:
            args.json.write_text(json.dumps({"size_mb": size_mb, "cpus": os.cpu_count(),
                                             "rows": rows}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
