"""``TrainConfig``: every setting of a training run, with its real default, in one place.

``TrainConfig()`` is what ``tinyllm train`` does with no flags, and ``fit(model, train, val,
TrainConfig())`` trains the same way: the command line is generated from these fields (each
field's help text is its ``--help`` line; ``tinyllm.cli``), so a new option is one field here.

Two defaults depend on where the run happens and are filled in by ``resolve``, in one place:
``batch_size`` (16 sequences on a CPU, 128 on a GPU, which a small model leaves idle with small
batches) and ``tokenizer`` (the built-in corpus ships its own; other text gets a 4,096-token BPE
trained on it, which gave the lowest held-out bits per byte in the README's sweep).

A resumed run is its saved configuration with the options given again applied on top
(``resumed``); the model, the tokenizer and the optimizer cannot change (``fixed``), and a
budget given again replaces the saved budget.
"""
import math
from dataclasses import asdict, dataclass, fields, replace

from .config import Config, option
from .errors import TinyLLMError

DEFAULT_MAX_STEPS = 1000          # when no budget is given at all
OPTIMIZERS = ("muon", "adamw", "adam")
SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "bf16", "fp32")


def default_model() -> Config:
    """The model ``tinyllm train`` builds: 4 blocks, 128 wide, 8 heads, a 128-token context
    (the lowest held-out bits per byte of the shapes tried in 10 CPU minutes; README)."""
    return Config(hidden_size=128, num_layers=4, num_heads=8, context_size=128,
                  max_position_embeddings=128, attention_layers=["global", "local"] * 2,
                  window_size=None, attention="scaled", residual_dropout=0.1,
                  embedding_dropout=0.1)


DATA, BUDGET, MODEL, OPTIMIZATION, EVALUATION = (
    "data and output", f"budget (the first reached stops; none given: {DEFAULT_MAX_STEPS} steps)",
    "model (new runs only)", "optimization", "evaluation and hardware")


