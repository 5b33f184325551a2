"""Token files: a text file tokenized once, stored flat on disk, and reused.

``prepare(text_path, tokenizer)`` streams the stories of a text file (``iter_stories``),
encodes them in batches with the tokenizer's fast batched backend (the Rust ``tokenizers``
library spreads a batch over the CPU cores), and appends the ids to one flat file:

    tokens.bin = s1 eos s2 eos s3 eos ...        (uint16 when vocab_size <= 65536, else uint32)

next to ``story_starts.npy`` (token offset of each story), ``byte_starts.npy`` (UTF-8 byte
offset of each story, eos counted as one byte) and ``meta.json`` (source, tokenizer
fingerprint, counts). Memory stays bounded by one batch of stories, not by the corpus. The
directory is written under a temporary name and renamed into place when complete, so an
interrupted run never leaves a half-written cache behind.

The cache key is (resolved source path, size, mtime, tokenizer fingerprint): editing the text
or changing the tokenizer prepares the file again; anything else reuses it. Files are read
back as ``np.memmap``, so a 1 GB token file costs no RAM until it is read.

Training draws packed windows from the token stream (``random_batches``): a window of
``block_size + 1`` tokens at a random offset gives ``block_size`` next-token predictions,
across story boundaries (the eos between stories teaches the model where a story ends).
Evaluation walks the stream once, in order (``eval_batches``). Bits per byte of a span:

    bpb = (sum over predicted targets of the loss in nats) / ln 2 / sum(token_byte_lengths[targets])
"""
import hashlib
import itertools
import json
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from ..bpe import bytes_to_unicode
from ..errors import TinyLLMError
from .sources import home, iter_stories

VERSION = 1
BATCH_STORIES = 2048   # stories encoded per call of encode_batch: bounds the memory used


@dataclass
class TokenSpan:
    """A contiguous run of the token stream and the number of text bytes it encodes."""
    tokens: np.ndarray   # 1-D view of the memmap (no copy)
    num_bytes: int       # UTF-8 bytes of the text these tokens encode (eos counted as 1 byte)

    def __len__(self) -> int:
        return len(self.tokens)


