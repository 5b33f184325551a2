"""Token files (tinyllm.data.tokens): prepared once, exact, cached, invalidated, batched."""
import json
import os

import numpy as np
import pytest
import torch

from tinyllm.data import tokens as tk
from tinyllm.data.sources import EOT, iter_stories, sample_corpus_path
from tinyllm.errors import TinyLLMError
from tinyllm.tokenizer import Tokenizer

from .conftest import STORIES, needs_shared

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

def test_round_trip_and_story_starts(tmp_path, tok, text_file, monkeypatch):
    monkeypatch.setattr(tk, "BATCH_STORIES", 2)       # several batches: offsets must chain
    stories = list(iter_stories(text_file))
    calls = []
    tf = tk.prepare(text_file, tok, cache_dir=tmp_path / "cache",
                    progress=lambda done, total: calls.append((done, total)))
    assert tf.num_stories == len(stories) == 4
    assert len(calls) == 2 and calls[0][0] < calls[1][0] <= calls[1][1] == text_file.stat().st_size
    assert tok.decode(tf.tokens) == joined(stories)
    assert tf.num_tokens == len(tf.tokens) == len(joined(stories).encode()) - 4 * (len(EOT) - 1)
    assert tf.num_bytes == sum(len(s.encode()) + 1 for s in stories)
    assert tf.story_starts.dtype == np.int64 and tf.story_starts[0] == 0
    ends = list(tf.story_starts[1:]) + [tf.num_tokens]
    for s, a, b in zip(stories, tf.story_starts, ends):
        assert tf.tokens[b - 1] == tok.eos_token_id
        assert tok.decode(tf.tokens[a:b - 1]) == s
    assert isinstance(tf.tokens, np.memmap)


@needs_shared
def test_round_trip_gpt2_default_cache(tinyllm_home):
    tok = Tokenizer()
    stories = list(iter_stories(STORIES))
    tf = tk.prepare(STORIES, tok)
    assert tf.directory.parent == tinyllm_home / "tokens"
    assert tf.tokens.dtype == np.uint16
    assert tf.num_stories == len(stories)
    assert tok.decode(tf.tokens) == joined(stories)
    assert list(tf.tokens[:tf.story_starts[1] - 1]) == tok.encode(stories[0])
    assert tf.meta["tokenizer"]["fingerprint"] == tok.fingerprint
    assert tf.meta["source"]["size"] == STORIES.stat().st_size


def test_dtype_uint16_and_uint32(tmp_path, text_file, tok):
    assert tk.prepare(text_file, tok, cache_dir=tmp_path / "c").tokens.dtype == np.uint16
    big = byte_tokenizer(tmp_path / "bigtok", extra=70_000)
    assert big.eos_token_id > 2 ** 16
    tf = tk.prepare(text_file, big, cache_dir=tmp_path / "c")
    assert tf.tokens.dtype == np.uint32 and tf.meta["dtype"] == "uint32"
    assert int(tf.tokens[-1]) == big.eos_token_id
    assert big.decode(tf.tokens) == joined(iter_stories(text_file))


def test_split_by_whole_stories(tmp_path, tok, text_file):
    stories = list(iter_stories(text_file))
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
    assert changed.num_stories == first.num_stories + 1

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
        stories = list(iter_stories(path))
        assert tf.num_bytes == sum(len(s.encode("utf-8")) + 1 for s in stories)
        assert lengths[tf.tokens].sum() == tf.num_bytes
        train, val = tf.split(0.1)
        assert lengths[val.tokens].sum() == val.num_bytes


def test_token_byte_lengths_builtin_tokenizer_on_sample(tmp_path):
    tok = Tokenizer("builtin")
    lengths = tk.token_byte_lengths(tok)
    tf = tk.prepare(sample_corpus_path(), tok, cache_dir=tmp_path / "c")
    assert tf.num_bytes == sum(len(s.encode("utf-8")) + 1 for s in iter_stories(sample_corpus_path()))
    assert lengths[tf.tokens].sum() == tf.num_bytes
    assert tok.decode(tf.tokens) == joined(iter_stories(sample_corpus_path()))
