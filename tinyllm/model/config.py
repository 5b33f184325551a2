"""``Config``: every hyper-parameter of the model, plain values with the defaults of the blog
series "Building GPT from Scratch".

``Config()`` is the series' model: 8 GPT-Neo blocks, 64 wide, 16 heads, a 64-token context and
local (windowed) attention on every layer. ``tinyllm train`` trains other shapes
(``tinyllm.model.presets``: its default, GPT-Neo's and Llama's components).

The components of newer models are switches whose defaults are GPT-Neo's: ``position``
(learned table or rotary, on all of each head or a share of it), ``norm`` (LayerNorm or
RMSNorm), ``mlp`` (plain or gated, e.g. SwiGLU), ``activation`` (ReLU² among them), ``bias``,
``qkv_bias``, ``parallel_residual``, ``qk_norm``, ``logit_softcap`` and ``zero_init``.
``tinyllm.formats.gpt_neo``, ``gpt_neox`` and ``llama`` say which of them GPT-Neo, GPT-NeoX and
Llama have.

A few sizes follow another field unless they are set apart from it: ``embedding_size`` is the
``hidden_size``; ``replace`` keeps ``max_position_embeddings`` equal to ``context_size`` and
``embedding_dropout`` equal to ``residual_dropout`` when they were equal, and repeats the
pattern of ``attention_layers`` when ``num_layers`` changes.

Fields with a help text are also options of ``tinyllm train`` (``--hidden``, ``--layers``, ...):
the command line is generated from them (see ``option``). How the layers compute (fused kernels
or the formulas written out) is no hyper-parameter: it is chosen at run time
(``tinyllm.model.nn.kernels``).
"""
import math
import os
from dataclasses import MISSING, asdict, dataclass, field, fields, replace

from ..errors import TinyLLMError, is_number, whole_number

ATTENTIONS = ("gpt-neo", "scaled")
ACTIVATIONS = ("gelu_new", "gelu", "relu", "silu", "relu2")
LAYER_TYPES = ("global", "local")
POSITIONS = ("learned", "rotary")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("plain", "gated")
RETIRED = ("explicit",)   # fields older configs hold, read and left out (how layers compute is
                          # chosen at run time now: tinyllm.model.nn.kernels)


def option(default=MISSING, help: str = "", *, flag: str | None = None, metavar=None,
           choices=None, aliases: tuple = (), group: str | None = None, fixed: bool = False,
           budget: bool = False, default_factory=MISSING):
    """A dataclass field that is also a command-line option: ``help`` is its help text, ``flag``
    its name when not ``--field-name``, ``choices`` the values allowed, ``group`` the section of
    ``--help`` it is listed in; ``fixed``: it may not change when a run resumes; ``budget``: a
    training budget (giving one on resume replaces the saved ones)."""
    meta = dict(help=help, flag=flag, metavar=metavar, choices=choices, aliases=aliases,
                group=group, fixed=fixed, budget=budget)
    return field(default=default, default_factory=default_factory, metadata=meta)