class TokenFile:
    """One prepared text file: its token stream, where each story starts, and its metadata."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.meta: dict = json.loads((self.directory / "meta.json").read_text("utf-8"))
        self.tokens: np.ndarray = np.memmap(self.directory / "tokens.bin",
                                            dtype=np.dtype(self.meta["dtype"]), mode="r")
        self.story_starts: np.ndarray = np.load(self.directory / "story_starts.npy",
                                                mmap_mode="r", allow_pickle=False)
        self._byte_starts: np.ndarray = np.load(self.directory / "byte_starts.npy",
                                                mmap_mode="r", allow_pickle=False)

    @property
    def num_tokens(self) -> int:
        return int(self.meta["num_tokens"])

    @property
    def num_stories(self) -> int:
        return int(self.meta["num_stories"])

    @property
    def num_bytes(self) -> int:
        return int(self.meta["num_bytes"])

    def span(self) -> TokenSpan:
        """The whole file."""
        return TokenSpan(self.tokens, self.num_bytes)

    def split(self, val_fraction: float) -> tuple[TokenSpan, TokenSpan]:
        """(train, val) by whole stories: the last ``ceil(val_fraction * num_stories)`` stories
        are the validation span."""
        if not 0 < val_fraction < 1:
            raise TinyLLMError(f"val_fraction must be between 0 and 1 (exclusive), "
                               f"got {val_fraction}")
        n_val = math.ceil(val_fraction * self.num_stories)
        n_train = self.num_stories - n_val
        if n_train < 1:
            raise TinyLLMError(
                f"cannot split {self.num_stories} stories into train and validation with "
                f"val_fraction {val_fraction}: give more stories or a smaller val_fraction")
        t = int(self.story_starts[n_train])
        b = int(self._byte_starts[n_train])
        return (TokenSpan(self.tokens[:t], b),
                TokenSpan(self.tokens[t:], self.num_bytes - b))

    def __repr__(self) -> str:
        return (f"TokenFile({str(self.directory)!r}, num_stories={self.num_stories}, "
                f"num_tokens={self.num_tokens}, dtype={self.meta['dtype']})")


# ----------------------------------------------------------------------------- preparation

def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits in 16 bits (GPT-2's 50,257 do), else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 2 ** 16 else np.dtype(np.uint32)


def _source_info(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _cache_key(source: dict, fingerprint: str) -> str:
    h = hashlib.sha256(json.dumps([VERSION, source, fingerprint]).encode("utf-8"))
    return h.hexdigest()[:16]


def _is_valid(directory: Path, source: dict, fingerprint: str) -> bool:
    try:
        meta = json.loads((directory / "meta.json").read_text("utf-8"))
        size = (directory / "tokens.bin").stat().st_size
        return (meta.get("version") == VERSION and meta.get("source") == source
                and meta.get("tokenizer", {}).get("fingerprint") == fingerprint
                and size == meta["num_tokens"] * np.dtype(meta["dtype"]).itemsize
                and (directory / "story_starts.npy").is_file()
                and (directory / "byte_starts.npy").is_file())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def prepare(text_path, tokenizer, cache_dir=None,
            progress: Optional[Callable[[int, int], None]] = None) -> TokenFile:
    """Tokenize ``text_path`` once (or reuse the cache) and return its ``TokenFile``.

    The cache is ``cache_dir/<name>-<key>/`` (default ``cache_dir``: ``$TINYLLM_HOME/tokens``),
    keyed on the resolved source path, its size and mtime, and ``tokenizer.fingerprint``.
    ``progress(done, total)``, if given, is called after each batch with about how many bytes
    of the file are tokenized so far (e.g. to drive a progress bar)."""
    path = Path(text_path).expanduser()
    if not path.is_file():
        raise TinyLLMError(f"data file {path} does not exist: give an existing text file "
                           "with stories separated by lines holding <|endoftext|>")
    path = path.resolve()
    source = _source_info(path)
    if source["size"] == 0:
        raise TinyLLMError(f"data file {path} is empty: give a text file with stories "
                           "separated by lines holding <|endoftext|>")
    fingerprint = tokenizer.fingerprint
    root = Path(cache_dir).expanduser() if cache_dir is not None else home() / "tokens"
    target = root / f"{path.stem}-{_cache_key(source, fingerprint)}"
    if _is_valid(target, source, fingerprint):
        return TokenFile(target)

    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        meta = _tokenize(path, tokenizer, tmp, progress, source["size"])
        tokenizer_info = {"fingerprint": fingerprint, "path": str(getattr(tokenizer, "path", ""))}
        meta.update(version=VERSION, source=source, tokenizer=tokenizer_info)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if _is_valid(target, source, fingerprint):   # another process (a DDP rank) won
            return TokenFile(target)
        shutil.rmtree(target, ignore_errors=True)    # a damaged entry under the same key
        try:
            os.replace(tmp, target)                  # atomic: readers see all or nothing
        except OSError:                              # another process renamed its copy first
            if not _is_valid(target, source, fingerprint):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _remove_stale(root, target, source, fingerprint)
    return TokenFile(target)


def _tokenize(path: Path, tokenizer, out: Path, progress=None, size: int = 0) -> dict:
    """Stream the stories of ``path`` into ``out/tokens.bin`` (+ story and byte offsets)."""
    dtype = token_dtype(tokenizer.vocab_size)
    eos = tokenizer.eos_token_id
    story_starts, byte_starts = [np.zeros(1, np.int64)], [np.zeros(1, np.int64)]
    num_tokens = num_bytes = num_stories = 0
    start = time.perf_counter()
    stories = iter_stories(path)
    try:
        with open(out / "tokens.bin", "wb") as f:
            while batch := list(itertools.islice(stories, BATCH_STORIES)):
                ids = tokenizer.encode_batch(batch)
                lengths = np.fromiter(map(len, ids), np.int64, len(ids)) + 1   # + eos
                nbytes = np.fromiter((len(s.encode("utf-8")) for s in batch),
                                     np.int64, len(batch)) + 1
                for row in ids:
                    row.append(eos)
                flat = np.fromiter(itertools.chain.from_iterable(ids), dtype, int(lengths.sum()))
                f.write(flat.tobytes())
                story_starts.append(num_tokens + np.cumsum(lengths))
                byte_starts.append(num_bytes + np.cumsum(nbytes))
                num_tokens += int(lengths.sum())
                num_bytes += int(nbytes.sum())
                num_stories += len(batch)
                if progress is not None:
                    progress(min(num_bytes, size), size)
    except UnicodeDecodeError as e:
        raise TinyLLMError(f"data file {path} is not UTF-8 text ({e.reason}: byte "
                           f"{e.object[e.start:e.start + 1]!r}): convert it to UTF-8") from None
    except OverflowError:
        raise TinyLLMError(f"tokenizer gives ids beyond its vocab_size "
                           f"{tokenizer.vocab_size}: check the tokenizer files") from None
    if num_stories == 0:
        raise TinyLLMError(f"data file {path} holds no stories (only separators or whitespace): "
                           "give a text file with stories separated by lines holding <|endoftext|>")
    # the cumulative sums end with the total: drop it, keep one start per story
    np.save(out / "story_starts.npy", np.concatenate(story_starts)[:-1])
    np.save(out / "byte_starts.npy", np.concatenate(byte_starts)[:-1])
    return {"vocab_size": tokenizer.vocab_size, "eos_token_id": eos, "dtype": dtype.name,
            "num_tokens": num_tokens, "num_stories": num_stories, "num_bytes": num_bytes,
            "prepare_seconds": round(time.perf_counter() - start, 3)}


def _remove_stale(root: Path, keep: Path, source: dict, fingerprint: str) -> None:
    """Delete older caches of the same source file and tokenizer (the text has changed)."""
    for d in root.iterdir():
        if d == keep or not d.is_dir() or d.name.startswith("."):
            continue
        try:
            meta = json.loads((d / "meta.json").read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if (meta.get("source", {}).get("path") == source["path"]
                and meta.get("tokenizer", {}).get("fingerprint") == fingerprint):
            shutil.rmtree(d, ignore_errors=True)


# ----------------------------------------------------------------------------- batches

def _as_array(tokens) -> np.ndarray:
    return tokens.tokens if isinstance(tokens, TokenSpan) else tokens


def rank_shard(tokens, rank: int = 0, world_size: int = 1):
    """Rank ``rank``'s contiguous 1/world_size of ``tokens`` (a view, no copy)."""
    tokens = _as_array(tokens)
    if not 0 <= rank < world_size:
        raise TinyLLMError(f"rank {rank} is not in 0..{world_size - 1}")
    n = len(tokens)
    return tokens[rank * n // world_size:(rank + 1) * n // world_size]


def random_batches(tokens, batch_size: int, block_size: int, *, generator: torch.Generator,
                   rank: int = 0, world_size: int = 1) -> Iterator[torch.LongTensor]:
    """Random packed windows, forever: each batch is (batch_size, block_size + 1) int64,

        batch[b] = shard[s_b : s_b + block_size + 1],   s_b ~ U{0 .. len(shard) - block_size - 1}

    where ``shard`` is rank ``rank``'s contiguous 1/world_size of ``tokens``, so ranks never
    see each other's tokens. The offsets come from ``generator``: same seed, same batches.
    ``tokens`` may also be a 1-D torch tensor (e.g. kept on the GPU): the windows are then cut
    on its device, with the same offsets."""
    shard = rank_shard(tokens, rank, world_size)
    window = block_size + 1
    if len(shard) < window:
        raise TinyLLMError(f"{len(shard)} tokens per rank cannot fill a window of {window} "
                           "(context + 1): give more text or a smaller context size")
    on_torch = torch.is_tensor(shard)
    offsets = (torch.arange(window, device=shard.device) if on_torch
               else np.arange(window, dtype=np.int64))
    while True:
        starts = torch.randint(0, len(shard) - block_size, (batch_size,), generator=generator)
        if on_torch:
            yield shard[starts.to(shard.device)[:, None] + offsets].long()
        else:
            idx = starts.numpy()[:, None] + offsets            # (B, T+1) positions
            yield torch.from_numpy(shard[idx].astype(np.int64))


def eval_batches(tokens, batch_size: int, block_size: int) -> Iterator[torch.LongTensor]:
    """Consecutive windows of ``block_size + 1`` tokens at stride ``block_size``, in order,
    ``batch_size`` windows per batch: every token but the first is a target exactly once.

    The last batch may hold fewer windows, and when (len - 1) is not a multiple of
    ``block_size`` a final (1, r + 1) batch holds the last r targets."""
    tokens = _as_array(tokens)
    n = len(tokens)
    if n < 2:
        raise TinyLLMError(f"{n} tokens cannot be evaluated: give at least one story")
    num_full = (n - 1) // block_size
    offsets = np.arange(block_size + 1, dtype=np.int64)
    for i in range(0, num_full, batch_size):
        starts = np.arange(i, min(i + batch_size, num_full), dtype=np.int64) * block_size
        yield torch.from_numpy(tokens[starts[:, None] + offsets].astype(np.int64))
    if num_full * block_size < n - 1:
        yield torch.from_numpy(tokens[num_full * block_size:].astype(np.int64)[None, :])


# ----------------------------------------------------------------------------- bytes per token

def token_byte_lengths(tokenizer) -> np.ndarray:
    """int64 (vocab_size,): how many UTF-8 bytes of text each token stands for; eos -> 1.

    Byte-level BPE tokens are strings over GPT-2's byte alphabet (``bytes_to_unicode``): each
    character is one byte, so a token's length in characters is its length in bytes, even for
    tokens holding part of a multi-byte character. Other strings count as their UTF-8 bytes."""
    byte_alphabet = set(bytes_to_unicode().values())
    lengths = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    for token, i in tokenizer.vocab.items():
        if i >= len(lengths):
            raise TinyLLMError(f"token {token!r} has id {i} beyond vocab_size "
                               f"{tokenizer.vocab_size}: check the tokenizer files")
        if all(c in byte_alphabet for c in token):
            lengths[i] = len(token)
        else:
            lengths[i] = len(token.encode("utf-8"))
    lengths[tokenizer.eos_token_id] = 1
    return lengths
