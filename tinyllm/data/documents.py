"""Documents: the one reader of the text tinyllm trains on, whatever its format.

``open_source(spec)`` turns what a user names into a ``Source``; token preparation, tokenizer
training and evaluation all read their text through it.

What ``spec`` may be::

    'sample'                   the built-in corpus (tinyllm/data/sample.txt)
    'tinystories'              $TINYLLM_HOME/tinystories/{split}.txt, downloaded once
    a file                     chosen by the end of its name (any case):
                                 .jsonl, .json   records: the field ``text_field`` of each object
                                                 (.json: an array of objects or strings, or
                                                 one object per line as in .jsonl)
                                 .parquet        the column ``text_field``, read in row batches
                                 anything else   UTF-8 text
                               and .gz, .xz or .zst after any of them but .parquet (streamed)
    a folder                   its files, recursively, in sorted path order; hidden files and
                               folders, empty files and binary files are skipped. A folder
                               holding ``train.*`` (a file such as train.txt or train.jsonl.gz,
                               or a folder train/) is split instead: that is its train split,
                               ``validation.*`` (else valid.*, val.*, test.*) its validation split
    a glob                     'data/*.jsonl.gz', 'notes/**/*.md': the matching paths, sorted
    hf:NAME[:CONFIG[:SPLIT]]   a Hugging Face dataset, streamed through ``datasets``; NAME is a
                               hub id (hf:roneneldan/TinyStories) or a local directory holding a
                               dataset repository's files (data/train-*.parquet, train.jsonl...).
                               SPLIT defaults to the split asked for; hf:NAME::validation names
                               a split without a config. Its validation split is the first of
                               validation, valid, val, test that the dataset has

What a document is: ``<|endoftext|>`` ends one wherever it occurs, on its own line or inline
(``"Tom ran.<|endoftext|>Sue sat."`` is two documents), in every format. A text file without
it is ONE document: blank lines separate paragraphs inside stories, books and notes, so they
are not document boundaries. Each record of a JSON or Parquet file is a document, and each
file of a folder ends one. Documents are stripped of surrounding whitespace; empty ones are
skipped. Text files are read with universal newlines (``\\r\\n`` and ``\\r`` become ``\\n``),
like Python's ``open``, and without a leading byte-order mark.

Pieces: ``Source.pieces()`` streams each document as pieces of at most ``PIECE_CHARS``
characters, so that a 1 GB one-document file is read in bounded memory and its held-out tail
can be cut between lines. A piece ends, where the text allows, just before the whitespace that
ends a line (else before a space; else at the limit). GPT-2's pre-tokenizer splits text there
anyway, so the pieces of a document encode to exactly the tokens of the whole document, and a
BPE trained on pieces learns the same merges. A TinyStories story (~1 KB) is one piece.

``Source.identity()`` is a key for caches made from the content: the SHA-256 of each file's
bytes (memoised by path, size and modification time in ``$TINYLLM_HOME/file_hashes.json`` for
files of 1 MiB or more, so a prepared 2 GB corpus is not hashed again every run), with how they
are read; for a hub dataset its name, config, split and revision.
"""
import codecs
import glob
import hashlib
import io
import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from ..errors import TinyLLMError
from ..files import home, write_json
from ..tokenizer import EOT
from .sources import sample_corpus_path, tinystories_path

