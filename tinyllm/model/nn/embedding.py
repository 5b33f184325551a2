"""Token and position embeddings: a learnable lookup table.

    E ∈ R^(N × C),   embed(ids) = E[ids]

Row ``i`` of ``E`` is the vector of id ``i``. The same module serves both tables of a GPT:
token ids index the (vocab × C) table; positions 0..T-1 index the (max_positions × C) table
and broadcast over the batch.
"""
import torch
from torch import nn


class Embedding(nn.Module):
    def __init__(self, num_embeddings: int, dim: int):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.dim = dim
        self.weight = nn.Parameter(torch.empty(num_embeddings, dim))
        nn.init.normal_(self.weight, mean=0.0, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: (...) integer tensor  ->  (..., dim)
        return self.weight[ids]

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.dim}"
