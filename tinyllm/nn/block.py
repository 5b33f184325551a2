"""A pre-LayerNorm transformer block (GPT-2 / GPT-Neo layout).

    x = x + Attention(LN₁(x))
    x = x + MLP(LN₂(x))
"""
import torch
from torch import nn

from .attention import Attention
from .mlp import MLP
from .norm import LayerNorm


class Block(nn.Module):
    def __init__(self, config, layer_type: str = "global"):
        super().__init__()
        C, eps = config.hidden_size, config.layer_norm_epsilon
        self.ln_1 = LayerNorm(C, eps, config.explicit)
        self.attn = Attention(config, layer_type)
        self.ln_2 = LayerNorm(C, eps, config.explicit)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, kv=None, pos: int = 0) -> torch.Tensor:
        # x: (B, T, C); kv/pos: this layer's key/value cache and the position of x[:, 0] (see Attention)
        x = x + self.attn(self.ln_1(x), kv=kv, pos=pos)
        x = x + self.mlp(self.ln_2(x))
        return x