PIECE_CHARS = 4096            # longest piece, in characters
READ_BYTES = 1 << 20          # bytes read from a file at a time
RECORD_BATCH_CHARS = 1 << 20  # about this many characters of text per batch of records
MAX_RECORD_CHARS = 1 << 27    # a JSON array element longer than this is taken as broken JSON
MAX_HELD_SPACE = 1 << 20      # whitespace held back to strip a document's end (see _strip)
VALIDATION_SPLITS = ("validation", "valid", "val", "test")   # in order of preference
COMPRESSIONS = {".gz": "gzip", ".xz": "xz", ".zst": "zstd", ".zstd": "zstd"}
RECORD_FORMATS = {".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
SPLIT_FILE_ENDINGS = (".txt", ".text", ".md", *RECORD_FORMATS)   # train.txt, validation.jsonl...
HASH_MEMO = "file_hashes.json"
MEMO_MIN_BYTES = 1 << 20      # smaller files are hashed every time (it is quick)
MEMO_MAX_ENTRIES = 1000
READER_VERSION = 1            # bump when the same bytes would give other documents or pieces

FORMATS_HINT = ("a text, JSONL, JSON or Parquet file (.gz/.xz/.zst too), a folder, a glob, "
                "hf:NAME, 'sample' or 'tinystories'")


# -- the spec -------------------------------------------------------------------------------

def open_source(spec, *, split: str = "train", text_field: str = "text") -> "Source":
    """The ``Source`` that ``spec`` names (see the module docstring); a ``Source`` is returned
    as it is. ``split`` picks the split of sources that have splits ('train' or 'validation'
    for TinyStories and split folders, any split name for ``hf:``) and is ignored by the
    others. ``text_field``: the JSON field or Parquet/dataset column holding the text."""
    if isinstance(spec, Source):
        return spec
    if spec is None:
        raise TinyLLMError(f"no data given: give {FORMATS_HINT}")
    text = os.fspath(spec) if isinstance(spec, os.PathLike) else str(spec)
    if text == "sample":
        return FileSource("sample", [sample_corpus_path()], text_field)
    if text == "tinystories":
        return _tinystories(split, text_field)
    if text.startswith("hf:"):
        return HFSource.open(text[len("hf:"):], split, text_field)
    path = Path(text).expanduser()
    if path.is_dir():
        return _folder(path, split, text_field)
    if path.is_file():
        return _single_file(path, text_field)
    if any(c in text for c in "*?["):
        return _glob(text, text_field)
    if path.exists():                 # a FIFO, a device such as /dev/zero, a socket
        raise TinyLLMError(f"data {text} is not a regular file (a pipe or a device: tinyllm "
                           f"reads a file twice, and needs its size): give {FORMATS_HINT}")
    raise TinyLLMError(f"data {text} does not exist (not a file, a folder or a glob that "
                       f"matches): give {FORMATS_HINT}")


def _tinystories(split: str, text_field: str) -> "FileSource":
    path = tinystories_path(split)
    validation = (lambda: _tinystories("validation", text_field)) if split == "train" else None
    return FileSource(f"tinystories/{path.name}", [path], text_field, validation=validation)


def _single_file(path: Path, text_field: str) -> "FileSource":
    if path.stat().st_size == 0:
        raise TinyLLMError(f"data file {path} is empty: give a file with some text in it")
    kind, compression = _format(path)
    if kind == "text":
        what = _sniff_binary(path, compression)
        if what:
            raise TinyLLMError(f"{path} is a binary file ({what}), not text: give {FORMATS_HINT} "
                               "(a compressed file needs .gz, .xz or .zst at the end of its name)")
    return FileSource(path.name, [path], text_field)


def _folder(folder: Path, split: str, text_field: str) -> "FileSource":
    splits = _split_entries(folder)
    if "train" not in splits:
        files, skipped = _readable_files(_walk(folder), folder)
        return FileSource(_count_name(f"{folder.name}/", files, skipped), files, text_field,
                          origin=str(folder.resolve()), skipped=skipped)
    validation_name = next((s for s in VALIDATION_SPLITS if s in splits), None)
    wanted = validation_name if split not in splits and split in VALIDATION_SPLITS else split
    if wanted not in splits:
        found = ", ".join(p.name for entries in splits.values() for p in entries)
        raise TinyLLMError(f"folder {folder} has no {split} split (it holds {found}): add "
                           f"{split}.txt (or .jsonl, .parquet...), or give another data source")
    entries = splits[wanted]
    files, skipped = _readable_files(
        [f for e in entries for f in (_walk(e) if e.is_dir() else [e])], folder)
    name = f"{folder.name}/{entries[0].name}" + (f" (+{len(entries) - 1})" if len(entries) > 1 else "")
    validation = None
    if wanted == "train" and validation_name is not None:
        validation = lambda: _folder(folder, "validation", text_field)  # noqa: E731
    return FileSource(_count_name(name, files, skipped) if entries[0].is_dir() else name, files,
                      text_field, origin=f"{folder.resolve()}::{wanted}", validation=validation,
                      skipped=skipped)


def _split_entries(folder: Path) -> dict[str, list[Path]]:
    """The entries of ``folder`` named after a split: 'train.txt', 'train.jsonl.gz', 'train/'
    (files with a data ending only: train.py is not a split)."""
    splits: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        name = entry.name.lower()
        if entry.is_file():
            name = _strip_suffix(_strip_suffix(name, COMPRESSIONS), SPLIT_FILE_ENDINGS)
        if name in ("train", *VALIDATION_SPLITS):
            splits.setdefault(name, []).append(entry)
    return splits


def _glob(pattern: str, text_field: str) -> "FileSource":
    matches = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
    paths = [f for m in map(Path, matches) for f in (_walk(m) if m.is_dir() else [m])]
    if not paths:
        raise TinyLLMError(f"no files match {pattern!r}: check the pattern (and quote it, so "
                           "that the shell does not expand it)")
    files, skipped = _readable_files(paths, pattern)
    return FileSource(_count_name(pattern, files, skipped), files, text_field,
                      origin=os.path.abspath(os.path.expanduser(pattern)), skipped=skipped)


def _walk(folder: Path) -> list[Path]:
    """Every file under ``folder``, in sorted path order, skipping hidden files and folders."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files += [Path(root, n) for n in names if not n.startswith(".")]
    return sorted(files, key=lambda p: p.relative_to(folder).parts)


def _readable_files(paths: list[Path], where) -> tuple[list[Path], list[Path]]:
    """(files to read, binary files skipped) among ``paths``; empty files are left out."""
    files, skipped = [], []
    for path in paths:
        if not path.is_file() or path.stat().st_size == 0:
            continue
        kind, compression = _format(path)
        if kind == "text" and _sniff_binary(path, compression):
            skipped.append(path)
        else:
            files.append(path)
    if not files:
        also = f" ({len(skipped)} binary files skipped, e.g. {skipped[0].name})" if skipped else ""
        raise TinyLLMError(f"{where} holds no files with text in them{also}: give {FORMATS_HINT}")
    return files, skipped


def _count_name(name: str, files: list, skipped: list) -> str:
    count = f"{len(files)} file" + ("s" if len(files) != 1 else "")
    return f"{name} ({count}" + (f", {len(skipped)} binary skipped)" if skipped else ")")


def _strip_suffix(name: str, suffixes) -> str:
    for suffix in suffixes:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def _format(path: Path) -> tuple[str, Optional[str]]:
    """(kind, compression) from the end of a file's name: ('jsonl', 'gzip') for x.jsonl.gz."""
    name = path.name.lower()
    compression = next((c for s, c in COMPRESSIONS.items() if name.endswith(s)), None)
    name = _strip_suffix(name, COMPRESSIONS)
    kind = next((k for s, k in RECORD_FORMATS.items() if name.endswith(s)), "text")
    if kind == "parquet" and compression:
        raise TinyLLMError(f"{path}: give the .parquet file itself (Parquet compresses its own "
                           "columns), not a compressed copy of it")
    return kind, compression


# -- sources --------------------------------------------------------------------------------

class Source:
    """Where documents come from. ``name`` is short, for messages; ``origin`` says where the
    text is (paths, hub id), for cache bookkeeping; ``size`` is the bytes of its files (None
    when unknown) and ``bytes_read`` how many of them the running ``pieces()`` has read."""
    name: str
    origin: str
    size: Optional[int] = None
    bytes_read: int = 0

    def pieces(self) -> Iterator[tuple[str, bool]]:
        """(piece, ends_document) in a stable order: see the module docstring."""
        raise NotImplementedError

    def documents(self) -> Iterator[str]:
        """Whole documents (their pieces joined). A document is held in memory whole: for a
        corpus of huge documents (a book in one file) stream ``pieces()`` instead."""
        parts: list[str] = []
        for piece, ends_document in self.pieces():
            parts.append(piece)
            if ends_document:
                yield "".join(parts)
                parts = []

    def records(self) -> Iterator[tuple[object, str]]:
        """(record, where) of a source of records (JSON, JSON Lines, Parquet, a dataset), in
        order: each whole record, not only its text, with where it is for messages."""
        raise TinyLLMError(f"{self.name} holds text, not records")

    def identity(self) -> str:
        """A key for caches derived from the content (see the module docstring)."""
        raise NotImplementedError

    def validation(self) -> "Optional[Source]":
        """The source's own validation split, if it has one (TinyStories, a split folder, a
        Hugging Face dataset with a validation split)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class FileSource(Source):
    """Documents from local files, each read by its format."""

    def __init__(self, name: str, files: list[Path], text_field: str = "text", *,
                 origin: Optional[str] = None,
                 validation: Optional[Callable[[], Source]] = None, skipped=()):
        self.name = name
        self.files = [Path(f) for f in files]
        self.text_field = text_field
        self.origin = origin or "\n".join(str(f.resolve()) for f in self.files)
        self.skipped = list(skipped)
        self.sizes = [f.stat().st_size for f in self.files]
        self.size = sum(self.sizes)
        self._open_validation = validation

    def pieces(self) -> Iterator[tuple[str, bool]]:
        done = 0
        for path, size in zip(self.files, self.sizes):
            def report(position: int, before: int = done) -> None:
                self.bytes_read = before + position
            kind, compression = _format(path)
            yield from _pieces(_READERS[kind](path, compression, self.text_field, report))
            done += size
            self.bytes_read = done

    def records(self) -> Iterator[tuple[object, str]]:
        for path in self.files:
            kind, compression = _format(path)
            if kind not in _RECORD_READERS:
                raise TinyLLMError(f"{path} is text, not records: give JSONL, JSON or Parquet "
                                   "records")
            for value, where in _RECORD_READERS[kind](path, compression, lambda _: None):
                yield value, f"{path} {where}"

    def identity(self) -> str:
        kinds = [_format(f)[0] for f in self.files]
        field = self.text_field if any(k != "text" for k in kinds) else None
        return _digest(["files", READER_VERSION, PIECE_CHARS, field,
                        [[k, file_digest(f)] for k, f in zip(kinds, self.files)]])

    def validation(self) -> Optional[Source]:
        return self._open_validation() if self._open_validation else None


class HFSource(Source):
    """A split of a Hugging Face dataset, streamed with ``datasets`` (nothing is downloaded
    whole or converted): ``datasets.load_dataset_builder(NAME, CONFIG)``, then
    ``as_streaming_dataset(split)``, read in batches of rows."""

    def __init__(self, name: str, config: Optional[str], split: str, text_field: str, builder,
                 splits: list[str], shown: Optional[str] = None):
        self.dataset_name, self.config, self.split = name, config, split
        self.text_field = text_field
        self.local = Path(name).is_dir()
        self._builder, self._splits, self._shown = builder, splits, shown or name
        self.name = f"hf:{self._shown}" + (f":{config}" if config else "") + f" ({split})"
        self.origin = f"hf:{name}:{config or ''}:{split}"

    @classmethod
    def open(cls, rest: str, split: str, text_field: str) -> "HFSource":
        """``rest`` is what follows 'hf:': NAME[:CONFIG[:SPLIT]], or a local directory."""
        if not rest:
            raise TinyLLMError("hf: needs a dataset: hf:OWNER/NAME[:CONFIG[:SPLIT]] or "
                               "hf:/path/to/local/dataset")
        if Path(rest).expanduser().is_dir():
            shown, config, named_split = rest, None, None
        else:
            shown, _, tail = rest.partition(":")
            config, _, named_split = tail.partition(":")
        local = Path(shown).expanduser()
        name = str(local.resolve()) if local.is_dir() else shown
        builder = _hf_builder(name, config or None)
        splits = list(builder.as_streaming_dataset())
        wanted = named_split or split
        if not named_split and wanted not in splits and wanted in VALIDATION_SPLITS:
            wanted = next((s for s in VALIDATION_SPLITS if s in splits), wanted)
        if wanted not in splits:
            raise TinyLLMError(f"hf:{rest} has no split {wanted!r} (its splits: "
                               f"{', '.join(splits)}): name one as hf:NAME:CONFIG:SPLIT, e.g. "
                               f"hf:{shown}:{config or ''}:{splits[0] if splits else 'train'}")
        return cls(name, config or None, wanted, text_field, builder, splits, shown.rstrip("/"))

    def _dataset(self):
        dataset = self._builder.as_streaming_dataset(split=self.split)
        features = dataset.features
        if features is not None:
            if self.text_field not in features:
                raise TinyLLMError(f"{self.name} has no column {self.text_field!r} (its "
                                   f"columns: {', '.join(features)}): choose one with "
                                   "--text-field")
            kind = getattr(features[self.text_field], "dtype", None)
            if kind not in ("string", "large_string"):
                raise TinyLLMError(f"{self.name}: column {self.text_field!r} holds "
                                   f"{features[self.text_field]}, not text: choose a text "
                                   "column with --text-field")
            dataset = dataset.select_columns([self.text_field])
        return dataset

    def pieces(self) -> Iterator[tuple[str, bool]]:
        self.bytes_read = 0
        yield from _pieces(self._chunks())

    def _chunks(self) -> Iterator[str]:
        rows = max(1, RECORD_BATCH_CHARS // 4096)
        try:
            for batch in self._dataset().iter(batch_size=rows):
                if self.text_field not in batch:
                    raise TinyLLMError(f"{self.name} rows have no field {self.text_field!r} "
                                       f"(their fields: {', '.join(batch)}): choose one with "
                                       "--text-field")
                texts = batch[self.text_field]
                self.bytes_read += sum(len(t) for t in texts if t)
                yield _join_records([_record_text(t, self.text_field, self.name, "a row")
                                     for t in texts])
        except OSError as e:   # the network went away while streaming
            raise TinyLLMError(f"reading {self.name} failed ({type(e).__name__}: "
                               f"{_one_line(e)}): try again, or use local files") from None

    def records(self) -> Iterator[tuple[object, str]]:
        n = 0
        for row in self._builder.as_streaming_dataset(split=self.split):
            yield row, f"{self.name} row {n}"
            n += 1

    def identity(self) -> str:
        if self.local:   # the content of the files this split reads
            files = (self._builder.config.data_files or {}).get(self.split) or \
                [str(f) for f in _walk(Path(self.dataset_name))]
            revision = [file_digest(f) for f in files]
        else:            # on the hub: the dataset's revision (the commit datasets resolved)
            revision = getattr(self._builder, "hash", None)
        return _digest(["hf", READER_VERSION, PIECE_CHARS, self.dataset_name, self.config,
                        self.split, self.text_field, revision])

    def validation(self) -> Optional[Source]:
        if self.split in VALIDATION_SPLITS:
            return None
        split = next((s for s in VALIDATION_SPLITS if s in self._splits), None)
        if split is None:
            return None
        return HFSource(self.dataset_name, self.config, split, self.text_field, self._builder,
                        self._splits, self._shown)


def _hf_builder(name: str, config: Optional[str]):
    try:
        import datasets
    except ImportError:
        raise TinyLLMError("hf: data needs the datasets package: pip install datasets") from None
    try:
        return datasets.load_dataset_builder(name, config)
    except Exception as e:  # no network, unknown dataset or config: datasets raises many types
        shown = f"{name!r}" + (f", config {config!r}" if config else "")
        raise TinyLLMError(
            f"could not open the Hugging Face dataset {shown} with datasets.load_dataset_builder "
            f"({type(e).__name__}: {_one_line(e)}); without network, download the dataset's "
            f"files elsewhere (e.g. huggingface-cli download --repo-type dataset {name} "
            "--local-dir DIR), copy them here and use hf:DIR, or give its .parquet/.jsonl "
            "files as the data") from None


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# -- from a stream of text to pieces --------------------------------------------------------

def _pieces(chunks: Iterable[str]) -> Iterator[tuple[str, bool]]:
    """The pieces of a text stream in which ``<|endoftext|>`` ends a document, and the end of
    the stream ends the last one."""
    return _strip(_cut_pieces(chunks))


def _cut_pieces(chunks: Iterable[str]) -> Iterator[tuple[str, bool]]:
    """(piece, ends_document), each piece at most PIECE_CHARS characters, not yet stripped."""
    limit = PIECE_CHARS
    keep = len(EOT) - 1          # a separator may start in the last few characters of a chunk
    buffer, pos = "", 0          # the text not yet cut into pieces is buffer[pos:]
    for chunk in chunks:
        buffer = buffer[pos:] + chunk
        pos = 0
        while (end := buffer.find(EOT, pos)) >= 0:
            while end - pos > limit:
                cut = _cut(buffer, pos, pos + limit)
                yield buffer[pos:cut], False
                pos = cut
            yield buffer[pos:end], True
            pos = end + len(EOT)
        while len(buffer) - keep - pos > limit:
            cut = _cut(buffer, pos, pos + limit)
            yield buffer[pos:cut], False
            pos = cut
    while len(buffer) - pos > limit:
        cut = _cut(buffer, pos, pos + limit)
        yield buffer[pos:cut], False
        pos = cut
    yield buffer[pos:], True


def _cut(text: str, start: int, stop: int) -> int:
    """Where the piece ``text[start:cut]`` ends, ``start < cut <= stop < len(text)``: in the
    second half of the range, just before the whitespace that ends a line; else just before a
    space; else at ``stop``.

    Just before whitespace that follows a non-space character, GPT-2's pre-tokenizer (the
    pattern of ``tinyllm.bpe``) always starts a new pre-token (the whitespace, or " word"),
    and no pre-token reaches back across it: so encoding the pieces one by one gives the same
    tokens as encoding the whole text. A cut at ``stop`` may split a word's tokens."""
    low = start + (stop - start) // 2
    for separator in ("\n", " "):
        i = text.rfind(separator, low, stop)
        if i > low:
            while i > low and text[i - 1].isspace():   # back to the start of the whitespace
                i -= 1
            if i > low:
                return i
    return stop


