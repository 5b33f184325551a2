"""The learning-rate schedule and the step budget of a training run.

The learning rate at optimizer step s (0-based), for peak lr η, floor η_min (default η / 10),
w warmup steps and a decay over D steps:

    lr(s) = η · (s + 1) / w                                        s < w
    q = (s - w) / (D - w)                                          clipped to [0, 1]
    lr(s) = η_min + ½ (η - η_min) (1 + cos(π q))                   schedule 'cosine'
    lr(s) = η                           q ≤ 1 - f                  schedule 'wsd' (warmup-stable-
    lr(s) = η_min + (η - η_min) (1 - q) / f    q > 1 - f           decay; f the cooldown)
    lr(s) = η                                                      schedule 'constant'

With a time budget q is also at least elapsed / max_time, so the decay ends with the time.
Warmup-stable-decay (Hu et al. 2024, MiniCPM; modded-nanogpt) holds the peak for most of the
run and spends its last fraction f on a straight line down; unlike cosine, the stable part does
not depend on where the run will end, and most of the loss drop comes in the cooldown.
"""
import math

DEFAULT_MAX_STEPS = 1000          # the budget of a run given none at all (a TrainConfig's
                                  # fields are read here; tinyllm.train_config imports this module)


def lr_at(step: int, cfg, decay_steps: int | None, progress: float = 0.0) -> float:
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
    if cfg.schedule == "wsd":
        f = cfg.cooldown
        return cfg.lr if q <= 1 - f else min_lr + (cfg.lr - min_lr) * (1 - q) / f
    return min_lr + 0.5 * (cfg.lr - min_lr) * (1 + math.cos(math.pi * q))


def steps_for(cfg, tokens_per_step: int, num_train_tokens: int) -> int | None:
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
