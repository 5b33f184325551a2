"""The from-scratch building blocks of tinyllm's GPT, one concept per module.

Each module reads like its math and has a reference twin (``torch.nn``, ``torch.nn.functional``
or transformers' GPT-Neo) in the parity table of ``tinyllm.check``, which ``tinyllm check`` and
the tests run.
"""
from .embedding import Embedding
from .norm import LayerNorm
from .attention import Attention
from .mlp import MLP, gelu_new
from .block import Block
from .kv_cache import KVCache

__all__ = ["Embedding", "LayerNorm", "Attention", "MLP", "gelu_new", "Block", "KVCache"]