def _strip(pieces: Iterable[tuple[str, bool]]) -> Iterator[tuple[str, bool]]:
    """Strip each document (the start of its first piece, the end of its last) and drop
    empty documents.

    A piece of nothing but whitespace (only a run of whitespace longer than half a piece makes
    one) is held back until text follows, as it may be the document's end. Past MAX_HELD_SPACE
    characters of such pieces they are let through (memory stays bounded), and a document
    ending in that much whitespace keeps it."""
    held: Optional[str] = None   # the document's latest piece with text, not yet yielded
    spaces: list[str] = []       # whitespace-only pieces after it
    space_chars = 0
    started = False              # something of this document has been yielded
    for piece, ends_document in pieces:
        if held is None and not started:
            piece = piece.lstrip()
        if piece and not piece.isspace():
            if held is not None:
                yield held, False
                started = True
            for space in spaces:
                yield space, False
            spaces, space_chars, held = [], 0, piece
        elif piece:
            spaces.append(piece)
            space_chars += len(piece)
            if space_chars > MAX_HELD_SPACE:
                if held is not None:
                    yield held, False
                for space in spaces:
                    yield space, False
                held, spaces, space_chars, started = None, [], 0, True
        if ends_document:
            if held is not None:
                yield held.rstrip(), True
            elif started:
                yield "", True
            held, spaces, space_chars, started = None, [], 0, False


