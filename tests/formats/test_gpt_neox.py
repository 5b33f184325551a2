"""GPT-NeoX in and out: tinyllm train's default model exported as a Hugging Face GPT-NeoX that
transformers loads with the same logits, and any GPT-NeoX directory (partial rotary, parallel
residual, biases) loaded into GPT with transformers' logits."""
import json

import pytest
import torch

from tinyllm.cli import main
from tinyllm.check.common import randomize

pytest.importorskip("transformers")


@pytest.mark.parametrize("changes", [dict(), dict(attention="gpt-neo", tie_embeddings=True),
                                     dict(qkv_bias=True, parallel_residual=True,
                                          rotary_fraction=0.5)])
def test_default_model_exports_as_gpt_neox(tmp_path, capsys, changes):
    from transformers import AutoModelForCausalLM
    from tinyllm.model import GPT
    from tinyllm.model.presets import default_model
    torch.manual_seed(0)
    config = default_model().replace(hidden_size=32, num_heads=4, context_size=16,
                                     vocab_size=300, **changes)
    model = randomize(GPT(None, config), std=0.1).eval()
    model.save_pretrained(tmp_path / "run")
    assert main(["export", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "hf")]) == 0
    assert "GPT-NeoX" in capsys.readouterr().out
    hf = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert hf["model_type"] == "gpt_neox"
    assert hf["rope_parameters"]["partial_rotary_factor"] == config.rotary_fraction
    assert hf["use_parallel_residual"] is config.parallel_residual
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = torch.randint(0, 300, (2, 16))
    with torch.no_grad():
        assert (theirs(ids).logits - model(ids)).abs().max() <= 1e-4


@pytest.mark.parametrize("parallel,pct,bias,tie", [(True, 0.25, True, False),
                                                   (False, 1.0, True, True),
                                                   (True, 0.5, False, False)])
def test_a_gpt_neox_directory_loads_with_transformers_logits(tmp_path, parallel, pct, bias, tie):
    """What transformers writes (its own names, v5's rope_parameters), read back as a GPT; then
    written out again, which transformers reads equal."""
    from transformers import AutoModelForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM
    from tinyllm.model import GPT
    from tinyllm.formats import export
    torch.manual_seed(0)
    ref = GPTNeoXForCausalLM(GPTNeoXConfig(
        vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, use_parallel_residual=parallel,
        rotary_pct=pct, attention_bias=bias, tie_word_embeddings=tie, bos_token_id=None,
        eos_token_id=None))
    randomize(ref, std=0.1).eval()
    ref.save_pretrained(tmp_path / "neox")
    mine = GPT.from_pretrained(tmp_path / "neox").eval()
    assert (mine.config.parallel_residual, mine.config.rotary_fraction) == (parallel, pct)
    ids = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        expected = ref(ids).logits
        assert (mine(ids) - expected).abs().max() <= 1e-4
        greedy = mine.generate(ids[:1, :5], max_new_tokens=10, temperature=0)
        assert torch.equal(greedy, ref.generate(ids[:1, :5], max_new_tokens=10, do_sample=False,
                                                min_new_tokens=10))
    export(mine, tmp_path / "again")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "again").eval()
    with torch.no_grad():
        assert (again(ids).logits - expected).abs().max() <= 1e-4


def test_a_window_shorter_than_the_context_is_refused_in_one_line(tmp_path, capsys):
    from tinyllm.model import GPT
    from tinyllm.model.presets import default_model
    GPT(None, default_model().replace(hidden_size=32, num_heads=4, context_size=16, window_size=4,
                                      vocab_size=300)).save_pretrained(tmp_path / "run")
    assert main(["export", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "GPT-NeoX" in err and "4-token window is shorter than the 16-token context" in err
    assert not (tmp_path / "o").exists()


def test_a_window_covering_the_context_is_a_global_layer(tmp_path):
    """The blog series' Config(): every layer local, its 64-token window the whole context."""
    from tinyllm.model import Config
    from tinyllm.formats import export_format
    assert export_format(Config()) == "GPT-Neo"
    assert export_format(Config(position="rotary")) == "GPT-NeoX"