@dataclass
class TrainConfig:
    # -- data
    data: str = option("sample", metavar="SOURCE", group=DATA, help=(
        "what to train on: a text file (.txt, .md, any UTF-8: documents separated by "
        "<|endoftext|>, else the whole file is one document), a JSONL, JSON or Parquet file "
        "(.gz, .xz, .zst too), a folder (every file in it; train.* and validation.* there are "
        "its splits), a glob ('data/*.jsonl.gz'), hf:NAME[:CONFIG] (a Hugging Face dataset), "
        "'sample' (the built-in corpus) or 'tinystories'"))
    val_data: str | None = option(None, metavar="SOURCE", group=DATA, help=(
        "text to validate on (default: --data's own validation split, else the held-out "
        "--val-fraction of it)"))
    val_fraction: float = option(0.05, metavar="F", group=DATA, help=(
        "the part of --data held out for validation when it has no validation split: the last "
        "F of its documents, or of a single document's text, cut at a line"))
    text_field: str = option("text", metavar="NAME", group=DATA, help=(
        "the JSON field or the Parquet / dataset column that holds the text"))
    tokenizer: str | None = option(None, metavar="SPEC", group=DATA, fixed=True, help=(
        "gpt2, builtin, bpe-N (trained on --data) or a directory with vocab.json and merges.txt "
        "(default: builtin for sample, else bpe-4096)"))
    # -- the model
    model: Config = option(default_factory=default_model, group=MODEL, fixed=True)
    # -- budget: training stops at the first one reached
    max_steps: int | None = option(None, "optimizer steps", metavar="N", group=BUDGET,
                                   budget=True)
    epochs: float | None = option(None, "passes over the training tokens", metavar="N",
                                  group=BUDGET, budget=True)
    max_tokens: int | None = option(None, "training tokens (all micro-batches, all processes)",
                                    metavar="N", group=BUDGET, budget=True)
    max_time: float | None = option(None, "seconds of training, evaluation included",
                                    metavar="SECONDS", group=BUDGET, budget=True)
    # -- optimization: tokens per step = batch_size × grad_accum × context × processes
    batch_size: int | None = option(None, "sequences per micro-batch, per process (default 16 "
                                          "on a CPU, 128 on CUDA)", metavar="B",
                                    group=OPTIMIZATION)
    grad_accum: int = option(1, "micro-batches whose gradients add up to one optimizer step",
                             metavar="K", group=OPTIMIZATION)
    optimizer: str = option("muon", "muon: Muon for the blocks' weight matrices and AdamW for "
                                    "the rest; adamw; adam (the brief's, no decoupled decay)",
                            choices=OPTIMIZERS, group=OPTIMIZATION, fixed=True)
    lr: float = option(3e-3, "peak learning rate", group=OPTIMIZATION)
    min_lr: float | None = option(None, "learning rate at the end of the decay (default lr/10)",
                                  group=OPTIMIZATION)
    warmup_steps: int = option(20, "steps of linear warmup", flag="--warmup", metavar="STEPS",
                               group=OPTIMIZATION)
    decay_steps: int | None = option(None, "length of warmup + decay (default: the step budget)",
                                     metavar="STEPS", group=OPTIMIZATION)
    schedule: str = option("cosine", "the learning rate after warmup", choices=SCHEDULES,
                           group=OPTIMIZATION)
    weight_decay: float = option(2.0, "decay of the weight matrices (not embeddings, biases, "
                                      "norms)", group=OPTIMIZATION)
    betas: tuple = option((0.9, 0.95), "AdamW's moment decay rates", group=OPTIMIZATION)
    eps: float = option(1e-8, "AdamW's epsilon", group=OPTIMIZATION)
    clip: float = option(1.0, "largest global gradient norm; 0: no clipping", group=OPTIMIZATION)
    compile: bool = option(False, "torch.compile the model and loss (slow to start)",
                           group=OPTIMIZATION)
    # -- evaluation, logging, checkpoints, hardware
    eval_every: int = option(200, "steps between validation runs; 0: only at the end",
                             metavar="N", group=EVALUATION)
    eval_batches: int = option(20, "validation batches per evaluation; 0: all of it",
                               metavar="N", aliases=("--eval-steps",), group=EVALUATION)
    patience: int = option(5, "stop when this many evaluations in a row found no better "
                              "validation loss (the best model is kept anyway: what follows "
                              "only overfits); 0: never", metavar="N", group=EVALUATION)
    log_every: int = option(10, "steps between metrics rows", metavar="N", group=EVALUATION)
    save_every: int | None = option(None, "steps between checkpoints (default: --eval-every)",
                                    metavar="N", group=EVALUATION)
    device: str = option("auto", "auto (cuda if available), cpu, cuda, cuda:N or mps",
                         group=EVALUATION)
    precision: str = option("auto", "auto: bf16 autocast on CUDA, fp32 elsewhere",
                            choices=PRECISIONS, group=EVALUATION)
    seed: int = option(1337, "random seed (weights, dropout, batches)", group=EVALUATION)

    def __post_init__(self):
        self.betas = tuple(self.betas)
        if isinstance(self.model, dict):
            self.model = Config.from_dict(self.model)
        self.validate()

    def validate(self) -> None:
        """Raise ``TinyLLMError`` naming the first setting that cannot make a run."""
        for name in ("grad_accum",) + (("batch_size",) if self.batch_size is not None else ()):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TinyLLMError(f"{_flag(name)} must be a whole number of at least 1, "
                                   f"not {value!r}")
        for name in ("max_steps", "max_tokens", "epochs", "max_time"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise TinyLLMError(f"{_flag(name)} must be positive, got {v}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise TinyLLMError(f"learning rate must be positive, got {self.lr}")
        if self.min_lr is not None and not 0 <= self.min_lr <= self.lr:
            raise TinyLLMError(f"--min-lr must lie between 0 and --lr ({self.lr}), got {self.min_lr}")
        if self.warmup_steps < 0 or self.clip < 0 or self.weight_decay < 0:
            raise TinyLLMError("warmup steps, clip and weight decay must not be negative")
        for name in ("eval_every", "eval_batches", "log_every", "patience"):
            if getattr(self, name) < 0:
                raise TinyLLMError(f"{_flag(name)} must be 0 or more, got {getattr(self, name)}")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise TinyLLMError(f"unknown {name} {getattr(self, name)!r}: use "
                                   f"{', '.join(allowed)}")
        if not 0 < self.val_fraction < 1:
            raise TinyLLMError(f"val-fraction must be between 0 and 1, got {self.val_fraction}")

    # -- defaults that depend on the run ------------------------------------------------------
    def resolve(self, device) -> "TrainConfig":
        """A copy with the defaults that depend on the device and the data filled in."""
        changes = {}
        if self.batch_size is None:
            changes["batch_size"] = 128 if device.type == "cuda" else 16
        if self.tokenizer is None:
            changes["tokenizer"] = "builtin" if self.data == "sample" else "bpe-4096"
        return replace(self, **changes)

    @property
    def budgets(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("budget")}

    # -- saving and resuming ------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A TrainConfig from ``to_dict``'s output (keys this version does not know are left out:
        runs saved by earlier versions resume)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def resumed(self, **changes) -> "TrainConfig":
        """This (saved) configuration with ``changes`` (options given again) applied: one that
        may not change is one clear error; a budget replaces all the saved budgets."""
        fixed = [f.name for f in fields(self) if f.metadata.get("fixed")]
        for name, value in changes.items():
            if name in fixed and value != getattr(self, name):
                if name == "model":   # name the model option that differs, e.g. --layers
                    name = next(f.name for f in fields(Config)
                                if getattr(value, f.name) != getattr(self.model, f.name))
                raise TinyLLMError(f"{_flag(name)} cannot change when resuming: the model, "
                                   "tokenizer and optimizer come from the checkpoint (start a "
                                   "new --out to change them)")
        if any(name in self.budgets for name in changes):
            changes = {**{name: None for name in self.budgets}, **changes}
        return replace(self, **changes)


def _flag(name: str) -> str:
    """The command-line name of a field: --warmup for warmup_steps, --max-steps for max_steps."""
    for f in fields(TrainConfig) + fields(Config):
        if f.name == name:
            return f.metadata.get("flag") or "--" + name.replace("_", "-")
    return name


__all__ = ["TrainConfig", "default_model", "DEFAULT_MAX_STEPS"]
