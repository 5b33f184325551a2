"""Each from-scratch component against its reference twin, given the same weights and inputs:
torch.nn, torch.nn.functional, and transformers' GPT-Neo (the model tinyllm must match)."""
import pytest
import torch
import torch.nn.functional as F

from tinyllm.check import randomize  # weights far from the defaults, shared with `tinyllm check`
from tinyllm.config import Config
from tinyllm.nn import MLP, Attention, Block, Embedding, LayerNorm, gelu_new

TOL = 1e-5        # one component, fp32
TOL_BLOCK = 1e-4  # a whole block or model

transformers = pytest.importorskip("transformers")
from transformers import GPTNeoConfig  # noqa: E402
from transformers.models.gpt_neo.modeling_gpt_neo import (  # noqa: E402
    GPTNeoBlock, GPTNeoMLP, GPTNeoSelfAttention)


def small_config(**kw) -> Config:
    base = dict(hidden_size=32, embedding_size=32, num_layers=2, num_heads=4, context_size=16,
                window_size=5, max_position_embeddings=64, vocab_size=100)
    base.update(kw)
    return Config(**base)


def hf_config(c: Config) -> GPTNeoConfig:
    """transformers' GPT-Neo config for tinyllm Config ``c`` (eager attention, as in v5)."""
    return GPTNeoConfig(vocab_size=c.vocab_size, hidden_size=c.hidden_size,
                        num_layers=c.num_layers, num_heads=c.num_heads,
                        attention_types=[[list(c.attention_layers), 1]], window_size=c.window_size,
                        max_position_embeddings=c.max_position_embeddings,
                        intermediate_size=c.intermediate_size, activation_function=c.activation,
                        layer_norm_epsilon=c.layer_norm_epsilon, bos_token_id=None,
                        eos_token_id=None, attn_implementation="eager")


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


def attention_sd(hf_module) -> dict:
    """GPT-Neo names its attention weights attn.attention.*; tinyllm's are attn.*"""
    return {k.replace("attn.attention.", "attn."): v for k, v in hf_module.state_dict().items()
            if not k.endswith(("attention.bias", "masked_bias")) and k != "bias"}


# -- Embedding, LayerNorm, gelu -------------------------------------------------------------

def test_embedding_matches_torch():
    ref = torch.nn.Embedding(50, 8)
    mine = Embedding(50, 8)
    mine.load_state_dict(ref.state_dict())
    ids = torch.randint(0, 50, (3, 7))
    assert max_diff(mine(ids), ref(ids)) == 0.0
    # positions: a 1-D index broadcasts over the batch when added to token embeddings
    assert mine(torch.arange(7)).shape == (7, 8)
    # gradients flow to exactly the rows used, like torch's
    mine(ids).sum().backward(); ref(ids).sum().backward()
    assert max_diff(mine.weight.grad, ref.weight.grad) == 0.0


def test_layernorm_matches_torch_with_scale_and_shift():
    ref = torch.nn.LayerNorm(32, eps=1e-5)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(32) * 0.5 + 1.0)
        ref.bias.copy_(torch.randn(32) * 0.5)
    mine = LayerNorm(32, eps=1e-5)
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(4, 9, 32) * 3 + 1
    assert max_diff(mine(x), ref(x)) <= TOL


def test_layernorm_eps_matters():
    x = torch.randn(2, 3, 16) * 1e-3  # tiny variance: eps dominates
    ref = torch.nn.LayerNorm(16, eps=1e-2)
    assert max_diff(LayerNorm(16, eps=1e-2)(x), ref(x)) <= TOL
    assert max_diff(LayerNorm(16, eps=1e-5)(x), ref(x)) > 0.1


def test_gelu_new_matches_torch_tanh_gelu():
    x = torch.linspace(-8, 8, 2001)
    assert max_diff(gelu_new(x), F.gelu(x, approximate="tanh")) <= TOL
    assert max_diff(gelu_new(x), F.gelu(x)) > 1e-4  # and it is not the exact erf GELU


# -- Attention: explicit softmax vs fused SDPA, and the kv cache ----------------------------

ATTENTION_CASES = [("global", "gpt-neo"), ("local", "gpt-neo"), ("global", "scaled"), ("local", "scaled")]


@pytest.mark.parametrize("kind,scoring", ATTENTION_CASES)
def test_attention_explicit_equals_sdpa(kind, scoring):
    c = small_config(attention=scoring, window_size=5)
    fused = randomize(Attention(c, kind))
    explicit = Attention(c.replace(explicit=True), kind).eval()
    explicit.load_state_dict(fused.state_dict())
    x = torch.randn(2, 13, 32)  # T = 13 > window 5: the window bites
    assert max_diff(explicit(x), fused(x)) <= TOL


@pytest.mark.parametrize("explicit", [False, True])
@pytest.mark.parametrize("kind,scoring", ATTENTION_CASES)
def test_attention_kv_cache_equals_full_forward(kind, scoring, explicit):
    """Prefill 4 tokens, then decode one at a time through the cache: same as one full pass."""
    c = small_config(attention=scoring, window_size=5, explicit=explicit)
    attn = randomize(Attention(c, kind))
    B, T, H, d = 2, 13, c.num_heads, c.hidden_size // c.num_heads
    x = torch.randn(B, T, c.hidden_size)
    full = attn(x)
    kv = (torch.zeros(B, H, 20, d), torch.zeros(B, H, 20, d))
    steps = [attn(x[:, :4], kv=kv, pos=0)]
    steps += [attn(x[:, t:t + 1], kv=kv, pos=t) for t in range(4, T)]
    assert max_diff(torch.cat(steps, dim=1), full) <= TOL
    # a multi-token chunk after the prefill (a mask with a cache offset) agrees too
    kv2 = (torch.zeros(B, H, 20, d), torch.zeros(B, H, 20, d))
    chunks = torch.cat([attn(x[:, :3], kv=kv2, pos=0), attn(x[:, 3:11], kv=kv2, pos=3),
                        attn(x[:, 11:], kv=kv2, pos=11)], dim=1)
    assert max_diff(chunks, full) <= TOL


