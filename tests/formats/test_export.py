"""`tinyllm export`: a tinyllm or Hugging Face model written as the Hugging Face directory of
its architecture, which transformers loads with the same logits; what cannot be exported is one
line saying why."""
import json

import pytest
import torch

from tinyllm.cli import main

pytest.importorskip("transformers")


def test_cli_export_writes_a_transformers_model(tmp_path, capsys):
    from transformers import AutoModelForCausalLM, GPTNeoConfig, GPTNeoForCausalLM
    from tests.conftest import write_byte_tokenizer
    torch.manual_seed(0)
    src = GPTNeoForCausalLM(GPTNeoConfig(vocab_size=300, hidden_size=32, num_layers=2,
                                         num_heads=4, attention_types=[[["global", "local"], 1]],
                                         window_size=4, bos_token_id=None, eos_token_id=None))
    src.save_pretrained(tmp_path / "in")
    write_byte_tokenizer(tmp_path / "in")
    assert main(["export", "--model", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "config.json").read_text())["window_size"] == 4
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = torch.randint(0, 300, (1, 10))
    with torch.no_grad():
        assert (again(ids).logits - src.eval()(ids).logits).abs().max() <= 1e-4


def test_cli_export_of_a_tinyllm_checkpoint(tmp_path, capsys):
    from transformers import AutoModelForCausalLM
    from tinyllm.model.config import Config
    from tinyllm.model import GPT
    torch.manual_seed(0)
    model = GPT(None, Config(hidden_size=32, embedding_size=32, num_layers=2, num_heads=4,
                             context_size=16, window_size=4, vocab_size=300)).eval()
    model.save_pretrained(tmp_path / "ckpt")
    assert main(["export", "--model", str(tmp_path / "ckpt"), "--out", str(tmp_path / "out")]) == 0
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = torch.randint(0, 300, (1, 12))
    with torch.no_grad():
        assert (again(ids).logits - model(ids)).abs().max() <= 1e-4
    # never over a checkpoint
    assert main(["export", "--model", str(tmp_path / "out"), "--out", str(tmp_path / "ckpt")]) == 1
    assert "would overwrite it" in capsys.readouterr().err


def test_cli_export_bad_model_is_one_line(tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyllm export: error:") and "does not exist" in err
    assert len(err.splitlines()) == 1
