"""Hugging Face Llama's format (``LlamaForCausalLM``): its config.json and parameter names,
mapped to tinyllm's.

A tinyllm model is a Llama when it has rotary positions, RMSNorm, a gated MLP and no biases, and
every layer attends globally (``incompatibilities`` lists what stands in the way). Its
parameters then map one to one, except that tinyllm keeps W_q, W_k, W_v stacked in one matrix
and W_gate, W_up in another (one product each instead of three and two):

    model.embed_tokens.weight                        ->  wte.weight
    model.layers.{i}.input_layernorm.weight          ->  blocks.{i}.ln_1.weight
    model.layers.{i}.self_attn.{q,k,v}_proj.weight   ->  blocks.{i}.attn.qkv.weight   ([W_q; W_k; W_v])
    model.layers.{i}.self_attn.o_proj.weight         ->  blocks.{i}.attn.out_proj.weight
    model.layers.{i}.post_attention_layernorm.weight ->  blocks.{i}.ln_2.weight
    model.layers.{i}.mlp.{gate,up}_proj.weight       ->  blocks.{i}.mlp.c_fc.weight   ([W_gate; W_up])
    model.layers.{i}.mlp.down_proj.weight            ->  blocks.{i}.mlp.c_proj.weight
    model.norm.weight                                ->  ln_f.weight
    lm_head.weight                                   ->  lm_head.weight   (absent when tied)

Rotary uses Hugging Face's rotate-half layout on both sides (``tinyllm.model.nn.rotary``), so no row
of W_q or W_k is permuted. Llama scores with 1/√d; a tinyllm model with unscaled ('gpt-neo')
scores is exported with √d folded into W_q. Grouped-query attention (fewer key/value heads than
query heads) and rope scaling are not supported: importing such a model is one clear error.

Pure functions over dicts and configs (read by their fields: this layer builds no model);
reading and writing the files is ``tinyllm.formats.huggingface``'s job.
"""
import math

import torch

from ..errors import TinyLLMError
from .hf_common import (ACT_FROM_HF, ACT_TO_HF, differences, fuse_qkv, outside_transformers,
                        rename, sizes, split_qkv)

_NAMES = [  # (Llama's name, tinyllm's name) with {i} the layer
    ("model.embed_tokens.weight", "wte.weight"),
    ("model.layers.{i}.input_layernorm.weight", "blocks.{i}.ln_1.weight"),
    ("model.layers.{i}.self_attn.q_proj.weight", "blocks.{i}.attn.q_proj.weight"),
    ("model.layers.{i}.self_attn.k_proj.weight", "blocks.{i}.attn.k_proj.weight"),
    ("model.layers.{i}.self_attn.v_proj.weight", "blocks.{i}.attn.v_proj.weight"),
    ("model.layers.{i}.self_attn.o_proj.weight", "blocks.{i}.attn.out_proj.weight"),
    ("model.layers.{i}.post_attention_layernorm.weight", "blocks.{i}.ln_2.weight"),
    ("model.layers.{i}.mlp.gate_proj.weight", "blocks.{i}.mlp.gate_proj.weight"),
    ("model.layers.{i}.mlp.up_proj.weight", "blocks.{i}.mlp.up_proj.weight"),
    ("model.layers.{i}.mlp.down_proj.weight", "blocks.{i}.mlp.c_proj.weight"),
    ("model.norm.weight", "ln_f.weight"),
    ("lm_head.weight", "lm_head.weight"),
]


# -- config ---------------------------------------------------------------------------------

def incompatibilities(config) -> list[str]:
    """What keeps ``config`` from being a Llama, in words (empty: it is one)."""
    wrong = differences(config, "Llama", position="rotary", norm="rmsnorm", mlp="gated")
    if config.bias:
        wrong.append("biases (Llama has none: bias=False)")
    if config.qkv_bias:
        wrong.append("a query/key/value bias (Llama has none: qkv_bias=False)")
    if config.parallel_residual:
        wrong.append("parallel attention and MLP (Llama's run one after the other)")
    if config.position == "rotary" and config.rotary_fraction != 1:
        wrong.append("rotary on part of each head (Llama turns all of it)")
    return wrong + outside_transformers(config)


