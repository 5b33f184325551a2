"""The position-wise feed-forward network of a GPT block.

    MLP(x) = dropout( act(x W₁ + b₁) W₂ + b₂ )        W₁: C × I,  W₂: I × C  (I = 4C by default)

GPT-Neo's activation is ``gelu_new``, the tanh approximation of GELU:

    gelu_new(x) = ½ x (1 + tanh( √(2/π) (x + 0.044715 x³) ))
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh approximation, written out (equal to ``F.gelu(x, approximate='tanh')``)."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """The same function, fused: one kernel."""
    return F.gelu(x, approximate="tanh")


def activation(name: str, explicit: bool = False):
    """The activation function called ``name``; ``explicit`` picks the written-out formula."""
    functions = {"gelu_new": gelu_new if explicit else gelu_tanh, "gelu": F.gelu,
                 "relu": F.relu, "silu": F.silu}
    if name not in functions:
        raise ValueError(f"unknown activation {name!r}: use one of {', '.join(functions)}")
    return functions[name]


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        inner = config.intermediate_size or 4 * config.hidden_size
        self.c_fc = nn.Linear(config.hidden_size, inner)      # W₁, b₁
        self.c_proj = nn.Linear(inner, config.hidden_size)    # W₂, b₂
        self.act = activation(config.activation, config.explicit)
        self.dropout = config.residual_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, C) -> (B, T, I) -> (B, T, C)
        y = self.c_proj(self.act(self.c_fc(x)))
        return F.dropout(y, self.dropout) if self.training and self.dropout else y
