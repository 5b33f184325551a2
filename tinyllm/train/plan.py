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


def plan_run(cfg: TrainConfig, num_train_tokens: int | None, dist: Dist | None = None,
             model: Config | None = None) -> Plan:
    """Resolve ``cfg`` for a run on ``num_train_tokens`` training tokens (None: not known) in
    process ``dist``. ``model``: the config of a model already built, which the plan takes as
    it is; None: ``cfg.model`` with its defaults filled in (the model ``train`` then builds)."""
    dist = dist or Dist()
    device = dist.device_for(resolve_device(cfg.device))
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
                save_every=cfg.save_every if cfg.save_every is not None else cfg.eval_every)


__all__ = ["Plan", "plan_run"]
