"""The from-scratch building blocks of tinyllm's GPT, one concept per module.

Each module reads like its math and has a reference twin (``torch.nn``, ``torch.nn.functional``
or transformers' GPT-Neo and Llama) in the parity table of ``tinyllm.check``, which
``tinyllm check`` and the tests run. ``kernels`` chooses, at run time, between the fused kernels
(the default) and the formulas written out.
"""
from .kernels import formulas, written_out
from .dropout import dropout
from .embedding import Embedding
from .norm import NORMS, LayerNorm, RMSNorm
from .rotary import Rotary, apply_rotary, rotate_half
from .attention import ATTEND, Attention
from .mlp import MLP, MLPS, GatedMLP, activate, gelu_new, relu2
from .block import Block
from .kv_cache import KVCache, LayerCache, StaticKVCache, StaticLayerCache
from .loss import linear_cross_entropy, softcap

__all__ = ["formulas", "written_out", "dropout", "Embedding", "LayerNorm", "RMSNorm", "NORMS",
           "Rotary", "apply_rotary", "rotate_half", "Attention", "ATTEND", "MLP", "GatedMLP",
           "MLPS", "activate", "gelu_new", "relu2", "Block", "KVCache", "LayerCache",
           "StaticKVCache", "StaticLayerCache", "linear_cross_entropy", "softcap"]
