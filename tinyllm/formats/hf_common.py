"""What transformers' architectures share, as tinyllm meets them: the names of activations, the
query/key/value projections it keeps apart where tinyllm stacks them, renaming parameters by a
table, and what none of the layouts tinyllm writes has. Pure functions over dicts and configs.
"""
import re

import torch

from ..errors import TinyLLMError

# tinyllm activation name -> transformers' name (GPT-Neo's ``activation_function``, Llama's
# ``hidden_act``), and back, plus synonyms
ACT_TO_HF = {"gelu_new": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu",
              "relu2": "relu2"}
ACT_FROM_HF = {**{v: k for k, v in ACT_TO_HF.items()},
                "gelu_pytorch_tanh": "gelu_new", "swish": "silu"}


def outside_transformers(config) -> list[str]:
    """What neither of transformers' GPT-Neo and Llama has, in words."""
    wrong = []
    if config.qk_norm:
        wrong.append("QK-norm")
    if config.logit_softcap is not None:
        wrong.append("a logit soft-cap")
    if config.activation not in ACT_TO_HF:
        wrong.append(f"the activation {config.activation!r}")
    return wrong


_IN_WORDS = {("position", "learned"): "learned positions", ("position", "rotary"): "rotary positions",
             ("norm", "layernorm"): "LayerNorm", ("norm", "rmsnorm"): "RMSNorm",
             ("mlp", "plain"): "a plain MLP", ("mlp", "gated"): "a gated MLP"}


def differences(config, layout: str, **parts) -> list[str]:
    """The components of ``config`` that are not ``layout``'s (``parts``: field -> the layout's
    value), in words: "RMSNorm (GPT-NeoX has LayerNorm: norm='layernorm')"; and a window
    shorter than the context, which none of the layouts tinyllm writes besides GPT-Neo has."""
    wrong = [f"{_IN_WORDS[field, getattr(config, field)]} ({layout} has "
             f"{_IN_WORDS[field, value]}: {field}={value!r})"
             for field, value in parts.items() if getattr(config, field) != value]
    if layout != "GPT-Neo" and narrow_windows(config):
        wrong.append(f"local layers whose {config.window_size}-token window is shorter than the "
                     f"{config.context_size}-token context ({layout} attends globally)")
    return wrong


def sizes(hf: dict, layout: str, model_type: str) -> tuple:
    """(hidden, heads, layers, vocab, MLP width) of a Llama-style config.json (the names Llama
    and GPT-NeoX share), checked to be for ``model_type``; a missing one is one clear error."""
    if hf.get("model_type") != model_type:
        raise TinyLLMError(f"config.json is for a {hf.get('model_type')!r} model, not "
                           f"{model_type!r}")
    try:
        return tuple(hf[name] for name in ("hidden_size", "num_attention_heads",
                                           "num_hidden_layers", "vocab_size", "intermediate_size"))
    except KeyError as e:
        raise TinyLLMError(f"{layout} config.json lacks {e.args[0]!r}: is it a complete "
                           "Hugging Face config?") from None


def narrow_windows(config) -> bool:
    """Whether some 'local' layer's window is shorter than the context (a window that covers
    the whole context changes nothing: the layer is a global one)."""
    return (config.window_size is not None and "local" in config.attention_layers
            and config.window_size < config.context_size)


def rename(name: str, table: list) -> str | None:
    """``name`` through the (from, to) pairs of ``table``, where ``{i}`` stands for a layer
    number and ``{p}`` for 'weight' or 'bias'; None: it is none of them."""
    for src, dst in table:
        pattern = "^" + re.escape(src).replace(r"\{i\}", r"(?P<i>\d+)").replace(
            r"\{p\}", r"(?P<p>weight|bias)") + "$"
        match = re.match(pattern, name)
        if match:
            return dst.format(**match.groupdict())
    return None


def fuse_qkv(sd: dict) -> dict:
    """Stack each attention's ``q_proj``, ``k_proj``, ``v_proj`` weights into one ``qkv``
    weight [W_q; W_k; W_v] (3C, C); a state dict without them is returned as it is."""
    out = dict(sd)
    for name in [k for k in sd if k == "q_proj.weight" or k.endswith(".q_proj.weight")]:
        prefix = name[:-len("q_proj.weight")]
        out[prefix + "qkv.weight"] = torch.cat([out.pop(prefix + p + "_proj.weight")
                                                for p in "qkv"])
    return out


def split_qkv(sd: dict) -> dict:
    """The inverse of ``fuse_qkv``."""
    out = dict(sd)
    for name in [k for k in sd if k == "qkv.weight" or k.endswith(".qkv.weight")]:
        prefix = name[:-len("qkv.weight")]
        for p, w in zip("qkv", out.pop(name).chunk(3, dim=0)):
            out[prefix + p + "_proj.weight"] = w
    return out


__all__ = ["ACT_TO_HF", "ACT_FROM_HF", "outside_transformers", "differences", "narrow_windows",
           "rename", "sizes",
           "fuse_qkv", "split_qkv"]