@pytest.mark.parametrize("explicit", [False, True])
@pytest.mark.parametrize("kind", ["global", "local"])
def test_attention_without_cache_ignores_the_start_position(kind, explicit):
    """With no cache the keys are x's own: starting at position 7 changes nothing (positions
    enter only through the position embedding), and stays causal."""
    attn = randomize(Attention(small_config(window_size=5, explicit=explicit), kind))
    x = torch.randn(2, 9, 32)
    assert max_diff(attn(x, pos=7), attn(x)) <= TOL
    assert max_diff(attn(x[:, :1], pos=20), attn(x[:, :1])) <= TOL


def test_local_window_limits_what_a_query_sees():
    c = small_config(window_size=3)
    attn = randomize(Attention(c, "local"))
    x = torch.randn(1, 10, 32)
    y = attn(x)
    x2 = x.clone()
    x2[:, 0] += 5.0  # token 0 is outside the window of queries 3.. (they see 3 tokens: i-2..i)
    y2 = attn(x2)
    assert max_diff(y[:, 3:], y2[:, 3:]) == 0.0
    assert max_diff(y[:, :3], y2[:, :3]) > 1e-3
    # a global layer sees token 0 from everywhere
    g = Attention(c, "global").eval()
    g.load_state_dict(attn.state_dict())
    assert max_diff(g(x)[:, 3:], g(x2)[:, 3:]) > 1e-3


def test_attention_is_causal():
    attn = randomize(Attention(small_config(), "global"))
    x = torch.randn(1, 8, 32)
    x2 = x.clone()
    x2[:, 5:] = torch.randn(1, 3, 32)
    assert max_diff(attn(x)[:, :5], attn(x2)[:, :5]) == 0.0


# -- against transformers' GPT-Neo ------------------------------------------------------------

@pytest.mark.parametrize("explicit", [False, True])
@pytest.mark.parametrize("kind", ["global", "local"])
def test_attention_matches_gpt_neo(kind, explicit):
    c = small_config(attention_layers=[kind, kind], window_size=5, explicit=explicit)
    # transformers v5: GPTNeoSelfAttention applies its own causal (and local-window) mask from
    # its `bias` buffer; `attention_mask` is only an additive padding mask, None here.
    ref = randomize(GPTNeoSelfAttention(hf_config(c), kind, layer_id=0))
    mine = Attention(c, kind).eval()
    mine.load_state_dict(attention_sd(ref))
    x = torch.randn(2, 13, 32)
    out, _ = ref(x, attention_mask=None)
    assert max_diff(mine(x), out) <= TOL


def test_attention_scaled_is_not_gpt_neo():
    """GPT-Neo does not scale scores by 1/√d; the 'scaled' variant must differ from it."""
    c = small_config(attention="scaled")
    ref = randomize(GPTNeoSelfAttention(hf_config(c), "global", layer_id=0))
    mine = Attention(c, "global").eval()
    mine.load_state_dict(attention_sd(ref))
    x = torch.randn(2, 13, 32)
    assert max_diff(mine(x), ref(x)[0]) > 1e-3


@pytest.mark.parametrize("activation", ["gelu_new", "gelu", "relu"])
@pytest.mark.parametrize("explicit", [False, True])
def test_mlp_matches_gpt_neo(activation, explicit):
    c = small_config(activation=activation, explicit=explicit, intermediate_size=48)
    ref = randomize(GPTNeoMLP(48, hf_config(c)))
    mine = MLP(c).eval()
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(2, 7, 32)
    assert max_diff(mine(x), ref(x)) <= TOL


@pytest.mark.parametrize("explicit", [False, True])
@pytest.mark.parametrize("layer", [0, 1])
def test_block_matches_gpt_neo(layer, explicit):
    c = small_config(attention_layers=["global", "local"], window_size=5, explicit=explicit)
    ref = randomize(GPTNeoBlock(hf_config(c), layer_id=layer), std=0.2)
    mine = Block(c, c.attention_layers[layer]).eval()
    mine.load_state_dict(attention_sd(ref))
    x = torch.randn(2, 13, 32)
    out, _ = ref(x)
    assert max_diff(mine(x), out) <= TOL_BLOCK


# -- Config errors ----------------------------------------------------------------------------

def test_heads_must_divide_hidden_size():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        Config(hidden_size=64, embedding_size=64, num_heads=12)


def test_attention_rejects_bad_heads_and_layer_type():
    c = small_config()
    c.num_heads = 5  # bypasses Config's own check: the module checks again
    with pytest.raises(ValueError, match="divisible"):
        Attention(c)
    with pytest.raises(ValueError, match="'global' or 'local'"):
        Attention(small_config(), "sparse")


def test_config_rejects_wrong_layer_list():
    with pytest.raises(ValueError, match="attention_layers has 1 entries"):
        Config(num_layers=2, attention_layers=["local"])
    with pytest.raises(ValueError, match="only 'global' or 'local'"):
        Config(num_layers=1, attention_layers=["dense"])
    with pytest.raises(ValueError, match="attention must be one of"):
        Config(attention="flash")
