"""Token files: a data source tokenized once, stored flat on disk, and reused.

``prepare(source, tokenizer)`` streams the pieces of a ``Source`` (``tinyllm.data.documents``:
any file, folder, glob or dataset), encodes them in batches with the tokenizer's fast batched
backend (the Rust ``tokenizers`` library spreads a batch over the CPU cores), and appends the
ids to one flat file, an eos after each document:

    tokens.bin     = d1 eos d2 eos d3 eos ...   (uint16 when vocab_size <= 65536, else uint32)
    documents.bin  = int64 (num_documents, 2): [token offset, byte offset] where each starts
    pieces.bin     = int64 (num_pieces, 3):    [token offset, byte offset, starts a line (0/1)]
    meta.json      = source (name, origin, identity), tokenizer fingerprint, counts
    checksums.json = the SHA-256 of each file above, checked when the entry is reused (about
                     1.5 GB/s): a damaged entry is prepared again, never trained on

Byte offsets count the UTF-8 bytes of the text, eos counted as one byte. A piece is at most
``PIECE_CHARS`` characters and ends at a line end where it can, so ``pieces.bin`` says where a
held-out tail can start when there are too few documents to hold some out. Memory stays
bounded by one batch of pieces, not by the corpus nor by its longest document. The directory
is written under a temporary name (``tinyllm.files``) and renamed into place when complete, so an
interrupted run never leaves an entry a later run trusts; temporaries left by dead processes are
removed the next time ``prepare`` runs. A full disk while preparing is one line, the
temporary removed.

The cache key is (source identity, tokenizer fingerprint, format version). The identity is
made from the content (``Source.identity``): editing a file prepares it again; the same bytes
under another name or path reuse the entry. Files are read back as
``np.memmap``, so a 1 GB token file costs no RAM until it is read.

Which text is held out (``load_splits``): ``val_data`` if given, else the source's own
validation split, else ``TokenFile.holdout(val_fraction)``: of n >= 2 documents the last whole
ones holding about f of the bytes (or, ``by='documents'``, the last ceil(f * n) of them), of a
single document a contiguous tail of about f of its bytes, cut where a piece starts (at a line
end where there is one near).

Training draws packed windows from the token stream (``random_batches``): a window of
``block_size + 1`` tokens at a random offset gives ``block_size`` next-token predictions,
across document boundaries (the eos between documents teaches the model where one ends).
Evaluation walks the stream once, in order (``eval_batches``). Bits per byte of a span:

    bpb = (sum over predicted targets of the loss in nats) / ln 2 / sum(token_byte_lengths[targets])
"""
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from ..errors import TinyLLMError
from ..files import (check_manifest, home, remove_temporaries, temporary_path, write_manifest,
                     writing)
from ..tokenizer import EOT
from ..tokenizer.bpe import bytes_to_unicode
from . import documents
from .documents import Source, open_source

VERSION = 2
BATCH_CHARS = 1 << 20          # characters of text per encode_batch call: bounds the memory used


@dataclass
class TokenSpan:
    """A contiguous run of the token stream and the number of text bytes it encodes."""
    tokens: np.ndarray       # 1-D view of the memmap (no copy)
    num_bytes: int           # UTF-8 bytes of the text these tokens encode (eos counted as 1 byte)
    num_documents: int = 0   # documents with text in the span (one cut in two counts on both sides)
    before: int | None = None  # the token just before the span in its stream (eos at the start
                               # of a file: its text starts a document): evaluation predicts the
                               # span's first token from it, so that every token is scored

    def __len__(self) -> int:
        return len(self.tokens)


