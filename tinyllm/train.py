"""Training.

Two ways in, one set of parts:

* ``Trainer(model, data_loader, epochs=5, device='cpu').train()`` — the brief's loop: X =
  batch[:, :-1], Y = batch[:, 1:], next-token cross-entropy, a progress bar per epoch, a line
  ``Epoch N: <loss>`` and a ``./{N}.torch`` state dict after each epoch. Its defaults are the
  brief's (Adam, lr 1e-3, nothing else); any ``TrainConfig`` field may be given as a keyword
  (``Trainer(..., lr=3e-3, warmup_steps=50, clip=1.0)``) or as ``config=TrainConfig(...)``.

* ``fit(model, train_tokens, val_tokens, config, out_dir=...)`` — the real run behind
  ``tinyllm train``: random packed windows from a token stream, AdamW (or Muon), warmup + cosine
  learning rate, gradient clipping and accumulation, bf16 autocast on CUDA, optional
  ``torch.compile``, a budget in steps / epochs / tokens / seconds, periodic held-out
  evaluation (loss, perplexity, bits per byte), ``metrics.jsonl``, checkpoints that resume
  exactly, and a clean stop on Ctrl-C / SIGTERM. Under ``torchrun`` it runs as one process
  per GPU (or CPU process) with DistributedDataParallel (``tinyllm.distributed``). On CUDA the
  token stream stays on the GPU when it fits, otherwise batches travel in pinned memory.

The learning rate at optimizer step s (0-based), for peak lr η, floor η_min, w warmup steps and
a decay over D steps:

    lr(s) = η · (s + 1) / w                                        s < w
    lr(s) = η_min + ½ (η - η_min) (1 + cos(π q)),  q = (s - w) / (D - w)   clipped to [0, 1]

With a time budget q is also at least elapsed / max_time, so the decay ends with the time.

An output directory of ``fit`` (see ``tinyllm.checkpoint``):

    DIR/              the model with the best validation loss so far (GPT.from_pretrained(DIR))
    DIR/last/         the full training state at the last checkpoint (--resume DIR)
    DIR/metrics.jsonl one JSON object per logged step and per evaluation
    DIR/loss.png      the loss curves
"""
import contextlib
import json
import math
import os
import random
import signal
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .distributed import Dist
from .errors import TinyLLMError
from .evaluate import amp_context, evaluate
from .optim import make_optimizer, param_groups, set_lr


