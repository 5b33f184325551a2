"""What the rows of the parity table share: tolerances, the small config they run at, the
``Skip``/``Diff``/``Mismatch`` results, the variants an implementation is checked under, weights
far from their defaults (``randomize``) and GPT-Neo's names."""
from typing import Callable
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import TinyLLMError
from ..formats.gpt_neo import config_to_hf
from ..formats.hf_common import fuse_qkv
from ..model import Config
from ..model.nn import LayerCache, formulas


TOL = 1e-5        # one component, fp32
TOL_MODEL = 1e-4  # a whole block or model
TOL_MUON = 2e-3   # torch.optim.Muon iterates in bfloat16: float32 agrees to ~5e-4 after 3 steps;
                  # the slips tried (no Nesterov, 3 iterations, no decay, no 0.2√n) differ ≥ 6e-3

# C=32 wide, 4 heads, window 5 < T=12: small enough to be instant, big enough that every
# mask and scale matters
SMALL_CONFIG = dict(hidden_size=32, embedding_size=32, num_layers=2, num_heads=4, context_size=16,
              window_size=5, max_position_embeddings=64, vocab_size=97,
              attention_layers=["global", "local"])
T = 12
MODEL_KINDS = ("embedding", "layernorm", "attention", "mlp", "block")

TOKENIZER_SAMPLE = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside!\n\n"
    "\"Can I have   3 apples?\" asked Tom. It's 12:30 -- they'll be late; we've 99 cats.\n"
    "Ünïcödé, 日本語, emoji 🙂 and tabs\tand trailing spaces   \n<|endoftext|>The end.")


TRANSFORMERS_MISSING = 'transformers is not installed (pip install "tinyllm[check]")'


class Skip(Exception):
    """A check that cannot run here (a library or file is missing, an optional feature)."""


class Mismatch(TinyLLMError):
    """What is wrong with an implementation, in one line, whatever the numbers: a missing
    parameter, a wrong shape, NaN... (``tinyllm.check`` shows it as its row's diagnosis)."""

    def __init__(self, message: str, diff: float | None = None):
        super().__init__(message)
        self.diff = diff


class Diff(float):
    """A largest absolute difference that can say why it is large: ``why(tolerance)``."""

    def __new__(cls, value, why: Callable | None = None):
        diff = super().__new__(cls, value)
        diff.why = why
        return diff


def worst(diffs) -> float:
    """The largest of ``diffs``; a NaN, at once."""
    out = 0.0
    for d in diffs:
        if math.isnan(d):
            return d
        out = d if d > out else out
    return out


def over_variants(impl, run: Callable) -> float:
    """The worst of ``run(changes)`` over ``impl``'s variants (config changes, or for the loss
    and the optimizer keyword arguments), each under each of its kernels: tinyllm's own layers
    both fused and written out (``kernels.formulas``), a learner's as they are."""
    diffs = []
    for changes in impl.variants:
        for written_out in impl.kernels:
            with formulas(written_out):
                diffs.append(run(changes))
    return worst(diffs)


# -- helpers ------------------------------------------------------------------------------

def small_config(**kw):
    return Config(**{**SMALL_CONFIG, **kw})


def layer_cache(config, layer_type: str = "global", batch: int = 2, size: int = T) -> LayerCache:
    """An empty key/value cache for one attention layer of ``config``."""
    kv = torch.zeros(batch, 2, config.num_heads, size, config.hidden_size // config.num_heads)
    return LayerCache(kv, config.window_size if layer_type == "local" else None)


def randomize(module, seed=0, std=0.2):
    """Weights far from the defaults so every term counts (the norms' γ around 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
        for m in module.modules():
            if isinstance(m, (torch.nn.LayerNorm, torch.nn.RMSNorm)) or \
                    type(m).__name__.endswith(("LayerNorm", "RMSNorm")):
                m.weight.add_(1.0)
    return module.eval()


def max_diff(a, b) -> float:
    return (a.float() - b.float()).abs().max().item()


def gpt_neo_classes():
    try:
        from transformers import GPTNeoConfig
        from transformers.models.gpt_neo import modeling_gpt_neo
    except ImportError:
        raise Skip(TRANSFORMERS_MISSING) from None
    return GPTNeoConfig, modeling_gpt_neo


def gpt_neo_config(c):
    GPTNeoConfig, _ = gpt_neo_classes()
    d = config_to_hf(c)
    d.update(bos_token_id=None, eos_token_id=None, attn_implementation="eager")
    return GPTNeoConfig(**d)


def neo_names(state: dict) -> dict:
    """A GPT-Neo module's tensors in tinyllm's names (W_q, W_k, W_v stacked; mask buffers out)."""
    return fuse_qkv({k.replace("attn.attention.", "attn."): v for k, v in state.items()
                     if not k.endswith(("attention.bias", "masked_bias")) and k != "bias"})


def gpt_neo_state(hf_module) -> dict:
    """A GPT-Neo module's weights in tinyllm's names."""
    return neo_names(hf_module.state_dict())


class ReferenceAttention(nn.Module):
    """Causal multi-head attention through ``F.scaled_dot_product_attention``, in tinyllm's
    parameter names: the 'scaled' row's twin, and the formula with the knobs a slip turns
    (``scale``, ``window``, ``heads``, ``causal``) for the diagnosis."""

    def __init__(self, C: int, heads: int, scale: float, window: int | None = None,
                 causal: bool = True):
        super().__init__()
        self.heads, self.scale, self.window, self.causal = heads, scale, window, causal
        self.qkv = nn.Linear(C, 3 * C, bias=False)
        self.out_proj = nn.Linear(C, C)

    @classmethod
    def of(cls, config, layer_type: str, **changes):
        d = config.hidden_size // config.num_heads
        knobs = dict(heads=config.num_heads,
                     scale=1.0 if config.attention == "gpt-neo" else 1 / math.sqrt(d),
                     window=config.window_size if layer_type == "local" else None)
        return cls(config.hidden_size, **{**knobs, **changes})

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        i, j = torch.arange(T, device=x.device)[:, None], torch.arange(T, device=x.device)
        allowed = j <= i if self.causal else torch.ones(T, T, dtype=torch.bool, device=x.device)
        if self.window is not None:
            allowed = allowed & (i - j < self.window)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=self.scale)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))


