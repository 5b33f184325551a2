"""The components a learner can swap for their own, one kind at a time: each kind's interface,
tinyllm's own implementation of it, and the one way an implementation enters a model.

    kind        constructor (its arguments come from Config)      call
    embedding   Embedding(num_embeddings, dim)                    (...) int ids -> (..., dim)
    layernorm   LayerNorm(dim, eps)                               (B, T, C) -> (B, T, C)
    attention   Attention(config, layer_type)                     (B, T, C) -> (B, T, C)
    mlp         MLP(config)                                       (B, T, C) -> (B, T, C)
    block       Block(config, layer_type)                         (B, T, C) -> (B, T, C)
    loss        loss(h, weight, targets), a function or class     (N, C), (V, C), (N,) -> ()
    optimizer   Optimizer(params, lr, weight_decay)               .step() after backward
    tokenizer   Tokenizer(directory)                              .encode(text), .decode(ids)

``interface(kind)`` is the full text (``tinyllm check --interface KIND``): constructor, call,
shapes, the parameter names weights are loaded by, the formula. ``load('attention=my.py:Attn')``
imports a learner's class (``tinyllm check --use``); ``parts(...)`` is the set of
implementations a check or a training run uses, tinyllm's own where none is given;
``build_block``/``build_gpt`` seat them in tinyllm's model. The parity table
(``tinyllm.check``) and the side-by-side training (``tinyllm.retrain``) take a ``parts``, so
tinyllm's own classes and a learner's go through the same rows and the same model.

Adding a kind is one ``Kind`` in ``KINDS`` (with tinyllm's own ``Implementation`` in ``OWN``) and,
for a module of the model, its seats in ``build_block``/``build_gpt``.
"""
import functools
import importlib
import importlib.util
import inspect
import sys
import sysconfig
import textwrap
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import nn as tnn
from .errors import TinyLLMError
from .model import GPT
from .nn.loss import linear_cross_entropy
from .optim import Muon
from .tokenizer import Tokenizer

# -- the kinds ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    summary: str                 # one line: what it is
    construct: Callable          # (cls, *args) -> instance: how tinyllm calls a learner's class
    interface: str               # constructor, call, shapes, formula (check --interface)
    parameters: dict = field(default_factory=dict)   # name -> what it is (weights load by name)
    example: str = ""            # the command that checks it


def _module(cls, *args):
    """A learner's module class made with tinyllm's arguments, ready for its seat in the model
    (``_seated``)."""
    return _call(_seated(cls), *args)


def _optimizer(cls, params, lr, weight_decay):
    return _call(cls, params, lr=lr, weight_decay=weight_decay)


def _loss(obj):
    """A loss function as it is; a class is made with no arguments."""
    return _call(obj) if inspect.isclass(obj) else obj


def _call(cls, *args, **kwargs):
    """``cls(*args, **kwargs)``; a constructor that does not take these arguments is a
    ``Mismatch`` that shows its signature (a TypeError raised inside it stays the learner's)."""
    try:
        return cls(*args, **kwargs)
    except TypeError as e:
        if blame(e, learner_only=True) is not None:
            raise
        raise Mismatch(f"tinyllm makes it as {cls.__name__}({_arguments(args, kwargs)}), which "
                       f"{cls.__name__}{inspect.signature(cls)} does not take: see tinyllm "
                       "check --interface") from None


def _arguments(args, kwargs) -> str:
    shown = [type(a).__name__ if not isinstance(a, (int, float, str)) else repr(a) for a in args]
    return ", ".join(shown + [f"{k}={v!r}" for k, v in kwargs.items()])


_CHECK = "tinyllm check --use {kind}=my_{kind}.py:{name}"

