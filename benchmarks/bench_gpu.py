"""GPU benchmarks: tinyllm's training speed against the blog series' recipe on one GPU.

    PYTHONPATH=. python benchmarks/bench_gpu.py [--out DIR] [--budget SECONDS]

``benchmarks/gpu_check.sh`` runs it after the cuda tests. Nothing is downloaded: the token ids
are random (the speed of a step does not depend on them) and the brief's recipe is
``benchmarks/brief_recipe.py`` (transformers' GPTNeoBlock model, ``brief_step``).

Parts, in this order, each under a time limit; one that fails or runs out of time is reported
as such and the next one runs:

  brief        training tokens/s at the brief's config (``Config()``: 8 layers, 64 wide, 16
               heads, context 64, GPT-2's 50,257-token vocabulary): the brief's recipe (plain
               Adam, full-logit cross-entropy, fp32, batch 32) against tinyllm's ``fit`` on its
               GPU path (bf16 autocast, Muon + fused AdamW, batches cut from tokens kept on the
               GPU) at batch 32 and at ``tinyllm train``'s GPU batch, 128
  tinystories  a measured minute of that training (batch 128), extrapolated to one pass over
               470 M tokens (TinyStories' training split in GPT-2 tokens)
  default      the same comparison at ``tinyllm train``'s default model (4 layers, 128 wide, 8
               heads, context 128, vocabulary 4,096, dropout 0.1; batch 128, Muon)
  compiled     tinyllm with ``compile=True`` at both configs, against the brief's recipe again

Each timing skips warm-up steps (fit's first ``LOG_EVERY``; compilation happens there), and
the contenders take turns, repeat after repeat; min / median / max are over the repeats, and
"× brief" is each repeat's ratio to the brief's recipe in the same round.

Model FLOPs utilisation: MFU = F · tokens/s / P, with P the GPU's dense bf16 peak (the
data-sheet figures by GPU name that training runs use, ``tinyllm.train.peak.GPU_PEAKS``;
"unknown" for other GPUs) and F the training FLOPs per token, the one formula training runs use
too (``tinyllm.model.flops.training_flops_per_token``):

    F = 6 N + 12 C Σ_l T_l      (forward 2 N + 4 C Σ_l T_l, backward twice that)

N: the weights of the matrix products (every Linear, the vocabulary head included; embeddings
are lookups, not products), C the width, T_l the keys a query of layer l sees (the context, or
a local layer's window), counting the whole T × T score matrix as PaLM's appendix does. The
brief's recipe does the same arithmetic per token, so the same F serves both; its fp32 MFU is
also taken against the bf16 peak.

Writes DIR/gpu_check.json and DIR/gpu_check.md (DIR: --out, else $OUT, else .), both rewritten
after each part, so a run cut short keeps what it measured.
"""
import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

from tinyllm.model.config import Config  # noqa: E402
from tinyllm.data.tokens import random_batches  # noqa: E402
from tinyllm.model import GPT  # noqa: E402
from tinyllm.train.peak import cpu_name  # noqa: E402
from tinyllm.model.flops import training_flops_per_token  # noqa: E402
from tinyllm.train import TrainConfig, fit  # noqa: E402
from tinyllm.train.peak import gpu_peak  # noqa: E402

TINYSTORIES_TOKENS = 470e6  # TinyStories' training split in GPT-2 tokens
BRIEF_BATCH = 32            # the brief's DataLoader batch
GPU_BATCH = TrainConfig().resolve(torch.device("cuda")).batch_size   # tinyllm train's, on CUDA
LOG_EVERY = 10              # fit's logging interval here = its warm-up steps, excluded from timing
TARGET_SPEEDUP = 20         # target: tinyllm ≥ 20× the brief's recipe's tokens/s at its config
TARGET_PASS_MINUTES = 10    # target: one TinyStories pass at the brief's model size ≤ 10 min

def bf16_peak(name: str) -> tuple[float | None, str]:
    """(dense bf16 peak in TFLOP/s, which data-sheet entry) for a GPU name; (None, 'unknown'):
    the table training runs use too (``tinyllm.train.peak.GPU_PEAKS``)."""
    peak = gpu_peak(name, "bf16")
    return (None, "unknown") if peak is None else (peak.flops_per_s / 1e12, peak.source)


