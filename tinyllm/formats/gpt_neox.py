"""Hugging Face GPT-NeoX's format (``GPTNeoXForCausalLM``: GPT-NeoX, Pythia): its config.json
and parameter names, mapped to tinyllm's.

A tinyllm model is a GPT-NeoX when it has rotary positions, LayerNorm and a plain MLP, and every
layer attends to the whole context (``incompatibilities``): ``tinyllm train``'s default model is
one. GPT-NeoX's own defaults differ from it in two places, which the config states: rotary turns
a quarter of each head (``rotary_pct`` / ``partial_rotary_factor``; tinyllm: ``rotary_fraction``)
and attention and MLP run side by side (``use_parallel_residual``; tinyllm:
``parallel_residual``). Parameters map one to one:

    gpt_neox.embed_in.weight                               ->  wte.weight
    gpt_neox.layers.{i}.input_layernorm.{weight,bias}      ->  blocks.{i}.ln_1.{weight,bias}
    gpt_neox.layers.{i}.attention.query_key_value.*        ->  blocks.{i}.attn.qkv.*
    gpt_neox.layers.{i}.attention.dense.*                  ->  blocks.{i}.attn.out_proj.*
    gpt_neox.layers.{i}.post_attention_layernorm.*         ->  blocks.{i}.ln_2.*
    gpt_neox.layers.{i}.mlp.dense_h_to_4h.*                ->  blocks.{i}.mlp.c_fc.*
    gpt_neox.layers.{i}.mlp.dense_4h_to_h.*                ->  blocks.{i}.mlp.c_proj.*
    gpt_neox.final_layer_norm.{weight,bias}                ->  ln_f.{weight,bias}
    embed_out.weight (transformers 5: lm_head.weight)      ->  lm_head.weight

except that GPT-NeoX lays ``query_key_value`` out per head — rows q₀ k₀ v₀ q₁ k₁ v₁ …, each d
long — where tinyllm stacks all queries, then all keys, then all values ([W_q; W_k; W_v]), and
that GPT-NeoX's attention biases (``attention_bias``) and MLP biases are always there: where
tinyllm has none they are written as zeros. GPT-NeoX scores with 1/√d; a model with unscaled
('gpt-neo') scores is exported with √d folded into W_q and b_q.

Pure functions over dicts and configs; reading and writing the files is
``tinyllm.formats.huggingface``'s job.
"""
import math
import re

import torch

from ..errors import TinyLLMError
from .hf_common import ACT_FROM_HF, ACT_TO_HF, differences, outside_transformers, rename, sizes

_NAMES = [  # (GPT-NeoX's name, tinyllm's name) with {i} the layer and {p} weight or bias
    ("gpt_neox.embed_in.weight", "wte.weight"),
    ("gpt_neox.layers.{i}.input_layernorm.{p}", "blocks.{i}.ln_1.{p}"),
    ("gpt_neox.layers.{i}.attention.query_key_value.{p}", "blocks.{i}.attn.qkv.{p}"),
    ("gpt_neox.layers.{i}.attention.dense.{p}", "blocks.{i}.attn.out_proj.{p}"),
    ("gpt_neox.layers.{i}.post_attention_layernorm.{p}", "blocks.{i}.ln_2.{p}"),
    ("gpt_neox.layers.{i}.mlp.dense_h_to_4h.{p}", "blocks.{i}.mlp.c_fc.{p}"),
    ("gpt_neox.layers.{i}.mlp.dense_4h_to_h.{p}", "blocks.{i}.mlp.c_proj.{p}"),
    ("gpt_neox.final_layer_norm.{p}", "ln_f.{p}"),
    ("embed_out.weight", "lm_head.weight"),
]
# names that are not parameters: masks and rotary tables older checkpoints stored
_BUFFERS = re.compile(r".*\.(attention\.(bias|masked_bias)|rotary_emb\.inv_freq)$")


# -- config ---------------------------------------------------------------------------------

def incompatibilities(config) -> list[str]:
    """What keeps ``config`` from being a GPT-NeoX, in words (empty: it is one)."""
    return (differences(config, "GPT-NeoX", position="rotary", norm="layernorm", mlp="plain")
            + outside_transformers(config))


def rope_parameters(hf: dict) -> dict:
    """The rotary base and share of a GPT-NeoX config as transformers 5 reads them (its
    ``rope_parameters``, else v4's ``rotary_emb_base`` and ``rotary_pct``, with their defaults);
    rotary scaling is one clear error."""
    rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    kind = rope.get("rope_type") or rope.get("type") or "default"
    if kind != "default":
        raise TinyLLMError(f"this GPT-NeoX scales its rotary positions ({kind!r}), which tinyllm "
                           "does not support")
    return {"theta": float(rope.get("rope_theta") or hf.get("rotary_emb_base") or 10000.0),
            "fraction": float(rope.get("partial_rotary_factor") or hf.get("rotary_pct", 0.25))}


