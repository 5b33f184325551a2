"""The one reader of documents (tinyllm.data.documents): every format, pieces, identities, and a
one-line error for every kind of bad input."""
import gzip
import json
import lzma
import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from tinyllm.data import documents as D
from tinyllm.data.documents import open_source
from tinyllm.tokenizer import EOT
from tinyllm.dataset import TinyDataset
from tinyllm.errors import TinyLLMError
from tinyllm.tokenizer import Tokenizer

from tests.conftest import STORIES, VALIDATION_HEAD, needs_shared

DOCS = ["Once upon a time, a cat sat.\n\nShe was happy.", 'Tom said "Héllo, wörld!" 🐱 and ran.',
        "The end. 日本語 text, too."]


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def compress(data: bytes, how: str) -> bytes:
    return {"gz": gzip.compress, "xz": lzma.compress,
            "zst": zstandard.ZstdCompressor().compress}[how](data)


def jsonl(records, field="text") -> str:
    return "".join(json.dumps({"id": i, field: r}) + "\n" for i, r in enumerate(records))


def parquet(path, columns: dict, row_group_size=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def docs(spec, **options) -> list[str]:
    return list(open_source(spec, **options).documents())


def error(spec, **options) -> str:
    """The message of the TinyLLMError that opening and reading ``spec`` raises (one line)."""
    with pytest.raises(TinyLLMError) as e:
        list(open_source(spec, **options).pieces())
    message = str(e.value)
    assert "\n" not in message and len(message) < 600, message
    return message


# ----------------------------------------------------------------------------- text files

def test_separators_on_their_own_line_or_inline(tmp_path):
    text = (f"  Tom ran.\n{EOT}\nSue sat.{EOT}Ann hid.\n\n{EOT}  \n\t{EOT}\n"
            f"Last one,\nno separator after it.  \n")
    assert docs(write(tmp_path / "a.txt", text)) == [
        "Tom ran.", "Sue sat.", "Ann hid.", "Last one,\nno separator after it."]
    assert docs(write(tmp_path / "b.txt", f"Tom ran.{EOT}Sue sat.")) == ["Tom ran.", "Sue sat."]


@pytest.mark.parametrize("name", ["book.txt", "notes.md", "README", "story.TXT"])
def test_a_file_without_separators_is_one_document(tmp_path, name):
    text = "\n\nChapter 1\n\nIt was a dark night.\n\nChapter 2\n\nThe sun rose.\n\n"
    assert docs(write(tmp_path / name, text)) == [text.strip()]


def test_universal_newlines_and_byte_order_mark(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "READ_BYTES", 3)           # \r\n split across reads, too
    path = write(tmp_path / "win.txt", b"\xef\xbb\xbfTom\r\nran\r\rfast\r\n" + EOT.encode() +
                 b"\r\nSue\r")
    assert docs(path) == ["Tom\nran\n\nfast", "Sue"]


def test_a_separator_split_across_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "READ_BYTES", 5)
    assert docs(write(tmp_path / "a.txt", f"one{EOT}two{EOT}three")) == ["one", "two", "three"]


# ----------------------------------------------------------------------------- folders and globs

def test_folder_is_read_recursively_in_sorted_order(tmp_path):
    root = tmp_path / "notes"
    write(root / "b.txt", "from b")
    write(root / "a.md", "# from a\n\ntwo paragraphs, one document")
    write(root / "sub" / "c.txt", f"c one{EOT}c two")
    write(root / "sub" / "deeper" / "d.jsonl", jsonl(["from d"]))
    write(root / "z.txt", "from z")
    write(root / "train.py", "# a script named train is no split")
    write(root / ".hidden.txt", "hidden")
    write(root / ".git" / "config", "hidden folder")
    write(root / "empty.txt", "")
    write(root / "picture.png", b"\x89PNG\r\n\x1a\n\x00\x00binary")
    source = open_source(root)
    assert list(source.documents()) == ["# from a\n\ntwo paragraphs, one document", "from b",
                                        "c one", "c two", "from d", "# a script named train is no split",
                                        "from z"]
    assert source.name == "notes/ (6 files, 1 binary skipped)"
    assert [p.name for p in source.skipped] == ["picture.png"]
    assert source.validation() is None


