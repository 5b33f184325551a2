"""The rows of the components newer models use — rotary positions (on all of a head or a share
of it), RMSNorm, the gated (SwiGLU) and ReLU² MLPs, QK-norm, the parallel residual, bias-free
linears, a logit soft-cap — against their twins in transformers (Llama, Qwen3, GPT-NeoX) and
torch, the Llama- and GPT-NeoX-shaped models as a whole, and their key/value caches.
Each takes the ``parts`` under test (the RMSNorm row checks a learner's ``rmsnorm``; the others
tinyllm's own, fused and written out) and returns the largest difference."""
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from ..formats import gpt_neo, gpt_neox, llama
from ..model import GPT, Config
from ..model.nn import (MLP, Attention, Block, GatedMLP, Rotary, apply_rotary, formulas,
                        linear_cross_entropy)
from .common import TRANSFORMERS_MISSING, T, Skip, layer_cache, max_diff, over_variants, randomize, small_config
from .diagnose import parity

BOTH = (False, True)     # fused kernels, and the formulas written out (kernels.formulas)


THETA = 500.0     # a rotary base other than the default, so that it must be read


def _transformers() -> SimpleNamespace:
    """The reference classes (the rows that need them skip when transformers is absent)."""
    try:
        from transformers import GPTNeoConfig, LlamaConfig, Qwen3Config
        from transformers.models.gpt_neo.modeling_gpt_neo import GPTNeoForCausalLM, GPTNeoMLP
        from transformers.models.llama import modeling_llama
        from transformers.models.qwen3.modeling_qwen3 import Qwen3Attention
        from transformers import GPTNeoXConfig
        from transformers.models.gpt_neox import modeling_gpt_neox
    except ImportError:
        raise Skip(TRANSFORMERS_MISSING) from None
    return SimpleNamespace(GPTNeoConfig=GPTNeoConfig, LlamaConfig=LlamaConfig,
                           Qwen3Config=Qwen3Config, GPTNeoForCausalLM=GPTNeoForCausalLM,
                           GPTNeoMLP=GPTNeoMLP, llama=modeling_llama,
                           Qwen3Attention=Qwen3Attention, GPTNeoXConfig=GPTNeoXConfig,
                           neox=modeling_gpt_neox)


def llama_config(**kw) -> Config:
    """``config`` with Llama's components (what ``llama_model`` sets)."""
    return small_config(**{**dict(position="rotary", norm="rmsnorm", mlp="gated", activation="silu",
                            bias=False, attention="scaled", attention_layers=["global"] * 2,
                            window_size=None, layer_norm_epsilon=1e-6, rope_theta=THETA), **kw})


def hf_llama_config(c: Config, **kw):
    """transformers' LlamaConfig for tinyllm Config ``c`` (eager attention)."""
    d = llama.config_to_llama(c)
    d.update(bos_token_id=None, eos_token_id=None, attn_implementation="eager", **kw)
    return _transformers().LlamaConfig(**d)


def neox_config(**kw) -> Config:
    """``config`` with GPT-NeoX's own defaults: rotary on a quarter of each head, attention and
    MLP in parallel, biases on every linear, LayerNorm, GELU."""
    return small_config(**{**dict(position="rotary", rotary_fraction=0.25, parallel_residual=True,
                                  qkv_bias=True, attention="scaled", activation="gelu",
                                  attention_layers=["global"] * 2, window_size=None,
                                  hidden_size=64, embedding_size=64, num_heads=4,
                                  rope_theta=THETA), **kw})


def hf_neox_config(c: Config, **kw):
    """transformers' GPTNeoXConfig for tinyllm Config ``c`` (eager attention)."""
    d = gpt_neox.config_to_neox(c)
    d.update(bos_token_id=None, eos_token_id=None, attn_implementation="eager", **kw)
    return _transformers().GPTNeoXConfig(**d)


def causal_mask(T_: int) -> torch.Tensor:
    """The additive (1, 1, T, T) causal mask transformers' eager attention takes."""
    return torch.full((T_, T_), torch.finfo(torch.float32).min).triu(1)[None, None]


def in_tinyllm_names(ref_state: dict, theirs: str = "", mine: str = "") -> dict:
    """The weights of a Llama layer's part (``theirs`` = 'self_attn.', 'mlp.' or '' for the whole
    layer) in the names of tinyllm's part (``mine`` = 'attn.', 'mlp.' or ''), through
    tinyllm.formats.llama's mapping, as layer 0 of a model."""
    sd = llama.state_dict_from_llama({f"model.layers.0.{theirs}{k}": v
                                      for k, v in ref_state.items()})
    prefix = "blocks.0." + mine
    return {k[len(prefix):]: v for k, v in sd.items()}