# -- the two model shapes ------------------------------------------------------------------------

def brief_config(quick: bool) -> Config:
    """The brief's model: Config()'s defaults with GPT-2's vocabulary."""
    if quick:
        return Config(vocab_size=512, hidden_size=32, num_layers=2, num_heads=4, context_size=32,
                      window_size=32)
    return Config(vocab_size=50257)


def default_config(quick: bool) -> Config:
    """`tinyllm train`'s default model (``TrainConfig().model``) with vocabulary 4,096 (the default
    bpe-4096 tokenizer's); --quick shrinks it."""
    model = TrainConfig().model.replace(vocab_size=4096)
    return model.replace(num_layers=2, hidden_size=32, num_heads=4, context_size=32,
                         vocab_size=256) if quick else model


def brief_model(config: Config) -> nn.Module:
    """The brief's recipe's model (transformers' GPTNeoBlock) at the shape of ``config``."""
    from brief_recipe import GPTNeoBlockModel
    return GPTNeoBlockModel(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                            context_size=config.context_size, num_layers=config.num_layers,
                            num_heads=config.num_heads, window_size=config.window_size,
                            attention_layers=config.attention_layers,
                            max_position_embeddings=config.max_position_embeddings)


def describe(config: Config) -> str:
    kinds = sorted(set(config.attention_layers))
    return (f"{config.num_layers} layers, {config.hidden_size} wide, {config.num_heads} heads, "
            f"context {config.context_size}, vocabulary {config.vocab_size:,}, "
            f"{'/'.join(kinds)} attention")