@pytest.mark.parametrize("train, validation", [
    ("train.txt", "validation.txt"), ("train.jsonl.gz", "valid.jsonl"),
    ("train/part1.txt", "test/part1.txt")])
def test_split_folders(tmp_path, train, validation):
    root = tmp_path / "data"
    for name, texts in ((train, ["t1", "t2"]), (validation, ["v1"])):
        if ".jsonl" in name:
            data = jsonl(texts).encode()
            write(root / name, compress(data, "gz") if name.endswith(".gz") else data)
        else:
            write(root / name, EOT.join(texts))
    write(root / "README.md", "not data: the split files win")
    write(root / "train.py", "print('not a split either')")
    source = open_source(root)
    assert list(source.documents()) == ["t1", "t2"]
    assert list(source.validation().documents()) == ["v1"]
    assert docs(root, split="validation") == ["v1"]
    assert source.validation().validation() is None


def test_a_split_folder_without_the_asked_split(tmp_path):
    root = tmp_path / "data"
    write(root / "train.txt", "t")
    assert open_source(root).validation() is None
    assert "no validation split" in error(root, split="validation")


def test_glob(tmp_path):
    write(tmp_path / "data" / "2.jsonl", jsonl(["two"]))
    write(tmp_path / "data" / "10.jsonl", jsonl(["ten"]))
    write(tmp_path / "data" / "1.jsonl.gz", compress(jsonl(["one"]).encode(), "gz"))
    write(tmp_path / "data" / "x.txt", "not matched")
    write(tmp_path / "notes" / "a" / "n1.md", "note 1")
    write(tmp_path / "notes" / "b" / "c" / "n2.md", "note 2")
    assert docs(str(tmp_path / "data" / "*.jsonl*")) == ["one", "ten", "two"]   # sorted by path
    assert docs(f"{tmp_path}/notes/**/*.md") == ["note 1", "note 2"]
    assert open_source(f"{tmp_path}/notes/**/*.md").name.endswith("(2 files)")
    assert "no files match" in error(f"{tmp_path}/data/*.parquet")


# ----------------------------------------------------------------------------- records

@pytest.mark.parametrize("name, content", [
    ("d.jsonl", jsonl(DOCS)),
    ("d.json", json.dumps([{"text": d, "n": 1} for d in DOCS], indent=2)),
    ("d.json", json.dumps(DOCS)),
    ("d.json", jsonl(DOCS)),                           # JSON Lines named .json
    ("d.jsonl", "\n" + "\n\n".join(json.dumps(d) for d in DOCS) + "\n"),   # strings, blank lines
])
def test_json_formats(tmp_path, name, content):
    assert docs(write(tmp_path / name, content)) == DOCS


def test_json_array_streamed_across_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "READ_BYTES", 7)
    monkeypatch.setattr(D, "RECORD_BATCH_CHARS", 20)
    records = [{"text": d + ' \\ "quoted" [x], {y}', "tags": [1, {"a": [2]}]} for d in DOCS * 3]
    path = write(tmp_path / "a.json", "\ufeff " + json.dumps(records, indent=1, ensure_ascii=False))
    assert docs(path) == [r["text"] for r in records]
    assert docs(write(tmp_path / "empty.json", " [ ] ")) == []


def test_text_field_nulls_and_separators_in_records(tmp_path):
    path = write(tmp_path / "d.jsonl", jsonl(["a", None, "  ", f"b{EOT}c"], field="story"))
    assert docs(path, text_field="story") == ["a", "b", "c"]


def test_parquet_in_row_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "RECORD_BATCH_CHARS", 64)
    texts = [f"story number {i}" for i in range(500)] + [None]
    path = parquet(tmp_path / "d.parquet", {"id": list(range(501)), "story": texts},
                   row_group_size=100)
    source = open_source(path, text_field="story")
    assert list(source.documents()) == texts[:-1]
    assert source.bytes_read == source.size


