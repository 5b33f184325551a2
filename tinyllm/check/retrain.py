"""Re-train after a swap: the series' test that a component of one's own still trains.

``retrain(parts, steps)`` trains tinyllm's model and then the same model assembled with the
learner's components (``tinyllm.check.implementations.build_gpt``, the one way a component
enters the model), each with ``tinyllm.train.fit`` and:

* the same seed, and the same initial weights when the parameters line up: tinyllm's are
  loaded into the learner's model by name, as the checks load a reference's (when they do not,
  the learner's modules keep the model's initialisation). A correct component then gives the
  same curve, not merely a similar one;
* the same batches: random windows drawn by generators with the same seed (``fit(batches=)``)
  — the same windows of the same tokens, unless the tokenizer is the learner's, which then
  tokenizes the text itself;
* AdamW, no dropout: nothing but the component differs. (Muon orthogonalises each weight
  matrix as a whole, so tinyllm's stacked [W_q; W_k; W_v] and GPT-Neo-style separate q, k, v
  projections would train differently under it even when both are right; AdamW's update is
  per element. With it a correct attention's curve equals tinyllm's to 4 decimals after 60
  steps; under Muon they drift apart by ~0.01.)

Both loss curves go into one PNG; the result holds each run's final training loss (the mean
over its last steps) and validation loss.
"""
import math
import tempfile
import uuid
from dataclasses import replace

import torch

from ..data.tokenizer import load_tokenizer
from ..data.tokens import load_splits, random_batches, token_byte_lengths
from ..errors import TinyLLMError
from ..model.presets import gpt_neo_model
from ..train import TrainConfig, fit
from ..train.config import regularization
from ..train.plan import plan_run
from ..train.plot import plot_losses
from .common import Mismatch
from .implementations import NORM_KINDS, build_gpt, norm_kind, parts as own_parts, swapped
from .learner import learner_errors
from .weights import load_weights


def default_config(steps: int) -> TrainConfig:
    """``tinyllm train --arch gpt-neo``'s model (the components the check rows hold a learner's
    to; a learner's attention needs no rotary) and schedule on the built-in corpus for
    ``steps`` steps, with AdamW, without dropout and in fp32 (see the module docstring: both
    runs must be able to agree to float rounding), the weight decay of a run that sees its
    text many times (``tinyllm train``'s on the built-in corpus), logging every step and
    evaluating four times (only at the end under 40 steps)."""
    base = TrainConfig(model=gpt_neo_model())
    model = base.model.replace(residual_dropout=0.0, embedding_dropout=0.0,
                               attention_dropout=0.0)
    return replace(base, data="sample", model=model, optimizer="adamw", max_steps=steps,
                   log_every=1, eval_every=steps // 4 if steps >= 40 else 0, eval_batches=10,
                   patience=0, precision="fp32",
                   weight_decay=regularization(None)["weight_decay"])


