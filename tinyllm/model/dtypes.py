"""Lighter weights for generation: the model's copy in bf16 or with int8 linear layers.

    fp32   the model as trained (the default: nothing is rounded)
    bf16   every weight rounded to bfloat16 (8 bits of mantissa); on a CPU only where it has bf16
           instructions (AVX-512 BF16 or AMX), elsewhere it is slower than fp32
    int8   the large linear layers (at least ``INT8_MIN_WEIGHTS`` weights: the head, mostly):
           W ≈ s ⊙ Q,  Q = round(W / s) ∈ [-127, 127],  s_i = max_j |W_ij| / 127 (one scale
           per output row); the product y = x Wᵀ runs in int8 with x quantized per call
           (PyTorch's fbgemm kernels, as llama.cpp's Q8_0 quantizes x per block of 32) — a
           quarter of fp32's bytes to read per token. Smaller layers, embeddings, norms and
           biases stay fp32: below about 2¹⁸ weights fbgemm's per-call work costs more than the
           bytes it saves (measured on a 2-core AMD EPYC: a 512 × 128 layer 2× slower in int8,
           4,096 × 128 2× faster, GPT-2's 50,257 × 64 head 4× faster). CPU only.

Both are lossy: ``tinyllm generate --dtype`` asks for them by name, and
``benchmarks/bench_generate.py --agreement`` measures what they change (docs/models.md).
"""
import copy
import warnings

import torch
from torch import nn

from ..errors import TinyLLMError

DTYPES = ("fp32", "bf16", "int8")
INT8_MIN_WEIGHTS = 2 ** 18       # smaller linear layers stay fp32 under int8 (see above)


def convert(model, dtype: str = "fp32", int8_min_weights: int = INT8_MIN_WEIGHTS):
    """``model`` itself for 'fp32', else a copy of it in ``dtype`` (see the module docstring),
    in evaluation mode, for generation; int8 turns the linear layers of at least
    ``int8_min_weights`` weights."""
    if dtype not in DTYPES:
        raise TinyLLMError(f"unknown dtype {dtype!r} for generation: use one of {', '.join(DTYPES)}")
    if dtype == "fp32":
        return model
    device = model.device
    if dtype == "bf16":
        if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            raise TinyLLMError("this CPU has no bf16 instructions (AVX-512 BF16 or AMX): bf16 "
                               "would be slower than fp32; use --dtype int8 or fp32")
        return copy.deepcopy(model).to(torch.bfloat16).eval()
    if device.type != "cpu":
        raise TinyLLMError(f"int8 generation runs on a CPU only, not on {device.type}: use "
                           "--dtype bf16 there, or --device cpu")
    if next(model.parameters()).dtype != torch.float32:
        raise TinyLLMError("int8 is made from an fp32 model: load it in fp32")
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    large = {name: per_channel_dynamic_qconfig for name, m in model.named_modules()
             if isinstance(m, nn.Linear) and m.weight.numel() >= int8_min_weights}
    with warnings.catch_warnings():          # torch.ao.quantization says it is moving to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model).eval(), large, dtype=torch.qint8)


def has_int8(model) -> bool:
    """Whether ``model`` has int8 layers (a copy made by ``convert(model, 'int8')``)."""
    from torch.ao.nn.quantized.dynamic import Linear
    return any(isinstance(m, Linear) for m in model.modules())


__all__ = ["DTYPES", "convert", "has_int8"]
