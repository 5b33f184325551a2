"""A pre-norm transformer block (GPT-2 / GPT-Neo / Llama layout).

    x = x + Attention(Norm₁(x))
    x = x + MLP(Norm₂(x))

or, with ``parallel_residual`` (GPT-J, GPT-NeoX, Pythia), both sub-layers read the same x:

    x = x + Attention(Norm₁(x)) + MLP(Norm₂(x))

Norm is LayerNorm or RMSNorm and the MLP plain or gated, as the config says, unless other classes
are given (a learner's: ``tinyllm.model.parts``).
"""
import torch
from torch import nn

from .attention import Attention
from .mlp import MLPS
from .norm import NORMS


class Block(nn.Module):
    def __init__(self, config, layer_type: str = "global", norm=None, attention=None, mlp=None):
        """``norm(dim, eps)``, ``attention(config, layer_type)``, ``mlp(config)``: the classes
        of its parts; None takes tinyllm's, the ones the config names."""
        super().__init__()
        norm = norm or NORMS[config.norm]
        self.ln_1 = norm(config.hidden_size, config.layer_norm_epsilon)
        self.attn = (attention or Attention)(config, layer_type)
        self.ln_2 = norm(config.hidden_size, config.layer_norm_epsilon)
        self.mlp = (mlp or MLPS[config.mlp])(config)
        self.parallel = config.parallel_residual

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        # x: (B, T, C); cache: this layer's LayerCache (an attention without a cache parameter,
        # a learner's say, is called without one)
        h = self.ln_1(x)
        a = self.attn(h) if cache is None else self.attn(h, cache)
        if self.parallel:
            return x + a + self.mlp(self.ln_2(x))
        x = x + a
        return x + self.mlp(self.ln_2(x))

    def step(self, x: torch.Tensor, cache) -> torch.Tensor:
        """``forward`` for one new position per sequence, x (B, C), during generation: the same
        sub-layers (their ``forward``, without nn.Module's call machinery, which at one token
        costs about as much as the arithmetic) and attention's one-position ``step``."""
        a = self.attn.step(self.ln_1.forward(x), cache)
        if self.parallel:
            return x + a + self.mlp.forward(self.ln_2.forward(x))
        x = x + a
        return x + self.mlp.forward(self.ln_2.forward(x))