KINDS = {k.name: k for k in [
    Kind("embedding", "a learnable lookup table: token and position embeddings",
         lambda cls, config, num, dim: _module(cls, num, dim), """\
    class Embedding(nn.Module):
        def __init__(self, num_embeddings, dim)   # (vocab_size or max positions, hidden_size)
        def forward(self, ids)                    # ids: (...) int64  ->  (..., dim)

    E ∈ R^(N × dim),  embed(ids) = E[ids]        row i of E is the vector of id i

The model makes two: token ids (B, T) index a (vocab_size × C) table; positions 0..T-1, a 1-D
tensor (T,), index a (max_position_embeddings × C) table and broadcast over the batch. GPT-Neo
starts E at N(0, 0.02).""",
         {"weight": "E, (num_embeddings, dim); the output head shares the token table when "
                    "config.tie_embeddings"},
         _CHECK.format(kind="embedding", name="Embedding")),
    Kind("layernorm", "layer normalisation with a learnable scale and shift",
         lambda cls, config: _module(cls, config.hidden_size, config.layer_norm_epsilon), """\
    class LayerNorm(nn.Module):
        def __init__(self, dim, eps=1e-5)         # (hidden_size, layer_norm_epsilon)
        def forward(self, x)                      # x: (..., dim)  ->  (..., dim)

    μ = mean(x),  σ² = mean((x - μ)²)             over the last dimension (biased: ÷ dim)
    y = (x - μ) / √(σ² + ε) · γ + β

γ starts at ones, β at zeros (torch.nn.LayerNorm's defaults).""",
         {"weight": "γ, the learnable scale, (dim,)", "bias": "β, the learnable shift, (dim,)"},
         _CHECK.format(kind="layernorm", name="LayerNorm")),
    Kind("rmsnorm", "RMS normalisation with a learnable scale (Llama's norm)",
         lambda cls, config: _module(cls, config.hidden_size, config.layer_norm_epsilon), """\
    class RMSNorm(nn.Module):
        def __init__(self, dim, eps=1e-6)         # (hidden_size, layer_norm_epsilon)
        def forward(self, x)                      # x: (..., dim)  ->  (..., dim)

    rms(x) = √(mean(x²) + ε)                      over the last dimension
    y = x / rms(x) · γ

γ starts at ones (torch.nn.RMSNorm's default). No mean is subtracted and there is no shift.""",
         {"weight": "γ, the learnable scale, (dim,)"},
         _CHECK.format(kind="rmsnorm", name="RMSNorm")),
    Kind("attention", "causal multi-head self-attention, global or with GPT-Neo's local window",
         lambda cls, config, layer_type: _module(cls, config, layer_type), """\
    class Attention(nn.Module):
        def __init__(self, config, layer_type="global")   # layer_type: 'global' or 'local'
        def forward(self, x)                              # x: (B, T, C)  ->  (B, T, C)

config: hidden_size C, num_heads H (head size d = C / H), attention ('gpt-neo': s = 1, as
GPT-Neo, which does not scale; 'scaled': s = 1/√d), window_size W (a 'local' layer's query i sees
the keys i-W+1 .. i, itself included; None: no window; 'global' sees 0 .. i).

    q, k, v = x W_qᵀ, x W_kᵀ, x W_vᵀ            each split into H heads: (B, H, T, d)
    s_ij = s · q_i · k_j                         -∞ where j > i (causal); local: also i - j ≥ W
    y = concat_heads(softmax_j(s) v) W_oᵀ + b_o  (B, T, C)

Keep the matrices in nn.Linear layers: training decays nn.Linear weights (and gives them Muon).
Optional: forward(self, x, kv=None, pos=0) with tinyllm's key/value cache (kv: this layer's
(B, 2, H, size, d) buffer, pos: the position of x[:, 0]; see tinyllm/nn/attention.py) is checked
by the 'kv cache' rows and makes generation fast; without it those rows are skipped.""",
         {"q_proj.weight, k_proj.weight, v_proj.weight":
              "W_q, W_k, W_v: nn.Linear(C, C, bias=False) each (GPT-Neo's names) -- or one "
              "qkv = nn.Linear(C, 3C, bias=False) holding [W_q; W_k; W_v] (tinyllm's)",
          "out_proj.weight, out_proj.bias": "W_o, b_o: nn.Linear(C, C)"},
         _CHECK.format(kind="attention", name="Attention")),
    Kind("mlp", "the position-wise feed-forward network of a block",
         lambda cls, config: _module(cls, config), """\
    class MLP(nn.Module):
        def __init__(self, config)
        def forward(self, x)                      # x: (B, T, C)  ->  (B, T, C)

config: hidden_size C, intermediate_size I (None: 4C), activation ('gelu_new' is the one
checked: GPT-Neo's).

    MLP(x) = act(x W₁ᵀ + b₁) W₂ᵀ + b₂
    gelu_new(x) = ½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))     GELU, tanh approximation

Keep the matrices in nn.Linear layers: training decays nn.Linear weights (and gives them Muon).""",
         {"c_fc.weight, c_fc.bias": "W₁, b₁: nn.Linear(C, I)",
          "c_proj.weight, c_proj.bias": "W₂, b₂: nn.Linear(I, C)"},
         _CHECK.format(kind="mlp", name="MLP")),
    Kind("block", "a pre-LayerNorm transformer block (GPT-2 / GPT-Neo layout)",
         lambda cls, config, layer_type: _module(cls, config, layer_type), """\
    class Block(nn.Module):
        def __init__(self, config, layer_type="global")
        def forward(self, x)                      # x: (B, T, C)  ->  (B, T, C)

    x = x + Attention(LN₁(x))
    x = x + MLP(LN₂(x))

Its parts may be yours or tinyllm's (tinyllm.nn.LayerNorm, Attention, MLP); they keep their own
parameter names under the block's. Optional: forward(self, x, kv=None, pos=0), passed on to the
attention (see attention).""",
         {"ln_1.*, ln_2.*": "two LayerNorms (weight, bias)", "attn.*": "an attention",
          "mlp.*": "an MLP"},
         _CHECK.format(kind="block", name="Block")),
    Kind("loss", "the vocabulary head and the cross-entropy of the next token",
         lambda obj: _loss(obj), """\
    def loss(h, weight, targets, ignore_index=-100)     # or a class whose instances do this
        # h: (N, C) hidden states, weight: (V, C) head, targets: (N,) int64  ->  a 0-d tensor

    z_i = W h_i                                   the logits of row i, (V,)
    ℓ_i = logsumexp(z_i) - z_i[y_i]               its cross-entropy
    L = (1/n) Σ_i ℓ_i                             over the n rows whose target is not ignore_index

Gradients reach h and W through autograd (or your own backward).""",
         {}, _CHECK.format(kind="loss", name="cross_entropy")),
    Kind("optimizer", "Muon for 2-D weight matrices (the blocks' nn.Linear weights)",
         _optimizer, """\
    class Muon(torch.optim.Optimizer):
        def __init__(self, params, lr, weight_decay, momentum=0.95)
        def step(self)                            # after backward: update each p with a grad

For a matrix W (m × n) with gradient G, momentum μ, learning rate η and decay λ:

    B ← μ B + (1 - μ) G                           momentum buffer (starts at 0)
    U = (1 - μ) G + μ B                           Nesterov: look one step ahead
    O = NS₅(U / ‖U‖_F)                            5 iterations X ← aX + (bA + cA²)X, A = X Xᵀ,
                                                  (a, b, c) = (3.4445, -4.7750, 2.0315), on the
                                                  wide orientation (transpose when m > n)
    W ← W (1 - η λ) - η · 0.2 √max(m, n) · O

Checked against torch.optim.Muon(adjust_lr_fn='match_rms_adamw'), which iterates NS₅ in
bfloat16: a float32 one agrees to about 5e-4 after 3 steps.""",
         {}, _CHECK.format(kind="optimizer", name="Muon")),
    Kind("tokenizer", "byte-level BPE in GPT-2's format (vocab.json + merges.txt)",
         lambda cls, directory: cls(directory), """\
    class Tokenizer:
        def __init__(self, directory)             # a pathlib.Path holding vocab.json and merges.txt
        def encode(self, text) -> list[int]
        def decode(self, ids) -> str

    1. cut the text at each <|endoftext|> (one token by itself)
    2. split each piece into words with GPT-2's pattern (tinyllm.bpe.PATTERN)
    3. write a word's UTF-8 bytes as characters (tinyllm.bpe.bytes_to_unicode: space -> 'Ġ')
    4. merge the adjacent pair of lowest rank (its line in merges.txt) until none is a rule;
       look the symbols up in vocab.json
    decode: ids -> strings -> bytes -> text (invalid UTF-8 -> U+FFFD)

decode(encode(text)) must give the text back, and the ids must equal the tokenizers library's.""",
         {}, _CHECK.format(kind="tokenizer", name="Tokenizer")),
]}


