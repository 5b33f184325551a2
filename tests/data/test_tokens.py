"""Token files (tinyllm.data.tokens): prepared once, exact, cached, invalidated, batched."""
import json
import os

import numpy as np
import pytest
import torch

from tinyllm import files
from tinyllm.data import documents, tokens as tk
from tinyllm.data.documents import open_source
from tinyllm.data.sources import sample_corpus_path
from tinyllm.tokenizer import EOT
from tinyllm.errors import TinyLLMError
from tinyllm.tokenizer import Tokenizer

from tests.conftest import STORIES, VALIDATION_HEAD, needs_shared

TEXT = ("Once upon a time, a little cat sat.\n\nShe was happy.\n"
        f"{EOT}\nTom said: \"Héllo, wörld!\" 🐱 and ran off.\n{EOT}\n"
        f"  \n{EOT}\nThe end. 日本語 text, too.\n{EOT}\nLast story\nwith no separator after it.")


def byte_tokenizer(directory, extra: int = 0) -> Tokenizer:
    """A byte-level BPE with no merges: one token per byte, then ``extra`` unused tokens, then
    eos (so ``extra=70_000`` makes a vocabulary too big for uint16)."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = {c: i for i, c in enumerate(tk.bytes_to_unicode().values())}
    vocab.update({f"<unused{i}>": 256 + i for i in range(extra)})
    vocab[EOT] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text("", encoding="utf-8")
    return Tokenizer(directory)


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def joined(stories) -> str:
    return "".join(s + EOT for s in stories)


@pytest.fixture
def tok(tmp_path):
    return byte_tokenizer(tmp_path / "bytetok")


@pytest.fixture
def text_file(tmp_path):
    return write(tmp_path / "stories.txt", TEXT)


# ----------------------------------------------------------------------------- prepare

def test_round_trip_and_document_starts(tmp_path, tok, text_file, monkeypatch):
    stories = list(open_source(text_file).documents())
    # two batches of two stories (offsets must chain), the file read 16 bytes at a time
    monkeypatch.setattr(tk, "BATCH_CHARS", len(stories[0]) + len(stories[1]))
    monkeypatch.setattr(documents, "READ_BYTES", 16)
    calls = []
    tf = tk.prepare(text_file, tok, cache_dir=tmp_path / "cache",
                    progress=lambda done, total: calls.append((done, total)))
    assert tf.num_documents == len(stories) == 4
    assert len(calls) == 2 and calls[0][0] < calls[1][0] <= calls[1][1] == text_file.stat().st_size
    assert tok.decode(tf.tokens) == joined(stories)
    assert tf.num_tokens == len(tf.tokens) == len(joined(stories).encode()) - 4 * (len(EOT) - 1)
    assert tf.num_bytes == sum(len(s.encode()) + 1 for s in stories)
    assert tf.document_starts.dtype == np.int64 and tf.document_starts[0] == 0
    ends = list(tf.document_starts[1:]) + [tf.num_tokens]
    for s, a, b in zip(stories, tf.document_starts, ends):
        assert tf.tokens[b - 1] == tok.eos_token_id
        assert tok.decode(tf.tokens[a:b - 1]) == s
    assert isinstance(tf.tokens, np.memmap)


@needs_shared
def test_round_trip_gpt2_default_cache(tinyllm_home):
    tok = Tokenizer()
    stories = list(open_source(STORIES).documents())
    tf = tk.prepare(STORIES, tok)
    assert tf.directory.parent == tinyllm_home / "tokens"
    assert tf.tokens.dtype == np.uint16
    assert tf.num_documents == len(stories)
    assert tok.decode(tf.tokens) == joined(stories)
    assert list(tf.tokens[:tf.document_starts[1] - 1]) == tok.encode(stories[0])
    assert tf.meta["tokenizer"]["fingerprint"] == tok.fingerprint
    assert tf.meta["source"]["size"] == STORIES.stat().st_size


def test_dtype_uint16_and_uint32(tmp_path, text_file, tok):
    assert tk.prepare(text_file, tok, cache_dir=tmp_path / "c").tokens.dtype == np.uint16
    big = byte_tokenizer(tmp_path / "bigtok", extra=70_000)
    assert big.eos_token_id > 2 ** 16
    tf = tk.prepare(text_file, big, cache_dir=tmp_path / "c")
    assert tf.tokens.dtype == np.uint32 and tf.meta["dtype"] == "uint32"
    assert int(tf.tokens[-1]) == big.eos_token_id
    assert big.decode(tf.tokens) == joined(open_source(text_file).documents())


def test_split_by_whole_stories(tmp_path, tok, text_file):
    stories = list(open_source(text_file).documents())
    tf = tk.prepare(text_file, tok, cache_dir=tmp_path / "c")
    train, val = tf.split(0.25)                       # 4 stories: the last one is validation
    assert len(train.tokens) + len(val.tokens) == tf.num_tokens
    assert train.num_bytes + val.num_bytes == tf.num_bytes
    assert tok.decode(val.tokens) == joined(stories[-1:])
    assert val.num_bytes == len(stories[-1].encode()) + 1
    assert np.shares_memory(train.tokens, tf.tokens)  # views, not copies
    assert tf.span().num_bytes == tf.num_bytes and len(tf.span().tokens) == tf.num_tokens
    for bad in (0, 1, 0.99):                          # 0.99 leaves no training story
        with pytest.raises(TinyLLMError):
            tf.split(bad)


def test_cache_reuse_and_invalidation(tmp_path, tok, text_file, monkeypatch):
    cache = tmp_path / "c"
    first = tk.prepare(text_file, tok, cache_dir=cache)

    def fail(*a, **k):
        raise AssertionError("tokenized again")
    with monkeypatch.context() as m:
        m.setattr(Tokenizer, "encode_batch", fail)
        again = tk.prepare(text_file, tok, cache_dir=cache)   # reused: no tokenization
    assert again.directory == first.directory
    assert np.array_equal(again.tokens, first.tokens)

    # a changed source re-prepares (and removes the stale cache of that file)
    text_file.write_text(TEXT + f"\n{EOT}\nOne more story.", encoding="utf-8")
    os.utime(text_file, ns=(1, 1))
    changed = tk.prepare(text_file, tok, cache_dir=cache)
    assert changed.directory != first.directory and not first.directory.exists()
    assert changed.num_documents == first.num_documents + 1

    # another tokenizer: its own cache beside the first
    other = byte_tokenizer(tmp_path / "other", extra=3)
    assert other.fingerprint != tok.fingerprint
    o = tk.prepare(text_file, other, cache_dir=cache)
    assert o.directory != changed.directory and changed.directory.exists()
    assert int(o.tokens[-1]) == other.eos_token_id

    # a damaged cache (truncated tokens.bin) is prepared again
    with open(o.directory / "tokens.bin", "r+b") as f:
        f.truncate(4)
    assert tk.prepare(text_file, other, cache_dir=cache).num_tokens == o.num_tokens
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]   # no temp dirs left


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"), (b"", "empty"), (b"\xff\xfeabc\n", "UTF-8"),
    (f"\n{EOT}\n  \n{EOT}\n".encode(), "no stories")])
def test_unusable_files(tmp_path, tok, content, message):
    path = tmp_path / "bad.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TinyLLMError, match=message):
        tk.prepare(path, tok, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").iterdir())


# ----------------------------------------------------------------------------- batches

def test_random_batches_deterministic_and_sharded():
    tokens = np.arange(1000, dtype=np.uint16)         # token value == its position
    take = lambda it, n: [next(it) for _ in range(n)]
    a = take(tk.random_batches(tokens, 4, 8, generator=torch.Generator().manual_seed(1)), 5)
    b = take(tk.random_batches(tokens, 4, 8, generator=torch.Generator().manual_seed(1)), 5)
    c = take(tk.random_batches(tokens, 4, 8, generator=torch.Generator().manual_seed(2)), 5)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    for x in a:
        assert x.shape == (4, 9) and x.dtype == torch.int64
        assert torch.all(x[:, 1:] - x[:, :-1] == 1)    # contiguous windows
    seen = []
    for rank in range(3):
        it = tk.random_batches(tokens, 64, 8, generator=torch.Generator().manual_seed(0),
                               rank=rank, world_size=3)
        seen.append(torch.cat(take(it, 20)).unique())
        lo, hi = rank * 1000 // 3, (rank + 1) * 1000 // 3
        assert seen[-1].min() >= lo and seen[-1].max() < hi
    assert sum(len(s) for s in seen) == len(torch.cat(seen).unique())   # disjoint shards
    with pytest.raises(TinyLLMError):
        next(tk.random_batches(tokens[:8], 2, 8, generator=torch.Generator()))


@pytest.mark.parametrize("n", [2, 9, 17, 100, 101])
def test_eval_batches_cover_the_span_once(n):
    tokens = np.arange(n, dtype=np.uint32)
    batches = list(tk.eval_batches(tokens, 3, 8))
    assert all(b.dtype == torch.int64 and b.shape[0] <= 3 for b in batches)
    targets = torch.cat([b[:, 1:].reshape(-1) for b in batches])
    assert targets.tolist() == list(range(1, n))       # every target once, in order
    for b in batches:
        assert torch.all(b[:, 1:] - b[:, :-1] == 1)
    assert all(b.shape[1] == 9 for b in batches[:-1])


# ----------------------------------------------------------------------------- bytes per token

def test_token_byte_lengths_byte_tokenizer(tok, tmp_path, text_file):
    lengths = tk.token_byte_lengths(tok)
    assert lengths.dtype == np.int64 and lengths.shape == (tok.vocab_size,)
    assert (lengths == 1).all()                       # 256 bytes + eos
    tf = tk.prepare(text_file, tok, cache_dir=tmp_path / "c")
    assert lengths[tf.tokens].sum() == tf.num_bytes


@needs_shared
def test_token_byte_lengths_gpt2(tinyllm_home, tmp_path):
    tok = Tokenizer()
    lengths = tk.token_byte_lengths(tok)
    assert lengths.shape == (50257,) and lengths[tok.eos_token_id] == 1 and lengths.min() >= 1
    # tokens that decode to whole characters: their UTF-8 length, computed independently
    for i in range(0, tok.vocab_size - 1, 7):
        s = tok.decode([i])
        if "\ufffd" not in s:
            assert lengths[i] == len(s.encode("utf-8")), (i, s)
    # text with multi-byte characters split across tokens (partial UTF-8 per token)
    text = "Émile ate crème brûlée 🍮🍮 — 日本語, naïve café ☕"
    assert lengths[tok.encode(text)].sum() == len(text.encode("utf-8"))
    for path in (STORIES, sample_corpus_path()):
        tf = tk.prepare(path, tok, cache_dir=tmp_path / "c")
        stories = list(open_source(path).documents())
        assert tf.num_bytes == sum(len(s.encode("utf-8")) + 1 for s in stories)
        assert lengths[tf.tokens].sum() == tf.num_bytes
        train, val = tf.split(0.1)
        assert lengths[val.tokens].sum() == val.num_bytes


def test_token_byte_lengths_builtin_tokenizer_on_sample(tmp_path):
    tok = Tokenizer("builtin")
    lengths = tk.token_byte_lengths(tok)
    tf = tk.prepare(sample_corpus_path(), tok, cache_dir=tmp_path / "c")
    assert tf.num_bytes == sum(len(s.encode("utf-8")) + 1 for s in open_source(sample_corpus_path()).documents())
    assert lengths[tf.tokens].sum() == tf.num_bytes
    assert tok.decode(tf.tokens) == joined(open_source(sample_corpus_path()).documents())


# ----------------------------------------------------------------------------- every format

def _write_formats(root, stories):
    """The same stories as a text file, gzipped JSON Lines, Parquet and a folder of files."""
    import gzip
    import pyarrow as pa
    import pyarrow.parquet as pq
    root.mkdir(parents=True, exist_ok=True)
    write(root / "s.txt", EOT.join(stories))
    lines = "".join(json.dumps({"text": s}) + "\n" for s in stories)
    (root / "s.jsonl.gz").write_bytes(gzip.compress(lines.encode("utf-8")))
    pq.write_table(pa.table({"text": stories}), root / "s.parquet")
    for i, s in enumerate(stories):
        write(root / "folder" / f"{i:03d}.md", s)
    return [root / "s.txt", root / "s.jsonl.gz", root / "s.parquet", root / "folder"]


def test_every_format_prepares_the_same_tokens(tmp_path, tok):
    stories = list(open_source(sample_corpus_path()).documents())[:30]
    files = [tk.prepare(p, tok, cache_dir=tmp_path / "c")
             for p in _write_formats(tmp_path / "data", stories)]
    assert tok.decode(files[0].tokens) == joined(stories)
    for tf in files[1:]:
        assert np.array_equal(tf.tokens, files[0].tokens)
        assert np.array_equal(tf.document_starts, files[0].document_starts)
        assert np.array_equal(tf.document_byte_starts, files[0].document_byte_starts)
        assert tf.num_bytes == files[0].num_bytes and tf.num_documents == 30
    assert len({tf.directory for tf in files}) == 4


def test_inline_separators_end_documents(tmp_path, tok):
    tf = tk.prepare(write(tmp_path / "s.txt", f"Tom ran.{EOT}Sue sat.\n"), tok,
                    cache_dir=tmp_path / "c")
    assert tf.num_documents == 2 and tok.decode(tf.tokens) == f"Tom ran.{EOT}Sue sat.{EOT}"


def test_pieces_offsets(tmp_path, monkeypatch):
    monkeypatch.setattr(documents, "PIECE_CHARS", 300)
    tok = Tokenizer("builtin")
    stories = list(open_source(sample_corpus_path()).documents())[:20]
    text = "\n\n".join(stories)                           # one document: no separators
    tf = tk.prepare(write(tmp_path / "book.txt", text), tok, cache_dir=tmp_path / "c")
    pieces = [p for p, _ in documents.open_source(tmp_path / "book.txt").pieces()]
    assert tf.num_documents == 1 and tf.num_pieces == len(pieces) > 20
    assert list(tf.tokens[:-1]) == tok.encode(text)        # pieces change no token
    token_ends = list(tf.piece_starts[1:]) + [tf.num_tokens - 1]
    byte_ends = list(tf.piece_byte_starts[1:]) + [tf.num_bytes - 1]
    for i, piece in enumerate(pieces):
        assert tok.decode(tf.tokens[tf.piece_starts[i]:token_ends[i]]) == piece
        assert byte_ends[i] - tf.piece_byte_starts[i] == len(piece.encode("utf-8"))


# ----------------------------------------------------------------------------- splits

@needs_shared
def test_one_document_is_split_at_a_line(tmp_path):
    tok = Tokenizer("builtin")
    tf = tk.prepare(VALIDATION_HEAD, tok, cache_dir=tmp_path / "c")
    assert tf.num_documents == 1 and tf.num_bytes == len(VALIDATION_HEAD.read_bytes().strip()) + 1
    for f in (0.05, 0.2):
        train, val, how = tf.holdout(f)
        assert len(train) + len(val) == tf.num_tokens and train.num_bytes + val.num_bytes == tf.num_bytes
        assert abs(val.num_bytes - f * tf.num_bytes) <= 2 * documents.PIECE_CHARS
        train_text, val_text = tok.decode(train.tokens), tok.decode(val.tokens)
        assert val_text.startswith("\n") and not train_text[-1].isspace()   # between two lines
        assert train_text + val_text == VALIDATION_HEAD.read_text("utf-8").strip() + EOT
        assert train.num_documents == val.num_documents == 1
        assert how.startswith(f"the last {100 * val.num_bytes / tf.num_bytes:.1f} % of the bytes "
                              "of validation_head.txt")


def test_a_short_single_document_cannot_be_split(tmp_path, tok):
    tf = tk.prepare(write(tmp_path / "s.txt", "One short line."), tok, cache_dir=tmp_path / "c")
    with pytest.raises(TinyLLMError, match="too short to hold out"):
        tf.split(0.1)


def test_load_splits_decides_the_validation(tmp_path, tok):
    stories = [f"Story {i}:" + " words" * i for i in range(40)]
    data = write(tmp_path / "all.txt", EOT.join(stories))
    cache = tmp_path / "c"
    s = tk.load_splits(data, tok, val_fraction=0.1, cache_dir=cache)
    # about a tenth of the bytes, in whole documents (the last ones are the longest: 2 of 40)
    assert tok.decode(s.validation.tokens) == joined(stories[38:])
    assert s.how.startswith("the last 2 of 40 documents of all.txt (")
    assert s.train.num_documents == 38 and s.validation.num_documents == 2
    share = s.validation.num_bytes / (s.train.num_bytes + s.validation.num_bytes)
    assert abs(share - 0.1) < len(stories[-1]) / (s.train.num_bytes + s.validation.num_bytes)

    given = write(tmp_path / "held.jsonl", json.dumps({"text": "held out"}) + "\n")
    s = tk.load_splits(data, tok, val_data=given, cache_dir=cache)
    assert tok.decode(s.validation.tokens) == f"held out{EOT}"
    assert len(s.train) == s.token_files[0].num_tokens     # all of the data trains
    assert s.how == "held.jsonl (the validation data given)"

    folder = tmp_path / "split"
    write(folder / "train.txt", EOT.join(stories[:30]))
    write(folder / "validation.txt", EOT.join(stories[30:]))
    s = tk.load_splits(folder, tok, cache_dir=cache)
    assert tok.decode(s.validation.tokens) == joined(stories[30:])
    assert tok.decode(s.train.tokens) == joined(stories[:30])
    assert s.how == "split/validation.txt, the validation split of the data"


def test_describe(tmp_path, tok):
    stories = [f"Story {i}." for i in range(20)]
    path = write(tmp_path / "d.jsonl", "".join(json.dumps({"story": s}) + "\n" for s in stories))
    d = tk.describe(path, tok, text_field="story", val_fraction=0.1, cache_dir=tmp_path / "c")
    assert d["source"] == "d.jsonl" and d["documents"] == 20
    assert d["bytes"] == sum(len(s) + 1 for s in stories) and d["tokens"] == d["bytes"]
    assert d["train"] == {"documents": 18, "tokens": d["tokens"] - 20, "bytes": d["bytes"] - 20}
    assert d["validation"]["documents"] == 2 and d["validation"]["tokens"] == 20
    assert d["validation"]["how"].startswith("the last 2 of 20 documents of d.jsonl")
    assert d["first_document"] == "Story 0." and d["tokenizer"]["vocab_size"] == tok.vocab_size


# ----------------------------------------------------------------------------- content and crashes

def test_the_cache_is_keyed_by_content(tmp_path, tok, text_file, monkeypatch):
    cache = tmp_path / "c"
    first = tk.prepare(text_file, tok, cache_dir=cache)
    copy = write(tmp_path / "elsewhere" / "copy.txt", text_file.read_text("utf-8"))

    def fail(*a, **k):
        raise AssertionError("tokenized again")
    with monkeypatch.context() as m:
        m.setattr(Tokenizer, "encode_batch", fail)
        assert tk.prepare(copy, tok, cache_dir=cache).directory == first.directory
    stat = text_file.stat()                       # edited in place: same size, new mtime
    text_file.write_text(TEXT.replace("cat", "dog"), encoding="utf-8")
    assert text_file.stat().st_size == stat.st_size
    edited = tk.prepare(text_file, tok, cache_dir=cache)
    assert edited.directory != first.directory and "dog" in tok.decode(edited.tokens)


def test_an_interrupted_preparation_leaves_nothing_trusted(tmp_path, tok, text_file, monkeypatch):
    cache = tmp_path / "c"
    monkeypatch.setattr(tk, "BATCH_CHARS", 10)
    real, calls = Tokenizer.encode_batch, []

    def interrupted(self, texts):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt                  # Ctrl-C in the middle of writing
        return real(self, texts)
    monkeypatch.setattr(Tokenizer, "encode_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tk.prepare(text_file, tok, cache_dir=cache)
    assert list(cache.iterdir()) == []
    monkeypatch.setattr(Tokenizer, "encode_batch", real)
    assert tk.prepare(text_file, tok, cache_dir=cache).num_documents == 4


def test_temporaries_of_killed_preparations_are_removed(tmp_path, tok, text_file):
    import signal
    import subprocess
    import sys
    import time
    cache, marker = tmp_path / "c", tmp_path / "writing"
    script = f"""
