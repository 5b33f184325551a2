"""The training loop: ``fit(model, train_tokens, val_tokens, TrainConfig(...))``.

Random packed windows from a token stream, Muon + AdamW (or AdamW, or Adam) with warmup and a
decay (``tinyllm.train.schedule``), gradient clipping and accumulation, bf16 (autocast on CUDA, a
bf16 copy on a CPU with AMX), optional ``torch.compile``, a budget in steps / epochs / tokens /
seconds, held-out evaluation (loss, perplexity, bits per byte), ``metrics.jsonl``, checkpoints
that resume exactly (``tinyllm.train.checkpoint``), a clean stop on Ctrl-C / SIGTERM. Under
``torchrun`` it runs as one process per GPU (or CPU process) with DistributedDataParallel
(``tinyllm.train.distributed``).

``fit`` reads as the loop and its events: a step, then the log, the evaluation and the checkpoint
when they are due. ``Run`` holds the objects of one run and does each of those things.

An output directory of ``fit``:

    DIR/              the model with the best validation loss so far (GPT.from_pretrained(DIR))
    DIR/last/         the full training state at the last checkpoint (--resume DIR)
    DIR/metrics.jsonl one JSON object per logged step and per evaluation
    DIR/loss.png      the loss curves
"""
import contextlib
import math
import signal
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..errors import TinyLLMError
from ..files import WriteError, append_metrics, lock, write_metrics
from ..formats import save_model
from ..data.instructions import Examples
from ..data.tokens import random_batches, rank_shard
from . import checkpoint
from .checkpoint import LOSS_PLOT, METRICS, RunState
from .config import planned_passes, regularization
from .cpu import ThreadGovernor
from .device import Bf16Copy, autocast, fast_matmuls, tokens_on_device
from .distributed import Dist
from .evaluate import evaluate
from .optim import make_optimizer, set_lr, set_weight_decay
from .peak import device_peak, flops_text, utilisation
from .plan import Plan, plan_run
from .plot import plot_metrics
from .schedule import lr_at
from .trackers import Trackers, parse as parse_trackers


def fit(model, train_tokens, val_tokens, cfg, *, byte_lengths=None, out_dir=None,
        resume_from=None, dist: Dist | None = None, progress: bool = False, on_eval=None,
        batches=None, muon=None, started: float | None = None) -> dict:
    """Train ``model`` on ``train_tokens`` (a ``TokenSpan`` or 1-D token array) under ``cfg``, a
    ``TrainConfig`` (its ``model`` is ignored: the model is given) or a ``Plan`` made for it.

    ``val_tokens`` (or None) is evaluated every ``cfg.eval_every`` steps and at the end;
    ``byte_lengths`` (``token_byte_lengths(tokenizer)``) makes that report bits per byte.
    ``out_dir`` receives checkpoints and metrics (see the module docstring); ``resume_from`` is
    a training checkpoint to continue. ``dist``: this process's place in a torchrun run (each
    rank samples from its own shard with a generator seeded ``cfg.seed + rank``; rank 0 logs
    the loss averaged over the ranks, evaluates and writes). ``batches``: an iterator of
    (B, T+1) token batches to train on instead of random windows (not saved in checkpoints).
    ``muon``: the class that builds the Muon part of the optimizer (a learner's, say).
    ``on_eval(row)`` is called with each evaluation's metrics row. ``started``: the
    ``time.monotonic()`` at which the run began, from which a time budget counts (default:
    now). Returns a summary: steps,
    tokens, seconds, final/best validation metrics, the signal that stopped it (or None) and
    the metrics rows."""
    dist = dist or Dist()
    plan = cfg if isinstance(cfg, Plan) else plan_run(cfg, len(_array(train_tokens)), dist,
                                                     model=model.config)
    torch.manual_seed(plan.cfg.seed + dist.rank)   # dropout (the caller seeded the weights)
    run = Run(model, plan, dist=dist, val_tokens=val_tokens, byte_lengths=byte_lengths,
              out_dir=out_dir, muon=muon, on_eval=on_eval, started=started)
    if resume_from is not None:
        run.resume(resume_from)
    batches = batches if batches is not None else run.batches(train_tokens)
    with run.running(progress):
        while not run.stopping():
            run.step([next(batches) for _ in range(plan.cfg.grad_accum)])
            log, evaluate, save = run.due()
            if log or evaluate or save:
                run.check()                    # a loss no longer finite stops the run here
            if log:
                run.log_training()
            if evaluate:
                run.evaluate()
            if save or run.early:
                run.save()
        run.end()
    return run.summary()


