"""The from-scratch building blocks of tinyllm's GPT, one concept per module.

Each module reads like its math and has a reference twin (``torch.nn``, ``torch.nn.functional``
or transformers' GPT-Neo and Llama) in the parity table of ``tinyllm.check``, which
``tinyllm check`` and the tests run.
"""
from .dropout import dropout
from .embedding import Embedding
from .norm import LayerNorm, RMSNorm, make_norm
from .rotary import Rotary, apply_rotary, rotate_half
from .attention import Attention
from .mlp import MLP, GatedMLP, gelu_new, make_mlp, relu2
from .block import Block
from .kv_cache import KVCache

__all__ = ["dropout", "Embedding", "LayerNorm", "RMSNorm", "make_norm", "Rotary", "apply_rotary",
           "rotate_half", "Attention", "MLP", "GatedMLP", "make_mlp", "gelu_new", "relu2",
           "Block", "KVCache"]