def interface(kind: str) -> str:
    """The interface of ``kind`` as ``tinyllm check --interface`` prints it."""
    k = kind_named(kind)
    lines = [f"{k.name}: {k.summary}", "", k.interface]
    if k.parameters:
        lines += ["", "parameters (the checks load the reference's weights into yours by name):"]
        for name, what in k.parameters.items():
            lines += [f"    {name}"] + textwrap.wrap(what, 92, initial_indent=" " * 8,
                                                     subsequent_indent=" " * 8)
    train = "" if k.name == "optimizer" else "  [--train 200]"   # see retrain.check_request
    lines += ["", f"tinyllm's own: {OWN[k.name].name}", f"check yours:   {k.example}{train}"]
    return "\n".join(lines)


def kinds() -> str:
    """The kinds, one line each (``tinyllm check --interface`` without a kind)."""
    return "\n".join([f"{k.name:<10} {k.summary}" for k in KINDS.values()]
                     + ["", "tinyllm check --interface KIND prints one in full"])


def kind_named(name: str) -> Kind:
    if name not in KINDS:
        raise TinyLLMError(f"unknown component kind {name!r}: use one of {', '.join(KINDS)}")
    return KINDS[name]


# -- implementations ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Implementation:
    """One implementation of a kind. ``make(*args)`` builds it with the arguments of the kind's
    constructor (a Config first for the modules of the model); ``variants`` are the Config
    changes (or, for the loss and the optimizer, keyword arguments) it is also checked under;
    ``source``: where the learner's class is defined, None for tinyllm's own; ``cls`` that
    class (or function)."""
    kind: str
    name: str
    make: Callable
    variants: tuple = ({},)
    source: str | None = None
    cls: object = None

    @property
    def learner(self) -> bool:
        return self.source is not None

    @property
    def cached(self) -> bool:
        """Whether its forward takes tinyllm's key/value cache (attention and block)."""
        return not self.learner or _accepts(self.cls, "kv")

    @property
    def label(self) -> str:
        return f"{self.name} ({self.source})" if self.learner else self.name