# -- timing ----------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def tf32(enabled: bool):
    """TF32 matmuls on or off for the block (fit turns them on for the process; the brief's
    recipe runs with PyTorch's default, off)."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


class BriefRecipe:
    """The brief's training at one shape: its model, plain Adam, CPU batches copied to the
    device each step (as from its DataLoader), ``brief_step`` (full logits, .item() per step)."""
    kind = "the brief's recipe"

    def __init__(self, config: Config, device: torch.device, batch: int = BRIEF_BATCH):
        from brief_recipe import brief_step
        self.step_fn, self.device, self.batch = brief_step, device, batch
        self.tokens_per_step = batch * config.context_size
        self.model = brief_model(config).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters())
        gen = torch.Generator().manual_seed(0)
        self.batches = [torch.randint(0, config.vocab_size, (batch, config.context_size + 1),
                                      generator=gen) for _ in range(4)]
        self.label = dict(recipe=self.kind, batch=batch, precision="fp32 (TF32 off)",
                          optimizer="Adam", compiled=False)

    def seconds_per_step(self, steps: int) -> float:
        with tf32(False):
            for batch in self.batches[:2]:                          # warm-up
                self.step_fn(self.model, self.optimizer, batch.to(self.device))
            sync(self.device)
            start = time.perf_counter()
            for i in range(steps):
                self.step_fn(self.model, self.optimizer, self.batches[i % 4].to(self.device))
            sync(self.device)
        return (time.perf_counter() - start) / steps


class TinyllmFit:
    """tinyllm's training through ``fit`` on its GPU path: bf16 autocast on CUDA, Muon for the
    blocks' matrices and fused AdamW for the rest, batches cut by ``random_batches`` from a
    token tensor kept on the device (what fit does with tokens that fit in GPU memory).

    Timing is wall-clock from the moment fit asks for batch ``LOG_EVERY + 1`` (after a sync)
    to its return (its last step syncs), so warm-up and compilation stay out of it."""
    kind = "tinyllm fit"

    def __init__(self, model: GPT, tokens: torch.Tensor, device: torch.device, batch: int,
                 compile: bool = False):
        self.model, self.tokens, self.device, self.batch = model, tokens, device, batch
        self.compile = compile
        self.tokens_per_step = batch * model.config.context_size
        self.label = dict(recipe=self.kind, batch=batch,
                          precision="bf16 autocast" if device.type == "cuda"
                          and torch.cuda.is_bf16_supported() else "fp32",
                          optimizer="Muon + AdamW", compiled=compile)

    def run(self, steps: int, max_time: float | None = None) -> dict:
        """fit for LOG_EVERY warm-up steps + ``steps`` timed ones (or until ``max_time``)."""
        marks = {}
        source = random_batches(self.tokens, self.batch, self.model.config.context_size,
                                generator=torch.Generator().manual_seed(0))

        def timed():
            for i, batch in enumerate(source):
                if i == LOG_EVERY:
                    sync(self.device)
                    marks["start"] = time.perf_counter()
                yield batch

        cfg = TrainConfig(max_steps=LOG_EVERY + steps, max_time=max_time, batch_size=self.batch,
                          warmup_steps=LOG_EVERY, eval_every=0, log_every=LOG_EVERY,
                          device=str(self.device), compile=self.compile, seed=0)   # else defaults
        begin = time.perf_counter()
        result = fit(self.model, self.tokens, None, cfg, batches=timed())
        sync(self.device)
        end = time.perf_counter()
        if "start" not in marks or result["steps"] <= LOG_EVERY:
            raise RuntimeError(f"fit stopped after {result['steps']} steps, within its warm-up")
        timed_steps = result["steps"] - LOG_EVERY
        return {"step_s": (end - marks["start"]) / timed_steps, "steps": timed_steps,
                "seconds": end - marks["start"], "warmup_s": marks["start"] - begin}

    def seconds_per_step(self, steps: int) -> float:
        r = self.run(steps)
        self.warmup_s = r["warmup_s"]     # the untimed start of the call (compilation, if any)
        return r["step_s"]


def compare(part: dict, contenders: list, flops: float, peak: float | None,
            repeats: int, seconds: float, device: torch.device) -> None:
    """Time ``contenders`` in turns, ``repeats`` rounds of about ``seconds`` each, into
    part["rows"] (filled as it goes). The first contender is the reference for "× brief"."""
    rows = part.setdefault("rows", [])
    steps = []
    for c in contenders:                   # calibration (and compilation): not recorded
        t0 = time.perf_counter()
        step_s = c.seconds_per_step(LOG_EVERY)
        steps.append(max(LOG_EVERY, min(5000, round(seconds / step_s))))
        rows.append({**c.label, "tokens_per_step": c.tokens_per_step, "steps_per_repeat": steps[-1],
                     "first_call_s": round(time.perf_counter() - t0, 2), "step_s": []})
    for _ in range(repeats):
        for c, n, row in zip(contenders, steps, rows):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            row["step_s"].append(c.seconds_per_step(n))
            if hasattr(c, "warmup_s"):
                row.setdefault("warmup_s", []).append(round(c.warmup_s, 2))
            if device.type == "cuda":
                row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            summarise(row, rows[0], flops, peak)


def summarise(row: dict, reference: dict, flops: float, peak: float | None) -> None:
    """min / median / max of tokens/s, MFU and the ratio to ``reference`` round by round."""
    tps = [row["tokens_per_step"] / s for s in row["step_s"]]
    row["tokens_per_s"] = spread(tps)
    row["mfu"] = spread([flops * t / (peak * 1e12) for t in tps]) if peak else None
    ref = [reference["tokens_per_step"] / s for s in reference["step_s"]]
    pairs = list(zip(tps, ref))
    row["vs_brief"] = spread([a / b for a, b in pairs]) if pairs else None


def spread(values: list) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "n": len(values)}


# -- the parts -------------------------------------------------------------------------------------

class PartTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise PartTimeout in the main thread after ``seconds``."""
    def expire(signum, frame):
        raise PartTimeout(f"stopped at its {seconds:.0f} s limit")
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.device = torch.device(args.device)
        self.out = Path(args.out or os.environ.get("OUT") or ".")
        self.deadline = time.perf_counter() + args.budget
        self.repeats = 2 if self.quick else 3
        self.round_s = 0.3 if self.quick else 2.0          # timed seconds per contender per round
        self.minute = 3.0 if self.quick else 60.0
        self.peak, self.peak_label = None, "unknown"
        self.report = {"started": datetime.datetime.now().isoformat(timespec="seconds"),
                       "device": str(self.device), "quick": self.quick, "budget_s": args.budget,
                       "env": {}, "tests": None, "parts": []}
        self.models = {}

    # one part: time-limited, errors reported, results written
    def part(self, name: str, title: str, limit: float, fn) -> dict:
        part = {"name": name, "title": title, "status": "running"}
        self.report["parts"].append(part)
        left = self.deadline - time.perf_counter()
        if left < (5 if self.quick else 20):
            part.update(status="skipped", error=f"out of time: {left:.0f} s of the budget left")
            self.write()
            return part
        limit = min(limit, left)
        part["limit_s"] = round(limit)
        start = time.perf_counter()
        try:
            with time_limit(limit):
                fn(part)
            part["status"] = "ok"
        except PartTimeout as e:
            part.update(status="timeout", error=str(e))
        except Exception as e:  # a benchmark harness: report the part's failure, run the next one
            part.update(status="error", error=f"{type(e).__name__}: {e}",
                        traceback=traceback.format_exc()[-4000:])
        finally:
            part["seconds"] = round(time.perf_counter() - start, 1)
            if part["status"] != "ok":
                self.models.clear()            # nothing half-built is reused by a later part
                torch.compiler.reset()
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self.write()
        return part

    def tokens(self, vocab: int, n: int = 1 << 21) -> torch.Tensor:
        """Random token ids kept on the device as int32, as fit keeps a corpus that fits."""
        gen = torch.Generator(device=self.device).manual_seed(0)
        return torch.randint(0, vocab, (n,), generator=gen, device=self.device, dtype=torch.int32)

    def gpt(self, key: str, config: Config) -> GPT:
        """One tinyllm model per (shape, eager/compiled), reused by the parts that follow."""
        if key not in self.models:
            torch.manual_seed(0)
            self.models[key] = GPT(None, config).to(self.device)
        return self.models[key]

    # -- the parts themselves
    def env(self, part: dict) -> None:
        env = self.report["env"]
        env.update(python=platform.python_version(), torch=torch.__version__,
                   cuda=torch.version.cuda, cpu=cpu_name(), cpu_count=os.cpu_count(),
                   tinyllm_commit=run_text(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
                   tinyllm_changes=bool(run_text(["git", "-C", str(REPO), "status",
                                                  "--porcelain", "--untracked-files=no"])))
        for module in ("transformers", "triton"):
            try:
                env[module] = __import__(module).__version__
            except ImportError:
                env[module] = None
        if self.device.type == "cuda":
            props = torch.cuda.get_device_properties(self.device)
            env.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                       gpu_memory_gib=round(props.total_memory / 2**30, 1),
                       cudnn=torch.backends.cudnn.version(),
                       bf16_supported=torch.cuda.is_bf16_supported(),
                       nvidia_smi_L=run_text(["nvidia-smi", "-L"]),
                       nvidia_smi=run_text(["nvidia-smi", "--query-gpu=name,driver_version,"
                                            "memory.total,power.limit,clocks.max.sm",
                                            "--format=csv,noheader"]))
            self.peak, self.peak_label = bf16_peak(props.name)
        else:
            env["gpu"] = None
        env.update(bf16_peak_tflops=self.peak, bf16_peak_source=self.peak_label)

    def tests(self, log: str | None, rc: int | None, seconds: float | None) -> None:
        if log is None:
            return
        text = Path(log).read_text(errors="replace") if Path(log).is_file() else ""
        summary = [line.strip("= \n") for line in text.splitlines()
                   if re.search(r"\d+ (passed|failed|skipped|error|errors)\b.* in [\d.]+s", line)]
        self.report["tests"] = {
            "command": "python -m pytest -q -m cuda tests/test_cuda.py", "exit_status": rc,
            "seconds": seconds, "log": log, "summary": summary[-1] if summary else None,
            "failed": [line for line in text.splitlines() if line.startswith(("FAILED", "ERROR"))],
            "skipped": [line for line in text.splitlines() if line.startswith("SKIPPED")]}
        self.write()

    def throughput(self, config: Config, key: str, batches: list, compiled: bool):
        def measure(part: dict) -> None:
            flops = training_flops_per_token(config)
            part.update(config=describe(config), flops_per_token=flops,
                        bf16_peak_tflops=self.peak)
            tokens = self.tokens(config.vocab_size)
            contenders = [BriefRecipe(config, self.device)]
            model = self.gpt(key + ("-compiled" if compiled else ""), config)
            contenders += [TinyllmFit(model, tokens, self.device, b, compile=compiled)
                           for b in batches]
            compare(part, contenders, flops, self.peak, self.repeats, self.round_s, self.device)
        return measure

    def tinystories_pass(self, config: Config, key: str, batch: int):
        def measure(part: dict) -> None:
            model = self.gpt(key, config)
            flops = training_flops_per_token(config)
            part.update(config=describe(config), flops_per_token=flops)
            run = TinyllmFit(model, self.tokens(config.vocab_size), self.device, batch)
            step_s = run.run(LOG_EVERY)["step_s"]                       # calibration
            steps = max(LOG_EVERY, round(self.minute / step_s))
            r = run.run(steps, max_time=self.minute + 10)               # about a minute
            tokens_per_s = r["steps"] * run.tokens_per_step / r["seconds"]
            part.update(**run.label, tokens_per_step=run.tokens_per_step,
                        mfu=flops * tokens_per_s / (self.peak * 1e12) if self.peak else None,
                        measured_steps=r["steps"], measured_s=round(r["seconds"], 2),
                        measured_tokens=r["steps"] * run.tokens_per_step,
                        tokens_per_s=tokens_per_s,
                        pass_tokens=TINYSTORIES_TOKENS,
                        pass_minutes=TINYSTORIES_TOKENS / tokens_per_s / 60,
                        note=f"extrapolated from {r['seconds']:.1f} s of measured training "
                             f"(after {LOG_EVERY} warm-up steps); training steps only: no "
                             "evaluation, no data preparation")
        return measure

    def write(self) -> None:
        self.report["updated"] = datetime.datetime.now().isoformat(timespec="seconds")
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write(self.out / "gpu_check.json", json.dumps(self.report, indent=2, default=str))
        try:
            text = markdown(self.report)
        except Exception as e:  # the figures are in the JSON already: say so, keep measuring
            text = f"Formatting this report failed ({type(e).__name__}: {e}): see gpu_check.json\n"
        atomic_write(self.out / "gpu_check.md", text)

    def run(self) -> int:
        q = self.quick
        brief, default = brief_config(q), default_config(q)
        small, large = (4, 8) if q else (BRIEF_BATCH, GPU_BATCH)
        self.tests(self.args.tests_log, self.args.tests_rc, self.args.tests_seconds)
        self.part("env", "Machine", 30, self.env)
        self.part("brief", "Training throughput at the brief's config", 75,
                  self.throughput(brief, "brief", [small, large], compiled=False))
        self.part("tinystories", f"One pass over {TINYSTORIES_TOKENS / 1e6:.0f} M tokens at the "
                  "brief's model size", self.minute + 30,
                  self.tinystories_pass(brief, "brief", large))
        self.part("default", "Training throughput at `tinyllm train`'s default config", 50,
                  self.throughput(default, "default", [large], compiled=False))
        if not q:        # --quick compiles once (below): on a CPU that alone takes a minute
            self.part("compiled-default", "Compiled (compile=True), `tinyllm train`'s default "
                      "config", 80, self.throughput(default, "default", [large], compiled=True))
        self.part("compiled-brief", "Compiled (compile=True), the brief's config", 100,
                  self.throughput(brief, "brief", [large], compiled=True))
        failed = [p["name"] for p in self.report["parts"] if p["status"] != "ok"]
        tests = self.report["tests"]
        return 1 if failed or (tests is not None and tests["exit_status"] not in (0, None)) else 0