import time
from tinyllm.data import tokens as tk
from tinyllm.tokenizer import Tokenizer
tk.BATCH_CHARS = 10
real, calls = Tokenizer.encode_batch, []
def slow(self, texts):
    calls.append(1)
    if len(calls) == 2:
        open({str(marker)!r}, "w").close()
        time.sleep(120)
    return real(self, texts)
Tokenizer.encode_batch = slow
tk.prepare({str(text_file)!r}, Tokenizer({str(tok.path)!r}), cache_dir={str(cache)!r})
"""
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 60
        while not marker.exists() and time.time() < deadline and child.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the child never started writing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    killed = [p for p in cache.iterdir()]
    assert len(killed) == 1 and killed[0].name.startswith(".") and ".tmp-" in killed[0].name
    assert (killed[0] / "tokens.bin").exists() and not (killed[0] / "meta.json").exists()

    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = cache / f".x-1.tmp-{alive.pid}-{files._host()}-0123abcd"
        other_host = cache / f".x-2.tmp-{child.pid}-otherhost-0123abcd"
        old = cache / f".x-3.tmp-{alive.pid}-{files._host()}-4567abcd"
        for d in (live, other_host, old):
            d.mkdir()
        os.utime(old, (time.time() - 2 * 24 * 3600,) * 2)
        tf = tk.prepare(text_file, tok, cache_dir=cache)
        assert tf.num_documents == 4
        assert not killed[0].exists() and not old.exists()       # dead, or more than a day old
        assert live.exists() and other_host.exists()              # alive, or maybe alive elsewhere
    finally:
        alive.kill()
        alive.wait()


@needs_shared
def test_tinystories_brings_its_own_validation_split(tinyllm_home, tok):
    stories = list(open_source(STORIES).documents())
    write(tinyllm_home / "tinystories" / "train.txt", EOT.join(stories[:50]))
    s = tk.load_splits("tinystories", tok, cache_dir=tinyllm_home / "c")
    assert s.how == "tinystories/validation.txt, the validation split of the data"
    assert s.train.num_documents == 50 and s.validation.num_documents == len(stories)
    assert tok.decode(s.validation.tokens) == joined(stories)


def test_a_tail_starts_at_a_line_when_one_is_near(tmp_path, tok, monkeypatch):
    monkeypatch.setattr(documents, "PIECE_CHARS", 40)
    words = " ".join(f"w{i}" for i in range(400))         # one long line, then short ones
    lines = "\n".join(f"line {i} here." for i in range(100))
    tf = tk.prepare(write(tmp_path / "a.txt", words + "\n" + lines), tok, cache_dir=tmp_path / "c")
    train, val, how = tf.holdout(0.1)
    assert how.endswith("cut at a line end") and tok.decode(val.tokens).startswith("\nline ")
    assert abs(val.num_bytes - 0.1 * tf.num_bytes) <= 4 * 40
    tf = tk.prepare(write(tmp_path / "b.txt", lines + "\n" + words), tok, cache_dir=tmp_path / "c")
    train, val, how = tf.holdout(0.1)                     # no line near: between words
    assert how.endswith("cut between words") and tok.decode(val.tokens).startswith(" w")
    assert abs(val.num_bytes - 0.1 * tf.num_bytes) <= 40


# ----------------------------------------------------------------------------- damage

@pytest.mark.parametrize("damage", ["an id above the vocabulary", "a valid but wrong id",
                                    "a moved split offset"])
def test_a_damaged_cache_entry_is_prepared_again(tmp_path, tok, text_file, damage):
    """The cache entry's checksums are checked when it is reused: same size, other bytes."""
    cache = tmp_path / "c"
    first = tk.prepare(text_file, tok, cache_dir=cache)
    expected, documents = np.array(first.tokens), np.array(first.document_starts)
    name, offset, value = {"an id above the vocabulary": ("tokens.bin", 2, b"\xff\xff"),
                           "a valid but wrong id": ("tokens.bin", 2, b"\x41\x00"),
                           "a moved split offset": ("documents.bin", 16, b"\x01")}[damage]
    with open(first.directory / name, "r+b") as f:
        f.seek(offset)
        f.write(value)
    files._verified.clear()                          # a later run
    again = tk.prepare(text_file, tok, cache_dir=cache)
    assert np.array_equal(again.tokens, expected)
    assert np.array_equal(again.document_starts, documents)


def test_no_space_left_while_preparing_is_one_line(tmp_path, tok, text_file, monkeypatch):
    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(tk._TokenWriter, "write", full)
    with pytest.raises(files.WriteError, match="no space left") as e:
        tk.prepare(text_file, tok, cache_dir=tmp_path / "c")
    assert "\n" not in str(e.value) and list((tmp_path / "c").iterdir()) == []


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_data_that_is_not_a_regular_file_says_so(tmp_path, special):
    path = tmp_path / "pipe"
    if special == "fifo":
        os.mkfifo(path)
    else:
        path = special
    with pytest.raises(TinyLLMError, match="is not a regular file"):
        open_source(str(path))
