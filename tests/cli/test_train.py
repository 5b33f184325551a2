"""`tinyllm train` and `tinyllm eval` end to end, on the built-in corpus with a tiny model."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyllm.cli import main
from tinyllm.model import GPT

from tests.conftest import REPO

TINY = ["--layers", "2", "--hidden", "32", "--heads", "4", "--context", "32", "--batch-size", "4",
        "--warmup", "2", "--quiet", "--device", "cpu"]


def _write(path, text):
    path.write_text(text)
    return path


def rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_train_then_eval(tmp_path, home, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "sample", "--out", str(out), "--max-steps", "6",
                 "--eval-every", "3", "--eval-batches", "0", "--log-every", "2", *TINY]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "tinyllm eval --model" in printed
    model = GPT.from_pretrained(out)
    assert model.config.num_layers == 2 and model.tokenizer.vocab_size == 1024
    metrics = rows(out / "metrics.jsonl")
    assert [r["step"] for r in metrics if "loss" in r] == [2, 4, 6]
    assert [r["step"] for r in metrics if "val_loss" in r] == [3, 6]
    assert all({"tokens", "lr", "tokens_per_s"} <= set(r) for r in metrics if "loss" in r)
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "last" / "optimizer.safetensors").is_file()

    assert main(["eval", "--model", str(out), "--data", "sample", "--val-fraction", "0.05",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    best = min(r["val_loss"] for r in metrics if "val_loss" in r)
    assert result["loss"] == pytest.approx(best, rel=1e-5)   # the same held-out stories
    assert result["perplexity"] == pytest.approx(2.718281828 ** result["loss"], rel=1e-6)
    assert 0 < result["bits_per_byte"] < 10 and result["tokens"] > 0


def test_resume_through_the_cli(tmp_path, home, capsys):
    args = ["--data", "sample", "--decay-steps", "6", "--log-every", "1", "--eval-every", "0",
            "--dropout", "0.1", *TINY]
    assert main(["train", "--out", str(tmp_path / "a"), "--max-steps", "6", *args]) == 0
    assert main(["train", "--out", str(tmp_path / "b"), "--max-steps", "3", *args]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "b"), "--max-steps", "3", *args]) == 1
    assert "--resume" in capsys.readouterr().err              # no silent overwrite of a run
    assert main(["train", "--resume", str(tmp_path / "b"), "--max-steps", "6", "--quiet"]) == 0
    assert capsys.readouterr().err.startswith("continuing from step 3: ")   # says it resumed
    a = [r["loss"] for r in rows(tmp_path / "a" / "metrics.jsonl") if "loss" in r]
    b = [r["loss"] for r in rows(tmp_path / "b" / "metrics.jsonl") if "loss" in r]
    assert len(a) == len(b) == 6
    assert b == pytest.approx(a, abs=1e-6)
    assert main(["train", "--resume", str(tmp_path / "b"), "--layers", "3"]) == 1
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "b"), "--optimizer", "adamw"]) == 1
    assert "--optimizer cannot change when resuming" in capsys.readouterr().err


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.txt", "does not exist"),
    (lambda d: _write(d / "empty.txt", ""), "empty"),
    (lambda d: _write(d / "seps.txt", "<|endoftext|>\n\n<|endoftext|>\n"), "no stories"),
])
def test_bad_data_is_one_clear_line(tmp_path, home, capsys, make, message):
    path = make(tmp_path)
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "o"), "--max-steps", "1",
                 *TINY]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyllm train: error:") and message in err and "\n" not in err


def test_bad_device_and_bad_model(tmp_path, home, capsys):
    for device in ("tpu", "nonsense"):
        assert main(["train", "--data", "sample", "--out", str(tmp_path / "o"), "--max-steps",
                     "1", *TINY[:-2], "--device", device]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("tinyllm train: error:") and "device" in err and "\n" not in err
    assert main(["eval", "--model", str(tmp_path), "--data", "sample"]) == 1
    assert capsys.readouterr().err.startswith("tinyllm eval: error:")


def test_sigterm_saves_a_checkpoint(tmp_path, home):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TINYLLM_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinyllm", "train", "--data", "sample", "--out", str(out),
         "--max-steps", "100000", "--log-every", "1", "--eval-every", "0", *TINY],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            if (out / "metrics.jsonl").is_file() and len(rows(out / "metrics.jsonl")) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "--resume" in stderr
    state = json.loads((out / "last" / "trainer_state.json").read_text())
    assert state["step"] >= 2
    assert GPT.from_pretrained(out).config.num_layers == 2


def test_a_damaged_checkpoint_is_one_clear_line(tmp_path, capsys):
    from tinyllm.model.config import Config
    from tinyllm.model import GPT
    from tinyllm.tokenizer import Tokenizer
    ckpt = tmp_path / "ckpt"
    GPT(Tokenizer("builtin"), Config(hidden_size=32, num_heads=4, num_layers=2)).save_pretrained(ckpt)
    (ckpt / "model.safetensors").write_bytes(b"\x80\x04 not safetensors, maybe a pickle")
    assert main(["generate", "--model", str(ckpt), "hi"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyllm generate: error:") and "safetensors" in err and "\n" not in err
    (ckpt / "config.json").write_text('{"tinyllm": {"hidden_size": "wide"}}')
    assert main(["eval", "--model", str(ckpt), "--data", "sample"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyllm eval: error:") and "config" in err and "\n" not in err


def test_a_time_budget_sets_its_regularisation_from_the_speed(tmp_path, home, capsys):
    out = tmp_path / "run"
    tiny = [a for a in TINY if a != "--quiet"]
    assert main(["train", "--data", "sample", "--out", str(out), "--max-time", "4",
                 "--log-every", "2", *tiny]) == 0
    printed = capsys.readouterr()
    assert "weight decay" in printed.err and "(for now: the speed of the first steps sets them)" \
        in printed.err
    measured = [line for line in printed.out.splitlines() if line.startswith("measured ")]
    assert len(measured) == 1 and "tokens/s over steps 3-10: about " in measured[0]
    saved = json.loads((out / "last" / "train_config.json").read_text())   # what a resume takes
    assert measured[0].endswith(f"weight decay {saved['weight_decay']:.2g}")
    logged = [r for r in rows(out / "metrics.jsonl") if "loss" in r]
    assert logged and all(r["threads"] == 1 for r in logged)    # OMP_NUM_THREADS=1 (conftest)


@pytest.mark.parametrize("how", ["--resume-if-exists", "TORCHELASTIC_RESTART_COUNT=1"])
def test_the_same_command_line_continues_a_run_when_asked(tmp_path, home, capsys, monkeypatch,
                                                          how):
    """A scheduler's rerun (--resume-if-exists) or torchrun's restart of the group continues the
    run the directory holds, as --resume does; only the same run (a fresh directory starts)."""
    flag = [how] if how.startswith("--") else []
    if not flag:
        monkeypatch.setenv(*how.split("="))
    out = tmp_path / "run"
    command = ["train", "--data", "sample", "--out", str(out), "--eval-every", "0", *TINY, *flag]
    assert main([*command, "--max-steps", "2"]) == 0
    assert capsys.readouterr().err.startswith("training ")          # nothing to continue yet
    assert main([*command, "--max-steps", "4"]) == 0
    assert capsys.readouterr().err.startswith("continuing from step 2:")
    assert [r["step"] for r in rows(out / "metrics.jsonl") if "loss" in r][-1] == 4
    assert main([*command, "--max-steps", "6", "--hidden", "64"]) == 1
    assert "holds another run (--hidden differs)" in capsys.readouterr().err
