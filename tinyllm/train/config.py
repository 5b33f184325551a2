"""``TrainConfig``: every setting of a training run, with its real default, in one place.

``TrainConfig()`` is what ``tinyllm train`` does with no flags, and ``fit(model, train, val,
TrainConfig())`` trains the same way: the command line is generated from these fields (each
field's help text is its ``--help`` line; ``tinyllm.cli.options``), so a new option is one field
here.

Some defaults depend on where the run happens and what it trains on, and are filled in by
``resolve``, once per run (``tinyllm.train.plan``): ``batch_size`` (16 sequences on a CPU, 128 on
a GPU, which a small model leaves idle with small batches), ``tokenizer`` (the built-in corpus
ships its own; other text gets a 4,096-token BPE trained on it, which gave the lowest held-out
bits per byte in the vocabulary sweep of docs/training.md) and the regularisation.

Regularisation follows the data: a run that sees its training tokens many times needs weight
decay and dropout (10-minute runs over 160 K tokens see each ~14 times), one that sees each
token about once (the real TinyStories, ~470 M tokens) loses quality to them. So
``weight_decay`` (and the model's dropout, where left as None) default to ``regularization(passes)``
of the run's planned passes over its training tokens (``planned_passes``).

Fine-tuning (``init_from``: a pretrained model to start from) has its own defaults for the
learning rate, the optimizer and the warmup (``FINE_TUNING``), measured as the pretraining ones
were (docs/training.md, "Fine-tuning"): starting from trained weights, pretraining's learning
rate undoes what they learned. They apply to the fields left as None (``TrainConfig`` fills them
in when it is made): ``TrainConfig(init_from=DIR)`` is a fine-tuning run, ``TrainConfig()`` a
pretraining one.

A resumed run is its saved configuration with the options given again applied on top
(``resumed``); the model, the tokenizer and the optimizer cannot change (``fixed``), and a
budget given again replaces the saved budget.
"""
import math
from dataclasses import asdict, dataclass, fields, replace

from ..errors import TinyLLMError, whole_number
from ..model.config import Config, option
from ..model.flops import training_flops_per_token
from ..model.presets import ARCHITECTURES, default_model, gpt_neo_model, llama_model
from .schedule import DEFAULT_MAX_STEPS, steps_for

OPTIMIZERS = ("muon", "adamw", "adam")
SCHEDULES = ("cosine", "wsd", "constant")
PRECISIONS = ("auto", "bf16", "fp32")
VAL_BY = ("bytes", "documents")


# -- regularisation that follows the planned passes over the data ------------------------------

# (passes, dropout, weight decay) anchors: up to the first, its values; from the last, its
# values; in between, interpolated linearly in log(passes). The many-pass anchor is the setting
# tuned at ~14 passes; the one-pass anchor is what benchmarks/ladder.py's regime (b) (one pass)
# measured best: dropout 0 and weight decay 0.1 each beat 0.1 and 2.0 there, and lose by
# ~0.06 bits per byte in regime (a) (~25 passes). docs/ladder.md.
REGULARIZATION = ((1.0, 0.0, 0.1), (14.0, 0.1, 2.0))

# The defaults that differ between a run from random weights and one from a trained model
# (``init_from``), chosen by the sweep of docs/training.md "Fine-tuning".
PRETRAINING = {"lr": 3e-3, "optimizer": "muon", "warmup_steps": 20}
FINE_TUNING = {"lr": 3e-4, "optimizer": "adamw", "warmup_steps": 10, "weight_decay": 0.0}

# Training FLOP/s one process sustains, to turn a time budget into planned passes: on a CPU,
# per thread, from the default model on a 2-core AMD EPYC (1,180 steps of 2,048 tokens in
# 600 s, evaluation included, two runs side by side: ~4,000 tokens/s of ~8.7 MFLOP each);
# elsewhere a guess for small models.
ASSUMED_FLOPS = {"cpu": 3.5e10, "cuda": 2e13, "mps": 2e12}


def regularization(passes: float | None) -> dict:
    """{'dropout': p, 'weight_decay': λ} for a run planned to see its training tokens ``passes``
    times (``REGULARIZATION``); None (not known): the many-pass values, tinyllm's defaults."""
    (p0, drop0, wd0), (p1, drop1, wd1) = REGULARIZATION
    if passes is None or passes >= p1:
        return {"dropout": drop1, "weight_decay": wd1}
    if passes <= p0:
        return {"dropout": drop0, "weight_decay": wd0}
    t = math.log(passes / p0) / math.log(p1 / p0)                  # 0 at p0, 1 at p1
    return {"dropout": round(drop0 + t * (drop1 - drop0), 4),
            "weight_decay": round(wd0 + t * (wd1 - wd0), 4)}


