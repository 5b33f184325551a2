"""Rotary position embeddings (RoPE, Su et al. 2021), in Llama's "rotate half" layout.

Instead of adding a position vector to the input, rotate each head's query and key by an angle
proportional to their position. For head size d and position p, dimension i < d/2 is paired
with dimension i + d/2, and the pair turns by p·θ_i:

    θ_i = base^(-2i/d)                                   i = 0 .. d/2 - 1   (base 10000)
    cos_p = [cos(p θ_0) .. cos(p θ_{d/2-1}),  the same again]              (d,)
    sin_p = [sin(p θ_0) .. sin(p θ_{d/2-1}),  the same again]              (d,)
    rotate_half(x) = [-x_{d/2..d-1},  x_{0..d/2-1}]
    rope(x, p) = x ⊙ cos_p + rotate_half(x) ⊙ sin_p

A rotation keeps lengths, and rotating q (at m) and k (at n) leaves q·k depending only on
m - n: attention sees relative positions, with no table of positions to learn. Hugging Face's
Llama uses this layout (pairs half a head apart); the original paper and Meta's checkpoints pair
neighbours (2i, 2i+1), which is the same thing after permuting W_q and W_k's rows. Keeping
Hugging Face's layout lets a Llama from transformers load without any permutation.

A model may turn only the first r = ⌊fraction · d⌋ dimensions of each head and pass the rest
through (GPT-NeoX and Pythia turn a quarter): the formulas above then hold with r for d, over
x's first r dimensions.

``Rotary`` computes the (cos, sin) of every position once, when it is built, and keeps them as
buffers (float32, not saved with the weights); each attention layer rotates its new queries and
keys with the rows of their positions, so keys enter the key/value cache already rotated.
"""
import torch
from torch import nn


class Rotary(nn.Module):
    """rope(x, p) for positions 0 .. max_positions - 1 (no parameters; the tables are buffers),
    on the first ``dims`` dimensions of each head (None: all ``head_dim``)."""

    def __init__(self, head_dim: int, base: float = 10000.0, max_positions: int = 2048,
                 dims: int | None = None):
        super().__init__()
        self.head_dim, self.base, self.max_positions = head_dim, base, max_positions
        self.dims = head_dim if dims is None else dims
        self._build(None)

    def _build(self, device) -> None:
        d = self.dims
        inv_freq = 1.0 / self.base ** (torch.arange(0, d, 2, device=device).float() / d)  # θ_i
        angles = torch.arange(self.max_positions, device=device).float()[:, None] * inv_freq
        angles = torch.cat((angles, angles), dim=-1)                           # (P, d)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def _apply(self, fn, recurse=True):
        """Moved with the model; cast with it (to bf16, say), the tables are made again in
        float32, so that a model cast and cast back rotates exactly as before."""
        super()._apply(fn, recurse)
        if self.cos.dtype != torch.float32:
            self._build(self.cos.device)
        return self

    def tables(self, pos: int, T: int):
        """(cos, sin), each (T, r), of positions pos .. pos + T - 1."""
        return self.cos[pos:pos + T], self.sin[pos:pos + T]

    def forward(self, x: torch.Tensor, pos=0) -> torch.Tensor:
        """x (..., T, d) rotated as if it sits at positions pos .. pos + T - 1; or, for a
        LongTensor ``pos`` broadcastable to x.shape[:-1], at those positions."""
        if isinstance(pos, torch.Tensor):           # (..., T) -> tables (..., T, r)
            cos, sin = self.cos[pos], self.sin[pos]
        else:
            cos, sin = self.tables(pos, x.shape[-2])
        if self.dims == self.head_dim:
            return apply_rotary(x, cos, sin)
        turned, passed = x[..., :self.dims], x[..., self.dims:]       # (..., T, r), (..., T, d - r)
        return torch.cat((apply_rotary(turned, cos, sin), passed), dim=-1)

    def extra_repr(self) -> str:
        part = "" if self.dims == self.head_dim else f", dims={self.dims}"
        return f"head_dim={self.head_dim}{part}, base={self.base:g}"


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[-x₂, x₁] for x = [x₁, x₂] split in halves along the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """rope(x): x (..., T, d) rotated by cos, sin (T, d) of its positions (in x's dtype, as
    under autocast)."""
    if cos.dtype != x.dtype:
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.addcmul(x * cos, rotate_half(x), sin)          # x ⊙ cos + rotate_half(x) ⊙ sin
