"""The key/value cache: every layer's keys and values of the positions seen so far.

Generating N tokens by re-running the model over the whole text for each one costs N full
forward passes. With the keys and values of earlier positions kept, a new token costs one
position: ``GPT.forward(ids, cache=...)`` reads ``cache.length`` as the position of ``ids[:, 0]``,
writes the new keys/values there (``Attention``) and advances ``length``.

    layers[l]: (B, 2, H, size, d)   layer l's keys [:, 0] and values [:, 1], preallocated,
                                    filled up to ``length``
"""
import torch


class KVCache:
    def __init__(self, batch_size: int, num_layers: int, num_heads: int, head_dim: int,
                 size: int, dtype=torch.float32, device=None):
        shape = (batch_size, 2, num_heads, size, head_dim)
        self.layers = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.size = size
        self.length = 0   # positions filled

    def reset(self) -> None:
        """Start again from position 0 (the buffers are overwritten, not cleared)."""
        self.length = 0