def _both(run) -> float:
    """The larger difference of ``run()`` fused and written out."""
    diffs = []
    for written_out in BOTH:
        with formulas(written_out):
            diffs.append(run())
    return max(diffs)


# -- the rows ---------------------------------------------------------------------------------

def check_rmsnorm(parts):
    """RMSNorm (tinyllm's written out and fused, or a learner's) vs torch.nn.RMSNorm."""
    impl = parts["rmsnorm"]
    ref = randomize(torch.nn.RMSNorm(32, eps=1e-6))
    x = torch.randn(3, T, 32) * 2 + 0.5
    return over_variants(impl, lambda v: parity(impl.make(32, 1e-6), ref, [(x,)], kind="rmsnorm"))


def check_rotary(parts):
    """Rotary (cos, sin) and its application to q and k, at positions 0.. and 5.., vs
    transformers' LlamaRotaryEmbedding + apply_rotary_pos_emb."""
    tf = _transformers()
    ref = tf.llama.LlamaRotaryEmbedding(hf_llama_config(llama_config()))
    q, k = torch.randn(2, 4, T, 8), torch.randn(2, 4, T, 8)
    worst = 0.0
    for pos in (0, 5):
        cos, sin = ref(q, torch.arange(pos, pos + T)[None])
        ref_q, ref_k = tf.llama.apply_rotary_pos_emb(q, k, cos, sin)
        my_cos, my_sin = Rotary(8, THETA).tables(pos, T)
        worst = max(worst, max_diff(apply_rotary(q, my_cos, my_sin), ref_q),
                    max_diff(apply_rotary(k, my_cos, my_sin), ref_k))
    return worst


def check_swiglu(parts):
    """The gated MLP with SiLU (SwiGLU), written out and fused, vs transformers' LlamaMLP."""
    tf = _transformers()
    x = torch.randn(3, T, 32)
    c = llama_config(intermediate_size=48)
    ref = randomize(tf.llama.LlamaMLP(hf_llama_config(c)))
    mine = GatedMLP(c).eval()
    mine.load_state_dict(in_tinyllm_names(ref.state_dict(), "mlp.", "mlp."))
    return _both(lambda: max_diff(mine(x), ref(x)))


def check_relu2_mlp(parts):
    """The plain MLP with ReLU², vs GPTNeoMLP with transformers' 'relu2' activation."""
    tf = _transformers()
    c = small_config(activation="relu2", intermediate_size=48)
    neo = tf.GPTNeoConfig(**{**gpt_neo.config_to_hf(c), "bos_token_id": None, "eos_token_id": None})
    ref = randomize(tf.GPTNeoMLP(48, neo))
    mine = MLP(c).eval()
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(3, T, 32)
    return max_diff(mine(x), ref(x))


def check_attention_rotary(parts):
    """Rotary, 1/√d, bias-free attention (written out and fused) vs LlamaAttention (eager)."""
    tf = _transformers()
    x = torch.randn(2, T, 32)
    c = llama_config()
    hc = hf_llama_config(c)
    ref = randomize(tf.llama.LlamaAttention(hc, layer_idx=0))
    mine = Attention(c, "global").eval()
    mine.load_state_dict(in_tinyllm_names(ref.state_dict(), "self_attn.", "attn."))
    rope = tf.llama.LlamaRotaryEmbedding(hc)(x, torch.arange(T)[None])
    expected = ref(x, position_embeddings=rope, attention_mask=causal_mask(T))[0]
    return _both(lambda: max_diff(mine(x), expected))


def check_qk_norm(parts):
    """QK-norm (per-head RMSNorm of q and k, before rotary) vs transformers' Qwen3Attention."""
    tf = _transformers()
    x = torch.randn(2, T, 32)
    c = llama_config(qk_norm=True)
    qc = tf.Qwen3Config(hidden_size=32, num_attention_heads=4, num_key_value_heads=4, head_dim=8,
                        rms_norm_eps=1e-6, rope_theta=THETA, attention_bias=False,
                        num_hidden_layers=1, layer_types=["full_attention"],
                        attn_implementation="eager")
    ref = randomize(tf.Qwen3Attention(qc, layer_idx=0))
    mine = Attention(c, "global").eval()
    state = dict(ref.state_dict())
    norms = {k: state.pop(k) for k in ("q_norm.weight", "k_norm.weight")}
    mine.load_state_dict({**in_tinyllm_names(state, "self_attn.", "attn."), **norms})
    cos, sin = Rotary(8, THETA).tables(0, T)   # (T, d): the rotary row holds them to Llama's
    expected = ref(x, position_embeddings=(cos[None], sin[None]),
                   attention_mask=causal_mask(T))[0]
    return _both(lambda: max_diff(mine(x), expected))


