"""Hugging Face GPT-Neo's format: its config.json and parameter names, mapped to tinyllm's.

tinyllm's GPT has GPT-Neo's architecture; its parameters map onto a GPT-Neo state dict one to
one, except that tinyllm keeps W_q, W_k, W_v stacked in one matrix (one product instead of three):

    transformer.wte.weight                         ->  wte.weight
    transformer.wpe.weight                         ->  wpe.weight
    transformer.h.{i}.ln_1.{weight,bias}           ->  blocks.{i}.ln_1.{weight,bias}
    transformer.h.{i}.attn.attention.{q,k,v}_proj  ->  blocks.{i}.attn.qkv.weight  ([W_q; W_k; W_v])
    transformer.h.{i}.attn.attention.out_proj      ->  blocks.{i}.attn.out_proj
    transformer.h.{i}.ln_2 / mlp.c_fc / mlp.c_proj ->  blocks.{i}.ln_2 / mlp.c_fc / mlp.c_proj
    transformer.ln_f.{weight,bias}                 ->  ln_f.{weight,bias}
    lm_head.weight                                 ->  lm_head.weight  (GPT-Neo ties it to wte)

A tinyllm model is a GPT-Neo when it has learned positions, LayerNorm and a plain MLP, and no
QK-norm or logit soft-cap (``incompatibilities``); one without biases is exported with zero
biases. The Llama layout is ``tinyllm.formats.llama``.

Pure functions over dicts and configs (read by their fields: this layer builds no model, the
model builds itself from the fields it is given); reading and writing the files is
``tinyllm.formats.huggingface``'s job.
"""
import math
import re


from ..errors import TinyLLMError
from .hf_common import ACT_FROM_HF, ACT_TO_HF, differences, fuse_qkv, outside_transformers, split_qkv

GPT2_VOCAB_SIZE = 50257

# GPT-Neo names that are not parameters: the attention masks older checkpoints stored
_HF_BUFFERS = re.compile(r".*\.attn\.attention\.(bias|masked_bias)$")


# -- config ---------------------------------------------------------------------------------