@pytest.mark.parametrize("how", ["gz", "xz", "zst"])
@pytest.mark.parametrize("name, content", [
    ("d.txt", EOT.join(DOCS)), ("d.jsonl", jsonl(DOCS)), ("d.json", json.dumps(DOCS))])
def test_compressed(tmp_path, how, name, content):
    path = write(tmp_path / f"{name}.{how}", compress(content.encode(), how))
    assert docs(path) == DOCS


# ----------------------------------------------------------------------------- hf: datasets

def test_hf_local_parquet_dataset(tmp_path):
    root = tmp_path / "TinyStoriesLike"
    parquet(root / "data" / "train-00000-of-00002.parquet", {"text": ["t1", "t2"], "n": [1, 2]})
    parquet(root / "data" / "train-00001-of-00002.parquet", {"text": ["t3"], "n": [3]})
    parquet(root / "data" / "validation-00000-of-00001.parquet", {"text": ["v1"], "n": [4]})
    source = open_source(f"hf:{root}")
    assert list(source.documents()) == ["t1", "t2", "t3"]
    assert source.name.startswith("hf:") and source.name.endswith("(train)")
    validation = source.validation()
    assert list(validation.documents()) == ["v1"] and validation.validation() is None
    assert docs(f"hf:{root}::validation") == ["v1"]
    assert docs(f"hf:{root}", split="validation") == ["v1"]
    assert "no column 'story' (its columns: text, n)" in error(f"hf:{root}", text_field="story")
    assert "no split 'test'" in error(f"hf:{root}::test")

    before = source.identity()
    assert open_source(f"hf:{root}").identity() == before
    assert validation.identity() != before
    time.sleep(0.01)
    parquet(root / "data" / "train-00001-of-00002.parquet", {"text": ["t3 edited"], "n": [3]})
    assert open_source(f"hf:{root}").identity() != before


def test_hf_local_jsonl_dataset_with_a_test_split(tmp_path):
    root = tmp_path / "stories"
    write(root / "train.jsonl", jsonl(["t1", "t2"], field="story"))
    write(root / "test.jsonl", jsonl(["e1"], field="story"))
    source = open_source(f"hf:{root}", text_field="story")
    assert list(source.documents()) == ["t1", "t2"]
    assert list(source.validation().documents()) == ["e1"]      # no 'validation': 'test'


def test_hf_hub_unreachable(empty_home, monkeypatch):
    import datasets
    import huggingface_hub
    # HF_HUB_OFFLINE=1 (empty_home) is read when these libraries are imported: set it there too
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    message = error("hf:nobody-here/no-such-dataset")
    assert "no-such-dataset" in message and "load_dataset_builder" in message
    assert "hf:DIR" in message                     # how to supply the files locally


# ----------------------------------------------------------------------------- pieces

def test_pieces_are_bounded_and_end_at_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "PIECE_CHARS", 200)        # lines are shorter than half of that
    lines = [f"Line {i} says something {'long ' * (i % 7)}here." for i in range(200)]
    text = "\n".join(lines) + "\n\n" + "\n\n".join(lines)
    pieces = list(open_source(write(tmp_path / "book.txt", text)).pieces())
    assert "".join(p for p, _ in pieces) == text
    assert [e for _, e in pieces] == [False] * (len(pieces) - 1) + [True]
    assert max(len(p) for p, _ in pieces) <= 200 and len(pieces) > len(text) // 200
    for (a, _), (b, _) in zip(pieces, pieces[1:]):
        assert not a[-1].isspace() and b[0] == "\n"   # cut where a line ends


def test_over_long_lines_are_cut_between_words_else_at_the_limit(monkeypatch):
    monkeypatch.setattr(D, "PIECE_CHARS", 50)
    words = " ".join(["word"] * 100)
    pieces = [p for p, _ in D._pieces([words])]
    assert "".join(pieces) == words and all(p[0] == " " for p in pieces[1:])
    unbroken = "日本語🐱" * 100                           # no space at all: cut at the limit
    pieces = [p for p, _ in D._pieces([unbroken])]
    assert "".join(pieces) == unbroken and [len(p) for p in pieces] == [50] * 8
    assert all(p.encode("utf-8").decode("utf-8") == p for p in pieces)   # whole characters


