"""The key/value cache: every layer's keys and values of the positions seen so far.

Generating N tokens by re-running the model over the whole text for each one costs N full
forward passes. With the keys and values of earlier positions kept, a new token costs one
position. The cache owns that state: each layer's ``LayerCache`` writes the new keys and values
where they belong, advances its length and returns what the layer's queries may see.

    LayerCache.kv   (B, 2, H, size, d)   keys [:, 0] and values [:, 1], preallocated, filled up
                                         to ``length``
    update(kv_new)  kv_new (B, 2, H, T, d) of positions length .. length + T - 1  ->  (k, v)
                    (B, H, S, d) each: every key so far, or for a local layer with window W
                    only the keys at length - W + 1 .. (the earliest any of the new queries sees)

``KVCache.length`` is the number of positions filled: the position of the next token.
"""
import torch


class LayerCache:
    def __init__(self, kv: torch.Tensor, window: int | None = None):
        self.kv = kv                  # (B, 2, H, size, d)
        self.window = window          # None: the layer attends to every earlier position
        self.length = 0               # positions filled

    def update(self, kv_new: torch.Tensor):
        """Write kv_new (B, 2, H, T, d) at positions length .. length + T - 1; return the keys
        and values (B, H, S, d) in view of those positions' queries."""
        start, end = self.length, self.length + kv_new.shape[3]
        if end > self.kv.shape[3]:
            raise ValueError(f"the key/value cache holds {self.kv.shape[3]} positions, not {end}: "
                             "reset it (or make a larger one) before going on")
        self.kv[:, :, :, start:end] = kv_new
        self.length = end
        first = 0 if self.window is None else max(0, start - self.window + 1)
        return self.kv[:, 0, :, first:end], self.kv[:, 1, :, first:end]


class KVCache:
    """One ``LayerCache`` per layer, for ``batch_size`` sequences of up to ``size`` positions;
    ``windows[l]`` is layer l's local window (None: global)."""

    def __init__(self, batch_size: int, num_heads: int, head_dim: int, size: int, windows: list,
                 dtype=torch.float32, device=None):
        shape = (batch_size, 2, num_heads, size, head_dim)
        self.layers = [LayerCache(torch.zeros(shape, dtype=dtype, device=device), w)
                       for w in windows]
        self.size = size

    @property
    def length(self) -> int:
        """Positions filled (the same in every layer between forward passes)."""
        return self.layers[0].length

    def reset(self) -> None:
        """Start again from position 0 (the buffers are overwritten, not cleared)."""
        for layer in self.layers:
            layer.length = 0