def planned_passes(cfg: "TrainConfig", num_train_tokens: int, tokens_per_step: int,
                   device=None, threads: int = 1,
                   tokens_per_s: float | None = None) -> float | None:
    """How many times the run will see its training tokens: the token budget of its step,
    epoch or token budget divided by ``num_train_tokens``; for a time budget, seconds × the
    run's ``tokens_per_s`` — measured, once the run has made a few steps, else the estimate that
    ``ASSUMED_FLOPS`` (× ``threads`` on a CPU) gives the model; None when it cannot be told (no
    vocabulary size yet, say)."""
    if not num_train_tokens:
        return None
    steps = steps_for(cfg, tokens_per_step, num_train_tokens)
    passes = None if steps is None else steps * tokens_per_step / num_train_tokens
    if cfg.max_time is not None and cfg.model.vocab_size is not None:
        if tokens_per_s is None:
            kind = getattr(device, "type", "cpu")
            flops = ASSUMED_FLOPS.get(kind, ASSUMED_FLOPS["cpu"])
            flops *= threads if kind == "cpu" else 1
            tokens_per_s = flops / training_flops_per_token(cfg.model)
        timed = cfg.max_time * tokens_per_s / num_train_tokens
        passes = timed if passes is None else min(passes, timed)
    return passes


