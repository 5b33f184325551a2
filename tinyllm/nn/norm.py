"""Layer normalisation with a learnable scale and shift (as in GPT-Neo).

    μ = mean(x),  σ² = mean((x - μ)²)          over the last dimension (biased variance)
    y = (x - μ) / sqrt(σ² + ε) · γ + β

``explicit=True`` computes exactly these lines (for learners; ``tinyllm check`` holds them equal
to ``torch.nn.LayerNorm``); the default calls the fused kernel ``F.layer_norm``, one operation
instead of nine, forward and backward.
"""
import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5, explicit: bool = False):
        super().__init__()
        self.eps = eps
        self.explicit = explicit
        self.weight = nn.Parameter(torch.ones(dim))  # γ
        self.bias = nn.Parameter(torch.zeros(dim))   # β

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., C)
        if not self.explicit:
            return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)
        mean = x.mean(dim=-1, keepdim=True)                       # (..., 1)
        var = (x - mean).pow(2).mean(dim=-1, keepdim=True)         # (..., 1)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
