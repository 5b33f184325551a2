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

Sequences of different lengths share one cache right-aligned: ``pad`` (B,) says how many empty
columns come first in each row, so that row b's column c holds position c - pad[b]; a query
sees only its own row's keys (``key_mask``). Without ``pad`` (None) every row starts at 0.

``StaticKVCache`` sees a ``KVCache``'s buffers the way a compiled one-token step needs them:
there every shape must stay the same from token to token, so the length is a (1,) tensor, the
new keys and values are written at it (``index_copy_``), and the query sees the whole buffer
through a mask (columns < length, within the window) instead of a slice that grows:

    StaticLayerCache.update(kv_new)  kv_new (B, 2, H, 1, d) written at column ``length``
                                     -> (k, v) (B, H, size, d) each, every column
    key_mask()                       (B or 1, 1, 1, size): the columns in view
"""
import torch


class LayerCache:
    def __init__(self, kv: torch.Tensor, window: int | None = None):
        self.kv = kv                  # (B, 2, H, size, d)
        self.window = window          # None: the layer attends to every earlier position
        self.length = 0               # positions filled
        self.pad = None               # (B,) empty columns before each row's first key, or None
        self.first = 0                # the column of the first key the last update returned

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
        self.first = first
        return self.kv[:, 0, :, first:end], self.kv[:, 1, :, first:end]

    def key_mask(self) -> torch.Tensor | None:
        """For one new query per row after ``update``: (B, 1, 1, S), True where a returned key
        is the row's own (not a padding column); None when no row is padded."""
        if self.pad is None:
            return None
        columns = torch.arange(self.first, self.length, device=self.kv.device)
        return (columns >= self.pad[:, None])[:, None, None, :]


class StaticLayerCache:
    """``LayerCache``'s interface for one new position per row, with shapes that never change:
    the buffer kv (B, 2, H, size, d), the layer's window, the length (1,) and the padding (B,)
    of each row (or None)."""

    def __init__(self, kv: torch.Tensor, window: int | None, length: torch.Tensor,
                 pad: torch.Tensor | None = None):
        self.kv, self.window, self.length, self.pad = kv, window, length, pad
        self.columns = torch.arange(kv.shape[3], device=kv.device)             # (size,)

    def update(self, kv_new: torch.Tensor):
        """Write kv_new (B, 2, H, 1, d) at column ``length`` and advance; every column's keys
        and values (B, H, size, d), the unwritten ones hidden by ``key_mask``."""
        self.kv.index_copy_(3, self.length, kv_new)
        self.length = self.length + 1
        return self.kv[:, 0], self.kv[:, 1]

    def key_mask(self) -> torch.Tensor:
        """After ``update``: (B or 1, 1, 1, size), True where the new query sees the column:
        written (< length), within the window, and the row's own (not padding)."""
        seen = self.columns < self.length                                # (size,)
        if self.window is not None:
            seen = seen & (self.columns >= self.length - self.window)
        seen = seen[None] if self.pad is None else seen & (self.columns >= self.pad[:, None])
        return seen[:, None, None, :]


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
    def pad(self) -> torch.Tensor | None:
        """(B,) empty columns before each row's first position (right-aligned rows), or None."""
        return self.layers[0].pad

    @pad.setter
    def pad(self, pad: torch.Tensor | None) -> None:
        for layer in self.layers:
            layer.pad = pad

    @property
    def length(self) -> int:
        """Positions filled (the same in every layer between forward passes)."""
        return self.layers[0].length

    def repeat_rows(self, n: int) -> None:
        """Each sequence's keys and values n times over, (B, ...) -> (B·n, ...): n samples of
        one prompt share its prefill (row b·n + j is sample j of sequence b)."""
        for layer in self.layers:
            layer.kv = layer.kv.repeat_interleave(n, dim=0)
            layer.pad = None if layer.pad is None else layer.pad.repeat_interleave(n)

    def advance(self) -> None:
        """One more position filled in every layer, written by a compiled step through a
        ``StaticKVCache`` over these buffers (``LayerCache.update`` advances itself)."""
        for layer in self.layers:
            layer.length += 1

    def reset(self) -> None:
        """Start again from position 0 (the buffers are overwritten, not cleared)."""
        for layer in self.layers:
            layer.length, layer.pad = 0, None


class StaticKVCache:
    """The cache a compiled one-token step sees: one ``StaticLayerCache`` per layer over the
    buffers ``kvs`` (a ``KVCache``'s, (B, 2, H, size, d) each), all at ``length`` (1,), rows
    padded by ``pad`` (B,) or None. The buffers are written in place; the length the caller
    passed is not advanced (the next call passes length + 1)."""

    def __init__(self, kvs: list, windows: list, length: torch.Tensor,
                 pad: torch.Tensor | None = None):
        self.layers = [StaticLayerCache(kv, w, length, pad) for kv, w in zip(kvs, windows)]
        self.pad, self.size = pad, kvs[0].shape[3]

    @property
    def length(self) -> torch.Tensor:
        """(1,): positions filled (the same in every layer between forward passes)."""
        return self.layers[0].length