@dataclass
class Config:
    hidden_size: int = option(64, "width of the residual stream", flag="--hidden", metavar="C")
    embedding_size: int | None = None          # None: hidden_size (they must be equal)
    context_size: int = option(64, "context length in tokens", flag="--context", metavar="T")
    num_layers: int = option(8, "transformer blocks", flag="--layers", metavar="N")
    layer_norm_epsilon: float = 1e-5
    attention_layers: list | None = None       # 'global'/'local' per layer; None: all 'local'
    max_position_embeddings: int = 2048        # rows of the learned position table
    window_size: int | None = option(
        64, "tokens a 'local' layer attends to, itself included (GPT-Neo's sliding window; "
            "tinyllm train alternates global and local layers); none: no window", flag="--window",
        metavar="T")
    attention_dropout: float = option(0.0, "dropout on the attention weights (on a CPU it "
                                           "costs more time than it gives)", metavar="P")
    # dropout None: chosen by the training run from its planned passes over the data
    # (TrainConfig.resolve); a model built with None uses none
    residual_dropout: float | None = option(0.0, "dropout on the embeddings and the residual "
                                                 "branches (tinyllm train's default: by the "
                                                 "planned passes over the data, 0 at one pass, "
                                                 "0.1 at 14 or more)", flag="--dropout",
                                            metavar="P")
    embedding_dropout: float | None = 0.0
    num_heads: int = option(16, "attention heads", flag="--heads", metavar="H")
    intermediate_size: int | None = None       # None: 4 × hidden_size
    activation: str = option("gelu_new", "the MLP's activation", choices=ACTIVATIONS)
    attention: str = option("gpt-neo", "gpt-neo: unscaled scores, as GPT-Neo; scaled: 1/sqrt(d)",
                            choices=ATTENTIONS)
    vocab_size: int | None = None              # None: taken from the tokenizer
    tie_embeddings: bool = option(False, "the output head reuses the token embedding matrix")
    # -- components of newer models (the defaults are GPT-Neo's)
    position: str = option("learned", "learned: a table of position vectors added to the token "
                                      "embeddings (GPT-Neo); rotary: queries and keys rotated "
                                      "by their position (RoPE, Llama)", choices=POSITIONS)
    rope_theta: float = option(10000.0, "rotary base: head pair i turns by position × "
                                        "theta^(-2i/d)", metavar="THETA")
    rotary_fraction: float = option(1.0, "share of each head's dimensions rotary turns, the rest "
                                         "passing through unturned (GPT-NeoX and Pythia: 0.25)",
                                    metavar="F")
    norm: str = option("layernorm", "layernorm: (x - mean) / std · γ + β (GPT-Neo); rmsnorm: "
                                    "x / rms(x) · γ (Llama)", choices=NORMS)
    mlp: str = option("plain", "plain: act(x W1) W2; gated: (act(x W_gate) ⊙ x W_up) W_down, "
                               "SwiGLU with --activation silu (Llama)", choices=MLPS)
    bias: bool = option(True, "biases in the attention output and MLP linear layers "
                              "(GPT-Neo has them, Llama not)")
    qkv_bias: bool = option(False, "a bias on the query/key/value projection too (GPT-NeoX)")
    parallel_residual: bool = option(False, "attention and MLP read the same input and both add "
                                            "to it: x + Attn(Norm₁(x)) + MLP(Norm₂(x)) (GPT-J, "
                                            "GPT-NeoX, Pythia); off: one after the other")
    qk_norm: bool = option(False, "RMS-normalise each head's queries and keys before the scores "
                                  "(and before rotary), as Qwen3 and OLMo 2")
    logit_softcap: float | None = option(None, "squash the logits smoothly into (-C, C): "
                                               "C · tanh(z / C) (Gemma 2); none: off",
                                         metavar="C")
    zero_init: bool = option(False, "start the attention and MLP output projections at zero, "
                                    "so that every block begins as the identity")

    def __post_init__(self):
        if self.embedding_size is None:
            self.embedding_size = self.hidden_size
        if self.attention_layers is None and isinstance(self.num_layers, int):
            self.attention_layers = ["local"] * self.num_layers
        if isinstance(self.attention_layers, (list, tuple)):
            self.attention_layers = list(self.attention_layers)
        self.validate()

    def validate(self) -> None:
        """Raise ``TinyLLMError`` naming the first field that cannot make a model."""
        for name in ("hidden_size", "embedding_size", "context_size", "num_layers",
                     "max_position_embeddings", "num_heads"):
            whole_number(name, getattr(self, name), low=1)
        for name in ("window_size", "intermediate_size", "vocab_size"):
            if getattr(self, name) is not None:
                whole_number(name, getattr(self, name), low=1)
        eps = self.layer_norm_epsilon
        if not is_number(eps) or not (eps > 0 and math.isfinite(eps)):
            raise TinyLLMError(f"layer_norm_epsilon must be a small positive number such as "
                               f"1e-5, not {eps!r}")
        for name in ("attention_dropout", "residual_dropout", "embedding_dropout"):
            p = getattr(self, name)
            if p is None and name != "attention_dropout":
                continue   # left to the training run (TrainConfig.resolve); a bare model: none
            if not is_number(p) or not 0 <= p < 1:
                raise TinyLLMError(f"{name} must be a probability in [0, 1), not {p!r}")
        for name in ("tie_embeddings", "bias", "qkv_bias", "parallel_residual", "qk_norm",
                     "zero_init"):
            if not isinstance(getattr(self, name), bool):
                raise TinyLLMError(f"{name} must be true or false, not {getattr(self, name)!r}")
        if self.activation not in ACTIVATIONS:
            raise TinyLLMError(f"unknown activation {self.activation!r}: use one of "
                               f"{', '.join(ACTIVATIONS)}")
        if self.attention not in ATTENTIONS:
            raise TinyLLMError(f"attention must be one of {ATTENTIONS}, not {self.attention!r}")
        for name, allowed in (("position", POSITIONS), ("norm", NORMS), ("mlp", MLPS)):
            if getattr(self, name) not in allowed:
                raise TinyLLMError(f"{name} must be one of {', '.join(allowed)}, not "
                                   f"{getattr(self, name)!r}")
        theta, cap = self.rope_theta, self.logit_softcap
        if not is_number(theta) or not (theta > 1 and math.isfinite(theta)):
            raise TinyLLMError(f"rope_theta must be a number above 1 such as 10000, not {theta!r}")
        if cap is not None and (not is_number(cap) or not (cap > 0 and math.isfinite(cap))):
            raise TinyLLMError(f"logit_softcap must be a positive number such as 15 (or none), "
                               f"not {cap!r}")
        fraction = self.rotary_fraction
        if not is_number(fraction) or not 0 < fraction <= 1:
            raise TinyLLMError(f"rotary_fraction must be a share of the head in (0, 1] such as "
                               f"1.0 or 0.25, not {fraction!r}")
        if self.position == "rotary" and (self.rotary_dim % 2 or self.rotary_dim == 0):
            raise TinyLLMError(f"rotary positions turn pairs of dimensions: the dimensions turned, "
                               f"rotary_fraction × head size = {self.rotary_dim}, must be even "
                               "and above 0")
        layers = self.attention_layers
        if not isinstance(layers, list):
            raise TinyLLMError(f"attention_layers must be a list of 'global'/'local', one per "
                               f"layer, not {layers!r}")
        if len(layers) != self.num_layers:
            raise TinyLLMError(f"attention_layers has {len(layers)} entries but num_layers is "
                               f"{self.num_layers}: give one 'global'/'local' per layer")
        bad = [t for t in layers if t not in LAYER_TYPES]
        if bad:
            raise TinyLLMError(f"attention_layers may hold only 'global' or 'local', not {bad[0]!r}")
        if self.embedding_size != self.hidden_size:
            raise TinyLLMError(f"embedding_size ({self.embedding_size}) must equal hidden_size "
                               f"({self.hidden_size}) in a GPT-Neo-style model")
        if self.hidden_size % self.num_heads:
            raise TinyLLMError(f"hidden_size ({self.hidden_size}) must be divisible by "
                               f"num_heads ({self.num_heads})")
        if self.context_size > self.max_position_embeddings:
            raise TinyLLMError(f"context_size ({self.context_size}) exceeds "
                               f"max_position_embeddings ({self.max_position_embeddings})")
        self._check_fits_memory()

    def _check_fits_memory(self) -> None:
        """Sizes whose model would need more memory than this machine has (a hostile or mistyped
        config.json: hidden size 10⁶, 10⁵ layers) are refused here, before anything is built."""
        from .flops import numbers_held
        parameters, numbers = numbers_held(self)
        memory = machine_memory()
        if memory is not None and 4 * numbers > memory:
            raise TinyLLMError(f"a model of these sizes would have {parameters:,} parameters "
                               f"({4 * numbers / 1e9:,.1f} GB as float32), more than the "
                               f"{memory / 1e9:.1f} GB of memory this machine has: give a smaller "
                               "hidden_size, num_layers, vocab_size or context size")

    @property
    def attention_pattern(self) -> list:
        """The shortest list of layer types whose repetition is ``attention_layers``:
        ['global', 'local'] for four alternating layers."""
        return layer_pattern(self.attention_layers)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def rotary_dim(self) -> int:
        """The dimensions of each head rotary turns: the first ⌊rotary_fraction · d⌋."""
        return int(self.head_dim * self.rotary_fraction)

    @property
    def mlp_size(self) -> int:
        """The MLP's inner width: ``intermediate_size``, else 4C for a plain MLP, and for a gated
        one (three matrices, not two) 8C/3 rounded up to a multiple of 8: about the same
        parameters."""
        if self.intermediate_size is not None:
            return self.intermediate_size
        if self.mlp == "gated":
            return (8 * self.hidden_size + 23) // 24 * 8      # ⌈8C/3 / 8⌉ · 8
        return 4 * self.hidden_size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        if not isinstance(d, dict):
            raise TinyLLMError(f"a model config must be a JSON object, not {type(d).__name__}")
        d = {k: v for k, v in d.items() if k not in RETIRED}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TinyLLMError(f"unknown Config fields {unknown}: this file was written by another "
                               "tinyllm version or is not a tinyllm config")
        return cls(**d)

    def replace(self, **changes) -> "Config":
        """A copy with ``changes``; the sizes that follow another field follow it (see the
        module docstring)."""
        follows = {"max_position_embeddings": "context_size", "embedding_size": "hidden_size",
                   "embedding_dropout": "residual_dropout"}
        for follower, leader in follows.items():
            if (leader in changes and follower not in changes
                    and getattr(self, follower) == getattr(self, leader)):
                changes[follower] = changes[leader]
        if "num_layers" in changes and "attention_layers" not in changes:
            changes["attention_layers"] = repeat_pattern(self.attention_layers,
                                                         changes["num_layers"])
        return replace(self, **changes)


def machine_memory() -> int | None:
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def layer_pattern(layers: list) -> list:
    """The shortest list whose repetition is ``layers``: ['global', 'local'] for
    ['global', 'local', 'global', 'local']."""
    n = len(layers)
    period = next(p for p in range(1, n + 1) if n % p == 0 and layers == layers[:p] * (n // p))
    return list(layers[:period])


def repeat_pattern(layers: list, n) -> list:
    """``layers``' pattern repeated to ``n`` layers: ['global', 'local'] * 2 becomes
    ['global', 'local', 'global'] for n = 3."""
    if not isinstance(n, int) or n < 1 or not layers:
        return layers  # validation says what is wrong
    pattern = layer_pattern(layers)
    return [pattern[i % len(pattern)] for i in range(n)]


__all__ = ["Config", "option", "layer_pattern", "repeat_pattern", "ATTENTIONS", "ACTIVATIONS",
           "POSITIONS", "NORMS", "MLPS"]
