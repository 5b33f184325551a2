"""Normalisation layers: LayerNorm (GPT-Neo) and RMSNorm (Llama), over the last dimension.

    LayerNorm:  μ = mean(x),  σ² = mean((x - μ)²)          (biased variance)
                y = (x - μ) / sqrt(σ² + ε) · γ + β
    RMSNorm:    y = x / sqrt(mean(x²) + ε) · γ              (no centring, no shift)

RMSNorm drops the mean and the shift: one reduction instead of two, one parameter vector
instead of two, and in practice the same quality (Zhang & Sennrich 2019).

By default each calls its fused kernel (``F.layer_norm`` / ``F.rms_norm``: one operation instead
of several, forward and backward); inside ``kernels.formulas()`` it computes exactly the lines
above, which the parity table holds equal to ``torch.nn.LayerNorm`` and ``torch.nn.RMSNorm``.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .kernels import written_out


class LayerNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))  # γ
        self.bias = nn.Parameter(torch.zeros(dim))   # β

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., C)
        if not written_out():
            return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)
        mean = x.mean(dim=-1, keepdim=True)                       # (..., 1)
        var = (x - mean).pow(2).mean(dim=-1, keepdim=True)         # (..., 1)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))  # γ

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., C)
        if not written_out():   # γ in x's dtype: under autocast q and k arrive in bf16
            return F.rms_norm(x, self.weight.shape, self.weight.to(x.dtype), self.eps)
        mean_square = x.pow(2).mean(dim=-1, keepdim=True)          # (..., 1)
        return x * torch.rsqrt(mean_square + self.eps) * self.weight

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


NORMS = {"layernorm": LayerNorm, "rmsnorm": RMSNorm}   # config.norm -> its class
