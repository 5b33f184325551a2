"""The from-scratch building blocks (tinyllm.model.nn) against their reference twins: each row of
the parity table of ``tinyllm.check`` (the rows ``tinyllm check`` prints, read here as tests), and
what a row cannot express — gradients, causality, the window, the cache's chunking, errors."""
import pytest
import torch
import torch.nn.functional as F

from tinyllm import check
from tinyllm.check import gpt_neo_state, randomize  # shared with `tinyllm check`
from tinyllm.model.config import Config
from tinyllm.model.nn import Attention, Embedding, LayerCache, LayerNorm, formulas, gelu_new

from tests.conftest import TOL, max_diff, small_config

transformers = pytest.importorskip("transformers")
from transformers import GPTNeoConfig  # noqa: E402
from transformers.models.gpt_neo.modeling_gpt_neo import GPTNeoSelfAttention  # noqa: E402


def hf_config(c: Config) -> GPTNeoConfig:
    """transformers' GPT-Neo config for tinyllm Config ``c`` (eager attention, as in v5)."""
    return GPTNeoConfig(vocab_size=c.vocab_size, hidden_size=c.hidden_size,
                        num_layers=c.num_layers, num_heads=c.num_heads,
                        attention_types=[[list(c.attention_layers), 1]], window_size=c.window_size,
                        max_position_embeddings=c.max_position_embeddings,
                        intermediate_size=c.intermediate_size, activation_function=c.activation,
                        layer_norm_epsilon=c.layer_norm_epsilon, bos_token_id=None,
                        eos_token_id=None, attn_implementation="eager")


def new_cache(attn, batch=2, size=20):
    """One layer's key/value cache: keys [:, 0], values [:, 1] of (B, 2, H, size, d)."""
    return LayerCache(torch.zeros(batch, 2, attn.num_heads, size, attn.head_dim), attn.window)


# -- the parity table: every row passes -------------------------------------------------------

@pytest.mark.parametrize("row", check.CHECKS, ids=[row.component for row in check.CHECKS])
def test_parity_row(row, parity_table):
    """Each row with tinyllm's own classes (and their variants: formulas and fused kernels)."""
    result = next(r for r in parity_table if r.component == row.component)
    component, reference, tolerance = row.component, row.reference, row.tolerance
    diff = result.max_abs_diff
    assert result.status != "fail", f"{component} vs {reference}: {result.note}"
    if result.status == "pass":
        assert diff <= tolerance, f"{component} vs {reference}: {diff:.3g} > {tolerance:g}"


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


@pytest.mark.parametrize("written_out", [False, True])
@pytest.mark.parametrize("kind,scoring", ATTENTION_CASES)
def test_attention_kv_cache_equals_full_forward(kind, scoring, written_out):
    """Prefill 4 tokens, then decode one at a time through the cache: same as one full pass."""
    c = small_config(attention=scoring, window_size=5)
    attn = randomize(Attention(c, kind))
    B, T = 2, 13
    x = torch.randn(B, T, c.hidden_size)
    with formulas(written_out):
        full = attn(x)
        kv = new_cache(attn)
        steps = [attn(x[:, :4], kv)]
        steps += [attn(x[:, t:t + 1], kv) for t in range(4, T)]
        assert max_diff(torch.cat(steps, dim=1), full) <= TOL
        # a multi-token chunk after the prefill (a mask with a cache offset) agrees too
        kv2 = new_cache(attn)
        chunks = torch.cat([attn(x[:, :3], kv2), attn(x[:, 3:11], kv2), attn(x[:, 11:], kv2)],
                           dim=1)
        assert max_diff(chunks, full) <= TOL
        assert kv2.length == T


@pytest.mark.parametrize("written_out", [False, True])
@pytest.mark.parametrize("kind", ["global", "local"])
def test_attention_with_a_fresh_cache_is_attention_without_one(kind, written_out):
    """An empty cache starts at position 0: the same as no cache (the keys are x's own), for a
    sequence and for a single token, and the cache then holds x's keys and values."""
    attn = randomize(Attention(small_config(window_size=5), kind))
    x = torch.randn(2, 9, 32)
    with formulas(written_out):
        assert max_diff(attn(x, new_cache(attn)), attn(x)) <= TOL
        assert max_diff(attn(x[:, :1], new_cache(attn)), attn(x[:, :1])) <= TOL


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


def test_attention_scaled_is_not_gpt_neo():
    """GPT-Neo does not scale scores by 1/√d; the 'scaled' variant must differ from it."""
    c = small_config(attention="scaled")
    ref = randomize(GPTNeoSelfAttention(hf_config(c), "global", layer_id=0))
    mine = Attention(c, "global").eval()
    mine.load_state_dict(gpt_neo_state(ref))
    x = torch.randn(2, 13, 32)
    assert max_diff(mine(x), ref(x)[0]) > 1e-3


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
