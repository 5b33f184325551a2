"""Where a run computes: the device, its number formats, and what lives on it.

    resolve_device('auto')     cuda when available, else cpu; anything else is checked
    autocast(device, precision)  bf16 autocast on a CUDA device that has it ('auto', 'bf16');
                               fp32 elsewhere
    fast_matmuls(device)       TF32 matrix products on a GPU while training
    tokens_on_device(tokens)   a token stream copied to the GPU when it fits, so batches are cut
                               there with no host-to-device copy per step
"""
import contextlib

import numpy as np
import torch

from .errors import TinyLLMError


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


def check_precision(device: torch.device, precision: str) -> None:
    if precision == "bf16" and device.type != "cuda":
        raise TinyLLMError("bf16 precision needs a CUDA device: use --precision fp32 on CPU")


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


__all__ = ["resolve_device", "check_precision", "autocast", "fast_matmuls", "tokens_on_device"]
