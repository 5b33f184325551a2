"""The learning-rate schedule and the step budget of a training run.

The learning rate at optimizer step s (0-based), for peak lr η, floor η_min (default η / 10),
w warmup steps and a decay over D steps:

    lr(s) = η · (s + 1) / w                                        s < w
    lr(s) = η_min + ½ (η - η_min) (1 + cos(π q)),  q = (s - w) / (D - w)   clipped to [0, 1]
    lr(s) = η                                                      schedule 'constant'

With a time budget q is also at least elapsed / max_time, so the decay ends with the time.
"""
import math

from .train_config import DEFAULT_MAX_STEPS, TrainConfig


def lr_at(step: int, cfg: TrainConfig, decay_steps: int | None, progress: float = 0.0) -> float:
    """The learning rate of optimizer step ``step``; ``progress`` is the fraction of a time
    budget used so far."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    min_lr = cfg.lr / 10 if cfg.min_lr is None else cfg.min_lr
    q = progress
    if decay_steps is not None:
        q = max(q, (step - cfg.warmup_steps) / max(1, decay_steps - cfg.warmup_steps))
    q = min(max(q, 0.0), 1.0)
    return min_lr + 0.5 * (cfg.lr - min_lr) * (1 + math.cos(math.pi * q))


def steps_for(cfg: TrainConfig, tokens_per_step: int, num_train_tokens: int) -> int | None:
    """The step budget implied by max_steps / epochs / max_tokens: the smallest of those given;
    None when only a time budget is given; ``DEFAULT_MAX_STEPS`` when no budget is given."""
    budgets = []
    if cfg.max_steps is not None:
        budgets.append(cfg.max_steps)
    if cfg.epochs is not None:
        budgets.append(math.ceil(cfg.epochs * num_train_tokens / tokens_per_step))
    if cfg.max_tokens is not None:
        budgets.append(math.ceil(cfg.max_tokens / tokens_per_step))
    if not budgets:
        return None if cfg.max_time is not None else DEFAULT_MAX_STEPS
    return max(1, min(budgets))


__all__ = ["lr_at", "steps_for"]
