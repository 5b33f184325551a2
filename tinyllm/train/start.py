"""What ``tinyllm train`` does: ``train(TrainConfig(...), out_dir)`` — the tokenizer (trained
when it is a ``bpe-N``), the data, a new model seeded with ``cfg.seed`` or the checkpoint to
resume, the run planned once, then ``fit``."""
import os
import time
from dataclasses import fields, replace
from pathlib import Path

import torch

from ..data.tokenizer import load_tokenizer
from ..data.instructions import is_instruction_data, load_examples
from ..data.tokens import load_splits, token_byte_lengths
from ..errors import TinyLLMError
from ..model import GPT
from . import checkpoint
from ..tokenizer.chat import DEFAULT_TEMPLATE
from .config import TrainConfig, _flag, default_model
from .device import resolve_device
from .distributed import Dist
from .loop import fit
from .plan import plan_run


def train(cfg: TrainConfig, out_dir, *, resume_from=None, dist: Dist | None = None,
          progress: bool = False, on_start=None) -> dict:
    """Run ``cfg`` into ``out_dir`` (or continue the run saved in ``resume_from``).
    ``on_start(model, splits, plan, dist, resumed)`` is called before the first step (the CLI
    prints what is about to happen; ``resumed``: the step it continues from, or None). Returns
    ``fit``'s summary. A time budget counts from here: reading the data is part of the run."""
    started = time.monotonic()
    dist = dist or Dist()
    model, resumed = None, None
    if resume_from is not None:
        source = checkpoint.find_resumable(resume_from)
        model = GPT.from_pretrained(source)
        tokenizer, resumed = model.tokenizer, checkpoint.saved_step(source)
    elif cfg.init_from is not None:        # fine-tuning: the model and its tokenizer
        resolve_device(cfg.device)
        model = pretrained_start(cfg)
        tokenizer = model.tokenizer
    else:
        resolve_device(cfg.device)         # a bad --device is one line, before any work
        with dist.local_main_first():      # one process trains a bpe-N, the others read it
            tokenizer = load_tokenizer(cfg.tokenizer_spec, cfg.data, text_field=cfg.text_field)
    with dist.local_main_first():          # one process writes the token cache
        splits = run_splits(cfg, tokenizer, context_size=(model.config if model is not None
                                                          else cfg.model).context_size)
    if model is None:                      # dropout and decay follow the planned passes
        cfg = replace(cfg, model=cfg.model.replace(vocab_size=tokenizer.vocab_size))
        plan = plan_run(cfg, len(splits.train), dist)
        torch.manual_seed(cfg.seed)        # the model's initial weights
        model = GPT(tokenizer, plan.cfg.model)
    else:
        plan = plan_run(cfg, len(splits.train), dist, model=model.config)
    if on_start is not None:
        on_start(model, splits, plan, dist, resumed)
    return fit(model, splits.train, splits.validation, plan,
               byte_lengths=token_byte_lengths(model.tokenizer), out_dir=out_dir,
               resume_from=resume_from, dist=dist, progress=progress, started=started)


def run_splits(cfg: TrainConfig, tokenizer, context_size: int | None = None):
    """The train and validation tokens of ``cfg``'s data (``tinyllm.data.tokens.load_splits``);
    for instruction data (``tinyllm.data.instructions``), its examples of at most
    ``context_size`` + 1 tokens, rendered with the tokenizer's chat template (the default one
    when it has none, which it then keeps, so that it is saved with the model)."""
    if is_instruction_data(cfg.data, cfg.text_field):
        if tokenizer.chat_template is None:
            tokenizer.chat_template = DEFAULT_TEMPLATE
        return load_examples(cfg.data, tokenizer, template=tokenizer.chat_template,
                             context_size=context_size or cfg.model.context_size,
                             val_data=cfg.val_data, val_fraction=cfg.val_fraction,
                             train_on_prompt=cfg.train_on_prompt, text_field=cfg.text_field)
    return load_splits(cfg.data, tokenizer, val_data=cfg.val_data, val_fraction=cfg.val_fraction,
                       val_by=cfg.val_by, text_field=cfg.text_field)


