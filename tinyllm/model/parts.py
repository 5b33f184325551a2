"""What a GPT is assembled from: one class (or function) per kind of component.

``GPT(tokenizer, config, parts)`` builds every module from ``parts``; ``Parts()`` holds tinyllm's
own, the ones the config names. A learner who writes a component of their own passes it in, and
the model is built with it from the start (``tinyllm check --use`` does this):

    kind        called as                          tinyllm's own (None: chosen by the config)
    embedding   embedding(num_embeddings, dim)     Embedding (token table; learned positions too)
    norm        norm(dim, eps)                     LayerNorm or RMSNorm (config.norm)
    attention   attention(config, layer_type)      Attention
    mlp         mlp(config)                        MLP or GatedMLP (config.mlp)
    block       block(config, layer_type)          Block, made of the norm, attention and MLP above
    loss        loss(h, weight, targets,           the fused, chunked head + cross-entropy
                     ignore_index) -> the mean     (tinyllm.model.nn.loss)
"""
import inspect
from dataclasses import dataclass
from typing import Callable

from .nn import NORMS, Block, Embedding


@dataclass(frozen=True)
class Parts:
    embedding: Callable = Embedding
    norm: Callable | None = None
    attention: Callable | None = None
    mlp: Callable | None = None
    block: Callable | None = None
    loss: Callable | None = None

    def make_block(self, config, layer_type: str):
        if self.block is not None:
            return self.block(config, layer_type)
        return Block(config, layer_type, norm=self.norm, attention=self.attention, mlp=self.mlp)

    def make_norm(self, config):
        return (self.norm or NORMS[config.norm])(config.hidden_size, config.layer_norm_epsilon)


def takes_cache(part) -> bool:
    """Whether a part's (a module's or class's) forward takes the key/value cache, as tinyllm's
    attention and block do (a learner's may not: generation then says what is missing)."""
    params = inspect.signature(part.forward).parameters.values()
    return any(p.name == "cache" or p.kind is p.VAR_KEYWORD for p in params)


__all__ = ["Parts", "takes_cache"]