THREADS_HELP = ("CPU threads (default: the CPUs that other processes leave free, looked at again "
                "every few seconds; OMP_NUM_THREADS fixes it too)")

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
        "whole documents holding about F of its bytes, or the last F of a single document's "
        "text, cut at a line"))
    val_by: str = option("bytes", group=DATA, fixed=True, choices=VAL_BY, help=(
        "what --val-fraction measures between documents: bytes, or documents (the last "
        "ceil(F × their number) of them; a run saved without this setting resumes with it)"))
    text_field: str = option("text", metavar="NAME", group=DATA, help=(
        "the JSON field or the Parquet / dataset column that holds the text"))
    train_on_prompt: bool = option(False, group=DATA, help=(
        "instruction data (records with prompt/completion or messages): learn the prompts' "
        "tokens too, not only the answers'"))
    tokenizer: str | None = option(None, metavar="SPEC", group=DATA, fixed=True, help=(
        "gpt2, builtin, bpe-N (trained on --data) or a directory with vocab.json and merges.txt "
        "(default: builtin for sample, else bpe-4096)"))
    # -- the model
    init_from: str | None = option(None, metavar="MODEL", group=MODEL, fixed=True, help=(
        "fine-tune: start from this model's weights (a tinyllm run or model directory, a "
        "Hugging Face GPT-Neo, GPT-NeoX or Llama directory, a hub id) and read the data with "
        "its tokenizer; its architecture is kept (only dropout and a shorter --context may be "
        "set), the learning rate, optimizer and warmup default to the fine-tuning ones"))
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
    optimizer: str | None = option(
        None, "muon: Muon for the blocks' weight matrices and AdamW for the rest; adamw; adam "
              "(plain Adam, as the blog series trains: no decoupled decay); default "
              f"{PRETRAINING['optimizer']}, {FINE_TUNING['optimizer']} with --init-from",
        choices=OPTIMIZERS, group=OPTIMIZATION, fixed=True)
    lr: float | None = option(None, f"peak learning rate (default {PRETRAINING['lr']:g}, "
                                    f"{FINE_TUNING['lr']:g} with --init-from)",
                              group=OPTIMIZATION)
    min_lr: float | None = option(None, "learning rate at the end of the decay (default lr/10)",
                                  group=OPTIMIZATION)
    warmup_steps: int | None = option(
        None, f"steps of linear warmup (default {PRETRAINING['warmup_steps']}, "
              f"{FINE_TUNING['warmup_steps']} with --init-from)",
        flag="--warmup", metavar="STEPS", group=OPTIMIZATION)
    decay_steps: int | None = option(None, "length of warmup + decay (default: the step budget)",
                                     metavar="STEPS", group=OPTIMIZATION)
    schedule: str = option("cosine", "the learning rate after warmup: cosine down to --min-lr; "
                                     "wsd: warmup-stable-decay, the peak until the last "
                                     "--cooldown of the run, then a straight line down to "
                                     "--min-lr; constant", choices=SCHEDULES,
                           group=OPTIMIZATION)
    cooldown: float = option(0.2, "wsd: the final fraction of the run spent decaying",
                             metavar="F", group=OPTIMIZATION)
    weight_decay: float | None = option(None, "decay of the weight matrices (not embeddings, "
                                              "biases, norms); default: by the planned passes "
                                              "over the data, 2.0 at 14 or more",
                                        group=OPTIMIZATION)
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
    report_to: str = option("none", "also log the metrics rows and the settings to tensorboard, "
                                    "wandb, mlflow or trackio (comma-separated; each on this "
                                    "machine unless its own environment variables say otherwise; "
                                    "pip install \"tinyllm[NAME]\"); none",
                            metavar="NAME[,NAME]", group=EVALUATION)
    save_every: int | None = option(None, "steps between checkpoints (default: --eval-every)",
                                    metavar="N", group=EVALUATION)
    device: str = option("auto", "auto (cuda if available), cpu, cuda, cuda:N or mps",
                         group=EVALUATION)
    threads: int | None = option(None, THREADS_HELP, metavar="N", group=EVALUATION)
    precision: str = option("auto", "auto: bf16 on CUDA (autocast) and on a CPU with AMX (a "
                                    "bf16 copy of the model), fp32 elsewhere",
                            choices=PRECISIONS, group=EVALUATION)
    seed: int = option(1337, "random seed (weights, dropout, batches)", group=EVALUATION)

    def __post_init__(self):
        self.betas = tuple(self.betas)
        defaults = FINE_TUNING if self.init_from is not None else PRETRAINING
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if isinstance(self.model, dict):
            self.model = Config.from_dict(self.model)
        self.validate()

    def validate(self) -> None:
        """Raise ``TinyLLMError`` naming the first setting that cannot make a run."""
        for name in ("grad_accum",) + tuple(n for n in ("batch_size", "threads")
                                            if getattr(self, n) is not None):
            whole_number(_flag(name), getattr(self, name), low=1)
        for name in ("max_steps", "max_tokens", "epochs", "max_time"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise TinyLLMError(f"{_flag(name)} must be positive, got {v}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise TinyLLMError(f"learning rate must be positive, got {self.lr}")
        if self.min_lr is not None and not 0 <= self.min_lr <= self.lr:
            raise TinyLLMError(f"--min-lr must lie between 0 and --lr ({self.lr}), got {self.min_lr}")
        if self.warmup_steps < 0 or self.clip < 0 or (self.weight_decay or 0) < 0:
            raise TinyLLMError("warmup steps, clip and weight decay must not be negative")
        if not 0 < self.cooldown <= 1:
            raise TinyLLMError(f"--cooldown must be a fraction of the run in (0, 1], "
                               f"got {self.cooldown}")
        for name in ("eval_every", "eval_batches", "log_every", "patience"):
            if getattr(self, name) < 0:
                raise TinyLLMError(f"{_flag(name)} must be 0 or more, got {getattr(self, name)}")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("precision", PRECISIONS), ("val_by", VAL_BY)):
            if getattr(self, name) not in allowed:
                raise TinyLLMError(f"unknown {name} {getattr(self, name)!r}: use "
                                   f"{', '.join(allowed)}")
        if not 0 < self.val_fraction < 1:
            raise TinyLLMError(f"val-fraction must be between 0 and 1, got {self.val_fraction}")

    # -- defaults that depend on the run ------------------------------------------------------
    def resolve(self, device, num_train_tokens: int | None = None,
                world_size: int = 1) -> "TrainConfig":
        """A copy with the defaults that depend on the device and the data filled in: the batch
        size, the tokenizer, and — from the planned passes over ``num_train_tokens`` (unknown:
        the many-pass values) — the weight decay and the model's dropout where they are None."""
        cfg = self
        if cfg.batch_size is None:
            cfg = replace(cfg, batch_size=128 if device.type == "cuda" else 16)
        if cfg.tokenizer is None:
            cfg = replace(cfg, tokenizer=cfg.tokenizer_spec)
        model = cfg.model
        if cfg.weight_decay is None or model.residual_dropout is None \
                or model.embedding_dropout is None:
            passes = (planned_passes(cfg, num_train_tokens, cfg.tokens_per_step(world_size),
                                     device, _threads(device)) if num_train_tokens else None)
            rule = regularization(passes)
            if cfg.weight_decay is None:
                cfg = replace(cfg, weight_decay=rule["weight_decay"])
            dropouts = {name: rule["dropout"] for name in ("residual_dropout", "embedding_dropout")
                        if getattr(model, name) is None}
            if dropouts:
                cfg = replace(cfg, model=model.replace(**dropouts))
        return cfg

    @property
    def tokenizer_spec(self) -> str:
        """The tokenizer the run reads its data with: ``tokenizer``, else the built-in corpus's
        own for 'sample' and a 4,096-token BPE trained on the data for any other."""
        if self.tokenizer is not None:
            return self.tokenizer
        return "builtin" if self.data == "sample" else "bpe-4096"

    def tokens_per_step(self, world_size: int = 1) -> int:
        """Training tokens one optimizer step sees: batch × micro-batches × context × processes
        (the batch size resolved)."""
        return self.batch_size * self.grad_accum * self.model.context_size * world_size

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
        d = {"val_by": "documents", **d}     # saved before --val-by: they held out by count
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


def _threads(device) -> int:
    import torch
    return torch.get_num_threads() if getattr(device, "type", "cpu") == "cpu" else 1


def _flag(name: str) -> str:
    """The command-line name of a field: --warmup for warmup_steps, --max-steps for max_steps."""
    for f in fields(TrainConfig) + fields(Config):
        if f.name == name:
            return f.metadata.get("flag") or "--" + name.replace("_", "-")
    return name


__all__ = ["TrainConfig", "PRETRAINING", "FINE_TUNING", "default_model", "gpt_neo_model",
           "llama_model", "ARCHITECTURES",
           "DEFAULT_MAX_STEPS", "regularization", "planned_passes", "REGULARIZATION"]