def config_from_llama(hf: dict) -> dict:
    """The fields of a tinyllm ``Config`` for the dict of a Llama ``config.json`` (the model
    checks that they make a model when it is built from them)."""
    hidden, heads, layers, vocab, inner = sizes(hf, "Llama", "llama")
    kv_heads = hf.get("num_key_value_heads") or heads
    if kv_heads != heads:
        raise TinyLLMError(f"this Llama has {kv_heads} key/value heads for {heads} query heads "
                           "(grouped-query attention), which tinyllm does not support")
    if hf.get("head_dim") not in (None, hidden // heads):
        raise TinyLLMError(f"this Llama's head_dim ({hf['head_dim']}) is not hidden_size / "
                           f"num_attention_heads ({hidden // heads}); tinyllm needs it to be")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise TinyLLMError("this Llama has biases (attention_bias / mlp_bias), which tinyllm's "
                           "Llama layout does not")
    rope = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    rope_type = (rope.get("rope_type") or scaling.get("rope_type") or scaling.get("type")
                 or "default")
    if rope_type != "default":
        raise TinyLLMError(f"this Llama scales its rotary positions ({rope_type!r}), which "
                           "tinyllm does not support")
    act = hf.get("hidden_act", "silu")
    if act not in ACT_FROM_HF:
        raise TinyLLMError(f"hidden_act {act!r} is not supported by tinyllm: use one of "
                           f"{', '.join(sorted(ACT_FROM_HF))}")
    max_pos = hf.get("max_position_embeddings", 2048)
    return dict(
        hidden_size=hidden, embedding_size=hidden, num_layers=layers, num_heads=heads,
        context_size=min(hf.get("tinyllm_context_size") or max_pos, max_pos),
        max_position_embeddings=max_pos, attention_layers=["global"] * layers,
        window_size=None, layer_norm_epsilon=hf.get("rms_norm_eps", 1e-6),
        attention_dropout=float(hf.get("attention_dropout", 0.0)),
        intermediate_size=inner, activation=ACT_FROM_HF[act], attention="scaled",
        vocab_size=vocab, tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        position="rotary", rope_theta=float(rope.get("rope_theta")
                                            or hf.get("rope_theta") or 10000.0),
        norm="rmsnorm", mlp="gated", bias=False)


def config_to_llama(config, tie_word_embeddings: bool = False,
                    eos_token_id: int | None = None) -> dict:
    """The dict of a Llama ``config.json`` for a tinyllm ``Config`` (which must be a Llama:
    ``incompatibilities``). ``tinyllm_context_size`` keeps the trained context (transformers
    ignores it); the rotary base is written both ways transformers has read it (v4's
    ``rope_theta``, v5's ``rope_parameters``)."""
    wrong = incompatibilities(config)
    if wrong:
        raise TinyLLMError(f"this model is not a Llama: it has {'; '.join(wrong)}")
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.mlp_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_heads,
        "head_dim": config.head_dim,
        "hidden_act": ACT_TO_HF[config.activation],
        "max_position_embeddings": config.max_position_embeddings,
        "rms_norm_eps": config.layer_norm_epsilon,
        "rope_theta": config.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": config.attention_dropout,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": eos_token_id,
        "eos_token_id": eos_token_id,
        "tie_word_embeddings": tie_word_embeddings,
        "torch_dtype": "float32",
        "tinyllm_context_size": config.context_size,
    }


# -- state dict -----------------------------------------------------------------------------

def fuse_gate_up(sd: dict) -> dict:
    """Stack each MLP's ``gate_proj`` and ``up_proj`` weights into one ``c_fc`` weight
    [W_gate; W_up] (2I, C)."""
    out = dict(sd)
    for name in [k for k in sd if k.endswith(".gate_proj.weight")]:
        prefix = name[:-len("gate_proj.weight")]
        out[prefix + "c_fc.weight"] = torch.cat([out.pop(prefix + "gate_proj.weight"),
                                                 out.pop(prefix + "up_proj.weight")])
    return out


def split_gate_up(sd: dict) -> dict:
    """The inverse of ``fuse_gate_up``."""
    out = dict(sd)
    for name in [k for k in sd if k.endswith(".mlp.c_fc.weight")]:
        prefix = name[:-len("c_fc.weight")]
        gate, up = out.pop(name).chunk(2, dim=0)
        out[prefix + "gate_proj.weight"], out[prefix + "up_proj.weight"] = gate, up
    return out


def state_dict_from_llama(sd: dict) -> dict:
    """A Llama state dict in tinyllm's names. Without ``lm_head.weight`` (a tied head) the
    token embedding is used. Names that are not Llama's are one clear error."""
    out = {}
    for name, tensor in sd.items():
        if name.endswith("rotary_emb.inv_freq"):   # older checkpoints stored this buffer
            continue
        mine = rename(name, _NAMES)
        if mine is None:
            raise TinyLLMError(f"{name!r} is not a parameter of a Llama model tinyllm can load")
        out[mine] = tensor
    out = fuse_gate_up(fuse_qkv(out))
    if "lm_head.weight" not in out and "wte.weight" in out:
        out["lm_head.weight"] = out["wte.weight"]
    return out


def state_dict_to_llama(sd: dict, config=None) -> dict:
    """A tinyllm state dict in Llama's names. For a config with unscaled ('gpt-neo') scores,
    √d is folded into W_q: (√d W_q x)·k / √d = q·k."""
    back = [(dst, src) for src, dst in _NAMES]
    out = {}
    unscaled = config is not None and config.attention == "gpt-neo"
    for name, tensor in split_gate_up(split_qkv(sd)).items():
        if unscaled and name.endswith("attn.q_proj.weight"):
            tensor = tensor * math.sqrt(config.head_dim)
        theirs = rename(name, back)
        if theirs is None:
            raise TinyLLMError(f"{name!r} has no place in a Llama model")
        out[theirs] = tensor
    return out


__all__ = ["incompatibilities", "config_from_llama", "config_to_llama", "state_dict_from_llama",
           "state_dict_to_llama", "fuse_gate_up", "split_gate_up"]
