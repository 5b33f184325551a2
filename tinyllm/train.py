"""Training: one set of parts, three ways in.

* ``train(TrainConfig(...), out_dir)`` — what ``tinyllm train`` does: the tokenizer, the data,
  a new model (or the checkpoint to resume), then ``fit``.
* ``fit(model, train_tokens, val_tokens, TrainConfig(...))`` — the loop: random packed windows
  from a token stream, Muon + AdamW (or AdamW, or Adam) with warmup and a cosine decay
  (``tinyllm.schedule``), gradient clipping and accumulation, bf16 autocast on CUDA, optional
  ``torch.compile``, a budget in steps / epochs / tokens / seconds, held-out evaluation (loss,
  perplexity, bits per byte), ``metrics.jsonl``, checkpoints that resume exactly
  (``tinyllm.checkpoint``), a clean stop on Ctrl-C / SIGTERM. Under ``torchrun`` it runs as one
  process per GPU (or CPU process) with DistributedDataParallel (``tinyllm.distributed``).
* ``Trainer(model, data_loader, epochs=5, device='cpu').train()`` — the brief's loop: X =
  batch[:, :-1], Y = batch[:, 1:], a progress bar per epoch, a line ``Epoch N: <loss>`` and a
  ``./{N}.torch`` state dict after each epoch, on the same optimizer step as ``fit``. Its
  defaults are the brief's (Adam, lr 1e-3, nothing else); any ``TrainConfig`` field may be given
  as a keyword (``Trainer(..., lr=3e-3, warmup_steps=50)``) or as ``config=TrainConfig(...)``.

An output directory of ``fit``:

    DIR/              the model with the best validation loss so far (GPT.from_pretrained(DIR))
    DIR/last/         the full training state at the last checkpoint (--resume DIR)
    DIR/metrics.jsonl one JSON object per logged step and per evaluation
    DIR/loss.png      the loss curves
"""
import contextlib
import math
import signal
import threading
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from . import checkpoint
from .checkpoint import RunState
from .data.tokens import Splits, load_splits, random_batches, rank_shard, token_byte_lengths
from .device import (Bf16Copy, autocast, fast_matmuls, resolve_device, tokens_on_device,
                     training_precision)
from .distributed import Dist
from .errors import TinyLLMError
from .evaluate import evaluate
from .files import METRICS, WriteError, append_metrics, lock, write_metrics
from .model import GPT
from .optim import make_optimizer, param_groups, set_lr
from .plot import plot_metrics
from .pretrained import save_model
from .schedule import lr_at, steps_for
from .tokenizer import load_tokenizer
from .train_config import TrainConfig


# -- the parts --------------------------------------------------------------------------------

