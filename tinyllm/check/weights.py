"""Weights by name: a reference's (or tinyllm's) state dict loaded into an implementation under
test, whatever it calls its parts — GPT-Neo's separate q/k/v projections take thirds of tinyllm's
stacked ``qkv`` — and what does not line up said in one line."""
import torch
from torch import nn

from .common import Mismatch


def bind(module: nn.Module, state: dict, kind: str | None = None, hints: dict | None = None) -> dict:
    """Which tensor of ``state`` (tinyllm's names) each parameter of ``module`` takes, as
    {name: (state name, third of a stacked qkv or None)}: the same name, or for GPT-Neo's
    ``q_proj``/``k_proj``/``v_proj`` a third of tinyllm's ``qkv``. Raises ``Mismatch`` naming
    what does not line up; ``hints``: what each parameter of ``kind`` is, from its interface."""
    thirds = {}
    for name in state:
        if name == "qkv.weight" or name.endswith(".qkv.weight"):
            for i, p in enumerate("qkv"):
                thirds[name[:-len("qkv.weight")] + f"{p}_proj.weight"] = (name, i)
    binding, unexpected, wrong = {}, [], []
    for name, p in module.named_parameters():
        source = (name, None) if name in state else thirds.get(name)
        if source is None:
            unexpected.append(f"{name} {tuple(p.shape)}")
            continue
        want = tuple(view(state, source).shape)
        if tuple(p.shape) != want:
            transposed = " (transposed: nn.Linear(in, out) keeps its weight as (out, in))" \
                if tuple(p.shape) == want[::-1] else ""
            wrong.append(f"{name} is {tuple(p.shape)} where the reference's is {want}{transposed}")
        binding[name] = source
    if wrong:
        raise Mismatch("; ".join(wrong))
    used = {_key(state[s]) for s, _ in binding.values()}
    missing = [n for n in state if _key(state[n]) not in used]
    if missing or unexpected:
        hints = hints or {}
        mine = sum(p.numel() for p in module.parameters())
        ref = sum(t.numel() for t in {_key(t): t for t in state.values()}.values())
        found = []
        if missing:
            found.append("lacks " + ", ".join(
                f"{n} {tuple(state[n].shape)}" + (f" ({hints[n]})" if n in hints else "")
                for n in missing))
        if unexpected:
            found.append(f"has {', '.join(unexpected)}, which the reference has not")
        see = f" (see tinyllm check --interface {kind})" if kind else ""
        raise Mismatch(f"{mine:,} parameters where the reference has {ref:,}: "
                       f"{'; '.join(found)}; weights are loaded by name{see}")
    return binding


def _key(t: torch.Tensor):
    """Tensors sharing memory (tied weights) are one parameter."""
    return t.data_ptr(), tuple(t.shape)


def view(state: dict, source) -> torch.Tensor:
    """The tensor ``source`` (a ``bind`` value) names in ``state``."""
    name, third = source
    return state[name] if third is None else state[name].chunk(3, dim=0)[third]


def load_weights(module: nn.Module, state: dict, kind: str | None = None,
                 hints: dict | None = None) -> dict:
    """Copy ``state`` (tinyllm's names) into ``module``'s parameters by name; returns the
    binding (see ``bind``)."""
    binding = bind(module, state, kind, hints)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(view(state, binding[name]))
    return binding


__all__ = ["bind", "view", "load_weights"]