def check_attention_rotary_cache(parts):
    """Rotary (and QK-norm) attention through the key/value cache — a prefill, then one token at
    a time — vs one full pass; global and local layers."""
    x = torch.randn(2, T, 32)
    diffs = []
    for kind in ("global", "local"):
        for qk_norm in (False, True):
            c = llama_config(qk_norm=qk_norm, window_size=5, attention_layers=[kind] * 2)
            attn = randomize(Attention(c, kind))
            cache = layer_cache(c, kind)
            steps = [attn(x[:, :3], cache)] + [attn(x[:, t:t + 1], cache) for t in range(3, T)]
            diffs.append(max_diff(torch.cat(steps, dim=1), attn(x)))
    return max(diffs)


def check_llama_block(parts):
    """A block with Llama's components vs transformers' LlamaDecoderLayer."""
    tf = _transformers()
    x = torch.randn(2, T, 32)
    c = llama_config()
    hc = hf_llama_config(c)
    ref = randomize(tf.llama.LlamaDecoderLayer(hc, layer_idx=0))
    mine = Block(c, "global").eval()
    mine.load_state_dict(in_tinyllm_names(ref.state_dict()))
    rope = tf.llama.LlamaRotaryEmbedding(hc)(x, torch.arange(T)[None])
    out = ref(x, attention_mask=causal_mask(T), position_embeddings=rope)
    out = out[0] if isinstance(out, tuple) else out
    return _both(lambda: max_diff(mine(x), out))


def check_llama_model(parts):
    """GPT with Llama's components, loaded through tinyllm.llama, vs LlamaForCausalLM (tied
    and untied head)."""
    tf = _transformers()
    worst = 0.0
    for tie in (False, True):
        ref = randomize(tf.llama.LlamaForCausalLM(
            hf_llama_config(llama_config(), tie_word_embeddings=tie)), std=0.1)
        mine = GPT(None, Config(**llama.config_from_llama(ref.config.to_dict()))).eval()
        mine.load_state_dict(llama.state_dict_from_llama(ref.state_dict()))
        ids = torch.randint(0, 97, (2, T))
        worst = max(worst, max_diff(mine(ids), ref(ids).logits))
    return worst


def check_llama_model_cache(parts):
    """GPT.forward with a key/value cache (the rotary positions continue from the cache's
    length), Llama's components plus QK-norm and a soft-cap, vs one full pass."""
    mine = randomize(GPT(None, llama_config(qk_norm=True, logit_softcap=5.0)), std=0.1)
    ids = torch.randint(0, 97, (2, T))
    cache = mine.new_cache(2)
    steps = [mine(ids[:, :4], cache=cache)] + [mine(ids[:, t:t + 1], cache=cache)
                                               for t in range(4, T)]
    return max_diff(torch.cat(steps, dim=1), mine(ids))


def check_bias_free_gpt_neo(parts):
    """A GPT-Neo-shaped model without biases vs GPTNeoForCausalLM holding the same weights and
    zero biases (what tinyllm.hf exports it as)."""
    tf = _transformers()
    c = small_config(bias=False)
    mine = randomize(GPT(None, c), std=0.1)
    neo = tf.GPTNeoConfig(**{**gpt_neo.config_to_hf(c, tie_word_embeddings=False),
                             "bos_token_id": None,
                          "eos_token_id": None, "attn_implementation": "eager"})
    ref = tf.GPTNeoForCausalLM(neo).eval()
    ref.load_state_dict(gpt_neo.state_dict_to_hf(mine.state_dict(), c))
    ids = torch.randint(0, 97, (2, T))
    return max_diff(mine(ids), ref(ids).logits)


