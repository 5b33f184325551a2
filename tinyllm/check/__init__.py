"""The parity table: every component against its reference twin — tinyllm's own, or a learner's.

Each row builds the implementation under test (from ``parts``: tinyllm's own classes, or a
learner's given to ``tinyllm check --use KIND=PATH:NAME``; see ``tinyllm.check.implementations``) and its
twin (``torch.nn``, ``torch.nn.functional``, transformers' GPT-Neo, the ``tokenizers`` library),
gives both the same weights and the same small random input, and reports the largest absolute
difference of their outputs and of their gradients, over every case the row covers:

    Embedding    vs torch.nn.Embedding           LayerNorm   vs torch.nn.LayerNorm
    gelu_new     vs F.gelu(approximate='tanh')   MLP         vs GPTNeoMLP
    Attention    global and local vs GPTNeoSelfAttention, 'scaled' vs
                 F.scaled_dot_product_attention, kv-cache decoding vs one full pass
    Block        vs GPTNeoBlock                  GPT         vs GPTNeoForCausalLM (via tinyllm.hf)
    Head + loss  vs F.cross_entropy(h @ W.T, y): the loss and both gradients
    Muon         three optimizer steps vs torch.optim.Muon
    BPE          vs tokenizers (token ids that differ, and decode(encode(text)) == text)

tinyllm's own classes are also checked under their variants (fused kernels and the formulas
written out, other activations). A failing row says why in one line (``parity``, ``explain_*``):
a parameter the reference has and it lacks, an output of the wrong shape, dtype or device,
NaN, a parameter no gradient reaches, attention that is not causal or scaled otherwise than
the reference, a LayerNorm without scale and shift, another activation, a tokenizer that does
not round-trip; an exception names its file and line.

Rows run bottom-up: a broken component also breaks the rows built from it (Block, GPT), which
then say so, so the first failing row is the one to fix. ``tinyllm check`` prints the table; the
tests run the same rows and keep what a row cannot express. A row runs for a learner's class
only when it builds one of its kind (``Check.uses``); the others do not apply to it.

Adding a row is one ``Check`` in ``CHECKS``: a function of ``parts`` returning the largest
difference (``parity`` does the work for a module), its tolerance, and the kinds it builds.
"""
from dataclasses import dataclass
from typing import Callable

import torch

from . import implementations
from .learner import LearnerError, blame, describe
from .classic import (check_attention_cache, check_attention_global, check_attention_local,
                      check_attention_scaled, check_block, check_block_step, check_embedding,
                      check_gelu, check_layernorm, check_loss, check_mlp, check_model,
                      check_model_cache, check_muon, check_tokenizer)
from .common import (MODEL_KINDS, TOL, TOL_MODEL, TOL_MUON, Mismatch, ReferenceAttention, Skip,
                     gpt_neo_state, randomize)
from .diagnose import parity
from .modern import (check_attention_rotary, check_attention_rotary_cache, check_bias_free_gpt_neo,
                     check_llama_block, check_llama_model, check_llama_model_cache,
                     check_neox_model, check_parallel_block, check_partial_rotary, check_qk_norm,
                     check_relu2_mlp, check_rmsnorm, check_rotary, check_softcap_loss, check_swiglu)


@dataclass(frozen=True)
class Check:
    """A row of the table: ``run(parts)`` returns the largest absolute difference; ``kind`` is
    the component it checks (None: a function of tinyllm's, or the whole model), ``uses`` every
    kind it builds (it runs when one of them is a learner's)."""
    component: str
    reference: str
    run: Callable
    tolerance: float
    kind: str | None = None
    uses: tuple = ()

    def __post_init__(self):
        if self.kind is not None and self.kind not in self.uses:
            object.__setattr__(self, "uses", (self.kind, *self.uses))


@dataclass
class Row:
    component: str
    reference: str
    max_abs_diff: float | None   # None when skipped or when the check raised
    tolerance: float
    status: str                  # 'pass', 'fail' or 'skipped'
    note: str = ""               # why it failed or was skipped, in one line

    @property
    def failed(self) -> bool:
        return self.status == "fail"