BUSY_FALL = 0.5      # tokens/s below this share of the run's best: the machine is busy, say so
WARM_STEPS = 2       # the first steps, slower (allocations, caches): not in the measured speed
REPLAN_AFTER = 10    # steps after which a time budget plans its regularisation from that speed
FIRST_SAVE = 1.0     # seconds a first checkpoint takes, most of it matplotlib's first figure


class TrainingDiverged(TinyLLMError):
    """The loss or the gradient stopped being finite; nothing from then on was saved."""


class LossModule(nn.Module):
    """``model.loss`` as a module's forward, so that one object can be compiled (and wrapped in
    DistributedDataParallel) while the plain model keeps its own API."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, y):
        return self.model.loss(x, y)


def optimizer_step(loss_fn, optimizer, micro_batches, cfg, device, params,
                   bf16_copy: Bf16Copy | None = None):
    """One optimizer step over ``micro_batches`` (each (B, T+1) token ids, or (inputs,
    targets) pairs (B, T) whose ignored targets are -100: instruction examples): the mean loss of
    the micro-batches is back-propagated (gradients add up, each scaled by 1/k), clipped to
    norm ``cfg.clip``, and applied. Returns (loss, grad_norm) as 0-d tensors (no sync).

    Under DistributedDataParallel the last backward also averages the gradients over the
    ranks; the ones before it skip that (``no_sync``): the sum is only needed once. With a
    ``bf16_copy`` (bf16 on a CPU) ``loss_fn`` runs the copy: its gradients go to the fp32
    ``params``, which the optimizer updates, and the copy is refreshed from them."""
    k = len(micro_batches)
    total = torch.zeros((), device=device)
    for i, batch in enumerate(micro_batches):
        if isinstance(batch, tuple):                              # examples: targets given
            x, y = (t.to(device, non_blocking=True) for t in batch)
        else:
            batch = batch.to(device, non_blocking=True)
            x, y = batch[:, :-1], batch[:, 1:]                    # (B, T) inputs, next tokens
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
    """The objects of one training run — model, optimizer, loss function, its ``RunState`` — and
    what the loop does with them: ``step``, ``log_training``, ``evaluate``, ``save``. Only the
    first process (rank 0) writes ``out_dir``."""

    def __init__(self, model, plan: Plan, *, dist: Dist | None = None, val_tokens=None,
                 byte_lengths=None, out_dir=None, muon=None, on_eval=None, started=None):
        self.plan, self.cfg, self.device = plan, plan.cfg, plan.device
        self.dist = dist or Dist()
        self.model = model.to(self.device).train()
        # bf16 on a CPU: the forward and backward run in a bf16 copy (tinyllm.train.device)
        self.bf16_copy = Bf16Copy(model) if plan.precision == "bf16" and \
            self.device.type == "cpu" else None
        self.val_tokens, self.byte_lengths, self.on_eval = val_tokens, byte_lengths, on_eval
        self.out_dir = Path(out_dir) if out_dir is not None and self.dist.is_main else None
        self.out_arg = out_dir
        self.sampler = torch.Generator().manual_seed(self.cfg.seed + self.dist.rank)
        self.optimizer = make_optimizer(model, self.cfg, self.device, muon=muon)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.state = RunState(world_size=self.dist.world_size)
        loss_fn = LossModule(self.bf16_copy.model if self.bf16_copy else model)
        self.loss_fn = torch.compile(loss_fn) if self.cfg.compile else loss_fn
        self.saved_step = None           # the step of the checkpoint in out_dir/last
        self.signal, self.early = None, False   # why the run stops before its budget
        self.last_step = None            # (loss, grad norm, lr) of the latest step
        self.checked_loss = None         # its loss, averaged over the ranks and checked
        self.last_eval = None            # the latest evaluation's metrics row
        self.window = _Window()          # steps, tokens and seconds since the last metrics row
        self.measured = _Window()        # the same over the whole run, after the warm-up steps
        self.peak = None                 # the device's peak FLOP/s (tinyllm.train.peak; rank 0)
        self.bar = None
        self.report_to = parse_trackers(self.cfg.report_to)   # checked on every rank
        if self.report_to and out_dir is None:
            raise TinyLLMError("--report-to needs the run's directory (--out): its trackers "
                               "keep their files and ids there")
        self.trackers = None             # rank 0's (tinyllm.train.trackers)
        self._signals = _StopSignals()   # caught while ``running``
        self.governor = None             # on a CPU, the thread count (tinyllm.train.cpu)
        self.best_rate, self.said_busy = 0, False   # tokens/s at best; the busy line said
        # A time budget's clock is the wall clock: (time.monotonic() when the run began, then
        # the elapsed and step that ``running`` starts from); the speed is measured from
        # (tokens, elapsed) after the warm-up steps.
        self.clock, self.speed_from = (started or time.monotonic(), 0.0, 0), None
        self.took = {}                   # seconds the latest evaluation and save took (rank 0)
        self.reserve = 0.0               # kept from a time budget for what follows the last step
        self.replanned = None            # what the measured speed set (a time budget's rule)

    # -- before the first step ----------------------------------------------------------------
    def resume(self, path) -> None:
        """Continue from the training checkpoint in ``path`` (weights, optimizer, state, RNG)."""
        self.state = checkpoint.load(checkpoint.find_resumable(path), self.model, self.optimizer)
        if self.bf16_copy is not None:
            self.bf16_copy.refresh()
        self.saved_step = self.state.step
        self._restore_rng(self.state)

    def batches(self, train_tokens):
        """Random packed windows from this rank's shard of the training tokens, forever (for
        instruction examples: random examples, each in a row of its own)."""
        if isinstance(train_tokens, Examples):
            return train_tokens.random_batches(self.cfg.batch_size, self.sampler)
        shard = tokens_on_device(rank_shard(train_tokens, self.dist.rank, self.dist.world_size),
                                 self.device)
        batches = random_batches(shard, self.cfg.batch_size, self.model.config.context_size,
                                 generator=self.sampler)
        if self.device.type == "cuda":   # page-locked host memory: the copy to the GPU is async
            batches = (b if b.is_cuda else b.pin_memory() for b in batches)
        return batches

    @contextlib.contextmanager
    def running(self, progress: bool = False):
        """For the run's duration: TF32 on a GPU; DistributedDataParallel, which copies rank 0's
        weights to every rank; on a CPU, the thread count (restored after); ``out_dir`` owned (one
        run writes a directory at a time), cleared of what a killed run left there, its metrics
        file started (a resumed run drops the rows logged after its checkpoint); Ctrl-C and
        SIGTERM caught; a progress bar."""
        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel
            self.loss_fn = DistributedDataParallel(
                self.loss_fn, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.clock = (self.clock[0], self.state.elapsed, self.state.step)
        with contextlib.ExitStack() as stack:
            stack.enter_context(fast_matmuls(self.device))
            if self.device.type == "cpu":
                self.governor = stack.enter_context(ThreadGovernor(self.cfg.threads))
            if self.dist.is_main:        # the first run on a CPU measures it (about a second)
                self.peak = device_peak(self.device, self.plan.precision,
                                        self.governor.threads if self.governor else None)
            if self.out_dir is not None:
                stack.enter_context(lock(self.out_dir, "training run"))
                stack.enter_context(self._saving("the metrics"))
                checkpoint.tidy(self.out_dir)
                write_metrics(self.out_dir / METRICS, self.state.metrics)
            stack.enter_context(self._signals)
            if progress and self.dist.is_main:
                self.bar = stack.enter_context(contextlib.closing(_progress_bar(self)))
            if self.report_to and self.out_dir is not None:
                self.trackers = Trackers(self.report_to, self.out_dir, self.cfg.to_dict(),
                                         self.saved_step, self._say)
                stack.callback(self.trackers.close)
            yield

    # -- the loop's events --------------------------------------------------------------------
    def stopping(self) -> bool:
        """The budget is spent, or a signal or the patience stopped the run."""
        return self.budget_spent() or self.signal is not None or self.early

    def budget_spent(self) -> bool:
        s, total = self.state, self.plan.total_steps
        timed = self.cfg.max_time
        return ((total is not None and s.step >= total)
                or (timed is not None and s.elapsed + self.reserve >= timed))

    def step(self, micro_batches) -> None:
        """One optimizer step at the schedule's learning rate; every rank then agrees on the
        clock (rank 0's) and on a stop signal (any rank's), so that all stop at the same step."""
        t0 = time.perf_counter()
        s, cfg = self.state, self.cfg
        lr = lr_at(s.step, cfg, self.plan.decay_steps, self._time_spent())
        set_lr(self.optimizer, lr)
        loss, norm = optimizer_step(self.loss_fn, self.optimizer, micro_batches, cfg,
                                    self.device, self.params, self.bf16_copy)
        tokens = self._tokens(micro_batches)
        s.step += 1
        s.tokens += tokens
        seconds = time.perf_counter() - t0
        (s.elapsed, self.reserve), self.signal = self.dist.agree(
            (self._wall_clock(), self._end_reserve()), self._signals.signal)
        self.window.add(tokens, seconds)
        if s.step - self.clock[2] > WARM_STEPS:
            self.measured.add(tokens, seconds)
        self.last_step = (loss, norm, lr)
        self._measure_speed()
        if self.governor is not None:
            self.governor.look()         # other work started or stopped: fewer or more threads
        if self.bar is not None:
            self.bar.update(1 if self.plan.total_steps is not None
                            else round(s.elapsed) - self.bar.n)

    def _tokens(self, micro_batches) -> int:
        """The positions one step computes, over all ranks: the plan's windows, or for
        instruction examples the rows as long as the step's longest example."""
        if isinstance(micro_batches[0], tuple):
            return sum(x.numel() for x, _ in micro_batches) * self.dist.world_size
        return self.plan.tokens_per_step

    def due(self) -> tuple[bool, bool, bool]:
        """(log, evaluate, save): what this step calls for. The last step always logs; its
        evaluation and checkpoint come in ``end``."""
        cfg, step, last = self.cfg, self.state.step, self.budget_spent()
        log = bool(cfg.log_every) and (step % cfg.log_every == 0 or last)
        evaluate = (self.val_tokens is not None and bool(cfg.eval_every)
                    and step % cfg.eval_every == 0 and not last)
        save = bool(self.plan.save_every) and step % self.plan.save_every == 0 and not last
        return log, evaluate, save

    def check(self) -> float:
        """The latest step's loss averaged over the ranks (a sync, so only when logging,
        evaluating or saving), checked: a loss or gradient that is no longer finite stops the
        run before anything is saved from it."""
        loss, norm, lr = self.last_step
        loss_value = self.checked_loss = self.dist.mean(loss).item()
        if not (math.isfinite(loss_value) and math.isfinite(float(norm))):
            raise TrainingDiverged(
                f"training diverged by step {self.state.step}: the loss is {loss_value} and the "
                f"gradient norm {float(norm)}; nothing from it was saved, "
                f"{self._intact() if self.out_dir is not None else 'nothing was written'}. "
                f"Try a lower --lr (it was {lr:.3g} at this step) or a longer --warmup")
        return loss_value

    def log_training(self) -> None:
        """A metrics row of the training loss (as ``check`` found it), learning rate, gradient
        norm, tokens/s, and the training FLOP/s and MFU they make (``tinyllm.train.peak``)."""
        _, norm, lr = self.last_step
        s = self.state
        row = {"step": s.step, "tokens": s.tokens, "loss": self.checked_loss, "lr": lr,
               "grad_norm": float(norm), "tokens_per_s": self.window.rate(),
               "elapsed": round(s.elapsed, 3)}
        row.update(utilisation(row["tokens_per_s"], self.model.config, self.peak))
        if self.governor is not None:
            row["threads"] = self.governor.threads
        self._log(row)
        self.window = _Window()
        if self.bar is not None:
            self.bar.set_postfix_str(_postfix(s.metrics[-1], steps=self.plan.total_steps is None))
            self._say_if_busy(row["tokens_per_s"])

    def _say_if_busy(self, rate: int) -> None:
        """Once: a line when tokens/s falls below half of the best this run did, saying that the
        machine is busy (what other processes use of it), not that tinyllm got slower."""
        if self.said_busy or not self.best_rate or rate >= BUSY_FALL * self.best_rate:
            self.best_rate = max(self.best_rate, rate)
            return
        self.said_busy = True
        g = self.governor
        who = (f"other processes use {g.others:.1f} of the {g.available} CPUs, so tinyllm now "
               f"trains on {g.threads} thread{'s' * (g.threads > 1)}"
               if g is not None and g.others is not None else "something else is computing")
        self.bar.write(f"the machine is busy: {rate:,} tokens/s against {self.best_rate:,} "
                       f"earlier in this run; {who} (the same steps take longer, nothing else "
                       "changed)")

    def evaluate(self) -> None:
        """Held-out loss (and bits per byte) on rank 0, logged, its time counted in the budget;
        the model is saved when it is the best. Every rank then learns whether the run is out
        of patience."""
        if self.dist.is_main:
            self.last_eval = self._evaluate()
            self._report(self.last_eval)
        self.early = self.dist.from_main(self._out_of_patience())

    def save(self) -> None:
        """Write ``out_dir/last`` (every rank takes part: rank 0 gathers their generators) and
        draw the loss curves so far."""
        self.state.rng = self._gather_rng()
        if self.out_dir is None:
            return
        t0 = time.perf_counter()
        with self._saving("the checkpoint"):
            if not (self.out_dir / "model.safetensors").is_file():   # nothing evaluated yet
                save_model(self.model, self.out_dir)
            checkpoint.save(self.out_dir / checkpoint.LAST, self.model, self.optimizer,
                            self.state, self.cfg.to_dict())
            plot_metrics(self.state.metrics, self.out_dir / LOSS_PLOT)
        self.saved_step = self.state.step
        self.took["save"] = time.perf_counter() - t0

    def end(self) -> None:
        """After the last step: its loss checked, the final evaluation (unless a signal or the
        patience stopped the run), the last checkpoint and loss curves; then all ranks leave
        together."""
        if self.last_step is not None and self.signal is None:
            self.check()
        if self.signal is None and not self.early and self.val_tokens is not None and \
                self.dist.is_main and (self.last_eval is None
                                       or self.last_eval["step"] != self.state.step):
            self.last_eval = self._evaluate()
            self._report(self.last_eval, printed=False)
        if self.saved_step != self.state.step:
            self.save()
        self.dist.barrier()              # rank 0 has written everything: all leave together
        self.state.elapsed = self._wall_clock()   # the run's time, its ending included
        if self.bar is not None and self.plan.total_steps is None:
            self.bar.update(round(self.state.elapsed) - self.bar.n)

    def summary(self) -> dict:
        s, rate = self.state, self.measured.rate()
        speed = utilisation(rate, self.model.config, self.peak) if rate else {}
        return {"steps": s.step, "tokens": s.tokens, "seconds": s.elapsed,
                "total_steps": self.plan.total_steps, "signal": self.signal,
                "final": self.last_eval, "stopped_early": self.early, "best_step": s.best_step,
                "best_val_loss": None if math.isinf(s.best_val_loss) else s.best_val_loss,
                "out_dir": str(self.out_arg) if self.out_arg is not None else None,
                "replanned": self.replanned, "metrics": s.metrics,
                # the speed of the training steps after the warm-up ones (evaluations left out)
                "tokens_per_s": rate or None, "flops_per_s": speed.get("flops_per_s"),
                "mfu": speed.get("mfu"),
                "peak": None if self.peak is None else vars(self.peak)}

    # -- a time budget ----------------------------------------------------------------------
    def _wall_clock(self) -> float:
        """Seconds of this run: the saved run's, plus the wall time since ``running`` began."""
        start, elapsed, _ = self.clock
        return elapsed + time.monotonic() - start

    def _time_spent(self) -> float:
        """The fraction of a time budget spent (0 without one): what the schedule follows."""
        if self.cfg.max_time is None:
            return 0.0
        return min(1.0, self.state.elapsed / max(1e-9, self.cfg.max_time - self.reserve))

    def _speed(self) -> float | None:
        """Training tokens/s since the warm-up steps, evaluations and saves included (the rate
        at which a time budget is spent); None before."""
        if self.speed_from is None:
            return None
        tokens, elapsed = self.speed_from
        seconds = self.state.elapsed - elapsed
        return (self.state.tokens - tokens) / seconds if seconds > 0 else None

    def _end_reserve(self) -> float:
        """The seconds a time budget keeps for what follows its last step, so that the run
        ends within it: the final evaluation (as long as the latest took; before one, its
        tokens at a third of the seconds per training token: a forward, no backward) and the
        last checkpoint (as long as the latest took; before one, ``FIRST_SAVE``)."""
        if self.cfg.max_time is None:
            return 0.0
        evaluating = self.val_tokens is not None and self.dist.is_main
        seconds = self.took.get("save", FIRST_SAVE if self.out_dir is not None else 0.0)
        speed = self._speed()
        if evaluating and "evaluate" in self.took:
            seconds += self.took["evaluate"]
        elif evaluating and speed:
            B, T = self.cfg.batch_size, self.model.config.context_size
            tokens = len(_array(self.val_tokens))
            if self.cfg.eval_batches:
                tokens = min(tokens, self.cfg.eval_batches * B * T)
            seconds += tokens / (3 * speed)
        return seconds

    def _measure_speed(self) -> None:
        """After the warm-up steps, start measuring the speed; ``REPLAN_AFTER`` steps in, set
        what a time budget's regularisation rule chose from an assumed speed (``plan.by_speed``)
        from the measured one, and say so."""
        done = self.state.step - self.clock[2]
        if done == WARM_STEPS:
            self.speed_from = (self.state.tokens, self.state.elapsed)
        elif done == REPLAN_AFTER and self.plan.by_speed and (speed := self._speed()):
            self._replan(speed)

    def _replan(self, tokens_per_s: float) -> None:
        cfg, plan = self.cfg, self.plan
        passes = planned_passes(cfg, plan.train_tokens, plan.tokens_per_step,
                                tokens_per_s=tokens_per_s)
        rule = regularization(passes)
        weight_decay = rule["weight_decay"] if "weight_decay" in plan.by_speed else cfg.weight_decay
        dropout = {name.split("_")[0]: rule["dropout"] for name in plan.by_speed
                   if name.endswith("_dropout")}
        set_weight_decay(self.optimizer, weight_decay)
        for model in (self.model, self.bf16_copy.model if self.bf16_copy else None):
            if model is not None and dropout:
                model.set_dropout(**dropout)
        self.cfg = replace(cfg, weight_decay=weight_decay, model=self.model.config)
        self.plan = replace(plan, cfg=self.cfg, by_speed=())
        self.replanned = {"step": self.state.step, "tokens_per_s": round(tokens_per_s),
                          "passes": passes, "weight_decay": weight_decay,
                          "dropout": self.model.config.residual_dropout}
        if self.bar is not None:
            self.bar.write(f"measured {tokens_per_s:,.0f} tokens/s over steps {WARM_STEPS + 1}-"
                           f"{self.state.step}: about {passes:.1f} passes over the training "
                           f"tokens in {_clock_time(cfg.max_time)}, so dropout "
                           f"{self.model.config.residual_dropout or 0:.2g} and weight decay "
                           f"{weight_decay:.2g}")

    # -- the parts of the events ----------------------------------------------------------------
    def _log(self, row: dict) -> None:
        self.state.metrics.append(row)
        if self.out_dir is not None:
            with self._saving("the metrics"):
                append_metrics(self.out_dir / METRICS, row)
        if self.trackers is not None:
            self.trackers.log(row)

    def _say(self, line: str) -> None:
        """A line for the user: on the progress bar, else logged (Python's logging prints a
        warning as its line on stderr when nothing else is set up)."""
        if self.bar is not None:
            self.bar.write(line)
        else:
            logging.getLogger(__name__).warning(line)

    def _evaluate(self) -> dict:
        t0 = time.perf_counter()
        lengths = self.byte_lengths if self.byte_lengths is not None else \
            np.ones(self.model.config.vocab_size, np.int64)
        result = evaluate(self.model, self.val_tokens, lengths, batch_size=self.cfg.batch_size,
                          max_batches=self.cfg.eval_batches, precision=self.plan.precision)
        self.took["evaluate"] = time.perf_counter() - t0
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
        self._log(row)
        return row

    def _report(self, row: dict, printed: bool = True) -> None:
        """An evaluation on the progress bar (and to ``on_eval``): overfitting said in words."""
        if printed and self.bar is not None:
            s = self.state
            bpb = f", {row['val_bpb']:.4f} bits/byte" if "val_bpb" in row else ""
            line = f"step {row['step']}: val loss {row['val_loss']:.4f}{bpb}"
            if row["since_best"] >= 2:
                line += (f" — no better than step {s.best_step} ({s.best_val_loss:.4f}) for "
                         f"{row['since_best']} evaluations: the model is overfitting (the best "
                         "one is kept)")
            self.bar.write(line)
        if self.on_eval is not None:
            self.on_eval(row)

    def _out_of_patience(self) -> bool:
        return bool(self.cfg.patience) and self.state.evals_since_best >= self.cfg.patience

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
        return (f"{out / checkpoint.LAST} (step {self.saved_step}) is intact: continue with "
                f"tinyllm train --resume {out}")

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


