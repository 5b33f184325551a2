"""Weight compatibility with Hugging Face GPT-Neo, offline: models built by transformers with
random weights are loaded into tinyllm (and exported back) and must give the same logits."""
import json
from pathlib import Path

import pytest
import torch

from tinyllm.errors import TinyLLMError
from tinyllm.formats import gpt_neo as hf, huggingface as pretrained
from tinyllm.model import GPT
from tinyllm.model.nn import formulas
from tinyllm.model.config import Config

from tests.conftest import GPT2_DIR, TOL_MODEL, write_byte_tokenizer

transformers = pytest.importorskip("transformers")
from transformers import AutoModelForCausalLM, GPTNeoConfig, GPTNeoForCausalLM  # noqa: E402

TOL = TOL_MODEL   # a whole model

SERIES = dict(hidden_size=64, num_layers=8, num_heads=16, attention_types=[[["local"], 8]],
              window_size=64)                     # the blog series' Config(), as GPT-Neo
TINYSTORIES_1M = dict(hidden_size=32, num_layers=8, num_heads=16,  # (width shrunk from 64)
                      attention_types=[[["global", "local"], 4]], window_size=256)


def hf_model(vocab_size=512, seed=0, std=0.1, **kw) -> GPTNeoForCausalLM:
    """A GPT-Neo with random weights; std 0.1 (not 0.02) so that attention is peaked and a
    wrong window or scale would change the logits."""
    torch.manual_seed(seed)
    config = GPTNeoConfig(vocab_size=vocab_size, bos_token_id=None, eos_token_id=None, **kw)
    model = GPTNeoForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if ".ln_" in name and name.endswith("weight") else 0.0, std)
    return model


def save_hf(model, directory: Path, tokenizer_dir: Path | None = None) -> Path:
    model.save_pretrained(directory)
    if tokenizer_dir is None:
        write_byte_tokenizer(directory)
    else:
        for n in ("vocab.json", "merges.txt"):
            (directory / n).write_bytes((tokenizer_dir / n).read_bytes())
    return directory


def logits_diff(hf_model_, model, ids) -> float:
    with torch.no_grad():
        return (hf_model_(ids).logits - model.eval()(ids)).abs().max().item()


# -- import --------------------------------------------------------------------------------

@pytest.mark.parametrize("written_out", [False, True])
@pytest.mark.parametrize("layout", [SERIES, TINYSTORIES_1M], ids=["series", "tinystories-1m"])
def test_from_hf_gives_gpt_neo_logits(tmp_path, layout, written_out):
    ref = hf_model(**layout)
    model = GPT.from_pretrained(save_hf(ref, tmp_path))
    assert model.config.attention_layers == ref.config.attention_layers
    assert model.config.window_size == layout["window_size"]
    T = layout["window_size"] + 20                 # longer than the window: it must bite
    ids = torch.randint(0, 512, (2, T))
    with formulas(written_out):   # same weights through the written-out softmax/GELU
        assert logits_diff(ref, model, ids) <= TOL


def test_window_matters_in_these_checks(tmp_path):
    """The comparison above is sensitive: the same weights with a wider window differ."""
    ref = hf_model(**SERIES)
    model = GPT.from_pretrained(save_hf(ref, tmp_path))
    wide = GPT(model.tokenizer, model.config.replace(window_size=128))
    wide.load_state_dict(model.state_dict())
    ids = torch.randint(0, 512, (1, 90))
    with torch.no_grad():
        assert (wide(ids)[:, 64:] - model(ids)[:, 64:]).abs().max() > 1e-3


def test_from_hf_at_gpt2_vocab(tmp_path):
    ref = hf_model(vocab_size=50257, **SERIES)
    model = GPT.from_pretrained(save_hf(ref, tmp_path))
    ids = torch.randint(0, 50257, (2, 70))
    assert logits_diff(ref, model, ids) <= TOL


def test_gpt_from_pretrained_reads_a_hf_directory_with_gpt2_tokenizer(tmp_path):
    if not GPT2_DIR.is_dir():
        pytest.skip("../shared/data/gpt2 is not beside the repository")
    ref = hf_model(vocab_size=50257, **TINYSTORIES_1M)
    model = GPT.from_pretrained(save_hf(ref, tmp_path, tokenizer_dir=GPT2_DIR))
    assert model.tokenizer.vocab_size == 50257
    assert model.tokenizer.encode("Hello, world!") == [15496, 11, 995, 0]
    ids = torch.tensor([model.tokenizer.encode("Once upon a time, there was a little girl.")])
    assert logits_diff(ref, model, ids) <= TOL
    assert isinstance(model.next_token("Once upon a"), str)