CHECKS = [  # bottom-up
    Check("Embedding", "torch.nn.Embedding", check_embedding, TOL, "embedding"),
    Check("LayerNorm", "torch.nn.LayerNorm", check_layernorm, TOL, "layernorm"),
    Check("gelu_new", "F.gelu(approximate='tanh')", check_gelu, TOL),
    Check("MLP", "GPTNeoMLP", check_mlp, TOL, "mlp"),
    Check("Attention global", "GPTNeoSelfAttention (global)", check_attention_global, TOL,
          "attention"),
    Check("Attention local", "GPTNeoSelfAttention (local)", check_attention_local, TOL,
          "attention"),
    Check("Attention scaled", "F.scaled_dot_product_attention", check_attention_scaled, TOL,
          "attention"),
    Check("Attention kv cache", "one full forward pass", check_attention_cache, TOL, "attention"),
    Check("Block", "GPTNeoBlock (global, local)", check_block, TOL_MODEL, "block",
          ("layernorm", "attention", "mlp")),
    Check("GPT (HF import)", "GPTNeoForCausalLM", check_model, TOL_MODEL, uses=MODEL_KINDS),
    Check("GPT kv cache", "one full forward pass", check_model_cache, TOL_MODEL, uses=MODEL_KINDS),
    Check("Block one-token step", "Block.forward with the cache (and static)", check_block_step,
          TOL),
    Check("Head + loss", "F.cross_entropy (and grads)", check_loss, TOL, "loss"),
    Check("Muon", "torch.optim.Muon (3 steps)", check_muon, TOL_MUON, "optimizer"),
    Check("BPE tokenizer", "tokenizers (ids that differ)", check_tokenizer, 0.0, "tokenizer"),
    # the components of newer models (tinyllm.check.modern)
    Check("RMSNorm", "torch.nn.RMSNorm", check_rmsnorm, TOL, "rmsnorm"),
    Check("Rotary", "LlamaRotaryEmbedding + apply_rotary_pos_emb", check_rotary, TOL),
    Check("SwiGLU MLP", "LlamaMLP", check_swiglu, TOL),
    Check("ReLU² MLP", "GPTNeoMLP (activation 'relu2')", check_relu2_mlp, TOL),
    Check("Attention rotary", "LlamaAttention", check_attention_rotary, TOL),
    Check("QK-norm", "Qwen3Attention", check_qk_norm, TOL),
    Check("Attention rotary kv cache", "one full forward pass", check_attention_rotary_cache, TOL),
    Check("Block (Llama)", "LlamaDecoderLayer", check_llama_block, TOL_MODEL),
    Check("GPT (Llama import)", "LlamaForCausalLM", check_llama_model, TOL_MODEL),
    Check("GPT kv cache (Llama, QK-norm, soft-cap)", "one full forward pass",
          check_llama_model_cache, TOL_MODEL),
    Check("Rotary, part of each head", "GPTNeoXRotaryEmbedding + apply_rotary_pos_emb",
          check_partial_rotary, TOL),
    Check("Block, parallel residual", "GPTNeoXLayer", check_parallel_block, TOL_MODEL),
    Check("GPT (GPT-NeoX import)", "GPTNeoXForCausalLM", check_neox_model, TOL_MODEL),
    Check("No biases (GPT-Neo export)", "GPTNeoForCausalLM, zero biases", check_bias_free_gpt_neo,
          TOL_MODEL),                   # tinyllm's own bias-free layers: no learner's class here
    Check("Head + loss, soft-cap", "F.cross_entropy(c·tanh(z/c)) (and grads)", check_softcap_loss,
          TOL),
]


def run_checks(seed: int = 0, parts: dict | None = None, kinds=None) -> list[Row]:
    """Run the rows with ``parts`` (default: tinyllm's own everywhere) — only those that build
    one of ``kinds``, when given. A row that raises fails with the exception as its note (its
    file and line); a row built from a part whose own row failed says so."""
    parts = parts or implementations.parts()
    rows, failed = [], {}          # kind -> the name of its first failing row
    for check in CHECKS:
        if kinds is not None and not set(check.uses) & set(kinds):
            continue
        torch.manual_seed(seed)
        diff, status, note = None, "fail", ""
        try:
            diff = check.run(parts)
        except Skip as e:
            status, note = "skipped", str(e)
        except Mismatch as e:
            diff, note = e.diff, str(e)
        except LearnerError as e:
            note = str(e)
        except Exception as e:  # a broken component: its row fails, the others still run
            note = _raised(e)
        else:
            if diff <= check.tolerance:  # NaN fails
                status = "pass"
            elif getattr(diff, "why", None) is not None:
                note = diff.why(check.tolerance) or ""
        if status == "fail":
            broken = [k for k in check.uses if k != check.kind and k in failed]
            if broken:
                note = (f"built from the {broken[0]}, whose row {failed[broken[0]]!r} fails: "
                        "fix that first")
            elif check.kind is not None:
                failed.setdefault(check.kind, check.component)
        rows.append(Row(check.component, check.reference, None if diff is None else float(diff),
                        check.tolerance, status, note))
    return rows


def _raised(e: Exception) -> str:
    """An exception's note: whose code raised it, and where."""
    frame = blame(e, learner_only=True)
    return f"your code raised {describe(e, frame)}" if frame is not None else describe(e)


def format_table(rows: list[Row]) -> str:
    """The rows as an aligned text table."""
    header = ("component", "reference", "max abs diff", "tolerance", "result")
    body = []
    for r in rows:
        diff = "-" if r.max_abs_diff is None else f"{r.max_abs_diff:.3g}"
        result = r.status + (f": {r.note}" if r.note else "")
        body.append((r.component, r.reference or "-", diff, f"{r.tolerance:g}", result))
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line[:4], widths)) + "  " + line[4]
             for line in [header, *body]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


__all__ = ["CHECKS", "Check", "Row", "run_checks", "format_table", "parity", "randomize",
           "gpt_neo_state", "ReferenceAttention", "Skip", "TOL", "TOL_MODEL", "TOL_MUON"]