@dataclass
class TrainConfig:
    # budget: training stops at the first one reached (None: no limit from it)
    max_steps: int | None = None       # optimizer steps
    epochs: float | None = None        # passes over the training tokens
    max_tokens: int | None = None      # training tokens (all micro-batches, all processes)
    max_time: float | None = None      # seconds of training (evaluation included)
    # batches: tokens per optimizer step = batch_size × grad_accum × context × world_size
    batch_size: int = 32
    grad_accum: int = 1                # micro-batches whose gradients add up to one step
    # optimizer (tinyllm.optim); weight decay on the Linear layers' weight matrices only
    optimizer: str = "adamw"           # 'adamw', 'muon' (blocks' matrices; AdamW for the rest)
                                       # or 'adam' (the brief's; no decoupled decay)
    lr: float = 3e-3
    min_lr: float | None = None        # floor of the cosine; None: lr / 10
    warmup_steps: int = 100
    decay_steps: int | None = None     # length of warmup + cosine; None: the step budget
    schedule: str = "cosine"           # 'cosine' or 'constant' (after warmup)
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.95)
    eps: float = 1e-8
    clip: float = 1.0                  # max global gradient norm; 0: no clipping
    # evaluation, logging, checkpoints
    eval_every: int = 200              # steps between evaluations (0: only at the end)
    eval_batches: int | None = 20      # batches per evaluation; None: the whole validation span
    log_every: int = 10                # steps between metrics.jsonl rows / progress updates
    save_every: int | None = None      # steps between training checkpoints; None: = eval_every
    # hardware and reproducibility
    device: str = "auto"               # 'auto' (cuda if available), 'cpu', 'cuda', 'cuda:N', 'mps'
    precision: str = "auto"            # 'auto' (bf16 autocast on CUDA, else fp32), 'bf16', 'fp32'
    compile: bool = False              # torch.compile the model + loss
    seed: int = 1337
    # where the data came from (recorded so that --resume can find it again)
    data: str | None = None
    val_fraction: float = 0.05

    def __post_init__(self):
        self.betas = tuple(self.betas)
        for name in ("batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise TinyLLMError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_steps", "max_tokens", "epochs", "max_time"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise TinyLLMError(f"{name.replace('_', '-')} must be positive, got {v}")
        if self.lr <= 0:
            raise TinyLLMError(f"learning rate must be positive, got {self.lr}")
        if self.warmup_steps < 0 or self.clip < 0 or self.weight_decay < 0:
            raise TinyLLMError("warmup steps, clip and weight decay must not be negative")
        if self.optimizer not in ("adamw", "muon", "adam"):
            raise TinyLLMError(f"unknown optimizer {self.optimizer!r}: use adamw, muon or adam")
        if self.schedule not in ("cosine", "constant"):
            raise TinyLLMError(f"unknown schedule {self.schedule!r}: use 'cosine' or 'constant'")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise TinyLLMError(f"unknown precision {self.precision!r}: use auto, bf16 or fp32")
        if not 0 < self.val_fraction < 1:
            raise TinyLLMError(f"val-fraction must be between 0 and 1, got {self.val_fraction}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def brief(cls, **overrides) -> "TrainConfig":
        """The brief's training: Adam at lr 1e-3, no warmup, schedule, decay or clipping."""
        base = dict(optimizer="adam", lr=1e-3, warmup_steps=0, schedule="constant",
                    weight_decay=0.0, betas=(0.9, 0.999), clip=0.0, device="cpu",
                    precision="fp32")
        return cls(**{**base, **overrides})


# -- the parts ------------------------------------------------------------------------------

def resolve_device(device) -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else is checked."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return _check_device(device)


def lr_at(step: int, cfg: TrainConfig, decay_steps: int | None, progress: float = 0.0) -> float:
    """The learning rate of optimizer step ``step`` (see the module docstring); ``progress``
    is the fraction of a time budget used so far."""
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


class LossModule(nn.Module):
    """``model.loss`` as a module's forward, so that one object can be compiled (and later
    wrapped in DistributedDataParallel) while the plain model keeps its own API."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, y):
        return self.model.loss(x, y)


def optimizer_step(loss_fn, optimizer, micro_batches, cfg: TrainConfig, device, params):
    """One optimizer step over ``micro_batches`` (each (B, T+1) token ids): the mean loss of
    the micro-batches is back-propagated (gradients add up, each scaled by 1/k), clipped to
    norm ``cfg.clip``, and applied. Returns (loss, grad_norm) as 0-d tensors (no sync).

    Under DistributedDataParallel the last backward also averages the gradients over the
    ranks; the ones before it skip that (``no_sync``): the sum is only needed once."""
    k = len(micro_batches)
    total = torch.zeros((), device=device)
    for i, batch in enumerate(micro_batches):
        batch = batch.to(device, non_blocking=True)
        x, y = batch[:, :-1], batch[:, 1:]                        # (B, T) inputs, next tokens
        skip_sync = i < k - 1 and hasattr(loss_fn, "no_sync")
        with loss_fn.no_sync() if skip_sync else contextlib.nullcontext():
            with amp_context(device, cfg.precision != "fp32"):
                loss = loss_fn(x, y) / k
            loss.backward()
        total += loss.detach()
    if cfg.clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip)
    else:
        norm = torch.zeros((), device=device)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total, norm


# -- the brief's Trainer ----------------------------------------------------------------------

class Trainer:
    def __init__(self, model, data_loader, epochs: int = 5, device: str = "cpu",
                 config: TrainConfig | None = None, **extras):
        self.model = model
        self.data_loader = data_loader
        self.epochs = epochs
        self.device = _check_device(device)
        unknown = sorted(set(extras) - {f.name for f in fields(TrainConfig)})
        if unknown:
            raise TypeError(f"Trainer got unknown keyword arguments {unknown}: see TrainConfig")
        base = config.to_dict() if config is not None else TrainConfig.brief().to_dict()
        self.config = TrainConfig.from_dict({**base, **extras, "device": str(self.device)})
        self.losses: list[float] = []   # every optimizer step's training loss

    def train(self):
        cfg, device = self.config, self.device
        self.model.to(device)
        self.model.train()
        optimizer = make_optimizer(self.model, cfg, device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        steps_per_epoch = math.ceil(len(self.data_loader) / cfg.grad_accum)
        decay_steps = cfg.decay_steps or steps_per_epoch * self.epochs
        step = 0
        for epoch in range(self.epochs):
            pbar = tqdm(total=len(self.data_loader))
            micro = []
            for i, batch in enumerate(self.data_loader):
                micro.append(batch)
                if len(micro) < cfg.grad_accum and i + 1 < len(self.data_loader):
                    continue
                set_lr(optimizer, lr_at(step, cfg, decay_steps))
                loss, _ = optimizer_step(self.model.loss, optimizer, micro, cfg, device, params)
                step += 1
                self.losses.append(loss.item())
                pbar.update(len(micro))
                pbar.set_description(f"Loss: {loss.item():.4f}")
                micro = []
            pbar.close()
            tqdm.write(f"Epoch {epoch}: {self.losses[-1] if self.losses else float('nan')}")
            torch.save(self.model.state_dict(), f"./{epoch + 1}.torch")


# -- the real run -----------------------------------------------------------------------------

def steps_for(cfg: TrainConfig, tokens_per_step: int, num_train_tokens: int) -> int | None:
    """The step budget implied by max_steps / epochs / max_tokens (None: only a time budget)."""
    budgets = []
    if cfg.max_steps is not None:
        budgets.append(cfg.max_steps)
    if cfg.epochs is not None:
        budgets.append(math.ceil(cfg.epochs * num_train_tokens / tokens_per_step))
    if cfg.max_tokens is not None:
        budgets.append(math.ceil(cfg.max_tokens / tokens_per_step))
    return max(1, min(budgets)) if budgets else None


class _StopSignals:
    """While active, SIGINT/SIGTERM set ``self.signal`` instead of killing the process, so the
    loop can finish its step and save. A second Ctrl-C interrupts as usual."""

    def __init__(self):
        self.signal = None
        self._old = {}

    def _handle(self, signum, frame):
        self.signal = signum
        signal.signal(signal.SIGINT, self._old.get(signal.SIGINT, signal.default_int_handler))

    def __enter__(self):
        import threading
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._old.items():
            signal.signal(s, handler)


def fit(model, train_tokens, val_tokens, cfg: TrainConfig, *, byte_lengths=None,
        out_dir=None, resume_from=None, dist: Dist | None = None, progress: bool = False,
        on_eval=None, batches=None) -> dict:
    """Train ``model`` on ``train_tokens`` (a ``TokenSpan`` or 1-D token array) under ``cfg``.

    ``val_tokens`` (or None) is evaluated every ``cfg.eval_every`` steps and at the end;
    ``byte_lengths`` (``token_byte_lengths(tokenizer)``) makes that report bits per byte.
    ``out_dir`` receives checkpoints and metrics (see the module docstring); ``resume_from`` is
    a training checkpoint to continue. Returns a summary: steps, tokens, seconds, final/best
    validation metrics, whether it was interrupted (``"signal"``) and the metrics rows.

    ``dist`` (``tinyllm.distributed``): this process's place in a torchrun run. Each rank
    samples windows from its own shard of ``train_tokens`` with a generator seeded
    ``cfg.seed + rank``; DistributedDataParallel averages the gradients; only rank 0 logs
    (the loss averaged over the ranks), evaluates and writes ``out_dir``.
    ``batches``: an iterator of (B, T+1) token batches to train on instead of those random
    windows (a fixed stream, e.g. to reproduce a multi-process run in one process); it is
    not saved in checkpoints."""
    from .checkpoint import find_resumable, load_training_state, save_model
    from .data.tokens import random_batches, rank_shard

    dist = dist or Dist()
    device = dist.device_for(resolve_device(cfg.device))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True   # fp32 matmuls on tensor cores
        torch.backends.cudnn.allow_tf32 = True
    if cfg.precision == "bf16" and device.type != "cuda":
        raise TinyLLMError("bf16 precision needs a CUDA device: use --precision fp32 on CPU")
    out_dir = Path(out_dir) if out_dir is not None else None
    block = model.config.context_size
    tokens_per_step = cfg.batch_size * cfg.grad_accum * block * dist.world_size
    n_train = len(train_tokens.tokens if hasattr(train_tokens, "tokens") else train_tokens)
    total_steps = steps_for(cfg, tokens_per_step, n_train)
    if total_steps is None and cfg.max_time is None:
        raise TinyLLMError("no training budget: give max_steps, epochs, max_tokens or max_time")
    decay_steps = cfg.decay_steps or total_steps

    # seeds: the caller seeded the model's initialisation; here dropout and the batch sampler
    torch.manual_seed(cfg.seed + dist.rank)
    random.seed(cfg.seed + dist.rank)
    np.random.seed(cfg.seed + dist.rank)
    sampler = torch.Generator().manual_seed(cfg.seed + dist.rank)

    model.to(device)
    model.train()
    optimizer = make_optimizer(model, cfg, device)
    params = [p for p in model.parameters() if p.requires_grad]
    step, tokens_seen, elapsed, best_val = 0, 0, 0.0, math.inf
    metrics: list[dict] = []
    if resume_from is not None:
        saved = load_training_state(find_resumable(resume_from), model, optimizer)
        s = saved["state"]
        step, tokens_seen, elapsed = s["step"], s["tokens"], s["elapsed"]
        best_val = s["best_val_loss"] if s["best_val_loss"] is not None else math.inf
        metrics = saved["metrics"]
        _set_rng(saved["rng"], s, sampler, dist, device)
    loss_module = LossModule(model)
    loss_fn = torch.compile(loss_module) if cfg.compile else loss_module
    if dist.world_size > 1:   # copies rank 0's weights to all; averages gradients in backward
        from torch.nn.parallel import DistributedDataParallel
        loss_fn = DistributedDataParallel(
            loss_fn, device_ids=[device.index] if device.type == "cuda" else None)

    main = dist.is_main and out_dir is not None
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_metrics(out_dir, metrics)            # a resumed run drops rows after its checkpoint
    if batches is None:
        shard = rank_shard(train_tokens, dist.rank, dist.world_size)
        shard = _on_gpu(shard, device)
        batches = random_batches(shard, cfg.batch_size, block, generator=sampler)
    if device.type == "cuda":     # page-locked host memory: the copy to the GPU runs async
        batches = (b if b.is_cuda else b.pin_memory() for b in batches)
    save_every = cfg.save_every if cfg.save_every is not None else cfg.eval_every
    last_eval = None

    def run_eval():
        nonlocal best_val, last_eval
        result = evaluate(model, val_tokens, byte_lengths if byte_lengths is not None else
                          np.ones(model.config.vocab_size, np.int64),
                          batch_size=cfg.batch_size, max_batches=cfg.eval_batches,
                          autocast=cfg.precision != "fp32")
        row = {"step": step, "tokens": tokens_seen, "val_loss": result["loss"],
               "val_perplexity": result["perplexity"], "elapsed": round(elapsed, 3)}
        if byte_lengths is not None:
            row["val_bpb"] = result["bits_per_byte"]
        metrics.append(row)
        last_eval = row
        if main:
            _append_metrics(out_dir, row)
            if result["loss"] < best_val:
                save_model(model, out_dir)
        best_val = min(best_val, result["loss"])
        if on_eval is not None:
            on_eval(row)
        return row

    def save_state():
        from .checkpoint import save_training_state
        if out_dir is None:
            return
        rng = _get_rng(sampler, device)
        if dist.world_size > 1:       # every rank's own generators, for an exact resume
            for name, value in list(rng.items()):
                for r, v in enumerate(dist.gather(value)):
                    if r > 0:
                        rng[f"rank{r}.{name}"] = v
        if not main:
            return
        if not (out_dir / "model.safetensors").is_file():   # nothing evaluated yet: latest
            save_model(model, out_dir)
        state = {"step": step, "tokens": tokens_seen, "elapsed": elapsed,
                 "best_val_loss": None if math.isinf(best_val) else best_val,
                 "world_size": dist.world_size,
                 "python_rng": _jsonable(random.getstate()),
                 "numpy_rng": _jsonable(np.random.get_state())}
        save_training_state(out_dir / "last", model, optimizer, state=state,
                            rng=rng, train_config=cfg.to_dict(), metrics=metrics)

    def done() -> bool:
        return ((total_steps is not None and step >= total_steps)
                or (cfg.max_time is not None and elapsed >= cfg.max_time))

    bar = None
    if progress and dist.is_main:
        if total_steps is not None:
            bar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True)
        else:
            bar = tqdm(total=round(cfg.max_time), initial=round(elapsed), unit="s",
                       dynamic_ncols=True)
    window_loss, window_steps, window_tokens, window_time = 0.0, 0, 0, 0.0
    stopped = None                   # the signal that stops the run (every rank: the same)
    with _StopSignals() as stop:
        while not done() and stopped is None:
            t0 = time.perf_counter()
            progress_t = elapsed / cfg.max_time if cfg.max_time else 0.0
            lr = lr_at(step, cfg, decay_steps, progress_t)
            set_lr(optimizer, lr)
            micro = [next(batches) for _ in range(cfg.grad_accum)]
            loss, norm = optimizer_step(loss_fn, optimizer, micro, cfg, device, params)
            step += 1
            tokens_seen += tokens_per_step
            log_now = cfg.log_every and step % cfg.log_every == 0
            loss_value = dist.mean(loss).item() if log_now else None   # syncs: only when logging
            dt = time.perf_counter() - t0
            elapsed += dt
            # rank 0's clock and any rank's Ctrl-C / SIGTERM: all ranks stop at the same step
            elapsed, stopped = dist.agree(elapsed, stop.signal)
            if cfg.log_every and loss_value is None and done():         # the last step, too
                loss_value = dist.mean(loss).item()
            window_steps += 1
            window_tokens += tokens_per_step
            window_time += dt
            if loss_value is not None:
                window_loss = loss_value
                row = {"step": step, "tokens": tokens_seen, "loss": loss_value, "lr": lr,
                       "grad_norm": float(norm), "tokens_per_s": round(window_tokens / window_time),
                       "elapsed": round(elapsed, 3)}
                metrics.append(row)
                if main:
                    _append_metrics(out_dir, row)
                if bar is not None:
                    bar.set_postfix_str(f"loss {window_loss:.4f}  lr {lr:.2e}  "
                                        f"{row['tokens_per_s']:,} tok/s")
                window_steps, window_tokens, window_time = 0, 0, 0.0
            if bar is not None:
                bar.update(1 if total_steps is not None else round(elapsed) - bar.n)
            if val_tokens is not None and cfg.eval_every and step % cfg.eval_every == 0 \
                    and not done() and dist.is_main:
                t1 = time.perf_counter()
                run_eval()
                elapsed += time.perf_counter() - t1
                if bar is not None:
                    bar.write(f"step {step}: val loss {last_eval['val_loss']:.4f}"
                              + (f", {last_eval['val_bpb']:.4f} bits/byte" if "val_bpb" in last_eval else ""))
            if save_every and step % save_every == 0 and not done():
                save_state()
        interrupted = stopped
        if not interrupted and val_tokens is not None and dist.is_main \
                and (last_eval is None or last_eval["step"] != step):
            run_eval()
        save_state()
    if bar is not None:
        bar.close()
    if main:
        from .plot import plot_metrics
        plot_metrics(metrics, out_dir / "loss.png")
    dist.barrier()                   # rank 0 has written everything: all ranks leave together
    return {"steps": step, "tokens": tokens_seen, "seconds": elapsed, "total_steps": total_steps,
            "signal": interrupted, "final": last_eval,
            "best_val_loss": None if math.isinf(best_val) else best_val,
            "out_dir": str(out_dir) if out_dir is not None else None, "metrics": metrics}


# -- helpers ----------------------------------------------------------------------------------

def _get_rng(sampler: torch.Generator, device: torch.device) -> dict:
    """This process's generator states: torch's CPU one, the batch sampler's, and on CUDA its
    GPU's (dropout)."""
    rng = {"torch": torch.get_rng_state(), "sampler": sampler.get_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def _set_rng(rng: dict, state: dict, sampler: torch.Generator, dist: Dist,
             device: torch.device) -> None:
    """Restore what ``_get_rng`` saved for this rank: rank r > 0 finds its own states under
    ``rank{r}.``. With another number of processes than the saved run (other shards anyway),
    ranks without a saved state keep their fresh seed."""
    if dist.rank > 0:
        if state.get("world_size", 1) != dist.world_size:
            return
        prefix = f"rank{dist.rank}."
        rng = {k[len(prefix):]: v for k, v in rng.items() if k.startswith(prefix)}
    torch.set_rng_state(rng["torch"])
    sampler.set_state(rng["sampler"])
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)
    if dist.rank == 0 and state.get("python_rng") is not None:
        v, internal, gauss = state["python_rng"]
        random.setstate((v, tuple(internal), gauss))
    if dist.rank == 0 and state.get("numpy_rng") is not None:
        name, keys, pos, has_gauss, cached = state["numpy_rng"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def _on_gpu(tokens: np.ndarray, device: torch.device, share: float = 0.25):
    """``tokens`` as an int32 tensor on a CUDA ``device`` when that takes at most ``share`` of
    its free memory: batches are then cut on the GPU, with no host-to-device copy per step.
    Otherwise (or on another device) ``tokens`` unchanged."""
    if device.type != "cuda":
        return tokens
    free, _ = torch.cuda.mem_get_info(device)
    if 4 * len(tokens) > share * free:
        return tokens
    out = torch.empty(len(tokens), dtype=torch.int32, device=device)
    chunk = 1 << 26              # copied in pieces: no host copy of a whole large file at once
    for i in range(0, len(tokens), chunk):
        out[i:i + chunk] = torch.from_numpy(np.asarray(tokens[i:i + chunk], dtype=np.int32))
    return out


def _jsonable(obj):
    if isinstance(obj, (tuple, list)):
        return [_jsonable(x) for x in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _write_metrics(out_dir: Path, rows: list) -> None:
    tmp = out_dir / "metrics.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, out_dir / "metrics.jsonl")


def _append_metrics(out_dir: Path, row: dict) -> None:
    with open(out_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _check_device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise TinyLLMError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TinyLLMError(f"device {device!r} asked for but CUDA is not available here: use 'cpu'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise TinyLLMError(f"device {device!r} asked for but MPS is not available here: use 'cpu'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise TinyLLMError(f"unsupported device {device!r}: use 'auto', 'cpu', 'cuda' or 'mps'")
    return dev


__all__ = ["Trainer", "TrainConfig", "Dist", "fit", "lr_at", "param_groups", "make_optimizer",
           "optimizer_step", "resolve_device", "steps_for", "LossModule"]