def test_from_hf_reads_pytorch_model_bin_without_lm_head(tmp_path):
    """Older repos: pickle weights (read with weights_only=True), attention mask buffers
    stored, the tied lm_head left out."""
    ref = hf_model(**TINYSTORIES_1M)
    ref.config.save_pretrained(tmp_path)
    sd = {k: v for k, v in ref.state_dict().items() if k != "lm_head.weight"}
    sd["transformer.h.0.attn.attention.bias"] = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    sd["transformer.h.0.attn.attention.masked_bias"] = torch.tensor(-1e9)
    torch.save(sd, tmp_path / "pytorch_model.bin")
    write_byte_tokenizer(tmp_path)
    model = GPT.from_pretrained(tmp_path)
    assert torch.equal(model.lm_head.weight, model.wte.weight)
    assert logits_diff(ref, model, torch.randint(0, 512, (1, 40))) <= TOL


def test_from_hf_reads_sharded_safetensors(tmp_path):
    ref = hf_model(**TINYSTORIES_1M)
    ref.save_pretrained(tmp_path, max_shard_size="100KB")
    write_byte_tokenizer(tmp_path)
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    assert logits_diff(ref, GPT.from_pretrained(tmp_path), torch.randint(0, 512, (1, 30))) <= TOL


def test_from_hf_downloads_a_hub_id(tmp_path, monkeypatch):
    """A hub id goes through huggingface_hub.snapshot_download (faked here: no network)."""
    import huggingface_hub
    ref = hf_model(**TINYSTORIES_1M)
    save_hf(ref, tmp_path)
    asked = []

    def snapshot(repo_id, allow_patterns=None, **kwargs):
        asked.append((repo_id, allow_patterns))
        return str(tmp_path)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    model = GPT.from_pretrained("roneneldan/TinyStories-1M")
    assert asked[0][0] == "roneneldan/TinyStories-1M" and "config.json" in asked[0][1]
    assert logits_diff(ref, model, torch.randint(0, 512, (1, 30))) <= TOL


def test_state_dict_names_map_one_to_one():
    ref = hf_model(**TINYSTORIES_1M)
    model = GPT(None, Config(**hf.config_from_hf(ref.config.to_dict())))
    hf_sd = ref.state_dict()
    mapped = hf.state_dict_from_hf(hf_sd)
    assert set(mapped) == set(model.state_dict())
    back = hf.state_dict_to_hf(mapped)
    assert set(back) == set(hf_sd)
    assert all(torch.equal(back[k], hf_sd[k]) for k in hf_sd)


def test_config_round_trip_through_gpt_neo_config():
    c = Config(hidden_size=48, embedding_size=48, num_layers=6, num_heads=4, window_size=7,
               attention_layers=["global", "local", "local"] * 2, intermediate_size=100,
               activation="relu", attention_dropout=0.1, residual_dropout=0.2,
               embedding_dropout=0.3, layer_norm_epsilon=1e-6, max_position_embeddings=300,
               context_size=128, vocab_size=1000)
    d = hf.config_to_hf(c, tie_word_embeddings=False)
    assert d["attention_types"] == [[["global", "local", "local"], 2]]
    hc = GPTNeoConfig(**d)  # transformers accepts it and expands the layers the same way
    assert hc.attention_layers == c.attention_layers
    assert (hc.intermediate_size, hc.activation_function, hc.resid_dropout, hc.embed_dropout,
            hc.attention_dropout, hc.tie_word_embeddings) == (100, "relu", 0.2, 0.3, 0.1, False)
    assert Config(**hf.config_from_hf(hc.to_dict())) == c
    assert Config(**hf.config_from_hf(d)) == c


def test_attention_types_expand_and_compress():
    assert hf.expand_attention_types([[["global", "local"], 4]]) == ["global", "local"] * 4
    assert hf.attention_types(Config(attention_layers=["local"] * 8)) == [[["local"], 8]]
    assert hf.attention_types(Config(num_layers=3, attention_layers=["global", "global", "local"])) \
        == [[["global", "global", "local"], 1]]


# -- export --------------------------------------------------------------------------------

def test_export_round_trip_through_transformers(tmp_path):
    ref = hf_model(**TINYSTORIES_1M)
    model = GPT.from_pretrained(save_hf(ref, tmp_path / "in"))
    assert model.config.tie_embeddings and model.lm_head.weight is model.wte.weight  # as in GPT-Neo
    out = pretrained.export(model, tmp_path / "out")
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is True
    again = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(again).__name__ == "GPTNeoForCausalLM"
    ids = torch.randint(0, 512, (2, 280))
    assert logits_diff(again, model, ids) <= TOL
    assert logits_diff(ref, GPT.from_pretrained(out), ids) <= TOL


@pytest.mark.parametrize("attention", ["gpt-neo", "scaled"])
def test_export_of_a_tinyllm_model(tmp_path, attention):
    """A model trained by tinyllm: untied head, maybe 1/√d scores (folded into W_q on export)."""
    c = Config(hidden_size=32, embedding_size=32, num_layers=2, num_heads=4, window_size=8,
               attention_layers=["local", "global"], context_size=16, attention=attention,
               vocab_size=300)
    torch.manual_seed(0)
    model = GPT(None, c)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    pretrained.export(model, tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["tie_word_embeddings"] is False
    assert saved["tinyllm_context_size"] == 16
    ref = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 300, (2, 20))
    assert logits_diff(ref, model, ids) <= TOL
    write_byte_tokenizer(tmp_path)  # and back into tinyllm (as 'gpt-neo', the scale in W_q)
    back = GPT.from_pretrained(tmp_path)
    assert back.config.context_size == 16
    assert logits_diff(ref, back, ids) <= TOL


