"""Fused kernels or the formulas written out: two ways to compute the same layers, chosen at run
time for a block of code, never saved with a model.

By default every layer calls PyTorch's fused kernels — ``F.layer_norm``, ``F.rms_norm``,
``F.gelu``, ``F.scaled_dot_product_attention``, the chunked head + loss — one operation each,
forward and backward. Inside ``with formulas():`` the same layers compute their math step by step
instead, as their docstrings write it: a learner can read (and step through) each line, the
attention probabilities pass through a hook point where they can be read (``Attention.probs``),
and the parity table holds the kernels equal to the formulas.

    with formulas():
        logits = model(ids)          # the written-out formulas, everywhere inside the block

The choice is a context variable: it holds for this thread (and task) only, so two requests of a
server never see each other's.
"""
from contextlib import contextmanager
from contextvars import ContextVar

_FORMULAS: ContextVar[bool] = ContextVar("tinyllm_formulas", default=False)


def written_out() -> bool:
    """True inside ``formulas()``: the layers compute their formulas, not the fused kernels."""
    return _FORMULAS.get()


@contextmanager
def formulas(on: bool = True):
    """For the block: the written-out formulas (``on``) or the fused kernels (``on=False``)."""
    token = _FORMULAS.set(on)
    try:
        yield
    finally:
        _FORMULAS.reset(token)


__all__ = ["formulas", "written_out"]
