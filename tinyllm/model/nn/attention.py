"""Causal multi-head self-attention, global or with GPT-Neo's sliding 'local' window.

For an input x (B, T, C) and H heads of size d = C / H:

    [q k v] = x W_qkv (+ b_qkv)                       W_qkv = [W_q W_k W_v] (a bias: qkv_bias); split
                                                      into H heads: (B, H, T, d)
    q, k = RMSNorm(q), RMSNorm(k)                     per head, with qk_norm only (Qwen3)
    q, k = rope(q, i), rope(k, j)                     rotary positions only (tinyllm.model.nn.rotary)
    s_ij = s · q_i · k_j                              s = 1 (GPT-Neo) or 1/√d ('scaled')
    s_ij = -∞  where j > i                            (causal: no looking ahead)
             or i - j ≥ window                        (local layers: only the last `window` tokens)
    y_i = Σ_j softmax_j(s_ij) v_j                     (scores kept in fp32)
    out = concat_heads(y) W_o + b_o                   (output projection; b_o unless bias=False)

Two implementations give the same result (``ATTEND``): by default
``torch.nn.functional.scaled_dot_product_attention`` (fused, much faster); inside
``kernels.formulas()`` the softmax written out, its probabilities passing through the ``probs``
hook point, where they can be read.

A key/value cache (``tinyllm.model.nn.kv_cache``) makes generation cost one position per new
token: given this layer's ``LayerCache``, x sits at positions cache.length .., its keys and values
go into the cache, and the queries attend to every key the cache holds in view (rotary keys are
rotated before they enter it).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import dropout
from .kernels import written_out
from .norm import RMSNorm
from .rotary import Rotary


def attend_fused(q, k, v, mask, causal: bool, scale: float, p_drop: float, probs) -> torch.Tensor:
    """softmax(s · q kᵀ + mask) v in one kernel; q (B, H, T, d), k and v (B, H, S, d)."""
    if q.dtype == torch.bfloat16 and q.device.type == "cpu":
        # torch's CPU attention kernel is several times slower in bf16 than in fp32 (its
        # backward most), so a bf16 model on a CPU attends in fp32
        return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask,
                                              is_causal=causal, dropout_p=p_drop,
                                              scale=scale).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                          dropout_p=p_drop, scale=scale)


def attend_formulas(q, k, v, mask, causal: bool, scale: float, p_drop: float, probs) -> torch.Tensor:
    """The same, written out: scores, mask, softmax (through the ``probs`` hook point), mix."""
    scores = (q.float() @ k.float().transpose(-2, -1)) * scale       # (B, H, T, S), fp32
    if causal:
        mask = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = probs(scores.softmax(dim=-1).to(v.dtype))
    return dropout(weights, p_drop) @ v                              # (B, H, T, d)


ATTEND = {"fused": attend_fused, "formulas": attend_formulas}   # the two implementations


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
        self.qkv = nn.Linear(C, 3 * C, bias=config.qkv_bias)  # W_q, W_k, W_v stacked: one product
        self.out_proj = nn.Linear(C, C, bias=config.bias)
        self.rotary = (Rotary(self.head_dim, config.rope_theta, config.max_position_embeddings,
                              config.rotary_dim) if config.position == "rotary" else None)
        if config.qk_norm:   # one γ of size d for the queries, one for the keys, shared by heads
            self.q_norm = RMSNorm(self.head_dim, config.layer_norm_epsilon)
            self.k_norm = RMSNorm(self.head_dim, config.layer_norm_epsilon)
        else:
            self.q_norm = self.k_norm = None
        self.attn_dropout = config.attention_dropout
        self.resid_dropout = config.residual_dropout
        self.probs = nn.Identity()  # hook point: the (B, H, T, S) probabilities, formulas only

    def mask(self, T: int, first_key: int, num_keys: int, pos: int, device) -> torch.Tensor | None:
        """Boolean (T, S) mask, True where query i (at pos + i) may see key j (at first_key + j)."""
        i = torch.arange(pos, pos + T, device=device)[:, None]
        j = torch.arange(first_key, first_key + num_keys, device=device)[None, :]
        allowed = j <= i
        if self.window is not None:
            allowed = allowed & (i - j < self.window)
        return allowed

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        # x: (B, T, C); cache: this layer's LayerCache, or None (x is the whole sequence)
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.num_heads, self.head_dim).permute(0, 2, 3, 1, 4)
        # qkv: (B, 3, H, T, d): q, k, v of each head
        pos = 0 if cache is None else cache.length                 # the position of x[:, 0]
        qkv = self._normalise_and_rotate(qkv, pos)
        if cache is None:
            q, k, v = qkv.unbind(1)                                    # (B, H, T, d) each
        else:   # the cache keeps the new keys/values and gives back all those in view
            q, (k, v) = qkv[:, 0], cache.update(qkv[:, 1:])            # k, v: (B, H, S, d)
        S = k.shape[2]
        first_key = pos + T - S                                        # the position of k[:, :, 0]

        # When the keys are exactly the queries' positions and the window never bites, plain
        # causal masking is enough; a single query over a window-trimmed cache needs no mask.
        needs_window = self.window is not None and pos + T - first_key > self.window
        if T == 1 and not needs_window:
            mask, causal = None, False
        elif first_key == pos and not needs_window:
            mask, causal = None, True
        else:
            mask, causal = self.mask(T, first_key, S, pos, x.device), False

        p_drop = self.attn_dropout if self.training else 0.0          # dropout on the weights
        attend = ATTEND["formulas" if written_out() else "fused"]
        y = attend(q, k, v, mask, causal, self.scale, p_drop, self.probs)
        y = self.out_proj(y.transpose(1, 2).reshape(B, T, C))  # concatenate heads: (B, T, C)
        return dropout(y, self.resid_dropout, self.training)

    def step(self, x: torch.Tensor, cache) -> torch.Tensor:
        """``forward`` for one new position per sequence during generation — x (B, C) at
        position ``cache.length``, its keys and values added to the cache — in fewer operations:
        one query needs no mask and nothing is reshaped for a sequence axis. Its twin is
        ``forward`` (the parity row "Block one-token step" holds them equal)."""
        B, C = x.shape       # .forward: the layers' own (an int8 one too), without call hooks
        qkv = self.qkv.forward(x).view(B, 3, self.num_heads, 1, self.head_dim)
        pos = cache.length if cache.pad is None else (cache.length - cache.pad).view(B, 1, 1, 1)
        qkv = self._normalise_and_rotate(qkv, pos)            # pos: each row's, when padded
        k, v = cache.update(qkv[:, 1:])                        # the window is the cache's
        y = F.scaled_dot_product_attention(qkv[:, 0], k, v, attn_mask=cache.key_mask(),
                                           scale=self.scale)
        return self.out_proj.forward(y.view(B, C))             # heads joined: (B, C)

    def _normalise_and_rotate(self, qkv, pos: int):
        """QK-norm, then rotary positions, on the new queries and keys of qkv (B, 3, H, T, d),
        which sit at positions pos .. (or at the positions of a tensor ``pos``, see ``Rotary``)"""
        if self.q_norm is None and self.rotary is None:
            return qkv
        qk, v = qkv[:, :2], qkv[:, 2:]                     # (B, 2, H, T, d), (B, 1, H, T, d)
        if self.q_norm is not None:
            qk = torch.stack((self.q_norm(qk[:, 0]), self.k_norm(qk[:, 1])), dim=1)
        if self.rotary is not None:
            qk = self.rotary.forward(qk, pos)              # q and k at once
        return torch.cat((qk, v), dim=1)