def check_softcap_loss(parts):
    """The fused, chunked head + loss with a logit soft-cap: its loss and its gradients for h
    and W, vs F.cross_entropy(c · tanh(h Wᵀ / c), y) under autograd."""
    cap = 3.0
    with torch.enable_grad():
        h = torch.randn(50, 16, requires_grad=True)
        W = (torch.randn(97, 16) * 2).requires_grad_()   # logits well beyond the cap
        y = torch.randint(0, 97, (50,))
        y[::7] = -100
        mine = linear_cross_entropy(h, W, y, chunk_size=16, logit_softcap=cap)
        ref = F.cross_entropy(cap * torch.tanh(h @ W.T / cap), y, ignore_index=-100)
        pairs = [(mine, ref), *zip(torch.autograd.grad(mine, (h, W)),
                                   torch.autograd.grad(ref, (h, W)))]
    return max(max_diff(a, b) for a, b in pairs)


def check_partial_rotary(parts):
    """Rotary on the first quarter of each head (the rest passed through), at positions 0.. and
    5.., vs transformers' GPTNeoXRotaryEmbedding + apply_rotary_pos_emb."""
    tf = _transformers()
    c = neox_config()
    ref = tf.neox.GPTNeoXRotaryEmbedding(hf_neox_config(c))
    q, k = torch.randn(2, 4, T, 16), torch.randn(2, 4, T, 16)
    mine = Rotary(16, THETA, dims=c.rotary_dim)
    worst = 0.0
    for pos in (0, 5):
        cos, sin = ref(q, torch.arange(pos, pos + T)[None])
        ref_q, ref_k = tf.neox.apply_rotary_pos_emb(q, k, cos, sin)
        worst = max(worst, max_diff(mine(q, pos), ref_q), max_diff(mine(k, pos), ref_k))
    return worst


def _neox_layer(c: Config):
    """transformers' GPTNeoXLayer with random weights, tinyllm's Block holding the same, and the
    reference's output for an input x."""
    tf = _transformers()
    hc = hf_neox_config(c)
    ref = randomize(tf.neox.GPTNeoXLayer(hc, layer_idx=0))
    mine = Block(c, "global").eval()
    state = gpt_neox.state_dict_from_neox({f"gpt_neox.layers.0.{k}": v
                                           for k, v in ref.state_dict().items()}, c.num_heads)
    mine.load_state_dict({k[len("blocks.0."):]: v for k, v in state.items()})
    x = torch.randn(2, T, c.hidden_size)
    rope = tf.neox.GPTNeoXRotaryEmbedding(hc)(x, torch.arange(T)[None])
    out = ref(x, attention_mask=causal_mask(T), position_embeddings=rope)
    return mine, x, out[0] if isinstance(out, tuple) else out


def check_parallel_block(parts):
    """A block whose attention and MLP read the same input (parallel residual, GPT-NeoX's
    default; with partial rotary and a query/key/value bias), written out and fused, vs
    transformers' GPTNeoXLayer; and the sequential one (use_parallel_residual False)."""
    worst = 0.0
    for parallel in (True, False):
        mine, x, expected = _neox_layer(neox_config(parallel_residual=parallel))
        worst = max(worst, _both(lambda: max_diff(mine(x), expected)))
    return worst


def check_neox_model(parts):
    """GPT loaded through tinyllm.formats.gpt_neox vs GPTNeoXForCausalLM: GPT-NeoX's defaults
    (partial rotary, parallel residual, biases) and tinyllm train's default shape (all of each
    head rotary, sequential, no query/key/value bias), untied and tied; then through the
    key/value cache, a prefill and one token at a time."""
    tf = _transformers()
    worst = 0.0
    ids = torch.randint(0, 97, (2, T))
    shapes = [dict(), dict(rotary_fraction=1.0, parallel_residual=False, qkv_bias=False,
                           activation="gelu_new")]
    for shape in shapes:
        for tie in (False, True):
            ref = randomize(tf.neox.GPTNeoXForCausalLM(
                hf_neox_config(neox_config(**shape), tie_word_embeddings=tie)), std=0.1).eval()
            fields = gpt_neox.config_from_neox(ref.config.to_dict())
            mine = GPT(None, Config(**fields)).eval()
            mine.load_state_dict(gpt_neox.state_dict_from_neox(ref.state_dict(), mine.config.num_heads))
            worst = max(worst, max_diff(mine(ids), ref(ids).logits))
    cache = mine.new_cache(2)
    steps = [mine(ids[:, :4], cache=cache)] + [mine(ids[:, t:t + 1], cache=cache)
                                               for t in range(4, T)]
    return max(worst, max_diff(torch.cat(steps, dim=1), mine(ids)))
