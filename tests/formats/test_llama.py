"""Weight compatibility with Hugging Face Llama, offline: Llama models built by transformers with
random weights load into tinyllm, tinyllm's Llama-shaped models export to ``LlamaForCausalLM``,
and both ways give the same logits (≤ 1e-4)."""
import json

import pytest
import torch

from tinyllm.formats import llama, huggingface as pretrained
from tinyllm.cli import main
from tinyllm.model.config import Config
from tinyllm.errors import TinyLLMError
from tinyllm.model import GPT
from tinyllm.model.nn import formulas
from tinyllm.train.config import llama_model

transformers = pytest.importorskip("transformers")
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM  # noqa: E402

from tests.conftest import TOL_MODEL, write_byte_tokenizer  # noqa: E402

TOL = TOL_MODEL   # a whole model


def hf_llama(vocab_size=300, seed=0, std=0.1, **kw) -> LlamaForCausalLM:
    """A Llama with random weights (norm scales around 1); std 0.1 so that attention is peaked
    and a wrong rotation or scale changes the logits."""
    torch.manual_seed(seed)
    options = dict(hidden_size=32, intermediate_size=72, num_hidden_layers=2,
                   num_attention_heads=4, max_position_embeddings=64, rope_theta=500.0,
                   rms_norm_eps=1e-6, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, **{**options, **kw})).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if name.endswith("norm.weight") else 0.0, std)
    return model


def tinyllm_llama(seed=0, **kw) -> GPT:
    """tinyllm's Llama preset, small, with weights moved away from their initial values."""
    c = llama_model().replace(hidden_size=32, num_heads=4, num_layers=2, context_size=24,
                              vocab_size=300, rope_theta=500.0, **kw)
    torch.manual_seed(seed)
    model = GPT(None, c)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def logits_diff(hf_model, model, ids) -> float:
    with torch.no_grad():
        return (hf_model(ids).logits - model.eval()(ids)).abs().max().item()


# -- import ----------------------------------------------------------------------------------

@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("written_out", [False, True])
def test_from_llama_gives_its_logits(tmp_path, tie, written_out):
    ref = hf_llama(tie_word_embeddings=tie)
    ref.save_pretrained(tmp_path)
    write_byte_tokenizer(tmp_path)
    model = GPT.from_pretrained(tmp_path)
    c = model.config
    assert (c.position, c.norm, c.mlp, c.bias, c.rope_theta, c.tie_embeddings) == \
        ("rotary", "rmsnorm", "gated", False, 500.0, tie)
    assert model.tokenizer.vocab_size == 257
    ids = torch.randint(0, 300, (2, 40))
    with formulas(written_out):    # the same weights through the written-out softmax and norms
        assert logits_diff(ref, model, ids) <= TOL


def test_imported_llama_generates_through_the_cache_as_without(tmp_path):
    ref = hf_llama()
    ref.save_pretrained(tmp_path)
    model = GPT.from_pretrained(tmp_path)
    assert model.tokenizer is None                            # no vocab.json / merges.txt there
    prompt = torch.randint(0, 300, (2, 5))
    ours = model.generate(prompt, max_new_tokens=10, temperature=0, eos_token_id=None)
    theirs = ref.generate(prompt, max_new_tokens=10, do_sample=False, min_new_tokens=10)
    assert torch.equal(ours, theirs)


def test_state_dict_names_map_one_to_one():
    ref = hf_llama()
    sd = ref.state_dict()
    mapped = llama.state_dict_from_llama(sd)
    model = GPT(None, Config(**llama.config_from_llama(ref.config.to_dict())))
    assert set(mapped) == set(model.state_dict())
    back = llama.state_dict_to_llama(mapped, model.config)
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)


def test_unsupported_llamas_are_one_clear_error(tmp_path):
    base = hf_llama().config.to_dict()
    for changes, message in [
        (dict(num_key_value_heads=2), "grouped-query attention"),
        (dict(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}),
         "scales its rotary positions"),
        (dict(rope_parameters=None, rope_scaling={"type": "dynamic", "factor": 2.0}),
         "scales its rotary positions"),
        (dict(attention_bias=True), "has biases"),
        (dict(head_dim=16), "head_dim"),
        (dict(hidden_act="tanh"), "hidden_act 'tanh' is not supported"),
        (dict(num_attention_heads=5, num_key_value_heads=5, head_dim=None),
         "divisible by num_heads"),
    ]:
        with pytest.raises(TinyLLMError, match=message):
            Config(**llama.config_from_llama({**base, **changes}))
    incomplete = {k: v for k, v in base.items() if k != "intermediate_size"}
    with pytest.raises(TinyLLMError, match="lacks 'intermediate_size'"):
        llama.config_from_llama(incomplete)
    with pytest.raises(TinyLLMError, match="is not a parameter of a Llama"):
        llama.state_dict_from_llama({"model.layers.0.self_attn.q_norm.weight": torch.ones(8)})
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mistral"}))
    with pytest.raises(TinyLLMError, match="loads GPT-Neo, GPT-NeoX and Llama"):
        GPT.from_pretrained(tmp_path)