def test_pieces_encode_to_the_tokens_of_the_whole_document(monkeypatch):
    monkeypatch.setattr(D, "PIECE_CHARS", 100)
    tok = Tokenizer("builtin")
    stories = docs("sample")
    text = "\n\n".join(stories[:40]) + "\n  indented line\n\t\ttabs \n\n\n  spaces  \nend"
    pieces = [p for p, _ in D._pieces([text])]
    assert len(pieces) > 50
    assert [i for ids in tok.encode_batch(pieces) for i in ids] == tok.encode(text.strip())


def test_whitespace_only_pieces_are_held_until_the_document_goes_on(monkeypatch):
    monkeypatch.setattr(D, "PIECE_CHARS", 16)
    assert list(D._pieces(["abc" + " " * 100 + f"\n{EOT}x"])) == [("abc", True), ("x", True)]
    assert "".join(p for p, _ in D._pieces(["abc" + " " * 100 + "def"])) == "abc" + " " * 100 + "def"
    monkeypatch.setattr(D, "MAX_HELD_SPACE", 40)       # past the bound, spaces are let through
    pieces = list(D._pieces(["abc" + " " * 100]))
    assert pieces[-1] == ("", True) and len(pieces) > 3


@needs_shared
def test_tinystories_stories_are_one_piece_each():
    per_document, count = [], 0
    for piece, ends_document in open_source(STORIES).pieces():
        count += 1
        if ends_document:
            per_document.append(count)
            count = 0
    documents = list(open_source(STORIES).documents())
    assert len(documents) == len(per_document) == 1064
    for document, n in zip(documents, per_document):
        assert n == 1 if len(document) <= D.PIECE_CHARS else n <= 2 * len(document) // D.PIECE_CHARS + 1
    assert sum(n == 1 for n in per_document) >= 1058


@needs_shared
def test_validation_head_is_one_document():
    source = open_source(VALIDATION_HEAD)
    assert list(source.documents()) == [VALIDATION_HEAD.read_text("utf-8").strip()]
    assert source.name == "validation_head.txt"


# ----------------------------------------------------------------------------- identities

def test_identity_follows_the_content(tmp_path):
    a = write(tmp_path / "a.txt", "same bytes")
    b = write(tmp_path / "sub" / "b.txt", "same bytes")
    assert open_source(a).identity() == open_source(b).identity()
    same_size = open_source(a).identity()
    a.write_text("edit bytes")
    os.utime(a, ns=(1, 1))
    assert open_source(a).identity() != same_size
    records = write(tmp_path / "r.jsonl", jsonl(["x"]))
    assert open_source(records).identity() != open_source(records, text_field="id").identity()
    assert open_source(a).identity() == open_source(a, text_field="id").identity()  # text: unused
    as_text = write(tmp_path / "r.txt", records.read_bytes())
    assert open_source(as_text).identity() != open_source(records).identity()
    assert open_source(tmp_path).identity() != open_source(a).identity()


def test_file_hashes_are_memoised_by_path_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLLM_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(D, "MEMO_MIN_BYTES", 0)
    path = write(tmp_path / "big.txt", "x" * 1000)
    os.utime(path, ns=(10 ** 18, 10 ** 18))            # long ago enough to be trusted
    digest = D.file_digest(path)
    memo_file = tmp_path / "home" / D.HASH_MEMO
    memo = json.loads(memo_file.read_text())
    assert memo[str(path.resolve())] == [1000, 10 ** 18, digest]
    memo[str(path.resolve())][2] = "f" * 64             # the memo is used while size and mtime hold
    memo_file.write_text(json.dumps(memo))
    assert D.file_digest(path) == "f" * 64
    os.utime(path, ns=(10 ** 18 + 1, 10 ** 18 + 1))    # touched: hashed again
    assert D.file_digest(path) == digest
    fresh = write(tmp_path / "fresh.txt", "y" * 1000)   # modified just now: not memoised
    D.file_digest(fresh)
    assert str(fresh.resolve()) not in json.loads(memo_file.read_text())


