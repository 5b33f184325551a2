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

The model computes (cos, sin) once per forward for the positions at hand (``Rotary``); each
attention layer applies them to its new queries and keys (``apply_rotary``), so keys enter the
key/value cache already rotated.
"""
import torch
from torch import nn


class Rotary(nn.Module):
    """(cos, sin), each (T, d), for positions pos .. pos + T - 1 (no parameters)."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        self.head_dim, self.base = head_dim, base

    def forward(self, pos: int, T: int, device=None):
        d = self.head_dim
        inv_freq = 1.0 / self.base ** (torch.arange(0, d, 2, device=device).float() / d)  # θ_i
        angles = torch.arange(pos, pos + T, device=device).float()[:, None] * inv_freq   # (T, d/2)
        angles = torch.cat((angles, angles), dim=-1)                                      # (T, d)
        return angles.cos(), angles.sin()

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base:g}"


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[-x₂, x₁] for x = [x₁, x₂] split in halves along the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """rope(x): x (B, H, T, d) rotated by cos, sin (T, d) of its positions (in x's dtype, as
    under autocast)."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + rotate_half(x) * sin