def _array(tokens):
    return tokens.tokens if hasattr(tokens, "tokens") else tokens


class _Window:
    """Tokens and seconds since the last metrics row: its tokens per second."""

    def __init__(self):
        self.tokens, self.seconds = 0, 0.0

    def add(self, tokens: int, seconds: float) -> None:
        self.tokens += tokens
        self.seconds += seconds

    def rate(self) -> int:
        return round(self.tokens / self.seconds) if self.seconds else 0


def _progress_bar(run: Run):
    s = run.state
    if run.plan.total_steps is not None:
        return tqdm(total=run.plan.total_steps, initial=s.step, unit="step", dynamic_ncols=True)
    return _TimeBar(total=round(run.cfg.max_time), initial=round(s.elapsed), dynamic_ncols=True,
                    bar_format="{l_bar}{bar}| {spent} of {budget}{postfix}")


class _TimeBar(tqdm):
    """A time budget's bar, in minutes and seconds: '2:13 of 3:00'."""

    @property
    def format_dict(self):
        d = super().format_dict
        return {**d, "spent": _clock_time(d["n"]), "budget": _clock_time(d["total"])}


def _clock_time(seconds: float) -> str:
    return tqdm.format_interval(round(seconds))


def _postfix(row: dict, steps: bool = False) -> str:
    step = f"step {row['step']:,}  " if steps else ""
    mfu = f"  MFU {row['mfu']:.1%}" if "mfu" in row else ""
    return (f"{step}loss {row['loss']:.4f}  lr {row['lr']:.2e}  {row['tokens_per_s']:,} tok/s  "
            f"{flops_text(row['flops_per_s'])}{mfu}")


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


__all__ = ["fit", "Run", "TrainingDiverged", "LossModule", "optimizer_step"]