_EXPLICIT = ({"explicit": False}, {"explicit": True})   # the fused kernels and the formulas

OWN = {i.kind: i for i in [
    Implementation("embedding", "tinyllm.nn.Embedding",
                   lambda config, num, dim: tnn.Embedding(num, dim)),
    Implementation("layernorm", "tinyllm.nn.LayerNorm", lambda config: tnn.LayerNorm(
        config.hidden_size, config.layer_norm_epsilon, config.explicit), _EXPLICIT),
    Implementation("rmsnorm", "tinyllm.nn.RMSNorm", lambda config: tnn.RMSNorm(
        config.hidden_size, config.layer_norm_epsilon, config.explicit), _EXPLICIT),
    Implementation("attention", "tinyllm.nn.Attention", tnn.Attention, _EXPLICIT),
    Implementation("mlp", "tinyllm.nn.MLP", tnn.MLP, tuple(
        {"activation": a, **e} for a in ("gelu_new", "gelu", "relu") for e in _EXPLICIT)),
    Implementation("block", "tinyllm.nn.Block", tnn.Block, _EXPLICIT),
    Implementation("loss", "tinyllm.nn.loss.linear_cross_entropy",
                   lambda: linear_cross_entropy, ({"chunk_size": 16},)),   # several chunks
    Implementation("optimizer", "tinyllm.optim.Muon",
                   lambda params, lr, weight_decay, **kw: Muon(params, lr=lr,
                                                               weight_decay=weight_decay, **kw),
                   ({"ns_dtype": torch.bfloat16}, {"ns_dtype": torch.float32})),
    Implementation("tokenizer", "tinyllm.bpe.BPE, as Tokenizer(directory, backend='tinyllm')",
                   lambda directory: Tokenizer(directory, backend="tinyllm")),
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


# -- loading a learner's class ------------------------------------------------------------------

def load(spec: str) -> Implementation:
    """``KIND=PATH:NAME`` -> the learner's implementation: PATH a .py file or a dotted module
    path (importable from the current directory), NAME a class (a function too for the loss)."""
    kind, sep, target = spec.partition("=")
    path, colon, name = target.rpartition(":")
    if not sep or not colon or not path or not name:
        raise TinyLLMError(f"--use {spec!r}: write KIND=PATH:NAME, e.g. "
                           f"attention=my_attention.py:Attention")
    k = kind_named(kind.strip())
    module = _import(path.strip(), spec)
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


def _import(path: str, spec: str):
    """The module at ``path`` (a file, or a dotted name importable from the current directory);
    the file's directory goes on sys.path (last: it shadows nothing), so that it may import its
    neighbours."""
    file = Path(path).expanduser()
    if path.endswith(".py") or file.exists():
        if not file.is_file():
            raise TinyLLMError(f"--use {spec}: {path} does not exist")
        file = file.resolve()
        folder = str(file.parent)
        if folder not in sys.path:
            sys.path.append(folder)
        for module in list(sys.modules.values()):      # imported already (by a neighbour)
            if getattr(module, "__file__", None) and Path(module.__file__).resolve() == file:
                return module
        name = file.stem if file.stem not in sys.modules else f"_tinyllm_learner_{file.stem}"
        loader_spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        try:
            with learner_errors(f"importing {path}"):
                loader_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    if "." not in sys.path and "" not in sys.path:
        sys.path.append("")          # a dotted path is looked up from the current directory too
    try:
        with learner_errors(f"importing {path}"):
            return importlib.import_module(path)
    except ModuleNotFoundError as e:
        if e.name and path.startswith(e.name):
            raise TinyLLMError(f"--use {spec}: no module or file {path!r} (give a .py file or "
                               "a module importable from here)") from None
        raise


# -- a learner's exceptions -----------------------------------------------------------------------

class LearnerError(TinyLLMError):
    """An exception raised in a learner's code (their file and line), not in tinyllm's."""


_TINYLLM = Path(__file__).resolve().parent
_LIBRARIES = tuple({str(Path(p).resolve()) for p in (
    sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
    sysconfig.get_paths()["platlib"], Path(torch.__file__).parent.parent)})
_HARNESS = {str(p) for p in (_TINYLLM / "check").glob("*.py")} | \
    {str(_TINYLLM / name) for name in ("components.py", "retrain.py")}


def blame(exc: BaseException, learner_only: bool = False):
    """The innermost frame of ``exc``'s traceback in the code under test: not a library's (the
    standard library, torch, site-packages) nor the checking harness's; with ``learner_only``,
    not tinyllm's either. None when there is none."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = str(Path(frame.filename).resolve()) if not frame.filename.startswith("<") else ""
        if not path or path in _HARNESS:
            continue
        if path.startswith(str(_TINYLLM) + "/"):       # tinyllm's code (wherever it is installed)
            return None if learner_only else frame      # learner_only: then a tinyllm bug
        if not path.startswith(_LIBRARIES):
            return frame
    return None


def describe(exc: BaseException, frame=None) -> str:
    """One line: the exception and where it was raised (file:line in function: the code)."""
    frame = frame if frame is not None else blame(exc)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" + (f" ({where(frame)})" if frame else "")


def where(frame) -> str:
    """'at file:line in function: code' for a traceback frame."""
    code = f": {frame.line.strip()}" if frame.line else ""
    return f"at {_short(Path(frame.filename))}:{frame.lineno} in {frame.name}{code}"


class learner_errors:
    """Within this block an exception raised in a learner's code becomes a ``LearnerError``
    naming their file and line (``what``: what tinyllm was doing); anything else goes on as
    it is (a TinyLLMError is the user's to fix, the rest a tinyllm bug)."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if not isinstance(exc, Exception) or isinstance(exc, TinyLLMError):
            return False
        if isinstance(exc, SyntaxError) and exc.filename and not exc.filename.startswith("<"):
            raise LearnerError(f"{self.what}: SyntaxError: {exc.msg} (at "
                               f"{_short(Path(exc.filename))}:{exc.lineno})") from exc
        frame = blame(exc, learner_only=True)
        if frame is None:
            return False
        raise LearnerError(f"{self.what}: your code raised {describe(exc, frame)}") from exc


def _short(path: Path) -> str:
    """``path`` relative to the current directory when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# -- weights by name: a reference's (or tinyllm's) into an implementation -------------------------

class Mismatch(TinyLLMError):
    """What is wrong with an implementation, in one line, whatever the numbers: a missing
    parameter, a wrong shape, NaN... (``tinyllm.check`` shows it as its row's diagnosis)."""

    def __init__(self, message: str, diff: float | None = None):
        super().__init__(message)
        self.diff = diff


def bind(module: nn.Module, state: dict, kind: str | None = None) -> dict:
    """Which tensor of ``state`` (tinyllm's names) each parameter of ``module`` takes, as
    {name: (state name, third of a stacked qkv or None)}: the same name, or for GPT-Neo's
    ``q_proj``/``k_proj``/``v_proj`` a third of tinyllm's ``qkv``. Raises ``Mismatch`` naming
    what does not line up (``kind``'s interface describes its parameters)."""
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
        hints = KINDS[kind].parameters if kind in KINDS else {}
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


def load_weights(module: nn.Module, state: dict, kind: str | None = None) -> dict:
    """Copy ``state`` (tinyllm's names) into ``module``'s parameters by name; returns the
    binding (see ``bind``)."""
    binding = bind(module, state, kind)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(view(state, binding[name]))
    return binding


# -- seating implementations in tinyllm's model ---------------------------------------------------

@functools.lru_cache(maxsize=None)
def _accepts(cls, name: str) -> bool:
    """Whether ``cls.forward`` takes the keyword argument ``name``."""
    forward = getattr(cls, "forward", None)
    if forward is None:
        return False
    params = inspect.signature(forward).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _neutral() -> dict:
    """The keyword arguments tinyllm's model passes to attention and blocks, at the values that
    mean "not used" (no cache, from position 0, no rotary positions): their forward's defaults."""
    out = {}
    for forward in (tnn.Attention.forward, tnn.Block.forward):
        out.update({n: p.default for n, p in inspect.signature(forward).parameters.items()
                    if p.default is not inspect.Parameter.empty})
    return out


@functools.lru_cache(maxsize=None)
def _seated(cls):
    """``cls`` ready for its seat in tinyllm's model, which calls attention and blocks as
    forward(x, kv=..., pos=..., rope=...): a subclass whose forward drops the keyword arguments
    ``cls.forward`` does not take while they are at their "not used" values (``_neutral``) and
    says what is missing when they are not. ``cls`` itself when it is not a module."""
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        return cls
    neutral = _neutral()

    def unused(name, value) -> bool:
        default = neutral.get(name, inspect.Parameter.empty)
        return value is default or (type(value) is type(default) and value == default)

    def forward(self, *args, **context):
        for name in [n for n in context if not _accepts(cls, n)]:
            if not unused(name, context.pop(name)):
                raise TinyLLMError(
                    f"{cls.__name__}.forward takes no {name!r}, which this model passes"
                    f"{' (a key/value cache: generation uses one)' if name == 'kv' else ''}: "
                    f"add it to forward (see tinyllm check --interface)")
        return cls.forward(self, *args, **context)

    return type(cls.__name__, (cls,), {"forward": forward, "__module__": cls.__module__,
                                       "__qualname__": cls.__qualname__})


def build_block(chosen: dict, config, layer_type: str = "global") -> nn.Module:
    """A block with ``chosen``'s implementations: the learner's block, or tinyllm's with the
    learner's norms, attention and MLP in their seats."""
    block = chosen["block"].make(config, layer_type)
    if not chosen["block"].learner:
        _seat_parts(block, chosen, config, layer_type)
    return block


def _seat_parts(block: nn.Module, chosen: dict, config, layer_type: str) -> list:
    """Put the learner's norms, attention and MLP in a tinyllm block's seats (ln_1, ln_2, attn,
    mlp); returns the modules put there."""
    new = []
    norm = _norm(chosen, config)
    if norm is not None:
        block.ln_1, block.ln_2 = norm.make(config), norm.make(config)
        new += [block.ln_1, block.ln_2]
    if chosen["attention"].learner:
        block.attn = chosen["attention"].make(config, layer_type)
        new.append(block.attn)
    if chosen["mlp"].learner:
        block.mlp = chosen["mlp"].make(config)
        new.append(block.mlp)
    return new


def build_gpt(chosen: dict, config, tokenizer=None):
    """tinyllm's GPT with ``chosen``'s implementations in their seats — the one way a component
    enters the model, for the checks and for training. The modules put in a seat get the
    model's initialisation (N(0, 0.02) for nn.Linear weights, zero biases); the rest is as
    ``GPT(tokenizer, config)`` makes it, so that with every kind tinyllm's own the two are equal
    weight for weight. A learner's loss becomes the model's ``loss``."""
    if chosen["loss"].learner:
        model = LearnerLossGPT(tokenizer, config, chosen["loss"].make())
    else:
        model = GPT(tokenizer, config)
    c = model.config                                    # vocab_size filled in from the tokenizer
    new = []
    if chosen["embedding"].learner:
        model.wte = chosen["embedding"].make(c, c.vocab_size, c.hidden_size)
        new.append(model.wte)
        if getattr(model, "wpe", None) is not None:      # learned positions (not rotary)
            model.wpe = chosen["embedding"].make(c, c.max_position_embeddings, c.hidden_size)
            new.append(model.wpe)
        if c.tie_embeddings:
            if not isinstance(getattr(model.wte, "weight", None), nn.Parameter):
                raise TinyLLMError(f"{chosen['embedding'].name} keeps no .weight parameter: "
                                   "the output head shares the token table (tie_embeddings)")
            model.lm_head.weight = model.wte.weight
    for i, layer_type in enumerate(c.attention_layers):
        if chosen["block"].learner:
            model.blocks[i] = chosen["block"].make(c, layer_type)
            new.append(model.blocks[i])
        else:
            new += _seat_parts(model.blocks[i], chosen, c, layer_type)
    norm = _norm(chosen, c)
    if norm is not None:
        model.ln_f = norm.make(c)
        new.append(model.ln_f)
    for module in new:
        module.apply(GPT._init_weights)
    return model


NORM_KINDS = ("layernorm", "rmsnorm")    # the kinds that sit in a block's norm seats


def norm_kind(config) -> str:
    """The kind of the model's norm seats: ``config.norm`` (GPT-Neo's LayerNorm by default)."""
    return getattr(config, "norm", "layernorm")


def _norm(chosen: dict, config):
    """The learner's norm for the model's norm seats, None when they stay tinyllm's (also when
    the learner's norm is of another kind than ``config``'s: it has no seat there)."""
    impl = chosen.get(norm_kind(config))
    return impl if impl is not None and impl.learner else None


class LearnerLossGPT(GPT):
    """tinyllm's GPT whose ``loss`` is a learner's: (h, head weight, targets) -> the mean loss."""

    def __init__(self, tokenizer, config, loss_fn):
        super().__init__(tokenizer, config)
        self.loss_fn = loss_fn

    def loss(self, ids, targets, ignore_index: int = -100, reduction: str = "mean"):
        h = self.hidden_states(ids).flatten(0, 1)                        # (B·T, C)
        y = targets.flatten()                                            # (B·T,)
        mean = self.loss_fn(h, self.lm_head.weight, y, ignore_index=ignore_index)
        return mean if reduction == "mean" else mean * (y != ignore_index).sum()


__all__ = ["Kind", "KINDS", "Implementation", "OWN", "interface", "kinds", "kind_named", "parts",
           "swapped", "load", "implementation", "LearnerError", "learner_errors", "blame",
           "describe", "where", "Mismatch", "bind", "view", "load_weights", "build_block",
           "build_gpt", "LearnerLossGPT", "NORM_KINDS", "norm_kind"]
