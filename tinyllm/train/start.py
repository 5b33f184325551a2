"""What ``tinyllm train`` does: ``train(TrainConfig(...), out_dir)`` — the tokenizer (trained
when it is a ``bpe-N``), the data, a new model seeded with ``cfg.seed`` or the checkpoint to
resume, the run planned once, then ``fit``."""
import time
from dataclasses import replace
from pathlib import Path

import torch

from ..data.tokenizer import load_tokenizer
from ..data.tokens import Splits, load_splits, token_byte_lengths
from ..errors import TinyLLMError
from ..model import GPT
from . import checkpoint
from .config import TrainConfig
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
    else:
        resolve_device(cfg.device)         # a bad --device is one line, before any work
        with dist.local_main_first():      # one process trains a bpe-N, the others read it
            tokenizer = load_tokenizer(cfg.tokenizer_spec, cfg.data, text_field=cfg.text_field)
    with dist.local_main_first():          # one process writes the token cache
        splits = run_splits(cfg, tokenizer)
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


def run_splits(cfg: TrainConfig, tokenizer) -> Splits:
    """The train and validation tokens of ``cfg``'s data (``tinyllm.data.tokens.load_splits``)."""
    return load_splits(cfg.data, tokenizer, val_data=cfg.val_data, val_fraction=cfg.val_fraction,
                       val_by=cfg.val_by, text_field=cfg.text_field)


def new_run_dir(out) -> Path:
    """``out`` checked as the directory of a new run."""
    out = Path(out)
    if checkpoint.is_training_checkpoint(out / checkpoint.LAST):
        raise TinyLLMError(f"{out} already holds a training run: continue it with --resume "
                           f"{out}, or choose another --out")
    if out.exists() and not out.is_dir():
        raise TinyLLMError(f"--out {out} is a file: give a directory")
    return out


__all__ = ["train", "run_splits", "new_run_dir"]
