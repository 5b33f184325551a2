"""The from-scratch building blocks of tinyllm's GPT, one concept per module.

Each module reads like its math and has a reference twin in ``tests/`` (``torch.nn``,
``torch.nn.functional`` or transformers' GPT-Neo) that it is checked against.
"""
from .embedding import Embedding
from .norm import LayerNorm
from .attention import Attention
from .mlp import MLP, gelu_new
from .block import Block

__all__ = ["Embedding", "LayerNorm", "Attention", "MLP", "gelu_new", "Block"]