def _join_records(texts: list[str]) -> str:
    """Records as one stream: each ends a document, as if followed by <|endoftext|>."""
    return EOT.join(texts) + EOT if texts else ""


# -- reading files ----------------------------------------------------------------------------

_MAGIC = (  # how common binary files start, to name them in messages
    (b"\x1f\x8b", "gzip-compressed data"), (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data"), (b"PK\x03\x04", "a zip archive"),
    (b"%PDF-", "a PDF document"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"), (b"PAR1", "a Parquet file"), (b"\x7fELF", "a program"),
    (b"SQLite format 3\x00", "an SQLite database"))
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _sniff_binary(path: Path, compression: Optional[str]) -> Optional[str]:
    """What kind of binary file ``path`` is (from its first 8 KB), or None if it may be text."""
    with _open_binary(path, compression) as (stream, _):
        head = _guard(lambda: stream.read(8192), path, compression)
    return _binary_kind(head, path)


def _binary_kind(head: bytes, path: Path) -> Optional[str]:
    """What kind of binary data ``head`` (a file's first bytes) starts, or None if it may be
    text. UTF-16 text is refused with its own message."""
    if head.startswith(_UTF16_BOMS):
        raise TinyLLMError(f"{path} is UTF-16 text, not UTF-8: convert it to UTF-8 (e.g. "
                           f"iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}-utf8{path.suffix})")
    what = next((w for magic, w in _MAGIC if head.startswith(magic)), None)
    return what or ("it holds NUL bytes" if b"\x00" in head[:8192] else None)


@contextmanager
def _open_binary(path: Path, compression: Optional[str]):
    """(decompressed stream, the file on disk): the stream has read, readline and iteration
    by lines; the file's position says how much of it has been read."""
    with open(path, "rb") as raw:
        if compression is None:
            yield raw, raw
        elif compression == "gzip":
            import gzip
            with gzip.GzipFile(fileobj=raw) as stream:
                yield stream, raw
        elif compression == "xz":
            import lzma
            with lzma.LZMAFile(raw) as stream:
                yield stream, raw
        else:
            try:
                import zstandard
            except ImportError:
                raise TinyLLMError(f"reading {path} needs the zstandard package: "
                                   "pip install zstandard") from None
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            with io.BufferedReader(reader, READ_BYTES) as stream:
                yield stream, raw


def _decompression_errors() -> tuple:
    import lzma
    import zlib
    errors = [OSError, EOFError, zlib.error, lzma.LZMAError]
    try:
        import zstandard
        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


def _guard(read: Callable, path: Path, compression: Optional[str]):
    """``read()``, with a compressed file's decoding errors made one clear line."""
    if compression is None:
        return read()
    try:
        return read()
    except _decompression_errors() as e:
        raise TinyLLMError(f"{path} is not valid {compression} data ({_one_line(e)}): give an "
                           "intact file, or one without the compression ending") from None


def _read_text(path: Path, compression, text_field, report) -> Iterator[str]:
    """The text of a UTF-8 file in chunks, with universal newlines and no byte-order mark."""
    with _open_binary(path, compression) as (stream, raw):
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset = 0                 # bytes given to the decoder so far
        carry_cr, first = False, True
        while block := _guard(lambda: stream.read(READ_BYTES), path, compression):
            report(raw.tell())
            if first and (what := _binary_kind(block, path)):
                raise TinyLLMError(f"{path} is a binary file ({what}), not text")
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError as e:
                raise _not_utf8(path, compression, offset - pending + e.start, e) from None
            offset += len(block)
            if first:
                text, first = text.removeprefix("\ufeff"), False
            if carry_cr:
                text = "\r" + text
            carry_cr = text.endswith("\r")   # may be the first half of a \r\n
            if carry_cr:
                text = text[:-1]
            if "\r" in text:
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            yield text
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as e:
            raise _not_utf8(path, compression, offset - pending + e.start, e) from None
        if carry_cr:
            yield "\n"


def _not_utf8(path, compression, offset: int, error: UnicodeDecodeError) -> TinyLLMError:
    where = "of its decompressed text " if compression else ""
    if error.reason == "unexpected end of data":
        detail = f"it ends inside a character begun at byte {offset:,} {where}".rstrip()
    else:
        detail = (f"byte {offset:,} {where}is 0x{error.object[error.start]:02x} "
                  f"({error.reason})")
    return TinyLLMError(f"{path} is not UTF-8 text: {detail}; convert the file to UTF-8 "
                        "(e.g. iconv -f LATIN1 -t UTF-8)")


def _read_jsonl(path: Path, compression, text_field, report) -> Iterator[str]:
    """The ``text_field`` of each line's JSON object (or the line's JSON string), in batches."""
    return _batched_texts(_jsonl_records(path, compression, report), text_field, path)


def _read_json(path: Path, compression, text_field, report) -> Iterator[str]:
    """A .json file: an array of records, streamed element by element; a file that does not
    start with '[' is read as JSON Lines (many .json files are)."""
    return _batched_texts(_json_records(path, compression, report), text_field, path)


def _batched_texts(records, text_field: str, path) -> Iterator[str]:
    """The text of each (record, where) in batches of about RECORD_BATCH_CHARS characters."""
    texts, chars = [], 0
    for value, where in records:
        text = _record_text(value, text_field, path, where)
        texts.append(text)
        chars += len(text)
        if chars >= RECORD_BATCH_CHARS:
            yield _join_records(texts)
            texts, chars = [], 0
    yield _join_records(texts)


def _jsonl_records(path: Path, compression, report) -> Iterator[tuple[object, str]]:
    """(value, 'line N') of each non-blank line of a JSON Lines file."""
    with _open_binary(path, compression) as (stream, raw):
        lines = iter(stream)
        line_no = 0
        while True:
            line = _guard(lambda: next(lines, None), path, compression)
            if line is None:
                break
            line_no += 1
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                reason = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8"
                raise TinyLLMError(f"{path} line {line_no} is not valid JSON ({reason}): fix "
                                   "or remove that line") from None
            report(raw.tell())
            yield value, f"line {line_no}"
        report(raw.tell())


def _json_records(path: Path, compression, report) -> Iterator[tuple[object, str]]:
    """(value, 'element N (line L)') of each element of a .json file's array (JSON Lines when
    it does not start with '[')."""
    with _open_binary(path, compression) as (stream, _):
        head = _guard(lambda: stream.peek(64), path, compression)
    if not head.lstrip(b" \t\r\n\xef\xbb\xbf").startswith(b"["):
        yield from _jsonl_records(path, compression, report)
        return
    for value, index, line in _json_array(_read_text(path, compression, None, report), path):
        yield value, f"element {index} (line {line})"


def _parquet_records(path: Path, compression, report) -> Iterator[tuple[object, str]]:
    """(row as a dict, 'row N') of each row of a Parquet file, read in batches of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        parquet = pq.ParquetFile(path)
        n = 0
        for batch in parquet.iter_batches(batch_size=256):
            for row in batch.to_pylist():
                yield row, f"row {n}"
                n += 1
    except (pa.ArrowException, OSError) as e:
        raise TinyLLMError(f"{path} is not a readable Parquet file ({_one_line(e)})") from None


_SPACE = re.compile(r"[ \t\n\r]*")


def _json_array(chunks: Iterator[str], path: Path) -> Iterator[tuple[object, int, int]]:
    """(value, index, line) of each element of the JSON array that ``chunks`` hold, parsed
    with ``json.JSONDecoder.raw_decode`` from a buffer that holds about one element."""
    decoder = json.JSONDecoder()
    buffer, pos, done = "", 0, False
    line, counted = 1, 0          # the line number at buffer[counted]

    def line_at(i: int) -> int:   # i >= counted: positions only move forward
        nonlocal line, counted
        line, counted = line + buffer.count("\n", counted, i), i
        return line

    def more(min_chars: int = 1) -> None:
        """Drop what is parsed; read chunks until ``min_chars`` more characters are buffered."""
        nonlocal buffer, pos, counted, done
        line_at(pos)
        buffer, pos, counted = buffer[pos:], 0, 0
        grown = 0
        while grown < min_chars and not done:
            chunk = next(chunks, None)
            if chunk is None:
                done = True
            else:
                buffer += chunk
                grown += len(chunk)

    def skip_space() -> str:
        """The next character after whitespace ('' at the end)."""
        nonlocal pos
        while True:
            pos = _SPACE.match(buffer, pos).end()
            if pos < len(buffer) or done:
                return buffer[pos:pos + 1]
            more()

    def fail(message: str, at: int) -> TinyLLMError:
        return TinyLLMError(f"{path} is not valid JSON at line {line_at(at)} ({message}): fix "
                            "the file, or give JSON Lines")

    if skip_space() != "[":
        raise fail("expected an array of records", pos)
    pos += 1
    index = 0
    if skip_space() == "]":
        pos += 1
    else:
        while True:
            skip_space()
            while True:
                try:
                    value, end = decoder.raw_decode(buffer, pos)
                    break
                except json.JSONDecodeError as e:   # a broken element, or only its beginning
                    if done or len(buffer) - pos > MAX_RECORD_CHARS:
                        raise fail(e.msg, e.pos) from None
                    more(len(buffer) - pos + 1)       # at least double what is buffered
            yield value, index, line_at(pos)
            index += 1
            pos = end
            after = skip_space()
            pos += 1
            if after == "]":
                break
            if after != ",":
                raise fail("expected ',' or ']' after an element", pos - 1)
    if skip_space():
        raise fail("extra data after the array", pos)


def _read_parquet(path: Path, compression, text_field, report) -> Iterator[str]:
    """Column ``text_field`` of a Parquet file, in batches of rows (about RECORD_BATCH_CHARS
    of text each), so memory stays bounded whatever the file's size."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise TinyLLMError(f"{path} is not a readable Parquet file ({_one_line(e)})") from None
    schema = parquet.schema_arrow
    if text_field not in schema.names:
        raise TinyLLMError(f"{path} has no column {text_field!r} (its columns: "
                           f"{', '.join(schema.names)}): choose one with --text-field")
    kind = schema.field(text_field).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or getattr(pa.types, "is_string_view", lambda t: False)(kind)):
        raise TinyLLMError(f"{path}: column {text_field!r} holds {kind}, not text: choose a "
                           "text column with --text-field")
    meta = parquet.metadata
    rows = max(1, meta.num_rows)
    column = schema.names.index(text_field)
    text_bytes = sum(meta.row_group(g).column(column).total_uncompressed_size
                     for g in range(meta.num_row_groups))
    batch_rows = max(1, min(1024, RECORD_BATCH_CHARS * rows // max(1, text_bytes)))
    size, done = path.stat().st_size, 0
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=[text_field]):
            texts = batch.column(0).to_pylist()
            done += len(texts)
            report(size * done // rows)
            yield _join_records([t or "" for t in texts])
    except pa.ArrowException as e:
        raise TinyLLMError(f"{path} could not be read as Parquet ({_one_line(e)})") from None


def _record_text(value, text_field: str, path, where: str) -> str:
    """The text of one record: an object's ``text_field``, or a string itself; null is empty."""
    if isinstance(value, dict):
        if text_field not in value:
            fields = ", ".join(map(str, value)) or "none"
            raise TinyLLMError(f"{path} {where} has no field {text_field!r} (its fields: "
                               f"{fields}): choose one with --text-field")
        value = value[text_field]
    elif not isinstance(value, str) and value is not None:
        raise TinyLLMError(f"{path} {where} is {_json_type(value)}, not an object with a "
                           f"{text_field!r} field or a string")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TinyLLMError(f"{path} {where}: field {text_field!r} is {_json_type(value)}, not "
                           "text: choose a text field with --text-field")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise TinyLLMError(f"{path} {where} holds a lone surrogate "
                               f"({value[e.start]!r}), which is not valid Unicode: fix the "
                               "text") from None
    return value


def _json_type(value) -> str:
    """'an object', 'a number', ...: what a JSON value is, for messages."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


_RECORD_READERS = {"jsonl": _jsonl_records, "json": _json_records, "parquet": _parquet_records}
_READERS = {"text": _read_text, "jsonl": _read_jsonl, "json": _read_json,
            "parquet": _read_parquet}


# -- identities -----------------------------------------------------------------------------

def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()[:32]


def file_digest(path) -> str:
    """SHA-256 of a file's bytes (hex). For files of MEMO_MIN_BYTES or more it is memoised by
    (resolved path, size, mtime_ns) in ``$TINYLLM_HOME/file_hashes.json``: a file edited in
    place gets a new mtime, so a new hash. Files modified in the last 2 seconds are not
    memoised, as a second edit within the mtime's resolution could go unseen."""
    path = Path(path).resolve()
    st = path.stat()
    stamp = [st.st_size, st.st_mtime_ns]
    memoise = st.st_size >= MEMO_MIN_BYTES and time.time_ns() - st.st_mtime_ns > 2_000_000_000
    memo_path = home() / HASH_MEMO
    memo = _read_memo(memo_path) if memoise else {}
    hit = memo.get(str(path))
    if hit and hit[:2] == stamp:
        return hit[2]
    sha = hashlib.sha256()
    buffer = bytearray(READ_BYTES)
    view = memoryview(buffer)
    with open(path, "rb") as f:
        while n := f.readinto(buffer):
            sha.update(view[:n])
    digest = sha.hexdigest()
    if memoise:
        memo = {p: v for p, v in memo.items() if os.path.exists(p)}
        memo[str(path)] = [*stamp, digest]
        memo = dict(list(memo.items())[-MEMO_MAX_ENTRIES:])
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(memo_path, memo)
    return digest


def _read_memo(path: Path) -> dict:
    try:
        memo = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


__all__ = ["EOT", "PIECE_CHARS", "open_source", "Source", "FileSource", "HFSource",
           "file_digest"]
