"""The position-wise feed-forward network of a block: plain (GPT-2 / GPT-Neo) or gated (Llama).

    plain:  MLP(x) = dropout( act(x W₁ + b₁) W₂ + b₂ )                 W₁: C × I,  W₂: I × C
    gated:  MLP(x) = dropout( (act(x W_gate) ⊙ x W_up) W_down )         W_gate, W_up: C × I

I is 4C for the plain MLP and about 8C/3 for the gated one, which has three matrices instead of
two (``Config.mlp_size``); the biases are there unless ``bias=False``. The gated form with
act = SiLU is SwiGLU (Shazeer 2020), Llama's MLP. W_gate and W_up are kept side by side in one
(2I × C) matrix, so that both come out of one matrix product.

The activations:

    gelu_new(x) = ½ x (1 + tanh( √(2/π) (x + 0.044715 x³) ))     GPT-Neo's: GELU, tanh approximation
    silu(x)     = x · σ(x)                                          (also called swish)
    relu2(x)    = max(x, 0)²                                        ReLU² (Primer; modded-nanogpt)

``gelu_new`` is written out here; the MLP calls its fused kernel, ``F.gelu(x,
approximate='tanh')``, except inside ``kernels.formulas()``.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import dropout
from .kernels import written_out


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh approximation, written out (equal to ``F.gelu(x, approximate='tanh')``)."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def relu2(x: torch.Tensor) -> torch.Tensor:
    """ReLU squared: max(x, 0)²."""
    return F.relu(x).square()


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """``gelu_new`` as one fused kernel."""
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {"gelu_new": gelu_new, "gelu": F.gelu, "relu": F.relu, "silu": F.silu,
               "relu2": relu2}                         # config.activation -> its formula
KERNELS = {**ACTIVATIONS, "gelu_new": gelu_tanh}       # ... and the kernel the MLP calls


def activate(name: str, x: torch.Tensor) -> torch.Tensor:
    """The activation called ``name`` applied to x: its kernel, or inside
    ``kernels.formulas()`` its formula."""
    return (ACTIVATIONS if written_out() else KERNELS)[name](x)


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        inner = config.mlp_size
        self.c_fc = nn.Linear(config.hidden_size, inner, bias=config.bias)    # W₁, b₁
        self.c_proj = nn.Linear(inner, config.hidden_size, bias=config.bias)  # W₂, b₂
        self.activation = config.activation
        self.resid_dropout = config.residual_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, C) -> (B, T, I) -> (B, T, C)
        y = self.c_proj(activate(self.activation, self.c_fc(x)))
        return dropout(y, self.resid_dropout, self.training)


class GatedMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        inner = config.mlp_size
        self.c_fc = nn.Linear(config.hidden_size, 2 * inner, bias=config.bias)  # [W_gate; W_up]
        self.c_proj = nn.Linear(inner, config.hidden_size, bias=config.bias)    # W_down
        self.activation = config.activation
        self.resid_dropout = config.residual_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, C) -> gate, up: (B, T, I) each -> (B, T, C)
        gate, up = self.c_fc(x).chunk(2, dim=-1)
        y = self.c_proj(activate(self.activation, gate) * up)
        return dropout(y, self.resid_dropout, self.training)


MLPS = {"plain": MLP, "gated": GatedMLP}     # config.mlp -> its class