# -- the report ------------------------------------------------------------------------------------

def markdown(report: dict) -> str:
    env, lines = report["env"], []
    add = lines.append
    add("# tinyllm GPU check\n")
    add(f"Run {report['started']} (last written {report.get('updated')}), device "
        f"`{report['device']}`" + (", **--quick** (tiny sizes: not figures)" if report["quick"]
                                    else "") + ".\n")
    if env:
        add(f"- GPU: {env.get('gpu')} (compute capability {env.get('capability')}, "
            f"{env.get('gpu_memory_gib')} GiB); `nvidia-smi`: {env.get('nvidia_smi')}")
        add(f"- `nvidia-smi -L`: {env.get('nvidia_smi_L')}")
        add(f"- torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, "
            f"triton {env.get('triton')}, transformers {env.get('transformers')}, Python "
            f"{env.get('python')}")
        add(f"- CPU: {env.get('cpu')} ({env.get('cpu_count')} logical cores); tinyllm "
            f"{env.get('tinyllm_commit')}{' + uncommitted changes' if env.get('tinyllm_changes') else ''}")
        peak = env.get("bf16_peak_tflops")
        add("- bf16 peak for MFU: " + (f"{peak} TFLOP/s dense ({env.get('bf16_peak_source')}, "
                                       "NVIDIA data sheet)" if peak else "unknown (GPU not in "
                                       "the table): no MFU"))
    add("")
    add("How measured: random token ids (speed does not depend on them). *The brief's recipe*: "
        "transformers' GPTNeoBlock model, full-logit cross-entropy, plain Adam, fp32 with TF32 "
        "off (PyTorch's default), batch 32 copied from host memory each step, `.item()` each "
        "step (benchmarks/brief_recipe.py). *tinyllm fit*: `fit` with Muon for the blocks' "
        "matrices + fused AdamW, bf16 autocast and TF32 on a GPU, batches cut from tokens kept on "
        "the device. Wall-clock with the device synchronised, warm-up steps (and compilation) "
        "excluded; contenders take turns; × brief is each round's ratio to the brief's recipe. "
        "MFU = (6 N + 12 C Σ T) · tokens/s / dense bf16 peak (N: Linear weights incl. the head; "
        "see bench_gpu.py).\n")
    add("## Targets\n")
    for line in targets(report):
        add(f"- {line}")
    add("")
    tests = report.get("tests")
    if tests is not None:
        add("## Tests\n")
        add(f"`{tests['command']}`: {tests['summary'] or 'no summary line'} (exit status "
            f"{tests['exit_status']}, {tests['seconds']} s in all; log {tests['log']})\n")
        for line in tests["failed"] + tests["skipped"]:
            add(f"    {line}")
        add("")
    for part in report["parts"]:
        if part["name"] == "env" and part["status"] == "ok":
            continue
        add(f"## {part['title']}\n")
        if part["status"] != "ok":
            add(f"**{part['status']}** after {part.get('seconds')} s: {part.get('error', '')}\n")
        if part.get("config"):
            add(f"Model: {part['config']}; {part['flops_per_token'] / 1e6:.2f} MFLOP per token "
                "trained (6 N + 12 C Σ T).\n")
        if part.get("rows"):
            add(throughput_table(part["rows"]))
        if part["name"] == "tinystories" and "pass_minutes" in part:
            add(f"{part['measured_steps']:,} steps × {part['tokens_per_step']:,} tokens in "
                f"{part['measured_s']} s = **{part['tokens_per_s']:,.0f} tokens/s** "
                + (f"(MFU {100 * part['mfu']:.2f} %) " if part.get("mfu") else "") +
                f"({part['recipe']}, batch {part['batch']}, {part['precision']}, "
                f"{part['optimizer']}) → one pass over {part['pass_tokens'] / 1e6:.0f} M tokens: "
                f"**{part['pass_minutes']:.1f} minutes**, {part['note']}.\n")
        if part.get("traceback"):
            add("```\n" + part["traceback"].strip() + "\n```\n")
    return "\n".join(lines) + "\n"


