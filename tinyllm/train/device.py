"""Where a run computes: the device, its number formats, and what lives on it.

    resolve_device('auto')     cuda when available, else cpu; anything else is checked
    training_precision(...)    what --precision means here: 'bf16' or 'fp32'
    autocast(device, precision)  bf16 autocast on a CUDA device that has it ('auto', 'bf16');
                               fp32 elsewhere
    Bf16Copy(model)            on a CPU: a bf16 copy of the model for the forward and backward,
                               the fp32 model staying the master the optimizer updates
    fast_matmuls(device)       TF32 matrix products on a GPU while training

bf16 on a CPU. CPUs with bf16 matrix units (Intel's AMX) multiply bf16 matrices several times
faster than fp32 ones; elsewhere bf16 is slower. ``torch.autocast`` on a CPU casts weights and
activations at every operation, and those casts cost more than the products save at tinyllm's
sizes; so a run keeps a bf16 copy of the whole model instead (``Bf16Copy``): the forward and
backward run in it, its gradients are added to the fp32 model, which the optimizer updates, and
the copy is refreshed from it after each step. Checkpoints, evaluation and generation use the
fp32 model. ``--precision auto`` takes bf16 on a CPU with AMX (benchmarks/bench_precision.py
measures the two side by side), fp32 elsewhere.
    tokens_on_device(tokens)   a token stream copied to the GPU when it fits, so batches are cut
                               there with no host-to-device copy per step
"""
import contextlib
import copy

import numpy as np
import torch

from ..errors import TinyLLMError


def resolve_device(device) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cpu', 'cuda', 'cuda:N', 'mps' are checked."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise TinyLLMError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or "
                           "'mps'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TinyLLMError(f"device {device!r} asked for but CUDA is not available here: use 'cpu'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise TinyLLMError(f"device {device!r} asked for but MPS is not available here: use 'cpu'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise TinyLLMError(f"unsupported device {device!r}: use 'auto', 'cpu', 'cuda' or 'mps'")
    return dev


def cpu_has_bf16_units() -> bool:
    """True on a CPU with bf16 matrix units (Intel AMX: the 'amx_bf16' flag of /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return any(line.startswith("flags") and "amx_bf16" in line.split() for line in f)
    except OSError:
        return False


def training_precision(precision: str, device: torch.device, world_size: int = 1) -> str:
    """'bf16' or 'fp32': what ``--precision`` means for a run on ``device`` (see the module
    docstring). 'auto' is bf16 on CUDA (autocast) and on a one-process CPU run with AMX."""
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if device.type == "cpu" and world_size == 1 and cpu_has_bf16_units() \
            else "fp32"
    if precision == "bf16" and device.type == "mps":
        raise TinyLLMError("bf16 precision is not supported on MPS here: use --precision fp32")
    if precision == "bf16" and device.type == "cpu" and world_size > 1:
        raise TinyLLMError("bf16 on a CPU trains one process (its gradients would be exchanged "
                           "in bf16): use --precision fp32 under torchrun on CPUs")
    return precision


class Bf16Copy:
    """A bf16 copy of ``model`` (parameters and buffers) for the forward and backward pass on a
    CPU; ``model`` stays the fp32 master that the optimizer updates.

        grads_to_master():   master.grad += copy.grad (in fp32); the copy's gradients cleared
        refresh():           copy ← bf16(master), after each optimizer step"""

    def __init__(self, model):
        self.master = model
        self.model = copy.deepcopy(model).to(torch.bfloat16)
        self._pairs = list(zip(model.parameters(), self.model.parameters()))

    @torch.no_grad()
    def grads_to_master(self) -> None:
        for master, work in self._pairs:
            if work.grad is not None:
                g = work.grad.float()
                master.grad = g if master.grad is None else master.grad.add_(g)
                work.grad = None

    @torch.no_grad()
    def refresh(self) -> None:
        for master, work in self._pairs:
            work.copy_(master)


def autocast(device: torch.device, precision: str = "auto"):
    """bf16 autocast on a CUDA device that supports it, unless ``precision`` is 'fp32';
    otherwise a no-op (fp32)."""
    if precision != "fp32" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def fast_matmuls(device: torch.device):
    """For the block: fp32 matrix products on a GPU's tensor cores (TF32), as training wants;
    the process's previous setting is restored after (generation and evaluation outside it stay
    in full fp32)."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def tokens_on_device(tokens, device: torch.device, share: float = 0.25):
    """``tokens`` as an int32 tensor on a CUDA ``device`` when that takes at most ``share`` of
    its free memory; otherwise (or on another device) ``tokens`` unchanged."""
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


__all__ = ["resolve_device", "training_precision", "cpu_has_bf16_units", "autocast", "Bf16Copy",
           "fast_matmuls", "tokens_on_device"]