class TokenFile:
    """One prepared source: its token stream, where each document and piece starts, its meta."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.meta: dict = json.loads((self.directory / "meta.json").read_text("utf-8"))
        self.tokens: np.ndarray = np.memmap(self.directory / "tokens.bin",
                                            dtype=np.dtype(self.meta["dtype"]), mode="r")
        documents = np.memmap(self.directory / "documents.bin", dtype=np.int64, mode="r")
        pieces = np.memmap(self.directory / "pieces.bin", dtype=np.int64, mode="r")
        documents, pieces = documents.reshape(-1, 2), pieces.reshape(-1, 3)
        self.document_starts: np.ndarray = documents[:, 0]       # token offsets
        self.document_byte_starts: np.ndarray = documents[:, 1]  # byte offsets
        self.piece_starts: np.ndarray = pieces[:, 0]
        self.piece_byte_starts: np.ndarray = pieces[:, 1]
        self.piece_starts_line: np.ndarray = pieces[:, 2]        # 1 where a line starts

    @property
    def name(self) -> str:
        return self.meta["source"]["name"]

    @property
    def num_tokens(self) -> int:
        return int(self.meta["num_tokens"])

    @property
    def num_documents(self) -> int:
        return int(self.meta["num_documents"])

    @property
    def num_pieces(self) -> int:
        return int(self.meta["num_pieces"])

    @property
    def num_bytes(self) -> int:
        return int(self.meta["num_bytes"])

    def span(self) -> TokenSpan:
        """The whole file."""
        return TokenSpan(self.tokens, self.num_bytes, self.num_documents, self.eos)

    @property
    def eos(self) -> int:
        return int(self.meta["eos_token_id"])

    def split(self, val_fraction: float, by: str = "bytes") -> tuple[TokenSpan, TokenSpan]:
        """(train, validation): see ``holdout``."""
        train, validation, _ = self.holdout(val_fraction, by)
        return train, validation

    def holdout(self, val_fraction: float, by: str = "bytes") -> tuple[TokenSpan, TokenSpan, str]:
        """(train, validation, how it was cut, in words): about ``val_fraction`` of the text's
        bytes held out at its end. With two documents or more, the validation span is the last
        whole documents, cut where a document starts nearest to ``(1 - val_fraction)`` of the
        bytes (at least one held out); a single document (a book, notes) is cut
        where a piece starts, nearest to that point: at the start of a line if one is within
        about four pieces of the nearest piece start, else between words (in a line of
        thousands of characters). ``by='documents'``: the last ``ceil(val_fraction * n)`` of n
        documents instead (what runs saved before the byte rule hold out)."""
        if not 0 < val_fraction < 1:
            raise TinyLLMError(f"val_fraction must be between 0 and 1 (exclusive), "
                               f"got {val_fraction}")
        n = self.num_documents
        target = (1 - val_fraction) * self.num_bytes       # where the held-out text should start
        if n >= 2:   # the document start nearest to the target; at least one document held out
            starts = np.append(np.asarray(self.document_byte_starts), self.num_bytes)
            n_train = min(n - 1, int(np.argmin(np.abs(starts - target)))) if by == "bytes" \
                else n - math.ceil(val_fraction * n)
            if n_train < 1:
                raise TinyLLMError(
                    f"cannot split the {n} documents of {self.name} into train and validation "
                    f"with val_fraction {val_fraction}: give more documents or a smaller "
                    "val_fraction")
            n_val = n - n_train
            t = int(self.document_starts[n_train])
            b = int(self.document_byte_starts[n_train])
            docs_train, docs_val = n_train, n_val
            how = (f"the last {n_val:,} of {n:,} documents of {self.name} "
                   f"({100 * (self.num_bytes - b) / self.num_bytes:.1f} % of the bytes)")
        else:   # the tail starts where a piece does (not the first), at a line if one is near
            if self.num_pieces < 2:
                raise TinyLLMError(
                    f"{self.name} is one document of {self.num_bytes:,} bytes, too short to hold "
                    f"out a part of it: give more text, or validation data (--val-data)")
            starts = np.asarray(self.piece_byte_starts[1:])
            nearest = 1 + int(np.argmin(np.abs(starts - target)))
            at_line = np.flatnonzero(self.piece_starts_line[1:]) + 1
            if len(at_line):
                line = at_line[int(np.argmin(np.abs(starts[at_line - 1] - target)))]
                slack = 4 * documents.PIECE_CHARS   # about 4 pieces of text, in bytes
                if abs(starts[line - 1] - target) <= abs(starts[nearest - 1] - target) + slack:
                    nearest = int(line)
            t, b = int(self.piece_starts[nearest]), int(self.piece_byte_starts[nearest])
            docs_train = docs_val = 1
            cut = "at a line end" if self.piece_starts_line[nearest] else "between words"
            how = (f"the last {100 * (self.num_bytes - b) / self.num_bytes:.1f} % of the bytes "
                   f"of {self.name}, cut {cut}")
        return (TokenSpan(self.tokens[:t], b, docs_train, self.eos),
                TokenSpan(self.tokens[t:], self.num_bytes - b, docs_val, int(self.tokens[t - 1])),
                how)

    def __repr__(self) -> str:
        return (f"TokenFile({str(self.directory)!r}, num_documents={self.num_documents}, "
                f"num_tokens={self.num_tokens}, dtype={self.meta['dtype']})")


# ----------------------------------------------------------------------------- train/validation

@dataclass
class Splits:
    """The token spans a run trains and validates on, and where the validation comes from."""
    train: TokenSpan
    validation: TokenSpan
    how: str                                     # e.g. "the last 5.0 % of the bytes of x.txt, ..."
    token_files: list = field(default_factory=list)   # the TokenFiles the spans come from


def load_splits(data, tokenizer, *, val_data=None, val_fraction: float = 0.05,
                val_by: str = "bytes", text_field: str = "text", cache_dir=None,
                progress: Optional[Callable[[int, Optional[int]], None]] = None) -> Splits:
    """Decide train and validation for a run, the same way for the CLI and for Python.

    ``data`` (and ``val_data``): anything ``open_source`` takes, or a ``Source``. The
    validation is ``val_data`` if given; else the source's own validation split (TinyStories,
    a folder with train.* and validation.*, a Hugging Face dataset's validation split); else
    the held-out ``val_fraction`` of ``data`` (``TokenFile.holdout``)."""
    source = open_source(data, split="train", text_field=text_field)
    validation = (open_source(val_data, split="validation", text_field=text_field)
                  if val_data is not None else source.validation())
    train_file = prepare(source, tokenizer, cache_dir, progress)
    if validation is None:
        train, held_out, how = train_file.holdout(val_fraction, val_by)
        return Splits(train, held_out, how, [train_file])
    val_file = prepare(validation, tokenizer, cache_dir, progress)
    how = (f"{validation.name} (the validation data given)" if val_data is not None
           else f"{validation.name}, the validation split of the data")
    return Splits(train_file.span(), val_file.span(), how, [train_file, val_file])


def describe(data, tokenizer, *, val_data=None, val_fraction: float = 0.05, val_by: str = "bytes",
             text_field: str = "text", cache_dir=None, progress=None,
             first_chars: int = 500) -> dict:
    """What a run on ``data`` would read, for "is my data read correctly?" (same options as
    ``load_splits``): documents, bytes and tokens in all and per side, how the validation is
    chosen, and the start of the first document. Prepares (and caches) the tokens."""
    source = open_source(data, split="train", text_field=text_field)
    splits = load_splits(source, tokenizer, val_data=val_data, val_fraction=val_fraction,
                         val_by=val_by,
                         text_field=text_field, cache_dir=cache_dir, progress=progress)

    def side(span: TokenSpan) -> dict:
        return {"documents": span.num_documents, "tokens": len(span), "bytes": span.num_bytes}

    first: list[str] = []
    for piece, ends_document in source.pieces():
        first.append(piece)
        if ends_document or sum(map(len, first)) >= first_chars:
            break
    return {"source": source.name,
            "documents": sum(f.num_documents for f in splits.token_files),
            "bytes": sum(f.num_bytes for f in splits.token_files),
            "tokens": sum(f.num_tokens for f in splits.token_files),
            "tokenizer": {"path": str(getattr(tokenizer, "path", "")),
                          "vocab_size": tokenizer.vocab_size},
            "train": side(splits.train),
            "validation": {**side(splits.validation), "how": splits.how},
            "first_document": "".join(first)[:first_chars]}


# ----------------------------------------------------------------------------- preparation

CACHE_FILES = ("tokens.bin", "documents.bin", "pieces.bin")   # a cache entry's, with meta.json


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits in 16 bits (GPT-2's 50,257 do), else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 2 ** 16 else np.dtype(np.uint32)


def _cache_key(identity: str, fingerprint: str) -> str:
    h = hashlib.sha256(json.dumps([VERSION, identity, fingerprint]).encode("utf-8"))
    return h.hexdigest()[:16]


def _is_valid(directory: Path, identity: str, fingerprint: str) -> bool:
    try:
        meta = json.loads((directory / "meta.json").read_text("utf-8"))
        sizes = {name: (directory / name).stat().st_size for name in CACHE_FILES}
        if not (meta.get("version") == VERSION
                and meta.get("source", {}).get("identity") == identity
                and meta.get("tokenizer", {}).get("fingerprint") == fingerprint
                and sizes["tokens.bin"] == meta["num_tokens"] * np.dtype(meta["dtype"]).itemsize
                and sizes["documents.bin"] == meta["num_documents"] * 16
                and sizes["pieces.bin"] == meta["num_pieces"] * 24):
            return False
        check_manifest(directory)      # its checksums: a damaged entry is prepared again
        return True
    except (OSError, ValueError, KeyError, TypeError):   # DamagedFile is a ValueError
        return False


def prepare(source, tokenizer, cache_dir=None,
            progress: Optional[Callable[[int, Optional[int]], None]] = None) -> TokenFile:
    """Tokenize ``source`` once (or reuse the cache) and return its ``TokenFile``.

    ``source``: a ``Source``, or anything ``open_source`` takes (a path, 'sample', ...). The
    cache is ``cache_dir/<name>-<key>/`` (default ``cache_dir``: ``$TINYLLM_HOME/tokens``), the
    key made of the source's identity and ``tokenizer.fingerprint``. ``progress(done, total)``,
    if given, is called after each batch with how many bytes of the source's files are read
    (``total`` None when unknown, e.g. a hub dataset: ``done`` is then bytes of text)."""
    source = open_source(source)
    identity = source.identity()
    fingerprint = tokenizer.fingerprint
    root = Path(cache_dir).expanduser() if cache_dir is not None else home() / "tokens"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", source.name).strip("_.")[:48] or "data"
    key = _cache_key(identity, fingerprint)
    target = root / f"{slug}-{key}"
    if root.is_dir():
        remove_temporaries(root)              # of preparations killed before they finished
        for entry in [target, *sorted(root.glob(f"*-{key}"))]:   # maybe under another name
            if _is_valid(entry, identity, fingerprint):
                return TokenFile(entry)

    with writing(root):               # a full disk: one line, the temporary removed
        return _prepare_into(target, source, tokenizer, identity, progress)


def _prepare_into(target: Path, source, tokenizer, identity: str, progress) -> TokenFile:
    """Tokenize ``source`` into the cache entry ``target``, written beside it and renamed."""
    root, fingerprint = target.parent, tokenizer.fingerprint
    root.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(target)
    tmp.mkdir()
    try:
        meta = _tokenize(source, tokenizer, tmp, progress)
        tokenizer_info = {"fingerprint": fingerprint, "path": str(getattr(tokenizer, "path", ""))}
        meta.update(version=VERSION, tokenizer=tokenizer_info,
                    source={"name": source.name, "origin": source.origin,
                            "identity": identity, "size": source.size})
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        write_manifest(tmp, [*CACHE_FILES, "meta.json"])
        if _is_valid(target, identity, fingerprint):   # another process (a DDP rank) won
            return TokenFile(target)
        shutil.rmtree(target, ignore_errors=True)      # a damaged entry under the same key
        try:
            os.replace(tmp, target)                    # atomic: readers see all or nothing
        except OSError:                                # another process renamed its copy first
            if not _is_valid(target, identity, fingerprint):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _remove_stale(root, target, source.origin, fingerprint)
    return TokenFile(target)


class _TokenWriter:
    """Appends encoded pieces to tokens.bin, documents.bin and pieces.bin."""

    def __init__(self, out: Path, tokenizer):
        self.tokenizer = tokenizer
        self.dtype = token_dtype(tokenizer.vocab_size)
        self.eos = tokenizer.eos_token_id
        self.files = [open(out / name, "wb") for name in ("tokens.bin", "documents.bin",
                                                          "pieces.bin")]
        self.num_tokens = self.num_bytes = self.num_documents = self.num_pieces = 0
        self.at_document_start = True

    def write(self, pieces: list[str], ends: list[bool]) -> None:
        """Encode a batch of pieces (``ends[i]``: piece i ends its document) and append it."""
        ids = self.tokenizer.encode_batch(pieces)
        ends_ = np.array(ends, dtype=np.int64)
        n_tokens = np.fromiter(map(len, ids), np.int64, len(ids)) + ends_     # + eos
        n_bytes = np.fromiter((len(p) if p.isascii() else len(p.encode("utf-8")) for p in pieces),
                              np.int64, len(pieces)) + ends_
        for row, end in zip(ids, ends):
            if end:
                row.append(self.eos)
        total = int(n_tokens.sum())
        try:
            flat = np.fromiter(itertools.chain.from_iterable(ids), self.dtype, total)
        except OverflowError:
            raise TinyLLMError(f"tokenizer gives ids beyond its vocab_size "
                               f"{self.tokenizer.vocab_size}: check the tokenizer files") from None
        tokens_f, documents_f, pieces_f = self.files
        tokens_f.write(flat.tobytes())
        first = np.concatenate([[self.at_document_start], ends_[:-1].astype(bool)])
        starts_line = first | np.fromiter(map(_starts_line, pieces), bool, len(pieces))
        starts = np.stack([self.num_tokens + np.cumsum(n_tokens) - n_tokens,
                           self.num_bytes + np.cumsum(n_bytes) - n_bytes,
                           starts_line], axis=1)                               # (n, 3) int64
        pieces_f.write(starts.tobytes())
        documents_f.write(np.ascontiguousarray(starts[first, :2]).tobytes())
        self.at_document_start = bool(ends[-1])
        self.num_tokens += total
        self.num_bytes += int(n_bytes.sum())
        self.num_pieces += len(pieces)
        self.num_documents += int(first.sum())

    def close(self) -> None:
        for f in self.files:
            f.close()


def _starts_line(piece: str) -> bool:
    """Whether a piece (not a document's first) begins a line: pieces are cut just before the
    whitespace that ends a line (``documents._cut``), so it then starts with that newline."""
    return "\n" in piece[:len(piece) - len(piece.lstrip())]


def _tokenize(source: Source, tokenizer, out: Path, progress=None) -> dict:
    """Stream the pieces of ``source`` into ``out`` (tokens.bin, documents.bin, pieces.bin),
    BATCH_CHARS characters of text at a time."""
    start = time.perf_counter()
    writer = _TokenWriter(out, tokenizer)
    pieces: list[str] = []
    ends: list[bool] = []
    chars = 0

    def flush() -> None:
        nonlocal pieces, ends, chars
        writer.write(pieces, ends)
        pieces, ends, chars = [], [], 0
        if progress is not None:
            if source.size:
                progress(min(source.bytes_read, source.size), source.size)
            else:
                progress(writer.num_bytes, None)

    try:
        for piece, ends_document in source.pieces():
            pieces.append(piece)
            ends.append(ends_document)
            chars += len(piece)
            if chars >= BATCH_CHARS:
                flush()
        if pieces:
            flush()
    finally:
        writer.close()
    if writer.num_documents == 0:
        raise TinyLLMError(f"{source.name} holds no text (no stories or other documents), only "
                           f"whitespace and {EOT} separators: give a file with some text")
    return {"vocab_size": tokenizer.vocab_size, "eos_token_id": writer.eos,
            "dtype": writer.dtype.name, "num_tokens": writer.num_tokens,
            "num_documents": writer.num_documents, "num_pieces": writer.num_pieces,
            "num_bytes": writer.num_bytes,
            "prepare_seconds": round(time.perf_counter() - start, 3)}


def _remove_stale(root: Path, keep: Path, origin: str, fingerprint: str) -> None:
    """Delete older caches of the same source and tokenizer (its content has changed)."""
    for d in root.iterdir():
        if d == keep or not d.is_dir() or d.name.startswith("."):
            continue
        try:
            meta = json.loads((d / "meta.json").read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if (meta.get("source", {}).get("origin") == origin
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
    ``batch_size`` windows per batch: every token but the first is a target exactly once. A
    ``TokenSpan`` with a token ``before`` it is read as that token followed by the span, so
    that every token of the span is a target (its first predicted from the one before).

    The last batch may hold fewer windows, and when (len - 1) is not a multiple of
    ``block_size`` a final (1, r + 1) batch holds the last r targets."""
    before = getattr(tokens, "before", None)
    tokens = _as_array(tokens)
    n = len(tokens) + (before is not None)

    def take(positions: np.ndarray) -> torch.LongTensor:     # positions in the stream read
        if before is None:
            return torch.from_numpy(tokens[positions].astype(np.int64))
        ids = tokens[np.maximum(positions - 1, 0)].astype(np.int64)
        return torch.from_numpy(np.where(positions == 0, before, ids))

    if n < 2:
        raise TinyLLMError(f"{n} tokens cannot be evaluated: give at least one story")
    num_full = (n - 1) // block_size
    offsets = np.arange(block_size + 1, dtype=np.int64)
    for i in range(0, num_full, batch_size):
        starts = np.arange(i, min(i + batch_size, num_full), dtype=np.int64) * block_size
        yield take(starts[:, None] + offsets)
    if num_full * block_size < n - 1:
        yield take(np.arange(num_full * block_size, n, dtype=np.int64)[None, :])


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