def throughput_table(rows: list) -> str:
    out = ["| recipe | batch | precision | optimizer | compiled | ms/step (median) | tokens/s "
           "min / median / max | MFU (median) | × brief min / median / max | peak GPU memory |",
           "|---|---:|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if not r.get("step_s"):
            out.append(f"| {r['recipe']} | {r['batch']} | {r['precision']} | {r['optimizer']} | "
                       f"{'yes' if r['compiled'] else 'no'} | not measured (first call "
                       f"{r.get('first_call_s')} s) | | | | |")
            continue
        t, mfu, vs = r["tokens_per_s"], r.get("mfu"), r.get("vs_brief")
        out.append(
            f"| {r['recipe']} | {r['batch']} | {r['precision']} | {r['optimizer']} | "
            f"{'yes' if r['compiled'] else 'no'} | {1e3 * statistics.median(r['step_s']):.2f} | "
            f"{t['min']:,.0f} / **{t['median']:,.0f}** / {t['max']:,.0f} | "
            + (f"{100 * mfu['median']:.2f} %" if mfu else "unknown") + " | "
            + (f"{vs['min']:.2f} / **{vs['median']:.2f}** / {vs['max']:.2f}" if vs else "") + " | "
            + (f"{r['peak_memory_gib']} GiB" if "peak_memory_gib" in r else "") + " |")
    n = max((len(r["step_s"]) for r in rows), default=0)
    out.append(f"\n{n} interleaved repeats; warm-up excluded (first call per row: "
               + ", ".join(f"{r['first_call_s']} s" for r in rows) + ").\n")
    return "\n".join(out)


def targets(report: dict) -> list:
    parts = {p["name"]: p for p in report["parts"]}
    out = []
    best = []
    for name in ("brief", "compiled-brief"):
        for r in parts.get(name, {}).get("rows", [])[1:]:
            if r.get("vs_brief"):
                best.append((r["vs_brief"]["median"], r, name))
    if best:
        x, r, name = max(best, key=lambda b: b[0])
        verdict = "met" if x >= TARGET_SPEEDUP else "not met"
        out.append(f"≥ {TARGET_SPEEDUP}× the brief's recipe's tokens/s at the brief's config: "
                   f"**{x:.1f}×** (median; tinyllm batch {r['batch']}"
                   f"{', compiled' if r['compiled'] else ''}) — {verdict}")
    else:
        out.append(f"≥ {TARGET_SPEEDUP}× the brief's recipe at the brief's config: not measured")
    ts = parts.get("tinystories", {})
    if "pass_minutes" in ts:
        m = ts["pass_minutes"]
        verdict = "met" if m <= TARGET_PASS_MINUTES else "not met"
        out.append(f"one {TINYSTORIES_TOKENS / 1e6:.0f} M-token pass at the brief's model size in "
                   f"≤ {TARGET_PASS_MINUTES} min: **{m:.1f} min** (extrapolated from "
                   f"{ts['measured_s']} s measured) — {verdict}")
    else:
        out.append(f"one TinyStories pass in ≤ {TARGET_PASS_MINUTES} min: not measured")
    return out


# -- small helpers -----------------------------------------------------------------------------------

def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_text(cmd: list) -> str | None:
    """A command's stdout, stripped; None if it cannot run or fails."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="directory for gpu_check.json and gpu_check.md (default: $OUT, "
                                 "else the current directory)")
    p.add_argument("--budget", type=float, default=330,
                   help="seconds for all parts (default 330); parts that do not fit are skipped")
    p.add_argument("--tests-log", help="pytest's output, to summarise in the report")
    p.add_argument("--tests-rc", type=int, help="pytest's exit status")
    p.add_argument("--tests-seconds", type=float, help="pytest's wall-clock seconds")
    p.add_argument("--device", default="cuda", help=argparse.SUPPRESS)     # cpu: check the logic
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)  # tiny sizes, seconds
    args = p.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device: skipping")
        return 0
    bench = Bench(args)
    code = bench.run()
    for part in bench.report["parts"]:
        print(f"bench_gpu: {part['name']:18s} {part['status']:8s} {part.get('seconds', 0):6.1f} s"
              + (f"  {part['error']}" if part.get("error") else ""))
    for line in targets(bench.report):
        print(f"bench_gpu: target: {line.replace('**', '')}")
    print(f"bench_gpu: wrote {bench.out / 'gpu_check.md'} and gpu_check.json")
    return code


if __name__ == "__main__":
    sys.exit(main())