class LossModule(nn.Module):
    """``model.loss`` as a module's forward, so that one object can be compiled (and wrapped in
    DistributedDataParallel) while the plain model keeps its own API."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, y):
        return self.model.loss(x, y)


def optimizer_step(loss_fn, optimizer, micro_batches, cfg: TrainConfig, device, params,
                   bf16_copy: Bf16Copy | None = None):
    """One optimizer step over ``micro_batches`` (each (B, T+1) token ids): the mean loss of
    the micro-batches is back-propagated (gradients add up, each scaled by 1/k), clipped to
    norm ``cfg.clip``, and applied. Returns (loss, grad_norm) as 0-d tensors (no sync).

    Under DistributedDataParallel the last backward also averages the gradients over the
    ranks; the ones before it skip that (``no_sync``): the sum is only needed once. With a
    ``bf16_copy`` (bf16 on a CPU) ``loss_fn`` runs the copy: its gradients go to the fp32
    ``params``, which the optimizer updates, and the copy is refreshed from them."""
    k = len(micro_batches)
    total = torch.zeros((), device=device)
    for i, batch in enumerate(micro_batches):
        batch = batch.to(device, non_blocking=True)
        x, y = batch[:, :-1], batch[:, 1:]                        # (B, T) inputs, next tokens
        skip_sync = i < k - 1 and hasattr(loss_fn, "no_sync")
        with loss_fn.no_sync() if skip_sync else contextlib.nullcontext():
            with autocast(device, cfg.precision):
                loss = loss_fn(x, y) / k
            loss.backward()
        total += loss.detach()
    if bf16_copy is not None:
        bf16_copy.grads_to_master()
    if cfg.clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip)
    else:
        norm = torch.zeros((), device=device)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if bf16_copy is not None:
        bf16_copy.refresh()
    return total, norm


class Run:
    """The objects of one training run — model, optimizer, loss function, its ``RunState`` —
    and the four things the loop does with them: ``step``, ``log``, ``evaluate``, ``save``.
    Only the first process (rank 0) writes ``out_dir``."""

    def __init__(self, model, cfg: TrainConfig, *, dist: Dist, byte_lengths=None, out_dir=None,
                 muon=None, num_train_tokens: int | None = None):
        self.dist = dist
        self.device = dist.device_for(resolve_device(cfg.device))
        self.precision = training_precision(cfg.precision, self.device, dist.world_size)
        # the defaults that depend on the device and the data; the model is as it was built
        self.cfg = replace(cfg.resolve(self.device, num_train_tokens, dist.world_size),
                           model=model.config)
        self.model = model.to(self.device).train()
        # bf16 on a CPU: the forward and backward run in a bf16 copy (tinyllm.device)
        self.bf16_copy = Bf16Copy(model) if self.precision == "bf16" and \
            self.device.type == "cpu" else None
        self.byte_lengths = byte_lengths
        self.out_dir = Path(out_dir) if out_dir is not None and dist.is_main else None
        self.sampler = torch.Generator().manual_seed(self.cfg.seed + dist.rank)
        self.optimizer = make_optimizer(model, self.cfg, self.device, muon=muon)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.state = RunState(world_size=dist.world_size)
        loss_fn = LossModule(self.bf16_copy.model if self.bf16_copy else model)
        self.loss_fn = torch.compile(loss_fn) if self.cfg.compile else loss_fn
        self.tokens_per_step = self.cfg.tokens_per_step(dist.world_size)
        self.saved_step = None           # the step of the checkpoint in out_dir/last

    def resume(self, path) -> None:
        """Continue from the training checkpoint in ``path`` (weights, optimizer, state, RNG)."""
        self.state = checkpoint.load(checkpoint.find_resumable(path), self.model, self.optimizer)
        if self.bf16_copy is not None:
            self.bf16_copy.refresh()
        self.saved_step = self.state.step
        self._restore_rng(self.state)

    @contextlib.contextmanager
    def writing(self):
        """For the run's duration: own ``out_dir`` (one run writes a directory at a time), clear
        what a killed run left there, start the metrics file (a resumed run drops the rows logged
        after its checkpoint); and wrap for DistributedDataParallel, which copies rank 0's
        weights to every rank."""
        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel
            self.loss_fn = DistributedDataParallel(
                self.loss_fn, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.out_dir is None:
            yield
            return
        with lock(self.out_dir, "training run"), self._saving("the metrics"):
            checkpoint.tidy(self.out_dir)
            write_metrics(self.out_dir / METRICS, self.state.metrics)
            yield

    @contextlib.contextmanager
    def _saving(self, what: str):
        """A write that fails for want of space or permission: one line that says what is
        intact and how to go on."""
        try:
            yield
        except WriteError as e:
            raise TinyLLMError(f"{e} (while saving {what} at step {self.state.step}); "
                               f"{self._intact()}") from None

    def _intact(self) -> str:
        out = self.out_dir
        if self.saved_step is None:
            return f"no checkpoint of this run was saved yet in {out}"
        return (f"{out / 'last'} (step {self.saved_step}) is intact: continue with "
                f"tinyllm train --resume {out}")

    def check(self, loss, norm, lr: float) -> float:
        """The loss averaged over the ranks (a sync, so only when logging, evaluating or saving),
        checked: a loss or gradient that is no longer finite stops the run before anything is
        saved from it."""
        loss_value = self.dist.mean(loss).item()
        if not (math.isfinite(loss_value) and math.isfinite(float(norm))):
            raise TrainingDiverged(
                f"training diverged by step {self.state.step}: the loss is {loss_value} and the "
                f"gradient norm {float(norm)}; nothing from it was saved, "
                f"{self._intact() if self.out_dir is not None else 'nothing was written'}. "
                f"Try a lower --lr (it was {lr:.3g} at this step) or a longer --warmup")
        return loss_value

    def batches(self, train_tokens):
        """Random packed windows from this rank's shard of the training tokens, forever."""
        shard = tokens_on_device(rank_shard(train_tokens, self.dist.rank, self.dist.world_size),
                                 self.device)
        batches = random_batches(shard, self.cfg.batch_size, self.model.config.context_size,
                                 generator=self.sampler)
        if self.device.type == "cuda":   # page-locked host memory: the copy to the GPU is async
            batches = (b if b.is_cuda else b.pin_memory() for b in batches)
        return batches

    def step(self, micro_batches, lr: float):
        """One optimizer step at learning rate ``lr``; returns (loss, grad norm) as 0-d tensors."""
        set_lr(self.optimizer, lr)
        loss, norm = optimizer_step(self.loss_fn, self.optimizer, micro_batches, self.cfg,
                                    self.device, self.params, self.bf16_copy)
        self.state.step += 1
        self.state.tokens += self.tokens_per_step
        return loss, norm

    def log(self, row: dict) -> None:
        self.state.metrics.append(row)
        if self.out_dir is not None:
            with self._saving("the metrics"):
                append_metrics(self.out_dir / METRICS, row)

    def evaluate(self, val_tokens) -> dict:
        """Held-out loss (and bits per byte), logged; the model is saved when it is the best."""
        lengths = self.byte_lengths if self.byte_lengths is not None else \
            np.ones(self.model.config.vocab_size, np.int64)
        result = evaluate(self.model, val_tokens, lengths, batch_size=self.cfg.batch_size,
                          max_batches=self.cfg.eval_batches, precision=self.precision)
        s = self.state
        if result["loss"] < s.best_val_loss:
            s.best_val_loss, s.best_step, s.evals_since_best = result["loss"], s.step, 0
            if self.out_dir is not None:
                with self._saving("the best model"):
                    save_model(self.model, self.out_dir)
        else:
            s.evals_since_best += 1
        row = {"step": s.step, "tokens": s.tokens, "val_loss": result["loss"],
               "val_perplexity": result["perplexity"], "elapsed": round(s.elapsed, 3)}
        if self.byte_lengths is not None:
            row["val_bpb"] = result["bits_per_byte"]
        row["since_best"] = s.evals_since_best
        self.log(row)
        return row

    def out_of_patience(self) -> bool:
        return bool(self.cfg.patience) and self.state.evals_since_best >= self.cfg.patience

    def save(self) -> None:
        """Write ``out_dir/last`` (every rank takes part: rank 0 gathers their generators)."""
        self.state.rng = self._gather_rng()
        if self.out_dir is None:
            return
        with self._saving("the checkpoint"):
            if not (self.out_dir / "model.safetensors").is_file():   # nothing evaluated yet
                save_model(self.model, self.out_dir)
            checkpoint.save(self.out_dir / "last", self.model, self.optimizer, self.state,
                            self.cfg.to_dict())
        self.saved_step = self.state.step

    def finish(self) -> None:
        if self.out_dir is not None:
            plot_metrics(self.state.metrics, self.out_dir / "loss.png")
        self.dist.barrier()              # rank 0 has written everything: all leave together

    # -- random generators: every rank's own, for an exact resume -----------------------------
    def _gather_rng(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "sampler": self.sampler.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        if self.dist.world_size > 1:
            for name, value in list(rng.items()):
                for r, v in enumerate(self.dist.gather(value)):
                    if r > 0:
                        rng[f"rank{r}.{name}"] = v
        return rng

    def _restore_rng(self, state: RunState) -> None:
        """Rank r > 0 finds its own states under ``rank{r}.``. With another number of processes
        than the saved run (other shards anyway), ranks without a saved state keep their seed."""
        rng = state.rng
        if self.dist.rank > 0:
            if state.world_size != self.dist.world_size:
                return
            prefix = f"rank{self.dist.rank}."
            rng = {k[len(prefix):]: v for k, v in rng.items() if k.startswith(prefix)}
        torch.set_rng_state(rng["torch"])
        self.sampler.set_state(rng["sampler"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)


# -- the loop ---------------------------------------------------------------------------------

def fit(model, train_tokens, val_tokens, cfg: TrainConfig, *, byte_lengths=None,
        out_dir=None, resume_from=None, dist: Dist | None = None, progress: bool = False,
        on_eval=None, batches=None, muon=None) -> dict:
    """Train ``model`` on ``train_tokens`` (a ``TokenSpan`` or 1-D token array) under ``cfg``
    (``cfg.model`` is ignored: the model is given).

    ``val_tokens`` (or None) is evaluated every ``cfg.eval_every`` steps and at the end;
    ``byte_lengths`` (``token_byte_lengths(tokenizer)``) makes that report bits per byte.
    ``out_dir`` receives checkpoints and metrics (see the module docstring); ``resume_from`` is
    a training checkpoint to continue. ``dist``: this process's place in a torchrun run (each
    rank samples from its own shard with a generator seeded ``cfg.seed + rank``; rank 0 logs
    the loss averaged over the ranks, evaluates and writes). ``batches``: an iterator of
    (B, T+1) token batches to train on instead of random windows (not saved in checkpoints).
    ``muon``: the class that builds the Muon part of the optimizer (a learner's, say).
    Returns a summary: steps, tokens, seconds, final/best validation metrics, the signal that
    stopped it (or None) and the metrics rows."""
    dist = dist or Dist()
    torch.manual_seed(cfg.seed + dist.rank)   # dropout (the caller seeded the initial weights)
    n_train = len(train_tokens.tokens if hasattr(train_tokens, "tokens") else train_tokens)
    run = Run(model, cfg, dist=dist, byte_lengths=byte_lengths, out_dir=out_dir, muon=muon,
              num_train_tokens=n_train)
    if resume_from is not None:
        run.resume(resume_from)
    cfg, state, main = run.cfg, run.state, dist.is_main
    batches = batches if batches is not None else run.batches(train_tokens)
    total_steps = steps_for(cfg, run.tokens_per_step, n_train)
    decay_steps = cfg.decay_steps or total_steps
    save_every = cfg.save_every if cfg.save_every is not None else cfg.eval_every

    def done() -> bool:
        return ((total_steps is not None and state.step >= total_steps)
                or (cfg.max_time is not None and state.elapsed >= cfg.max_time))

    last_eval, stopped, early, loss = None, None, False, None
    window = _Window()                 # steps, tokens and seconds since the last metrics row
    bar = _progress_bar(total_steps, cfg.max_time, state) if progress and main else None
    with contextlib.closing(bar) if bar is not None else contextlib.nullcontext(), \
            fast_matmuls(run.device), run.writing(), _StopSignals() as stop:
        while not done() and stopped is None and not early:
            t0 = time.perf_counter()
            # schedule -> step
            lr = lr_at(state.step, cfg, decay_steps,
                       state.elapsed / cfg.max_time if cfg.max_time else 0.0)
            loss, norm = run.step([next(batches) for _ in range(cfg.grad_accum)], lr)
            seconds = time.perf_counter() - t0
            # rank 0's clock and any rank's Ctrl-C / SIGTERM: all ranks stop at the same step
            state.elapsed, stopped = dist.agree(state.elapsed + seconds, stop.signal)
            window.add(run.tokens_per_step, seconds)
            log_now = cfg.log_every and (state.step % cfg.log_every == 0 or done())
            eval_now = (val_tokens is not None and cfg.eval_every
                        and state.step % cfg.eval_every == 0 and not done())
            save_now = save_every and state.step % save_every == 0 and not done()
            if not (log_now or eval_now or save_now):
                if bar is not None:
                    bar.update(1 if total_steps is not None else round(state.elapsed) - bar.n)
                continue
            loss_value = run.check(loss, norm, lr)   # finite, or the run stops here
            # log
            if log_now:
                run.log({"step": state.step, "tokens": state.tokens, "loss": loss_value, "lr": lr,
                         "grad_norm": float(norm), "tokens_per_s": window.rate(),
                         "elapsed": round(state.elapsed, 3)})
                window = _Window()
            if bar is not None:
                bar.set_postfix_str(_postfix(state.metrics[-1]) if log_now else bar.postfix)
                bar.update(1 if total_steps is not None else round(state.elapsed) - bar.n)
            # evaluate (rank 0; its time counts towards the budget)
            if eval_now:
                if main:
                    t1 = time.perf_counter()
                    last_eval = run.evaluate(val_tokens)
                    state.elapsed += time.perf_counter() - t1
                    _report(bar, last_eval, on_eval, state)
                early = dist.from_main(run.out_of_patience())
            # save
            if save_now or early:
                run.save()
        if loss is not None and stopped is None:
            run.check(loss, norm, lr)
        if stopped is None and not early and val_tokens is not None and main \
                and (last_eval is None or last_eval["step"] != state.step):
            last_eval = run.evaluate(val_tokens)
            _report(None, last_eval, on_eval, state)
        if run.saved_step != state.step:
            run.save()
    run.finish()
    return {"steps": state.step, "tokens": state.tokens, "seconds": state.elapsed,
            "total_steps": total_steps, "signal": stopped, "final": last_eval,
            "stopped_early": early, "best_step": state.best_step,
            "best_val_loss": None if math.isinf(state.best_val_loss) else state.best_val_loss,
            "out_dir": str(out_dir) if out_dir is not None else None, "metrics": state.metrics}


class TrainingDiverged(TinyLLMError):
    """The loss or the gradient stopped being finite; nothing from then on was saved."""


class _Window:
    """Tokens and seconds since the last metrics row: its tokens per second."""

    def __init__(self):
        self.tokens, self.seconds = 0, 0.0

    def add(self, tokens: int, seconds: float) -> None:
        self.tokens += tokens
        self.seconds += seconds

    def rate(self) -> int:
        return round(self.tokens / self.seconds) if self.seconds else 0


def _progress_bar(total_steps, max_time, state: RunState):
    if total_steps is not None:
        return tqdm(total=total_steps, initial=state.step, unit="step", dynamic_ncols=True)
    return tqdm(total=round(max_time), initial=round(state.elapsed), unit="s", dynamic_ncols=True)


def _postfix(row: dict) -> str:
    return f"loss {row['loss']:.4f}  lr {row['lr']:.2e}  {row['tokens_per_s']:,} tok/s"


def _report(bar, row: dict, on_eval, state: RunState) -> None:
    if bar is not None:
        bpb = f", {row['val_bpb']:.4f} bits/byte" if "val_bpb" in row else ""
        line = f"step {row['step']}: val loss {row['val_loss']:.4f}{bpb}"
        if row["since_best"] >= 2:
            line += (f" — no better than step {state.best_step} ({state.best_val_loss:.4f}) for "
                     f"{row['since_best']} evaluations: the model is overfitting (the best one "
                     "is kept)")
        bar.write(line)
    if on_eval is not None:
        on_eval(row)


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
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._old.items():
            signal.signal(s, handler)


# -- what `tinyllm train` does ------------------------------------------------------------------

def train(cfg: TrainConfig, out_dir, *, resume_from=None, dist: Dist | None = None,
          progress: bool = False, on_start=None) -> dict:
    """Run ``cfg``: its tokenizer (trained when it is a ``bpe-N``), its data, a new model
    seeded with ``cfg.seed`` — or, with ``resume_from``, the checkpoint's model — then ``fit``
    into ``out_dir``. ``on_start(model, splits, cfg, device, dist)`` is called before the first
    step (the CLI prints what is about to happen). Returns ``fit``'s summary."""
    dist = dist or Dist()
    device = dist.device_for(resolve_device(cfg.device))
    model = None
    if resume_from is not None:
        model = GPT.from_pretrained(checkpoint.find_resumable(resume_from))
        tokenizer = model.tokenizer
    else:
        with dist.local_main_first():      # one process trains a bpe-N, the others read it
            tokenizer = load_tokenizer(cfg.resolve(device).tokenizer, cfg.data,
                                       text_field=cfg.text_field)
    with dist.local_main_first():          # one process writes the token cache
        splits = run_splits(cfg, tokenizer)
    if model is None:                      # dropout and decay follow the planned passes
        cfg = replace(cfg, model=cfg.model.replace(vocab_size=tokenizer.vocab_size))
        cfg = cfg.resolve(device, num_train_tokens=len(splits.train), world_size=dist.world_size)
        torch.manual_seed(cfg.seed)        # the model's initial weights
        model = GPT(tokenizer, cfg.model)
    if on_start is not None:
        on_start(model, splits, cfg, device, dist)
    return fit(model, splits.train, splits.validation, cfg,
               byte_lengths=token_byte_lengths(model.tokenizer), out_dir=out_dir,
               resume_from=resume_from, dist=dist, progress=progress)


def run_splits(cfg: TrainConfig, tokenizer) -> Splits:
    """The train and validation tokens of ``cfg``'s data (``tinyllm.data.tokens.load_splits``)."""
    return load_splits(cfg.data, tokenizer, val_data=cfg.val_data, val_fraction=cfg.val_fraction,
                       text_field=cfg.text_field)


def new_run_dir(out) -> Path:
    """``out`` checked as the directory of a new run."""
    out = Path(out)
    if checkpoint.is_training_checkpoint(out / "last"):
        raise TinyLLMError(f"{out} already holds a training run: continue it with --resume "
                           f"{out}, or choose another --out")
    if out.exists() and not out.is_dir():
        raise TinyLLMError(f"--out {out} is a file: give a directory")
    return out


# -- the brief's Trainer --------------------------------------------------------------------

# torch.optim.Adam at its defaults, a constant rate, nothing else: the brief's training
PLAIN_ADAM = dict(optimizer="adam", lr=1e-3, warmup_steps=0, schedule="constant",
                  weight_decay=0.0, betas=(0.9, 0.999), clip=0.0, precision="fp32")


class Trainer:
    def __init__(self, model, data_loader, epochs: int = 5, device: str = "cpu",
                 config: TrainConfig | None = None, **options):
        self.model = model
        self.data_loader = data_loader
        self.epochs = epochs
        self.device = resolve_device(device)
        unknown = sorted(set(options) - {f.name for f in fields(TrainConfig)})
        if unknown:
            raise TypeError(f"Trainer got unknown keyword arguments {unknown}: see TrainConfig")
        base = config if config is not None else TrainConfig(**PLAIN_ADAM)
        self.config = replace(base, **options, device=str(self.device))
        self.losses: list[float] = []   # every optimizer step's training loss

    def train(self):
        run = Run(self.model, self.config, dist=Dist())
        with fast_matmuls(run.device):
            self._epochs(run)

    def _epochs(self, run):
        steps_per_epoch = math.ceil(len(self.data_loader) / run.cfg.grad_accum)
        decay_steps = run.cfg.decay_steps or steps_per_epoch * self.epochs
        for epoch in range(self.epochs):
            pbar = tqdm(total=len(self.data_loader))
            micro = []
            for i, batch in enumerate(self.data_loader):
                micro.append(batch)
                if len(micro) < run.cfg.grad_accum and i + 1 < len(self.data_loader):
                    continue
                loss, _ = run.step(micro, lr_at(run.state.step, run.cfg, decay_steps))
                self.losses.append(loss.item())
                pbar.update(len(micro))
                pbar.set_description(f"Loss: {loss.item():.4f}")
                micro = []
            pbar.close()
            tqdm.write(f"Epoch {epoch}: {self.losses[-1] if self.losses else float('nan')}")
            torch.save(self.model.state_dict(), f"./{epoch + 1}.torch")


__all__ = ["Trainer", "TrainConfig", "Run", "TrainingDiverged", "fit", "train", "lr_at", "param_groups",
           "optimizer_step", "resolve_device", "steps_for", "LossModule", "run_splits"]
