"""Nothing damaged is ever used: a model directory and a run's last/ carry the SHA-256 of each of
their files (checksums.json), checked by everything that loads them; a flipped byte or a NaN is
one line naming the file and what is intact; directories without checksums still load; a
hostile config.json is refused before anything is allocated."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tinyllm.cli import main
from tinyllm.errors import TinyLLMError
from tinyllm.files import MANIFEST, DamagedFile
from tinyllm.model import GPT, Config

from tests.conftest import tiny_model

TINY = ["--layers", "1", "--hidden", "32", "--heads", "4", "--context", "32", "--batch-size", "4",
        "--warmup", "2", "--quiet", "--device", "cpu", "--eval-every", "3", "--eval-batches", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 6-step run on the built-in corpus (copied by each test that damages it)."""
    base = tmp_path_factory.mktemp("integrity")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYLLM_HOME", str(base / "home"))
        assert main(["train", "--data", "sample", "--out", str(base / "run"), "--max-steps", "6",
                     *TINY]) == 0
    return base


@pytest.fixture
def run(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLLM_HOME", str(trained / "home"))
    shutil.copytree(trained / "run", tmp_path / "run")
    return tmp_path / "run"


def flip_a_byte(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) * 2 // 3] ^= 0x10            # in the tensor data, past the header
    file.write_bytes(bytes(data))


def write_a_nan(file: Path) -> None:
    tensors = load_file(str(file))
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(file), metadata={"format": "pt"})


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_model_directories_and_checkpoints_carry_checksums(run):
    for directory in (run, run / "last"):
        listed = json.loads((directory / MANIFEST).read_text())["files"]
        assert {"config.json", "model.safetensors", "vocab.json", "merges.txt"} <= set(listed)
    assert {"optimizer.safetensors", "rng.safetensors", "trainer_state.json"} <= \
        set(json.loads((run / "last" / MANIFEST).read_text())["files"])


@pytest.mark.parametrize("command", [
    ["generate", "--model", "{run}", "Once", "--max-new-tokens", "2"],
    ["eval", "--model", "{run}", "--max-batches", "1"],
    ["export", "--model", "{run}", "--out", "{run}/../hf"],
])
def test_a_flipped_byte_in_a_model_directory_is_refused_by_every_command(run, command, capsys):
    flip_a_byte(run / "model.safetensors")
    assert main([a.replace("{run}", str(run)) for a in command]) == 1
    err = one_line_error(capsys)
    assert f"{run / 'model.safetensors'} is damaged" in err
    assert f"{run / 'last'} is intact" in err and f"--resume {run}" in err


def test_a_damaged_config_json_is_refused_as_damaged(run):
    (run / "config.json").write_text("{}")
    with pytest.raises(DamagedFile, match="config.json is damaged"):
        GPT.from_pretrained(run)


def test_a_flipped_byte_in_last_is_never_resumed(run, capsys):
    flip_a_byte(run / "last" / "optimizer.safetensors")
    assert main(["train", "--resume", str(run), "--max-steps", "9", "--quiet"]) == 1
    err = one_line_error(capsys)
    assert "optimizer.safetensors is damaged" in err
    assert f"{run} (the run's best model) is intact" in err
    assert json.loads((run / "last" / "trainer_state.json").read_text())["step"] == 6


def test_a_nan_in_last_is_damage_not_divergence(run, capsys):
    write_a_nan(run / "last" / "model.safetensors")
    assert main(["train", "--resume", str(run), "--max-steps", "9", "--quiet"]) == 1
    err = one_line_error(capsys)
    assert "damaged" in err and "diverged" not in err and "last is intact" not in err


def test_a_nan_without_checksums_is_refused_in_one_line(run):
    (run / MANIFEST).unlink()
    write_a_nan(run / "model.safetensors")
    with pytest.raises(DamagedFile, match="not finite"):
        GPT.from_pretrained(run)


def test_directories_without_checksums_still_load_silently(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / MANIFEST).unlink()
    assert torch.equal(GPT.from_pretrained(tmp_path / "m").lm_head.weight, model.lm_head.weight)


def test_saving_again_rewrites_the_checksums(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "m")
    with torch.no_grad():
        model.lm_head.weight.add_(1)
    model.save_pretrained(tmp_path / "m")
    assert torch.equal(GPT.from_pretrained(tmp_path / "m").lm_head.weight, model.lm_head.weight)


@pytest.mark.parametrize("file", ["trainer_state.json", "optimizer.json"])
def test_an_empty_checkpoint_json_is_one_line(run, file, capsys):
    (run / "last" / MANIFEST).unlink()                 # as an older run: no checksums
    (run / "last" / file).write_text("{}")
    assert main(["train", "--resume", str(run), "--max-steps", "9", "--quiet"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]     # after "continuing from ..."
    assert f"{file} is not a tinyllm" in last


def test_a_garbage_checkpoint_config_is_named(run, capsys):
    (run / "last" / MANIFEST).unlink()
    (run / "last" / "config.json").write_text("garbage")
    assert main(["train", "--resume", str(run), "--max-steps", "9", "--quiet"]) == 1
    err = one_line_error(capsys)
    assert "last/config.json is not a valid" in err and "nothing to resume" not in err


def test_a_garbage_run_config_json_is_not_taken_for_a_hugging_face_one(run, capsys):
    (run / MANIFEST).unlink()
    (run / "config.json").write_text('{"hidden": 3}')
    assert main(["generate", "--model", str(run), "Once"]) == 1
    err = one_line_error(capsys)
    assert "config.json is damaged" in err and f"{run / 'last'} is intact" in err


# -- hostile sizes ------------------------------------------------------------------------------

@pytest.mark.parametrize("sizes", [dict(hidden_size=10**6, embedding_size=10**6, num_heads=1),
                                   dict(num_layers=100_000, hidden_size=1024,
                                        embedding_size=1024),
                                   dict(vocab_size=1_000_000_000),
                                   dict(context_size=10**9, max_position_embeddings=10**9)])
def test_a_config_too_large_for_the_machine_is_refused_before_allocation(tmp_path, sizes,
                                                                         monkeypatch):
    model = tiny_model()
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / MANIFEST).unlink()
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["tinyllm"].update(sizes, attention_layers=None)
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    monkeypatch.setattr(torch, "empty", None)        # nothing may be allocated (no model built)
    with pytest.raises(TinyLLMError, match=r"parameters.*more than") as e:
        GPT.from_pretrained(tmp_path / "m")
    assert "\n" not in str(e.value)


def test_a_config_that_fits_is_built(monkeypatch):
    assert GPT(config=Config(vocab_size=50)).num_parameters() > 0
