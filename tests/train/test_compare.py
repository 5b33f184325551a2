"""`tinyllm compare`: runs' validation bits per byte against tokens and seconds in one PNG, and a
table (best bits per byte, steps, tokens/s, parameters) printed and returned."""
import json

import pytest

from tinyllm.cli import main
from tinyllm.train.compare import compare, format_table
from tinyllm.model.config import Config
from tinyllm.errors import TinyLLMError
from tinyllm.files import write_metrics
from tinyllm.model import GPT

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_run(directory, bpbs, rate=1000, config=None):
    """A run directory as `tinyllm train` leaves it: the model's config.json and metrics.jsonl
    with a training row (tokens/s) and an evaluation row (bits per byte) every 10 steps."""
    config = config or Config(hidden_size=32, num_heads=4, num_layers=1, vocab_size=50)
    GPT(None, config).save_pretrained(directory)
    rows = []
    for i, bpb in enumerate(bpbs, 1):
        step, tokens, elapsed = 10 * i, 1000 * i, 2.0 * i
        rows.append({"step": step, "tokens": tokens, "loss": 3.0, "lr": 1e-3, "grad_norm": 1.0,
                     "tokens_per_s": rate + i, "elapsed": elapsed})
        rows.append({"step": step, "tokens": tokens, "val_loss": 3.0, "val_perplexity": 20.0,
                     "elapsed": elapsed, "val_bpb": bpb, "since_best": 0})
    write_metrics(directory / "metrics.jsonl", rows)
    return directory


def test_table_and_png(tmp_path):
    a = fake_run(tmp_path / "a", [2.0, 1.6, 1.7], rate=1000)
    b = fake_run(tmp_path / "b", [2.2, 1.9, 1.5, 1.55], rate=500,
                 config=Config(hidden_size=48, num_heads=4, num_layers=2, vocab_size=50,
                               tie_embeddings=True))
    out = tmp_path / "plots" / "runs.png"
    table = compare([str(a), f"wider={b}"], out=out)
    assert out.read_bytes().startswith(PNG_MAGIC) and out.stat().st_size > 10_000
    first, second = table
    assert (first["label"], first["best_bpb"], first["best_step"], first["steps"]) == \
        ("a", 1.6, 20, 30)
    assert first["tokens_per_s"] == 1002                       # the median of 1001, 1002, 1003
    assert first["parameters"] == GPT(None, Config(hidden_size=32, num_heads=4, num_layers=1,
                                                   vocab_size=50)).num_parameters()
    assert (second["label"], second["best_bpb"], second["best_seconds"]) == ("wider", 1.5, 6.0)
    assert second["tokens"] == [1000, 2000, 3000, 4000] and second["seconds"] == [2, 4, 6, 8]
    lines = format_table(table).splitlines()
    assert lines[0].split()[:3] == ["run", "best", "bits/byte"]
    assert lines[2].startswith("wider") and lines[3].startswith("a ")       # best first


def test_cli_prints_the_table_and_json(tmp_path, capsys):
    a = fake_run(tmp_path / "a", [1.9, 1.8])
    assert main(["compare", str(a), "--out", str(tmp_path / "c.png")]) == 0
    text = capsys.readouterr().out
    assert "1.8000" in text and f"wrote {tmp_path / 'c.png'}" in text
    assert main(["compare", f"x={a}", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runs"][0]["label"] == "x" and report["runs"][0]["best_bpb"] == 1.8
    assert report["png"] is None and not (tmp_path / "x.png").exists()


def test_bad_runs_are_one_clear_error(tmp_path, capsys):
    with pytest.raises(TinyLLMError, match="has no metrics.jsonl"):
        compare([str(tmp_path)])
    write_metrics(tmp_path / "metrics.jsonl", [{"step": 1, "tokens": 10, "loss": 3.0,
                                                 "tokens_per_s": 5, "elapsed": 1.0}])
    with pytest.raises(TinyLLMError, match="no validation bits per byte"):
        compare([str(tmp_path)])
    assert main(["compare", str(tmp_path / "nowhere")]) == 1
    assert "has no metrics.jsonl" in capsys.readouterr().err


def test_compare_reads_real_runs(tmp_path):
    """Two short `tinyllm train` runs, GPT-Neo and Llama: compare reads what train writes."""
    flags = ["--layers", "1", "--hidden", "32", "--heads", "4", "--context", "16",
             "--max-steps", "6", "--eval-every", "3", "--eval-batches", "2", "--quiet"]
    for arch in ("gpt-neo", "llama"):
        assert main(["train", "--arch", arch, "--out", str(tmp_path / arch), *flags]) == 0
    table = compare([str(tmp_path / "gpt-neo"), str(tmp_path / "llama")],
                    out=tmp_path / "runs.png")
    for row in table:
        assert row["steps"] == 6 and len(row["bpb"]) == 2 and 1 < row["best_bpb"] < 20
        assert row["tokens"] == [3 * 16 * 16, 6 * 16 * 16] and row["tokens_per_s"] > 0
        assert row["parameters"] == GPT.from_pretrained(row["path"]).num_parameters()


def test_a_directory_whose_name_holds_an_equals_sign_is_a_directory(tmp_path):
    run = fake_run(tmp_path / "lr=1e-3", [2.0, 1.8])        # as tinyllm sweep names settings
    (row,) = compare([str(run)], out=tmp_path / "runs.png")
    assert row["best_bpb"] == 1.8