# the model options a fine-tuning run may set: the rest is the pretrained model's architecture
TUNABLE = ("residual_dropout", "embedding_dropout", "context_size")


def pretrained_start(cfg: TrainConfig) -> GPT:
    """The model ``cfg.init_from`` names, with the model options a fine-tuning run may set
    (``TUNABLE``: dropout, a context no longer than the model's) taken from ``cfg.model``: left
    as the default model, nothing is set; else ``cfg.model`` is the pretrained model's config
    with options changed (``tinyllm train`` builds it so), and a change to any other is one
    line."""
    model = GPT.from_pretrained(cfg.init_from)
    if model.tokenizer is None:
        raise TinyLLMError(f"{cfg.init_from} has no tokenizer to read the data with: save it "
                           "with one")
    changed = {} if cfg.model == default_model() else {
        f.name: getattr(cfg.model, f.name) for f in fields(cfg.model)
        if f.name != "max_position_embeddings"         # follows --context; the table stays
        and getattr(cfg.model, f.name) != getattr(model.config, f.name)}
    fixed = [name for name in changed if name not in TUNABLE]
    if fixed:
        raise TinyLLMError(f"{_flag(fixed[0])} cannot be set with --init-from: the architecture "
                           f"comes from {cfg.init_from} (only dropout and a shorter --context "
                           "may be set)")
    context = changed.get("context_size", model.config.context_size)
    if context > model.config.context_size:
        raise TinyLLMError(f"--context {context} is longer than {cfg.init_from}'s context "
                           f"({model.config.context_size}): give at most that")
    tuned = {name: value for name, value in changed.items() if name != "context_size"}
    # context_size alone: the position table keeps all its rows (max_position_embeddings)
    model.config = replace(model.config, context_size=context, **tuned)
    if tuned:
        model.set_dropout(residual=tuned.get("residual_dropout"),
                          embedding=tuned.get("embedding_dropout"))
    return model


def restarted_by_torchrun() -> bool:
    """True in a process group torchrun has restarted (``--max-restarts``) after a worker failed:
    it runs the same command line again, which then continues the run (``existing_run``)."""
    return os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") not in ("", "0")


def existing_run(out) -> Path | None:
    """The training checkpoint run directory ``out`` holds (checked: ``find_resumable``), or
    None when it holds none (yet)."""
    out = Path(out)
    if any((out / name / checkpoint.TRAINER_STATE).is_file()
           for name in (checkpoint.LAST, f".{checkpoint.LAST}.old")):
        return checkpoint.find_resumable(out)
    return None


def same_run(fresh: TrainConfig, saved: TrainConfig) -> str | None:
    """The option by which the new run ``fresh`` differs from the saved run ``saved`` in what
    cannot change on resume (the data, model, tokenizer, optimizer), or None: the same run.
    A value ``fresh`` leaves to the run (None: a vocabulary size, a dropout) matches any."""
    from .config import _flag
    for f in fields(TrainConfig):
        if not (f.metadata.get("fixed") or f.name == "data"):
            continue
        new, old = getattr(fresh, f.name), getattr(saved, f.name)
        pairs = [(g.name, getattr(new, g.name), getattr(old, g.name)) for g in fields(new)] \
            if f.name == "model" else [(f.name, new, old)]
        for name, a, b in pairs:
            if a is not None and a != b:
                return _flag(name)
    return None


def new_run_dir(out) -> Path:
    """``out`` checked as the directory of a new run."""
    out = Path(out)
    if checkpoint.is_training_checkpoint(out / checkpoint.LAST):
        raise TinyLLMError(f"{out} already holds a training run: continue it with --resume "
                           f"{out}, or choose another --out")
    if out.exists() and not out.is_dir():
        raise TinyLLMError(f"--out {out} is a file: give a directory")
    return out


__all__ = ["train", "run_splits", "new_run_dir", "existing_run", "same_run",
           "restarted_by_torchrun"]