def config_from_neox(hf: dict) -> dict:
    """The fields of a tinyllm ``Config`` for the dict of a GPT-NeoX ``config.json``."""
    hidden, heads, layers, vocab, inner = sizes(hf, "GPT-NeoX", "gpt_neox")
    act = hf.get("hidden_act", "gelu")
    if act not in ACT_FROM_HF:
        raise TinyLLMError(f"hidden_act {act!r} is not supported by tinyllm: use one of "
                           f"{', '.join(sorted(ACT_FROM_HF))}")
    rope = rope_parameters(hf)
    max_pos = hf.get("max_position_embeddings", 2048)
    dropout = float(hf.get("hidden_dropout", 0.0))
    return dict(
        hidden_size=hidden, embedding_size=hidden, num_layers=layers, num_heads=heads,
        context_size=min(hf.get("tinyllm_context_size") or max_pos, max_pos),
        max_position_embeddings=max_pos, attention_layers=["global"] * layers,
        window_size=None, layer_norm_epsilon=hf.get("layer_norm_eps", 1e-5),
        attention_dropout=float(hf.get("attention_dropout", 0.0)),
        residual_dropout=dropout, embedding_dropout=dropout,
        intermediate_size=inner, activation=ACT_FROM_HF[act], attention="scaled",
        vocab_size=vocab, tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        position="rotary", rope_theta=rope["theta"], rotary_fraction=rope["fraction"],
        parallel_residual=bool(hf.get("use_parallel_residual", True)),
        norm="layernorm", mlp="plain", bias=True, qkv_bias=bool(hf.get("attention_bias", True)))


def config_to_neox(config, tie_word_embeddings: bool = False,
                   eos_token_id: int | None = None) -> dict:
    """The dict of a GPT-NeoX ``config.json`` for a tinyllm ``Config`` (which must be one:
    ``incompatibilities``). The rotary share and base are written both ways transformers has
    read them (v4's ``rotary_pct``/``rotary_emb_base``, v5's ``rope_parameters``);
    ``tinyllm_context_size`` keeps the trained context (transformers ignores it)."""
    wrong = incompatibilities(config)
    if wrong:
        raise TinyLLMError(f"this model is not a GPT-NeoX: it has {'; '.join(wrong)}")
    return {
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.mlp_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "hidden_act": ACT_TO_HF[config.activation],
        "max_position_embeddings": config.max_position_embeddings,
        "layer_norm_eps": config.layer_norm_epsilon,
        "rotary_pct": config.rotary_fraction,
        "rotary_emb_base": config.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta,
                            "partial_rotary_factor": config.rotary_fraction},
        "use_parallel_residual": config.parallel_residual,
        "attention_bias": True,
        "attention_dropout": config.attention_dropout,
        "hidden_dropout": config.residual_dropout or 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": eos_token_id,
        "eos_token_id": eos_token_id,
        "tie_word_embeddings": tie_word_embeddings,
        "torch_dtype": "float32",
        "tinyllm_context_size": config.context_size,
    }


# -- state dict -----------------------------------------------------------------------------

def per_head_to_stacked(t: torch.Tensor, num_heads: int) -> torch.Tensor:
    """GPT-NeoX's query_key_value rows (q₀ k₀ v₀ q₁ …) as tinyllm's [all q; all k; all v]:
    (H, 3, d, ...) -> (3, H, d, ...). Works for the weight (3C, C) and the bias (3C,)."""
    rest = t.shape[1:]
    return t.reshape(num_heads, 3, -1, *rest).transpose(0, 1).reshape(-1, *rest)


def stacked_to_per_head(t: torch.Tensor, num_heads: int) -> torch.Tensor:
    """The inverse of ``per_head_to_stacked``: (3, H, d, ...) -> (H, 3, d, ...)."""
    rest = t.shape[1:]
    return t.reshape(3, num_heads, -1, *rest).transpose(0, 1).reshape(-1, *rest)


def state_dict_from_neox(sd: dict, num_heads: int) -> dict:
    """A GPT-NeoX state dict in tinyllm's names and layout. Without a head (a tied one) the
    token embedding is used; names that are not GPT-NeoX's are one clear error."""
    out = {}
    for name, tensor in sd.items():
        if _BUFFERS.match(name):
            continue
        name = "embed_out.weight" if name == "lm_head.weight" else name   # transformers 5's name
        mine = rename(name, _NAMES)
        if mine is None:
            raise TinyLLMError(f"{name!r} is not a parameter of a GPT-NeoX model tinyllm can load")
        if ".attn.qkv." in mine:
            tensor = per_head_to_stacked(tensor, num_heads)
        out[mine] = tensor
    if "lm_head.weight" not in out and "wte.weight" in out:
        out["lm_head.weight"] = out["wte.weight"]
    for name in [k for k in out if k.endswith("attn.out_proj.weight")]:  # attention_bias False
        out.setdefault(name[:-len("weight")] + "bias", out[name].new_zeros(out[name].shape[0]))
    return out


def state_dict_to_neox(sd: dict, config) -> dict:
    """A tinyllm state dict in GPT-NeoX's names and layout: zero biases where tinyllm has none,
    and for unscaled ('gpt-neo') scores √d folded into W_q and b_q: (√d q)·k / √d = q·k."""
    sd = dict(sd)
    for name in [k for k in sd if k.endswith(("attn.qkv.weight", "attn.out_proj.weight",
                                               "mlp.c_fc.weight", "mlp.c_proj.weight"))]:
        bias = name[:-len("weight")] + "bias"
        if bias not in sd:
            sd[bias] = sd[name].new_zeros(sd[name].shape[0])
    back = [(dst, src) for src, dst in _NAMES]
    out = {}
    for name, tensor in sd.items():
        if ".attn.qkv." in name:
            if config.attention == "gpt-neo":
                q, kv = tensor.split([config.hidden_size, 2 * config.hidden_size])
                tensor = torch.cat((q * math.sqrt(config.head_dim), kv))
            tensor = stacked_to_per_head(tensor, config.num_heads)
        theirs = rename(name, back)
        if theirs is None:
            raise TinyLLMError(f"{name!r} has no place in a GPT-NeoX model")
        out[theirs] = tensor
    return out


__all__ = ["incompatibilities", "config_from_neox", "config_to_neox", "state_dict_from_neox",
           "state_dict_to_neox", "per_head_to_stacked", "stacked_to_per_head", "rope_parameters"]
