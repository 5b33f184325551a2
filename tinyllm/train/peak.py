"""The device's peak FLOP/s, against which a run's model FLOP utilisation (MFU) is measured.

    achieved FLOP/s = tokens/s × training_flops_per_token(model)     (tinyllm.model.flops)
    MFU             = achieved FLOP/s / peak FLOP/s

On CUDA the peak is the data sheet's dense figure for the GPU and the run's number format
(``GPU_PEAKS``; bf16 on the tensor cores; an fp32 run's matrix products run as TF32 there, which
``fast_matmuls`` turns on, so its peak is the TF32 one). A CPU's data sheet rarely says, and what
its cores reach depends on the vector units, the threads and the dtype, so on a CPU the peak is
measured: the fastest of a second's square matrix products at the run's dtype on the run's
threads (``measure_cpu_peak``), once per machine — cached in ``$TINYLLM_HOME/peak_flops.json``
under the CPU's model name, the thread count and the dtype (and kept by the process, which
measures each at most once whatever ``$TINYLLM_HOME`` is). Either way the figure says where it
came from (``Peak.source``), and a run states it.
"""
import re
import time
from dataclasses import dataclass

import torch

from ..errors import TinyLLMError
from ..files import home, read_json, write_json
from ..model.flops import training_flops_per_token

CACHE = "peak_flops.json"
PROBE_SECONDS = 1.0       # how long the CPU probe multiplies matrices
PROBE_SIZE = 1024         # n of its n × n products: 2 n³ FLOPs each

# Dense (no sparsity) tensor-core peaks in TFLOP/s from NVIDIA's data sheets: (name pattern,
# label, bf16, fp32 as TF32); the first pattern that matches torch.cuda.get_device_name() wins,
# so the more specific names come first. None: the GPU has no such units (the T4: no bf16; its
# fp32 figure is the plain fp32 rate, it has no TF32 either). The RTX 4090's bf16 figure is with
# fp32 accumulation, as training's products accumulate.
GPU_PEAKS = [
    (r"GH200", "GH200", 989.4, 494.7),
    (r"H200 NVL", "H200 NVL", 835.5, 417.5),
    (r"H200", "H200 SXM", 989.4, 494.7),
    (r"H100 NVL", "H100 NVL", 835.5, 417.5),
    (r"H100 PCIe", "H100 PCIe", 756.5, 378.0),
    (r"H100|H800", "H100 SXM", 989.4, 494.7),
    (r"B200", "B200", 2250.0, 1100.0),
    (r"B100", "B100", 1750.0, 875.0),
    (r"A100|A800", "A100", 312.0, 156.0),
    (r"L40S", "L40S", 362.05, 183.0),
    (r"L40\b", "L40", 181.05, 90.5),
    (r"\bL4\b", "L4", 121.0, 60.0),
    (r"\bA30\b", "A30", 165.0, 82.0),
    (r"\bA10\b", "A10", 125.0, 62.5),
    (r"\bT4\b", "T4", None, 8.1),
    (r"RTX 4090", "GeForce RTX 4090", 165.2, 82.6),
]

_MEASURED = {}            # this process's CPU measurements, by cache key


@dataclass(frozen=True)
class Peak:
    """A device's peak FLOP/s for a number format, and where the figure comes from."""
    flops_per_s: float
    source: str


def gpu_peak(name: str, precision: str) -> Peak | None:
    """The data-sheet peak of the GPU called ``name`` for ``precision`` ('bf16' or 'fp32');
    None for a GPU not in ``GPU_PEAKS`` (or without units for that format)."""
    for pattern, label, bf16, fp32 in GPU_PEAKS:
        if re.search(pattern, name):
            tflops = bf16 if precision == "bf16" else fp32
            kind = "bf16" if precision == "bf16" else "TF32" if label != "T4" else "fp32"
            return None if tflops is None else \
                Peak(tflops * 1e12, f"{label} data sheet, dense {kind}")
    return None


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo's), else what the platform says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine() or "unknown CPU"


def measure_cpu_peak(dtype: torch.dtype, seconds: float = PROBE_SECONDS,
                     n: int = PROBE_SIZE) -> float:
    """FLOP/s of the fastest n × n matrix product at ``dtype`` in about ``seconds`` (at least
    three), on the threads PyTorch uses now."""
    g = torch.Generator().manual_seed(0)      # its own: the run's random state stays as seeded
    a, b = (torch.randn(n, n, generator=g).to(dtype) for _ in range(2))
    out = a @ b                                             # warm-up: allocations, kernels
    best, rounds, end = float("inf"), 0, time.perf_counter() + seconds
    while rounds < 3 or time.perf_counter() < end:
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        best, rounds = min(best, time.perf_counter() - t0), rounds + 1
    return 2 * n ** 3 / best


def cpu_peak(precision: str, threads: int | None = None) -> Peak:
    """This CPU's peak for ``precision`` on ``threads`` (default: PyTorch's now): measured the
    first time (``measure_cpu_peak``), then read from the cache in ``$TINYLLM_HOME``."""
    threads = threads or torch.get_num_threads()
    name = cpu_name()
    key = f"{name} | {threads} threads | {precision}"
    path = home() / CACHE
    try:
        cached = read_json(path, "peak FLOP/s cache") if path.is_file() else {}
    except TinyLLMError:
        cached = {}                                         # damaged: measured again
    if key not in cached:
        if key not in _MEASURED:
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                flops = measure_cpu_peak(torch.bfloat16 if precision == "bf16" else torch.float32)
            finally:
                torch.set_num_threads(before)
            _MEASURED[key] = {"flops_per_s": flops, "measured": time.strftime("%Y-%m-%d")}
        cached[key] = _MEASURED[key]
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, cached)
    entry = cached[key]
    return Peak(entry["flops_per_s"], f"measured {precision} {PROBE_SIZE}² matrix products, "
                f"{threads} thread{'s' * (threads > 1)} of {name}, {entry['measured']}")


def device_peak(device: torch.device, precision: str, threads: int | None = None) -> Peak | None:
    """The peak a run on ``device`` at ``precision`` is measured against: a GPU's data sheet,
    a CPU's probe; None where neither is known (another GPU, MPS)."""
    if device.type == "cuda":
        return gpu_peak(torch.cuda.get_device_name(device), precision)
    if device.type == "cpu":
        return cpu_peak(precision, threads)
    return None


def utilisation(tokens_per_s: float, model_config, peak: Peak | None) -> dict:
    """{'flops_per_s': achieved training FLOP/s, 'mfu': its share of ``peak``} (no 'mfu' without
    a peak), rounded for a metrics row."""
    flops = tokens_per_s * training_flops_per_token(model_config)
    row = {"flops_per_s": float(f"{flops:.4g}")}
    if peak is not None:
        row["mfu"] = round(flops / peak.flops_per_s, 5)
    return row


def flops_text(flops_per_s: float) -> str:
    """'91.2 GFLOP/s', '312 TFLOP/s'."""
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M")):
        if flops_per_s >= scale:
            return f"{flops_per_s / scale:.3g} {prefix}FLOP/s"
    return f"{flops_per_s:.3g} FLOP/s"


__all__ = ["Peak", "GPU_PEAKS", "gpu_peak", "cpu_peak", "cpu_name", "measure_cpu_peak",
           "device_peak", "utilisation", "flops_text", "CACHE"]