def test_from_hf_without_tokenizer_files(tmp_path, monkeypatch):
    """No vocab.json/merges.txt: GPT-2's tokenizer for a GPT-2-sized vocabulary (with its clear
    error when it cannot be had), no tokenizer for a smaller one."""
    import huggingface_hub
    small = hf_model(**TINYSTORIES_1M)
    small.save_pretrained(tmp_path / "small")
    model = GPT.from_pretrained(tmp_path / "small")
    assert model.tokenizer is None
    assert logits_diff(small, model, torch.randint(0, 512, (1, 20))) <= TOL

    hf_model(vocab_size=50257, **TINYSTORIES_1M).save_pretrained(tmp_path / "big")
    monkeypatch.setenv("TINYLLM_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _offline)
    with pytest.raises(TinyLLMError, match="GPT-2 tokenizer files not found"):
        GPT.from_pretrained(tmp_path / "big")  # not cached, no network: the tokenizer's clear error
    if not GPT2_DIR.is_dir():
        pytest.skip("../shared/data/gpt2 is not beside the repository")
    (tmp_path / "home" / "gpt2").mkdir(parents=True, exist_ok=True)
    for n in ("vocab.json", "merges.txt"):
        (tmp_path / "home" / "gpt2" / n).write_bytes((GPT2_DIR / n).read_bytes())
    assert GPT.from_pretrained(tmp_path / "big").tokenizer.vocab_size == 50257


def test_from_hf_refuses_a_tokenizer_bigger_than_the_model(tmp_path):
    if not GPT2_DIR.is_dir():
        pytest.skip("../shared/data/gpt2 is not beside the repository")
    save_hf(hf_model(**TINYSTORIES_1M), tmp_path, tokenizer_dir=GPT2_DIR)
    with pytest.raises(TinyLLMError, match="50257 tokens but the model .* only 512"):
        GPT.from_pretrained(tmp_path)


# -- errors --------------------------------------------------------------------------------

def _offline(*args, **kwargs):
    from huggingface_hub.errors import LocalEntryNotFoundError
    raise LocalEntryNotFoundError("ConnectError: Name or service not known")


def test_hub_unreachable_says_so(monkeypatch):
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _offline)
    with pytest.raises(TinyLLMError, match="hub is unreachable.*local directory"):
        GPT.from_pretrained("roneneldan/TinyStories-1M")


def test_bad_paths_and_configs(tmp_path):
    with pytest.raises(TinyLLMError, match="does not exist"):
        GPT.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(TinyLLMError, match="no config.json"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt_neo", "hidden_size": 30,
                                                      "num_heads": 4, "num_layers": 1,
                                                      "attention_types": [[["global"], 1]]}))
    with pytest.raises(TinyLLMError, match="divisible by num_heads"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(TinyLLMError, match="loads GPT-Neo, GPT-NeoX and Llama"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt_neo", "hidden_size": 32,
                                                      "num_heads": 4, "num_layers": 1,
                                                      "attention_types": [[["global"], 1]]}))
    with pytest.raises(TinyLLMError, match="no model.safetensors or pytorch_model.bin"):
        GPT.from_pretrained(tmp_path)
    ref = hf_model(**TINYSTORIES_1M)  # weights of another shape than config.json says
    ref.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "hidden_size": 48}))
    with pytest.raises(TinyLLMError, match="do not fit its config.json"):
        GPT.from_pretrained(tmp_path)


def test_export_writes_a_tokenizer_transformers_reads(tmp_path):
    if not GPT2_DIR.is_dir():
        pytest.skip("../shared/data/gpt2 is not beside the repository")
    from transformers import AutoTokenizer
    from tinyllm.tokenizer import Tokenizer
    tokenizer = Tokenizer(GPT2_DIR)
    model = GPT(tokenizer, Config(num_layers=1, attention_layers=["local"]))
    pretrained.export(model, tmp_path)
    theirs = AutoTokenizer.from_pretrained(tmp_path)
    text = "Once upon a time, Lily's cat said: \"Hello!\"<|endoftext|>"
    assert theirs.encode(text) == tokenizer.encode(text)
    assert theirs.eos_token_id == tokenizer.eos_token_id == 50256
    assert json.loads((tmp_path / "config.json").read_text())["eos_token_id"] == 50256


def test_a_loaded_model_is_in_evaluation_mode(tmp_path):
    """As transformers loads its models: dropout off until .train(), so that the logits are the
    reference's at once."""
    ref = hf_model(**TINYSTORIES_1M, resid_dropout=0.3, embed_dropout=0.3)
    model = GPT.from_pretrained(save_hf(ref, tmp_path))
    assert not model.training and model.config.residual_dropout == 0.3
    ids = torch.randint(0, 512, (1, 30))
    with torch.no_grad():
        assert (model(ids) - ref(ids).logits).abs().max() <= TOL