# -- export ----------------------------------------------------------------------------------

@pytest.mark.parametrize("attention", ["scaled", "gpt-neo"])
def test_export_round_trip_through_transformers(tmp_path, attention):
    """A tinyllm Llama-shaped model (1/√d scores, or unscaled ones with √d folded into W_q on
    export) -> LlamaForCausalLM -> tinyllm again: the same logits all the way."""
    model = tinyllm_llama(attention=attention)
    out = pretrained.export(model, tmp_path / "hf")
    saved = json.loads((out / "config.json").read_text())
    assert saved["model_type"] == "llama" and saved["tinyllm_context_size"] == 24
    assert saved["tie_word_embeddings"] is False
    theirs = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(theirs).__name__ == "LlamaForCausalLM"
    ids = torch.randint(0, 300, (2, 24))
    assert logits_diff(theirs, model, ids) <= TOL
    write_byte_tokenizer(out)
    back = GPT.from_pretrained(out)
    assert back.config.context_size == 24 and back.config.attention == "scaled"
    assert logits_diff(theirs, back, ids) <= TOL


def test_export_of_a_tied_llama_and_its_tokenizer(tmp_path):
    from tinyllm.tokenizer import Tokenizer
    write_byte_tokenizer(tmp_path)
    model = GPT(Tokenizer(tmp_path), llama_model().replace(
        hidden_size=32, num_heads=4, num_layers=1, tie_embeddings=True))
    out = pretrained.export(model, tmp_path / "hf")
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is True
    assert {"vocab.json", "merges.txt", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    theirs = AutoModelForCausalLM.from_pretrained(out).eval()
    assert logits_diff(theirs, model, torch.randint(0, 257, (1, 20))) <= TOL
    back = GPT.from_pretrained(out)
    assert back.lm_head.weight is back.wte.weight and back.tokenizer.vocab_size == 257


def test_export_picks_the_layout_or_says_why_there_is_none():
    assert pretrained.export_format(Config()) == "GPT-Neo"
    assert pretrained.export_format(Config(bias=False)) == "GPT-Neo"      # zero biases written
    assert pretrained.export_format(llama_model()) == "Llama"
    for changes, reason in [(dict(qk_norm=True), "QK-norm"), (dict(logit_softcap=10.0), "soft-cap"),
                            (dict(mlp="plain"), "GPT-NeoX, cannot hold its RMSNorm"),
                            (dict(bias=True), "Llama, cannot hold its biases")]:
        with pytest.raises(TinyLLMError, match=f"no Hugging Face layout holds this model: .*{reason}"):
            pretrained.export_format(llama_model().replace(**changes))
    with pytest.raises(TinyLLMError, match="not a Llama: it has learned positions"):
        llama.config_to_llama(Config())
    from tinyllm.formats import gpt_neo as hf
    with pytest.raises(TinyLLMError, match="not a GPT-Neo: it has rotary positions"):
        hf.config_to_hf(llama_model())


def test_a_wrong_rotary_convention_breaks_the_round_trip(tmp_path, monkeypatch):
    """The round trip is sensitive: rotating neighbouring pairs (2i, 2i+1) instead of Hugging
    Face's pairs half a head apart gives other logits."""
    from tests.model.test_components import _interleaved
    model = tinyllm_llama()
    theirs = AutoModelForCausalLM.from_pretrained(pretrained.export(model, tmp_path)).eval()
    ids = torch.randint(0, 300, (1, 24))
    assert logits_diff(theirs, model, ids) <= TOL
    monkeypatch.setattr("tinyllm.model.nn.rotary.apply_rotary", _interleaved)
    assert logits_diff(theirs, model, ids) > 1e-3


def test_tinyllm_export_of_a_llama_run(tmp_path, capsys):
    """`tinyllm train --arch llama` then `tinyllm export`: a directory transformers loads as a
    Llama, with the run's tokenizer."""
    run, out = tmp_path / "run", tmp_path / "hf"
    assert main(["train", "--arch", "llama", "--layers", "1", "--hidden", "32", "--heads", "4",
                 "--context", "16", "--max-steps", "3", "--eval-every", "0", "--quiet",
                 "--out", str(run)]) == 0
    assert main(["export", "--model", str(run), "--out", str(out)]) == 0
    model = GPT.from_pretrained(run)
    theirs = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(theirs).__name__ == "LlamaForCausalLM"
    ids = torch.tensor([model.tokenizer.encode("Once upon a time, there was a cat.")])
    assert logits_diff(theirs, model, ids) <= TOL
