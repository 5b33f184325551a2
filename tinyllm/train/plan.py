"""A training run planned: every default that depends on where the run happens and on what it
trains on, resolved once, before the first step. ``Run``, the optimizer and the loop take the
plan as given; nothing after it resolves anything again.

    cfg              the TrainConfig with its defaults filled in (batch size, tokenizer, weight
                     decay, the model's dropout: ``TrainConfig.resolve``); its ``model`` is the
                     config of the model that trains
    device           ``cfg.device`` resolved ('auto': CUDA when there is one), under torchrun
                     this process's own GPU
    precision        what ``--precision`` means here: 'bf16' or 'fp32'
    tokens_per_step  batch × micro-batches × context × processes
    total_steps      the step budget (None: a time budget alone)
    decay_steps      the length of warmup + decay of the learning rate
    save_every       steps between checkpoints
    train_tokens     the number of training tokens (None: not known)
    by_speed         the settings that a time budget's regularisation rule chose from an assumed
                     speed ('weight_decay', 'residual_dropout', 'embedding_dropout': those left
                     to the run): the run sets them again from the speed of its first steps
"""
from dataclasses import dataclass, replace

import torch

from ..model.config import Config
from .config import TrainConfig
from .device import resolve_device, training_precision
from .distributed import Dist
from .schedule import steps_for


@dataclass(frozen=True)
class Plan:
    cfg: TrainConfig
    device: torch.device
    precision: str
    world_size: int
    tokens_per_step: int
    total_steps: int | None
    decay_steps: int | None
    save_every: int
    train_tokens: int | None = None
    by_speed: tuple[str, ...] = ()


def plan_run(cfg: TrainConfig, num_train_tokens: int | None, dist: Dist | None = None,
             model: Config | None = None) -> Plan:
    """Resolve ``cfg`` for a run on ``num_train_tokens`` training tokens (None: not known) in
    process ``dist``. ``model``: the config of a model already built, which the plan takes as
    it is; None: ``cfg.model`` with its defaults filled in (the model ``train`` then builds)."""
    dist = dist or Dist()
    device = dist.device_for(resolve_device(cfg.device))
    by_speed = () if cfg.max_time is None or not num_train_tokens else tuple(
        name for name, unset in (
            ("weight_decay", cfg.weight_decay is None),
            ("residual_dropout", model is None and cfg.model.residual_dropout is None),
            ("embedding_dropout", model is None and cfg.model.embedding_dropout is None))
        if unset)
    if model is not None:
        cfg = replace(cfg, model=model)
    cfg = cfg.resolve(device, num_train_tokens, dist.world_size)
    if model is not None:
        cfg = replace(cfg, model=model)        # the model is as it was built
    tokens_per_step = cfg.tokens_per_step(dist.world_size)
    total_steps = steps_for(cfg, tokens_per_step, num_train_tokens or 0)
    return Plan(cfg=cfg, device=device,
                precision=training_precision(cfg.precision, device, dist.world_size),
                world_size=dist.world_size, tokens_per_step=tokens_per_step,
                total_steps=total_steps, decay_steps=cfg.decay_steps or total_steps,
                save_every=cfg.save_every if cfg.save_every is not None else cfg.eval_every,
                train_tokens=num_train_tokens, by_speed=by_speed)


__all__ = ["Plan", "plan_run"]
