"""The implementations under test: tinyllm's own of each kind, a learner's, and the model built
from the ones chosen.

``load('attention=my.py:Attn')`` imports a learner's class (``tinyllm check --use``);
``parts(...)`` is the set of implementations a check or a training run uses, tinyllm's own where
none is given; ``build_gpt(chosen, config)`` is tinyllm's GPT assembled from them
(``tinyllm.model.parts.Parts``). The parity table (``tinyllm.check``) and the side-by-side training
(``tinyllm.check.retrain``) take a ``parts``, so tinyllm's own classes and a learner's go through
the same rows and the same model.
"""
import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import TinyLLMError
from ..model import GPT, Parts
from ..model import nn as tnn
from ..model.parts import takes_cache
from ..tokenizer import Tokenizer
from ..train.optim import Muon
from .kinds import KINDS, kind_named
from .learner import _short, import_learner_module


@dataclass(frozen=True)
class Implementation:
    """One implementation of a kind. ``make(*args)`` builds it with the arguments the model gives
    that kind (``kinds.KINDS``: ``Embedding(num, dim)``, ``Attention(config, layer_type)``...);
    ``variants`` are the Config changes (for the loss and the optimizer, keyword arguments) it
    is also checked under, ``kernels`` whether fused (False) and written out (True) —
    ``kernels.formulas()`` — both; ``source``: where the learner's class is defined, None for
    tinyllm's own; ``cls`` that class (or function)."""
    kind: str
    name: str
    make: Callable
    variants: tuple = ({},)
    kernels: tuple = (False,)
    source: str | None = None
    cls: object = None

    @property
    def learner(self) -> bool:
        return self.source is not None

    @property
    def cached(self) -> bool:
        """Whether its forward takes tinyllm's key/value cache (attention and block)."""
        return not self.learner or takes_cache(self.cls)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.source})" if self.learner else self.name


BOTH = (False, True)     # tinyllm's layers with a fused kernel and a formula: checked as both


def _own(kind: str, make: Callable, variants: tuple = ({},), kernels: tuple = (False,)):
    return Implementation(kind, KINDS[kind].own, make, variants, kernels)


OWN = {i.kind: i for i in [
    _own("embedding", tnn.Embedding),
    _own("layernorm", tnn.LayerNorm, kernels=BOTH),
    _own("rmsnorm", tnn.RMSNorm, kernels=BOTH),
    _own("attention", tnn.Attention, kernels=BOTH),
    _own("mlp", tnn.MLP, tuple({"activation": a} for a in ("gelu_new", "gelu", "relu")), BOTH),
    _own("block", tnn.Block, kernels=BOTH),
    _own("loss", lambda: tnn.linear_cross_entropy, ({"chunk_size": 16},)),   # several chunks
    _own("optimizer", lambda params, lr, weight_decay, **kw: Muon(params, lr=lr,
                                                                  weight_decay=weight_decay, **kw),
         ({"ns_dtype": torch.bfloat16}, {"ns_dtype": torch.float32})),
    _own("tokenizer", lambda directory: Tokenizer(directory, backend="tinyllm")),
]}


def parts(*implementations: Implementation) -> dict:
    """Every kind's implementation: the given ones, tinyllm's own for the rest."""
    chosen = {k: OWN[k] for k in KINDS}
    for impl in implementations:
        chosen[impl.kind] = impl
    return chosen


def swapped(chosen: dict) -> list[str]:
    """The kinds of ``chosen`` that are a learner's."""
    return [k for k, impl in chosen.items() if impl.learner]


# -- a learner's class --------------------------------------------------------------------------

def load(spec: str) -> Implementation:
    """``KIND=PATH:NAME`` -> the learner's implementation: PATH a .py file or a dotted module
    path (importable from the current directory), NAME a class (a function too for the loss)."""
    kind, sep, target = spec.partition("=")
    path, colon, name = target.rpartition(":")
    if not sep or not colon or not path or not name:
        raise TinyLLMError(f"--use {spec!r}: write KIND=PATH:NAME, e.g. "
                           f"attention=my_attention.py:Attention")
    k = kind_named(kind.strip())
    module = import_learner_module(path.strip(), spec)
    obj = getattr(module, name.strip(), None)
    if obj is None:
        defined = sorted(n for n, v in vars(module).items()
                         if (inspect.isclass(v) or inspect.isfunction(v))
                         and getattr(v, "__module__", None) == module.__name__)
        raise TinyLLMError(f"--use {spec}: {path} has no {name!r} (it defines "
                           f"{', '.join(defined) or 'no classes or functions'})")
    if not inspect.isclass(obj) and not (k.name == "loss" and callable(obj)):
        raise TinyLLMError(f"--use {spec}: {name} is a {type(obj).__name__}, not a class")
    return implementation(k.name, obj)


def implementation(kind: str, obj) -> Implementation:
    """A learner's class (or, for the loss, function) ``obj`` as the implementation of ``kind``:
    what ``--use`` makes of PATH:NAME, and the way in from Python (a notebook)::

        rows = run_checks(parts=parts(implementation("attention", MyAttention)))"""
    k = kind_named(kind)
    try:
        source = _short(Path(inspect.getsourcefile(obj)))
    except TypeError:                 # defined where Python keeps no file
        source = "<python>"
    name = getattr(obj, "__name__", type(obj).__name__)
    return Implementation(k.name, name, functools.partial(k.construct, obj), source=source,
                          cls=obj)


# -- the model built from them ------------------------------------------------------------------

NORM_KINDS = ("layernorm", "rmsnorm")    # the kinds that sit in a block's norm seats


def norm_kind(config) -> str:
    """The kind of the model's norm seats: ``config.norm`` (GPT-Neo's LayerNorm by default)."""
    return getattr(config, "norm", "layernorm")


def model_parts(chosen: dict, config) -> Parts:
    """The model's ``Parts`` for ``chosen``: the learner's classes in their seats, None (the
    config's own) elsewhere. A learner's norm sits in the norm seats when it is of the kind
    ``config`` has; a learner's loss is made once (a class with no arguments)."""
    def mine(kind):
        impl = chosen[kind]
        return impl.make if impl.learner else None
    return Parts(embedding=mine("embedding") or tnn.Embedding, norm=mine(norm_kind(config)),
                 attention=mine("attention"), mlp=mine("mlp"), block=mine("block"),
                 loss=chosen["loss"].make() if chosen["loss"].learner else None)


def build_gpt(chosen: dict, config, tokenizer=None) -> GPT:
    """tinyllm's GPT assembled from ``chosen``'s implementations — the one way a component
    enters the model, for the checks and for training. Every module gets the model's
    initialisation (N(0, 0.02) for nn.Linear weights, zero biases), so that with every kind
    tinyllm's own the model is ``GPT(tokenizer, config)`` weight for weight."""
    return GPT(tokenizer, config, model_parts(chosen, config))


def build_block(chosen: dict, config, layer_type: str = "global"):
    """A block with ``chosen``'s implementations: the learner's block, or tinyllm's with the
    learner's norms, attention and MLP in their seats."""
    return model_parts(chosen, config).make_block(config, layer_type)


__all__ = ["Implementation", "OWN", "parts", "swapped", "load", "implementation", "build_gpt",
           "build_block", "model_parts", "NORM_KINDS", "norm_kind"]
