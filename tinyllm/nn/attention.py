"""Causal multi-head self-attention, global or with GPT-Neo's sliding 'local' window.

For an input x (B, T, C) and H heads of size d = C / H:

    [q k v] = x W_qkv                                 W_qkv = [W_q W_k W_v], no bias; each split
                                                      into H heads: (B, H, T, d)
    q, k = RMSNorm(q), RMSNorm(k)                     per head, with qk_norm only (Qwen3)
    q, k = rope(q, i), rope(k, j)                     rotary positions only (tinyllm.nn.rotary)
    s_ij = s · q_i · k_j                              s = 1 (GPT-Neo) or 1/√d ('scaled')
    s_ij = -∞  where j > i                            (causal: no looking ahead)
             or i - j ≥ window                        (local layers: only the last `window` tokens)
    y_i = Σ_j softmax_j(s_ij) v_j                     (scores kept in fp32)
    out = concat_heads(y) W_o + b_o                   (output projection; b_o unless bias=False)

Two implementations give the same result: ``explicit`` writes the softmax out (for learners;
its probabilities pass through the ``probs`` hook point, where they can be read); the default
calls ``torch.nn.functional.scaled_dot_product_attention`` (fused, much faster).

A key/value cache makes generation cost one position per new token: ``kv`` is this layer's
preallocated (B, 2, H, T_max, d) buffer of keys [:, 0] and values [:, 1] (``tinyllm.nn.KVCache``),
``pos`` the absolute position of x[:, 0]. The new keys/values are written at [pos, pos + T) and the queries
attend to everything before. With rotary positions, ``rope`` is the (cos, sin) of positions
pos .. pos + T - 1 (``tinyllm.nn.Rotary``): keys are rotated before they enter the cache.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import dropout

from .norm import RMSNorm
from .rotary import apply_rotary


class Attention(nn.Module):
    def __init__(self, config, layer_type: str = "global"):
        super().__init__()
        C, H = config.hidden_size, config.num_heads
        if C % H != 0:
            raise ValueError(f"hidden_size ({C}) must be divisible by num_heads ({H})")
        if layer_type not in ("global", "local"):
            raise ValueError(f"attention layer type must be 'global' or 'local', not {layer_type!r}")
        self.num_heads, self.head_dim = H, C // H
        self.layer_type = layer_type
        self.window = config.window_size if layer_type == "local" else None  # None: no window
        self.scale = 1.0 if config.attention == "gpt-neo" else 1.0 / math.sqrt(self.head_dim)
        self.explicit = config.explicit
        self.qkv = nn.Linear(C, 3 * C, bias=False)     # W_q, W_k, W_v stacked: one matrix product
        self.out_proj = nn.Linear(C, C, bias=config.bias)
        self.rotary = config.position == "rotary"
        if config.qk_norm:   # one γ of size d for the queries, one for the keys, shared by heads
            self.q_norm = RMSNorm(self.head_dim, config.layer_norm_epsilon, config.explicit)
            self.k_norm = RMSNorm(self.head_dim, config.layer_norm_epsilon, config.explicit)
        else:
            self.q_norm = self.k_norm = None
        self.attn_dropout = config.attention_dropout
        self.resid_dropout = config.residual_dropout
        self.probs = nn.Identity()  # hook point: the (B, H, T, S) probabilities, explicit path only

    def mask(self, T: int, first_key: int, num_keys: int, pos: int, device) -> torch.Tensor | None:
        """Boolean (T, S) mask, True where query i (at pos + i) may see key j (at first_key + j)."""
        i = torch.arange(pos, pos + T, device=device)[:, None]
        j = torch.arange(first_key, first_key + num_keys, device=device)[None, :]
        allowed = j <= i
        if self.window is not None:
            allowed = allowed & (i - j < self.window)
        return allowed

    def forward(self, x: torch.Tensor, kv=None, pos: int = 0, rope=None) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.num_heads, self.head_dim).permute(0, 2, 3, 1, 4)
        # qkv: (B, 3, H, T, d): q, k, v of each head
        if self.q_norm is not None or self.rotary:
            qkv = self._normalise_and_rotate(qkv, rope)

        first_key = pos  # absolute position of the first key: without a cache, x's own
        if kv is None:
            q, k, v = qkv.unbind(1)                                    # (B, H, T, d) each
        else:  # write the new keys/values, then read back all the ones in view
            kv[:, :, :, pos:pos + T] = qkv[:, 1:]                      # kv: (B, 2, H, size, d)
            # the earliest key any of these queries may see
            first_key = 0 if self.window is None else max(0, pos - self.window + 1)
            q, k, v = qkv[:, 0], kv[:, 0, :, first_key:pos + T], kv[:, 1, :, first_key:pos + T]
        S = k.shape[2]

        # When the keys are exactly the queries' positions and the window never bites, plain
        # causal masking is enough; a single query over a window-trimmed cache needs no mask.
        needs_window = self.window is not None and pos + T - first_key > self.window
        if T == 1 and not needs_window:
            mask, causal = None, False
        elif first_key == pos and not needs_window:
            mask, causal = None, True
        else:
            mask, causal = self.mask(T, first_key, S, pos, x.device), False

        p_attn = self.attn_dropout if self.training else 0.0       # dropout on the weights
        if self.explicit:
            y = self._explicit(q, k, v, mask, causal, p_attn)
        elif q.dtype == torch.bfloat16 and q.device.type == "cpu":
            # torch's CPU attention kernel is several times slower in bf16 than in fp32
            # (its backward most), so a bf16 model on a CPU attends in fp32
            y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask,
                                               is_causal=causal, dropout_p=p_attn,
                                               scale=self.scale).to(q.dtype)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                               dropout_p=p_attn, scale=self.scale)
        y = self.out_proj(y.transpose(1, 2).reshape(B, T, C))  # concatenate heads: (B, T, C)
        return dropout(y, self.resid_dropout, self.training)

    def step(self, x: torch.Tensor, kv: torch.Tensor, pos: int, rope=None) -> torch.Tensor:
        """``forward`` for one new position per sequence during generation — x (B, C) at
        position ``pos``, its keys and values written into ``kv`` — in fewer operations: one
        query needs no mask and nothing is reshaped for a sequence axis. Its twin is ``forward``
        (the parity row "Block one-token step" holds them equal)."""
        B, C = x.shape
        qkv = F.linear(x, self.qkv.weight).view(B, 3, self.num_heads, 1, self.head_dim)
        if self.q_norm is not None or self.rotary:
            qkv = self._normalise_and_rotate(qkv, rope)
        kv[:, :, :, pos:pos + 1] = qkv[:, 1:]                             # cache K, V at pos
        first = 0 if self.window is None else max(0, pos - self.window + 1)  # local: the window
        y = F.scaled_dot_product_attention(qkv[:, 0], kv[:, 0, :, first:pos + 1],
                                           kv[:, 1, :, first:pos + 1], scale=self.scale)
        return F.linear(y.view(B, C), self.out_proj.weight, self.out_proj.bias)  # heads joined

    def _normalise_and_rotate(self, qkv, rope):
        """QK-norm, then rotary positions, on the new queries and keys of qkv (B, 3, H, T, d)."""
        if self.rotary and rope is None:
            raise ValueError("rotary attention needs the (cos, sin) of its positions: "
                             "pass rope=Rotary(d)(pos, T)")
        qk, v = qkv[:, :2], qkv[:, 2:]                     # (B, 2, H, T, d), (B, 1, H, T, d)
        if self.q_norm is not None:
            qk = torch.stack((self.q_norm(qk[:, 0]), self.k_norm(qk[:, 1])), dim=1)
        if self.rotary:
            qk = apply_rotary(qk, *rope)                   # q and k at once: cos, sin (T, d)
        return torch.cat((qk, v), dim=1)

    def _explicit(self, q, k, v, mask, causal, p_drop):
        # q: (B, H, T, d), k, v: (B, H, S, d)
        scores = (q.float() @ k.float().transpose(-2, -1)) * self.scale  # (B, H, T, S), fp32
        if causal:
            mask = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).tril()
        if mask is not None:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        probs = self.probs(scores.softmax(dim=-1).to(v.dtype))
        probs = dropout(probs, p_drop)
        return probs @ v  # (B, H, T, d)