# ----------------------------------------------------------------------------- bad input

def test_missing_empty_and_binary(tmp_path):
    assert "does not exist" in error(tmp_path / "nope.txt")
    assert "is empty" in error(write(tmp_path / "empty.txt", ""))
    (tmp_path / "empty_dir").mkdir()
    assert "holds no files with text" in error(tmp_path / "empty_dir")
    write(tmp_path / "pics" / "a.png", b"\x89PNG\r\n\x1a\n\x00")
    assert "1 binary files skipped, e.g. a.png" in error(tmp_path / "pics")
    assert "is a binary file (a PNG image)" in error(tmp_path / "pics" / "a.png")
    assert "binary file (it holds NUL bytes)" in error(write(tmp_path / "n.txt", b"ab\x00cd"))
    assert "binary file (a zip archive)" in error(write(tmp_path / "z.md", b"PK\x03\x04rest"))
    assert "UTF-16 text, not UTF-8" in error(write(tmp_path / "u.txt", "hé".encode("utf-16")))


def test_not_utf8_says_where(tmp_path, monkeypatch):
    assert "byte 11 is 0xe9" in error(write(tmp_path / "l.txt", b"cafe ok\ncaf\xe9!"))
    monkeypatch.setattr(D, "READ_BYTES", 4)
    assert "byte 10 is 0xff" in error(write(tmp_path / "b.txt", b"abcdefgh\xc3\xa9\xff"))
    assert "ends inside a character" in error(write(tmp_path / "t.txt", b"abc\xe6\x97"))
    message = error(write(tmp_path / "g.txt.gz", gzip.compress(b"abcd\xff")))
    assert "byte 4 of its decompressed text is 0xff" in message


def test_bad_records(tmp_path):
    bad_line = jsonl(["a", "b"]) + '{"text": "c",\n' + jsonl(["d"])
    assert "line 3 is not valid JSON" in error(write(tmp_path / "a.jsonl", bad_line))
    message = error(write(tmp_path / "b.jsonl", jsonl(["a"], field="story")))
    assert "line 1 has no field 'text' (its fields: id, story)" in message
    assert "--text-field" in message
    assert "field 'text' is a number" in error(write(tmp_path / "c.jsonl", '{"text": 3}\n'))
    assert "line 1 is an array, not an object" in error(write(tmp_path / "d.jsonl", "[1, 2]\n"))
    assert "is a number, not an object" in error(write(tmp_path / "f.jsonl", "3\n"))
    assert "lone surrogate" in error(write(tmp_path / "g.jsonl", '{"text": "a\\ud800b"}\n'))
    broken = '[{"text": "a"},\n {"text": "b"}\n {"text": "c"}]'
    assert "not valid JSON at line 3" in error(write(tmp_path / "h.json", broken))
    assert "not valid JSON at line 1" in error(write(tmp_path / "i.json", '[{"text": "a"'))
    assert "extra data" in error(write(tmp_path / "j.json", '["a"] ["b"]'))
    message = error(parquet(tmp_path / "k.parquet", {"id": [1], "story": ["s"]}))
    assert "no column 'text' (its columns: id, story)" in message
    assert "holds int64, not text" in error(parquet(tmp_path / "l.parquet", {"text": [1]}))
    assert "not a readable Parquet file" in error(write(tmp_path / "m.parquet", "not parquet"))
    assert "not valid gzip data" in error(write(tmp_path / "n.txt.gz", b"\x1f\x8bnot really"))
    truncated = compress(jsonl(DOCS * 50).encode(), "xz")[:-20]
    assert "not valid xz data" in error(write(tmp_path / "o.jsonl.xz", truncated))
    assert "give the .parquet file itself" in error(write(tmp_path / "p.parquet.gz", b"x"))


def test_nothing_but_separators(tmp_path):
    path = write(tmp_path / "s.txt", f"\n{EOT}\n  \n{EOT}\n")
    assert docs(path) == []
    with pytest.raises(TinyLLMError, match="holds no stories"):
        TinyDataset(Tokenizer("builtin"), 8, path=path)
