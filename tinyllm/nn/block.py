"""A pre-norm transformer block (GPT-2 / GPT-Neo / Llama layout).

    x = x + Attention(Norm₁(x))
    x = x + MLP(Norm₂(x))

Norm is LayerNorm or RMSNorm and the MLP plain or gated, as the config says.
"""
import torch
from torch import nn

from .attention import Attention
from .mlp import make_mlp
from .norm import make_norm


class Block(nn.Module):
    def __init__(self, config, layer_type: str = "global"):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = Attention(config, layer_type)
        self.ln_2 = make_norm(config)
        self.mlp = make_mlp(config)

    def forward(self, x: torch.Tensor, kv=None, pos: int = 0, rope=None) -> torch.Tensor:
        # x: (B, T, C); kv/pos/rope: this layer's key/value cache, the position of x[:, 0] and
        # the rotary (cos, sin) of the positions (see Attention)
        x = x + self.attn(self.ln_1(x), kv=kv, pos=pos, rope=rope)
        x = x + self.mlp(self.ln_2(x))
        return x

    def step(self, x: torch.Tensor, kv, pos: int, rope=None) -> torch.Tensor:
        """``forward`` for one new position per sequence, x (B, C), during generation: the same
        sub-layers (their ``forward``, without nn.Module's call machinery, which at one token
        costs about as much as the arithmetic) and attention's one-position ``step``."""
        x = x + self.attn.step(self.ln_1.forward(x), kv, pos, rope)
        return x + self.mlp.forward(self.ln_2.forward(x))
