"""Dropout: during training, zero each element with probability p and scale the rest up.

    y = x · m / (1 - p),   m_i ~ Bernoulli(1 - p)        (the expected y is x)

The same as ``F.dropout``, with the mask drawn as ``rand >= p``: on a CPU that is about twice
as fast as ``F.dropout``'s ``bernoulli_`` (a twentieth of a training step of the default model:
nine masks a step). On a GPU ``F.dropout``'s fused kernel is used.
"""
import torch
import torch.nn.functional as F


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    if not training or not p:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p)
    return x * (torch.rand_like(x) >= p) * (1.0 / (1.0 - p))