def attention_types(config) -> list:
    """GPT-Neo's compact layer pattern for a config: its shortest repeating pattern and how
    often it repeats, ``[[["global", "local"], 2]]`` for four alternating layers."""
    pattern = config.attention_pattern
    return [[pattern, config.num_layers // len(pattern)]]


def expand_attention_types(attention_types) -> list[str]:
    """GPT-Neo's compact layer pattern to one type per layer:
    ``[[["global", "local"], 2]]`` -> ``["global", "local", "global", "local"]``."""
    layers = []
    for pattern, repeat in attention_types:
        layers.extend(list(pattern) * int(repeat))
    return layers


def incompatibilities(config) -> list[str]:
    """What keeps ``config`` from being a GPT-Neo, in words (empty: it is one)."""
    wrong = differences(config, "GPT-Neo", position="learned", norm="layernorm", mlp="plain")
    if config.qkv_bias:
        wrong.append("a query/key/value bias (GPT-Neo has none: qkv_bias=False)")
    if config.parallel_residual:
        wrong.append("parallel attention and MLP (GPT-Neo's run one after the other)")
    return wrong + outside_transformers(config)


def config_from_hf(hf: dict) -> dict:
    """The fields of a tinyllm ``Config`` for the dict of a GPT-Neo ``config.json`` (the model
    checks that they make a model when it is built from them)."""
    model_type = hf.get("model_type", "gpt_neo")
    if model_type != "gpt_neo":
        raise TinyLLMError(f"config.json is for a {model_type!r} model, not 'gpt_neo'")
    if hf.get("attention_types") is not None:
        layers = expand_attention_types(hf["attention_types"])
    elif hf.get("attention_layers") is not None:
        layers = list(hf["attention_layers"])
    else:
        layers = expand_attention_types([[["global", "local"], 12]])  # GPT-Neo's default
    act = hf.get("activation_function", "gelu_new")
    if act not in ACT_FROM_HF:
        raise TinyLLMError(f"activation_function {act!r} is not supported by tinyllm: use one of "
                           f"{', '.join(sorted(ACT_FROM_HF))}")
    hidden = hf.get("hidden_size", 2048)
    max_pos = hf.get("max_position_embeddings", 2048)
    return dict(
        hidden_size=hidden,
        embedding_size=hidden,
        context_size=min(hf.get("tinyllm_context_size") or max_pos, max_pos),
        num_layers=hf.get("num_layers", len(layers)),
        layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-5),
        attention_layers=layers,
        max_position_embeddings=max_pos,
        window_size=hf.get("window_size", 256),
        attention_dropout=float(hf.get("attention_dropout", 0.0)),
        residual_dropout=float(hf.get("resid_dropout", 0.0)),
        embedding_dropout=float(hf.get("embed_dropout", 0.0)),
        num_heads=hf.get("num_heads", 16),
        intermediate_size=hf.get("intermediate_size"),
        activation=ACT_FROM_HF[act],
        attention="gpt-neo",
        vocab_size=hf.get("vocab_size", GPT2_VOCAB_SIZE),
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
    )


def config_to_hf(config, tie_word_embeddings: bool = True,
                 eos_token_id: int | None = None) -> dict:
    """The dict of a GPT-Neo ``config.json`` for a tinyllm ``Config``.

    GPT-Neo has no ``context_size``: it is kept as ``tinyllm_context_size`` (ignored by
    transformers). A 'scaled' model is exported as 'gpt-neo' with the scale folded into W_q
    (see ``state_dict_to_hf``); local layers without a window get one as long as the positions."""
    wrong = incompatibilities(config)
    if wrong:
        raise TinyLLMError(f"this model is not a GPT-Neo: it has {'; '.join(wrong)}")
    return {
        "architectures": ["GPTNeoForCausalLM"],
        "model_type": "gpt_neo",
        "vocab_size": config.vocab_size,
        "max_position_embeddings": config.max_position_embeddings,
        "hidden_size": config.hidden_size,
        "num_layers": config.num_layers,
        "attention_types": attention_types(config),
        "num_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "window_size": config.window_size or config.max_position_embeddings,
        "activation_function": ACT_TO_HF[config.activation],
        "resid_dropout": config.residual_dropout,
        "embed_dropout": config.embedding_dropout,
        "attention_dropout": config.attention_dropout,
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": eos_token_id,
        "eos_token_id": eos_token_id,
        "tie_word_embeddings": tie_word_embeddings,
        "torch_dtype": "float32",
        "tinyllm_context_size": config.context_size,
    }


# -- state dict -----------------------------------------------------------------------------

def _hf_to_tinyllm_name(name: str) -> str:
    if name.startswith("transformer."):
        name = name[len("transformer."):]
    name = re.sub(r"^h\.(\d+)\.", r"blocks.\1.", name)
    return name.replace(".attn.attention.", ".attn.")


def _tinyllm_to_hf_name(name: str) -> str:
    if name.startswith("lm_head."):
        return name
    name = re.sub(r"^blocks\.(\d+)\.", r"h.\1.", name)
    return "transformer." + name.replace(".attn.", ".attn.attention.")


def state_dict_from_hf(sd: dict) -> dict:
    """A GPT-Neo state dict in tinyllm's names (mask buffers dropped). When it has no
    ``lm_head.weight`` (GPT-Neo ties it to the token embedding) the embedding is used."""
    out = fuse_qkv({_hf_to_tinyllm_name(k): v for k, v in sd.items() if not _HF_BUFFERS.match(k)})
    if "lm_head.weight" not in out and "wte.weight" in out:
        out["lm_head.weight"] = out["wte.weight"]
    return out


def state_dict_to_hf(sd: dict, config=None) -> dict:
    """A tinyllm state dict in GPT-Neo's names.

    GPT-Neo never scales attention scores; for a 'scaled' config the 1/√d is folded into the
    query weights, which gives the same scores: (s·W_q x)·k = s·(q·k). A config without biases
    gets zero ones, which GPT-Neo's layers have."""
    sd = dict(sd)
    if config is not None and not config.bias:
        for name in [k for k in sd if k.endswith(("attn.out_proj.weight", "mlp.c_fc.weight",
                                                   "mlp.c_proj.weight"))]:
            sd[name[:-len("weight")] + "bias"] = sd[name].new_zeros(sd[name].shape[0])
    out = {}
    for k, v in split_qkv(sd).items():
        if config is not None and config.attention == "scaled" and k.endswith("attn.q_proj.weight"):
            v = v / math.sqrt(config.hidden_size // config.num_heads)
        out[_tinyllm_to_hf_name(k)] = v
    return out


__all__ = ["incompatibilities", "config_from_hf", "config_to_hf", "state_dict_from_hf",
           "state_dict_to_hf", "expand_attention_types", "attention_types",
           "GPT2_VOCAB_SIZE"]
