"""What transformers' architectures share, as tinyllm meets them: the names of activations, the
query/key/value projections it keeps apart where tinyllm stacks them, and what none of the
layouts tinyllm writes has. Pure functions over dicts and configs.
"""
import torch

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


__all__ = ["ACT_TO_HF", "ACT_FROM_HF", "outside_transformers", "fuse_qkv", "split_qkv"]
