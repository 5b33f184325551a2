"""`tinyllm train`, `tinyllm data` and `tinyllm eval` on the text people actually have: every
format trains a few steps (one process and two under torchrun), every bad input is one line and
exit status 1, and a run is scored on what it held out."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tinyllm.cli import main
from tinyllm.errors import TinyLLMError
from tinyllm.train import TrainConfig
from tinyllm.data.sources import sample_corpus_path

from tests.conftest import REPO, VALIDATION_HEAD, needs_shared
from tests.data.test_documents import compress, jsonl, write

TINY = ["--layers", "1", "--hidden", "32", "--heads", "4", "--context", "16", "--batch-size",
        "4", "--warmup", "1", "--quiet", "--device", "cpu", "--eval-batches", "0"]
EOT = "<|endoftext|>"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLLM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "home"


def stories(n=40):
    """Short stories from the built-in corpus: text enough to train a few steps on."""
    text = sample_corpus_path().read_text("utf-8")
    return [s.strip() for s in text.split(EOT) if s.strip()][:n]


def parquet(path, texts, column="text"):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({column: texts, "n": list(range(len(texts)))}), path)
    return path


def make(kind: str, root: Path) -> tuple[str, str]:
    """A corpus of ``kind`` under ``root``: (the --data spec, what its validation should be)."""
    docs = stories()
    if kind == "txt":
        return str(write(root / "s.txt", f"\n{EOT}\n".join(docs))), "the last 2 of 40 documents"
    if kind == "blank-lines":   # TinyStories' validation_head.txt layout: no separators at all
        return str(write(root / "s.txt", "\n\n".join(docs))), "cut at a line end"
    if kind == "md":
        return str(write(root / "notes.md", "# Notes\n\n" + "\n\n".join(docs))), "cut at a line end"
    if kind == "folder":
        for i, d in enumerate(docs):
            write(root / "notes" / f"{i // 10}" / f"{i:02d}.md", d)
        return str(root / "notes"), "the last 2 of 40 documents"
    if kind == "split-folder":
        write(root / "d" / "train.txt", f"\n{EOT}\n".join(docs[:30]))
        write(root / "d" / "validation.jsonl", jsonl(docs[30:]))
        return str(root / "d"), "validation.jsonl, the validation split of the data"
    if kind == "glob":
        for i in range(4):
            write(root / "g" / f"part{i}.jsonl.gz", compress(jsonl(docs[i::4]).encode(), "gz"))
        return str(root / "g" / "*.jsonl.gz"), "the last 2 of 40 documents"
    if kind == "jsonl":
        return str(write(root / "s.jsonl", jsonl(docs))), "the last 2 of 40 documents"
    if kind == "json":
        return str(write(root / "s.json", json.dumps([{"story": d} for d in docs]))), "documents"
    if kind == "parquet":
        return str(parquet(root / "s.parquet", docs)), "the last 2 of 40 documents"
    if kind == "txt.xz":
        data = f"\n{EOT}\n".join(docs).encode()
        return str(write(root / "s.txt.xz", compress(data, "xz"))), "the last 2 of 40 documents"
    if kind == "jsonl.zst":
        return str(write(root / "s.jsonl.zst", compress(jsonl(docs).encode(), "zst"))), "documents"
    if kind == "hf":
        parquet(root / "ds" / "data" / "train-00000-of-00001.parquet", docs[:30])
        parquet(root / "ds" / "data" / "validation-00000-of-00001.parquet", docs[30:])
        return f"hf:{root / 'ds'}", "the validation split of the data"
    raise ValueError(kind)


FORMATS = ["txt", "blank-lines", "md", "folder", "split-folder", "glob", "jsonl", "json",
           "parquet", "txt.xz", "jsonl.zst", "hf"]


@pytest.mark.parametrize("kind", FORMATS)
def test_every_format_trains_and_validates(kind, tmp_path, home, capsys):
    spec, held_out = make(kind, tmp_path / "data")
    field = ["--text-field", "story"] if kind == "json" else []
    out = tmp_path / "run"
    assert main(["train", "--data", spec, *field, "--out", str(out), "--max-steps", "3",
                 "--tokenizer", "builtin", *TINY]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert held_out in err                              # how the validation was chosen, said
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_loss" in r] == [3]


def test_a_bpe_tokenizer_is_trained_on_any_format(tmp_path, home, capsys):
    spec, _ = make("jsonl.zst", tmp_path / "data")
    assert main(["train", "--data", spec, "--out", str(tmp_path / "run"), "--max-steps", "2",
                 "--tokenizer", "bpe-300", *TINY]) == 0
    from tinyllm.model import GPT
    assert GPT.from_pretrained(tmp_path / "run").tokenizer.vocab_size == 300


@pytest.mark.parametrize("kind", ["blank-lines", "glob", "hf"])
def test_every_format_under_torchrun_with_two_processes(kind, tmp_path, home):
    spec, _ = make(kind, tmp_path / "data")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TINYLLM_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "tinyllm", "train", "--data", spec, "--out", str(tmp_path / "run"), "--max-steps",
         "3", "--tokenizer", "builtin", *TINY],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "× 2 processes" in proc.stderr and proc.stdout.count("done:") == 1


@needs_shared
def test_tinystories_validation_head_as_it_is(tmp_path, home, capsys):
    """The issue's first example: a text file with no separators at all trains, and its held-out
    tail is cut at a line."""
    out = tmp_path / "run"
    assert main(["train", "--data", str(VALIDATION_HEAD), "--out", str(out), "--max-steps", "2",
                 "--tokenizer", "builtin", *TINY]) == 0
    err = capsys.readouterr().err
    assert "of the bytes of validation_head.txt, cut at a line end" in err
    # 2 steps are a sliver of one pass: the first line says the one-pass regularisation it chose
    assert "dropout 0, weight decay 0.1" in err.splitlines()[0]


# -- bad input: one line, exit status 1 ----------------------------------------------------------

def bad(kind: str, root: Path) -> tuple[list[str], str]:
    if kind == "empty file":
        return ["--data", str(write(root / "e.txt", ""))], "is empty"
    if kind == "empty folder":
        (root / "empty").mkdir(parents=True)
        return ["--data", str(root / "empty")], "holds no files with text in them"
    if kind == "binary file":
        return ["--data", str(write(root / "x.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4))], \
            "binary file"
    if kind == "not UTF-8":
        return ["--data", str(write(root / "l.txt", "Once upon a time, a café.\n".encode("latin-1")))], \
            "l.txt is not UTF-8 text"
    if kind == "bad JSONL line":
        return ["--data", str(write(root / "b.jsonl", jsonl(["a", "b"]) + "{not json\n"))], \
            "b.jsonl line 3 is not valid JSON"
    if kind == "missing field":
        return ["--data", str(write(root / "m.jsonl", jsonl(["a"], field="story")))], \
            "no field 'text'"
    if kind == "parquet without the column":
        return ["--data", str(parquet(root / "p.parquet", ["a"], column="story"))], \
            "no column 'text' (its columns: story, n)"
    if kind == "unknown hf dataset":
        return ["--data", "hf:nobody-here/no-such-dataset"], "no-such-dataset"
    if kind == "glob matching nothing":
        return ["--data", str(root / "nothing" / "*.jsonl")], "no files match"
    if kind == "missing path":
        return ["--data", str(root / "missing.txt")], "does not exist"
    if kind == "missing --val-data":
        return ["--data", "sample", "--val-data", str(root / "nope.txt")], "does not exist"
    raise ValueError(kind)


BAD = ["empty file", "empty folder", "binary file", "not UTF-8", "bad JSONL line",
       "missing field", "parquet without the column", "unknown hf dataset",
       "glob matching nothing", "missing path", "missing --val-data"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_data_is_one_line_and_exit_status_1(kind, tmp_path, home, capsys):
    args, message = bad(kind, tmp_path / "data")
    for command in (["train", *args, "--out", str(tmp_path / "run"), "--max-steps", "1",
                     "--tokenizer", "builtin", *TINY], ["data", *args, "--tokenizer", "builtin"]):
        assert main(command) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"tinyllm {command[0]}: error:"), err
        assert message in err[0], err[0]
    assert not (tmp_path / "run" / "last").exists()


# -- tinyllm data -----------------------------------------------------------------------------

def test_data_shows_what_a_run_would_read(tmp_path, home, capsys):
    spec, _ = make("jsonl", tmp_path / "data")
    assert main(["data", "--data", spec, "--tokenizer", "builtin"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("s.jsonl: 40 documents,") and "with the builtin tokenizer" in out
    assert "train:      38 documents" in out and "validation: 2 documents" in out
    assert stories()[0][:40] in out
    assert main(["data", "--data", spec, "--tokenizer", "builtin", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["documents"] == 40 and d["train"]["documents"] + d["validation"]["documents"] == 40
    assert d["tokens"] == d["train"]["tokens"] + d["validation"]["tokens"]


# -- tinyllm eval scores what the run held out ------------------------------------------------

def test_eval_of_a_run_scores_its_held_out_text(tmp_path, home, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "sample", "--out", str(out), "--max-steps", "4",
                 "--eval-every", "2", *TINY]) == 0
    printed = capsys.readouterr().out
    assert f"tinyllm eval --model {out} " in printed and "--data" not in printed
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = min(r["val_loss"] for r in rows if "val_loss" in r)

    assert main(["eval", "--model", str(out), "--json"]) == 0
    held_out = json.loads(capsys.readouterr().out)
    assert held_out["loss"] == pytest.approx(best, rel=1e-5)
    assert held_out["text"].startswith("the text the run held out: the last 10 of 205 documents")
    assert held_out["includes_training_text"] is False

    assert main(["eval", "--model", str(out), "--data", "sample", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == held_out["loss"]   # still held out

    assert main(["eval", "--model", str(out), "--data", "sample", "--include-training-text"]) == 0
    text = capsys.readouterr().out
    assert "the text the run trained on included" in text and "note: the model trained on" in text

    other, _ = make("jsonl", tmp_path / "other")
    assert main(["eval", "--model", str(out), "--data", other, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == "all of s.jsonl"


def test_data_and_eval_count_the_same_held_out_text(tmp_path, home, capsys):
    """`tinyllm data` and `tinyllm eval` describe the same held-out text with the same numbers:
    eval scores every token of it (the first predicted from the token before it), and about
    --val-fraction of the bytes is held out."""
    spec, _ = make("txt", tmp_path / "data")
    out = tmp_path / "run"
    assert main(["train", "--data", spec, "--out", str(out), "--max-steps", "2",
                 "--tokenizer", "builtin", "--val-fraction", "0.1", *TINY]) == 0
    capsys.readouterr()
    assert main(["data", "--data", spec, "--tokenizer", "builtin", "--val-fraction", "0.1",
                 "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert main(["eval", "--model", str(out), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    held_out = described["validation"]
    assert (scored["tokens"], scored["bytes"]) == (held_out["tokens"], held_out["bytes"])
    assert abs(held_out["bytes"] / described["bytes"] - 0.1) < 0.02


def test_a_run_saved_before_the_byte_rule_keeps_its_held_out_documents(tmp_path, home, capsys):
    """A run whose saved configuration has no --val-by held out the last ceil(F × n) documents:
    resumed and evaluated, it keeps that split (no document moves between train and validation
    in the middle of a run)."""
    out = tmp_path / "run"
    assert main(["train", "--data", "sample", "--out", str(out), "--max-steps", "2",
                 "--save-every", "2", *TINY]) == 0
    assert "the last 10 of 205 documents" in capsys.readouterr().err     # by bytes: 4.8 %
    saved = out / "last" / "train_config.json"
    cfg = json.loads(saved.read_text())
    del cfg["val_by"]
    saved.write_text(json.dumps(cfg))
    (out / "last" / "checksums.json").unlink()              # an older run had none
    assert main(["train", "--resume", str(out), "--max-steps", "4"]) == 0
    assert "the last 11 of 205 documents" in capsys.readouterr().err     # ceil(0.05 × 205)
    assert main(["eval", "--model", str(out), "--json"]) == 0
    assert "the last 11 of 205 documents" in json.loads(capsys.readouterr().out)["text"]
    with pytest.raises(TinyLLMError, match="unknown val_by 'lines'"):
        TrainConfig(val_by="lines")


def test_eval_of_a_saved_model_needs_data(tmp_path, capsys):
    from tinyllm.model.config import Config
    from tinyllm.model import GPT
    from tinyllm.tokenizer import Tokenizer
    GPT(Tokenizer("builtin"), Config(hidden_size=32, num_heads=4, num_layers=1)).save_pretrained(
        tmp_path / "m")
    assert main(["eval", "--model", str(tmp_path / "m")]) == 1
    assert "give --data" in capsys.readouterr().err