def retrain(chosen: dict, steps: int, *, cfg: TrainConfig | None = None,
            plot="check-train.png", progress: bool = False, on_start=None) -> dict:
    """Train tinyllm's model and the model with ``chosen``'s learner components side by side
    (see the module docstring) for ``steps`` optimizer steps under ``cfg`` (default
    ``default_config(steps)``); draw both curves into the PNG ``plot``.

    ``cfg``'s budget is replaced by ``steps``. ``on_start(label, model)`` is called before each
    run. Returns {'tinyllm': run, 'yours': run, 'plot': path, 'same_start': bool}, each run
    {'final_loss', 'last_steps', 'val_loss', 'steps', 'metrics'}."""
    cfg = cfg or default_config(steps)
    check_request(chosen, steps, cfg)
    kinds = swapped(chosen)
    if "optimizer" in kinds:     # both runs with Muon: tinyllm's, and yours
        cfg = replace(cfg, optimizer="muon")
    cfg = replace(cfg, max_steps=steps, epochs=None, max_tokens=None, max_time=None)
    tokenizer = load_tokenizer(cfg.tokenizer_spec, cfg.data, text_field=cfg.text_field)
    yours = " + ".join(f"{k}={chosen[k].name}" for k in kinds)
    splits = load_splits(cfg.data, tokenizer, val_fraction=cfg.val_fraction, val_by=cfg.val_by,
                         text_field=cfg.text_field)
    runs, start, same_start = {}, None, False
    with tempfile.TemporaryDirectory(prefix="tinyllm-retrain-") as tokens_dir:
        for label, parts, doing in (("tinyllm", own_parts(), "training tinyllm's own"),
                                    ("yours", chosen, f"training with your {yours}")):
            with learner_errors(doing):
                if label == "yours" and chosen["tokenizer"].learner:   # the text, tokenized by it
                    theirs = _TheirTokenizer(chosen["tokenizer"].make(tokenizer.path), tokenizer)
                    splits = load_splits(cfg.data, theirs, val_fraction=cfg.val_fraction,
                                         val_by=cfg.val_by,
                                         text_field=cfg.text_field, cache_dir=tokens_dir)
                torch.manual_seed(cfg.seed)
                model = build_gpt(parts, cfg.model, tokenizer)
                if label == "tinyllm":
                    start = {n: p.detach().clone() for n, p in model.named_parameters()}
                else:
                    same_start = _start_from(model, start)
                if on_start is not None:
                    on_start(label, model)
                plan = plan_run(cfg, len(splits.train), model=model.config)
                batches = random_batches(splits.train, plan.cfg.batch_size, cfg.model.context_size,
                                         generator=torch.Generator().manual_seed(cfg.seed))
                muon = parts["optimizer"].make if parts["optimizer"].learner else None
                summary = fit(model, splits.train, splits.validation, plan, batches=batches,
                              byte_lengths=token_byte_lengths(tokenizer), progress=progress,
                              muon=muon)
            runs[label] = _result(summary)
    title = f"yours ({yours}) vs tinyllm's, {steps} steps, same seed and batches"
    path = plot_losses({"tinyllm": runs["tinyllm"]["metrics"], "yours": runs["yours"]["metrics"]},
                       plot, title)
    return {**runs, "plot": str(path), "same_start": same_start}


def check_request(chosen: dict, steps, cfg: TrainConfig | None = None) -> None:
    """Raise ``TinyLLMError`` when ``retrain(chosen, steps, cfg=cfg)`` cannot run (before any
    work)."""
    kinds = swapped(chosen)
    if not kinds:
        raise TinyLLMError("--train compares your components with tinyllm's: give at least one "
                           "with --use KIND=PATH:NAME")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise TinyLLMError(f"--train takes a number of steps of at least 1, not {steps!r}")
    model = (cfg or default_config(steps)).model
    for kind in set(kinds) & set(NORM_KINDS) - {norm_kind(model)}:
        raise TinyLLMError(f"your {kind} has no seat in the model --train trains, whose norms "
                           f"are {norm_kind(model)}s")


def _start_from(model, state: dict) -> bool:
    """Give ``model`` tinyllm's initial weights ``state`` when its parameters line up with
    them by name; False (the model keeps its own) when they do not."""
    try:
        load_weights(model, state)
    except Mismatch:
        return False
    return True


def _result(summary: dict) -> dict:
    train = [r["loss"] for r in summary["metrics"] if "loss" in r]
    last = max(1, len(train) // 10)
    final = summary["final"]
    return {"final_loss": sum(train[-last:]) / last, "last_steps": last,
            "val_loss": final["val_loss"] if final else math.nan, "steps": summary["steps"],
            "metrics": summary["metrics"]}


class _TheirTokenizer:
    """A learner's tokenizer (encode, decode) with what the data pipeline also reads, taken
    from tinyllm's tokenizer of the same files: vocab_size, eos_token_id, a fingerprint of its
    own (its tokens are cached apart), encode_batch."""

    def __init__(self, theirs, reference):
        self.theirs, self.path = theirs, reference.path
        self.vocab, self.vocab_size = reference.vocab, reference.vocab_size
        self.eos_token_id = reference.eos_token_id
        self.fingerprint = f"learner-{uuid.uuid4().hex[:12]}"

    def encode(self, text: str) -> list[int]:
        ids = [int(i) for i in self.theirs.encode(text)]
        bad = next((i for i in ids if not 0 <= i < self.vocab_size), None)
        if bad is not None:
            raise TinyLLMError(f"your tokenizer gave id {bad}, outside the vocabulary "
                               f"(0..{self.vocab_size - 1})")
        return ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids) -> str:
        return self.theirs.decode(ids)


__all__ = ["retrain", "check_request", "default_config"]
