"""A learner's slips, one per class, each in code a learner could write: every one makes a row
of ``tinyllm check --use`` fail with its own diagnosis (tests/test_check_use.py)."""
import torch
import torch.nn.functional as F
from torch import nn

import correct  # its neighbour: --use puts this file's folder on sys.path


class NonCausalAttention(correct.Attention):
    """Forgets the causal mask: every position sees the whole sequence."""

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (self.split_heads(p(x)) for p in (self.q_proj, self.k_proj, self.v_proj))
        scores = q @ k.transpose(-2, -1) * self.scale
        y = scores.softmax(dim=-1) @ v
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))


class UnscaledAttention(correct.Attention):
    """Never scales the scores, whatever config.attention says."""

    def __init__(self, config, layer_type="global"):
        super().__init__(config, layer_type)
        self.scale = 1.0


class HeadsNotMergedAttention(correct.Attention):
    """Returns the heads (B, H, T, d) without concatenating them and projecting."""

    def forward(self, x):
        q, k, v = (self.split_heads(p(x)) for p in (self.q_proj, self.k_proj, self.v_proj))
        T = x.shape[1]
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)


class CrashingAttention(correct.Attention):
    """Multiplies q by k without transposing k: fails for T ≠ d."""

    def forward(self, x):
        q, k, v = (self.split_heads(p(x)) for p in (self.q_proj, self.k_proj, self.v_proj))
        scores = q @ k * self.scale
        return scores


class CpuMaskAttention(correct.Attention):
    """Builds its mask on the CPU whatever the input's device."""

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (self.split_heads(p(x)) for p in (self.q_proj, self.k_proj, self.v_proj))
        scores = q @ k.transpose(-2, -1) * self.scale
        causal = torch.tril(torch.ones(T, T))
        if self.window is not None:
            causal = causal - torch.tril(torch.ones(T, T), diagonal=-self.window)
        scores = scores.masked_fill(causal == 0, float("-inf"))
        y = scores.softmax(dim=-1) @ v
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))


class BiasedProjectionsAttention(correct.Attention):
    """Gives the query, key and value projections a bias GPT-Neo does not have."""

    def __init__(self, config, layer_type="global"):
        super().__init__(config, layer_type)
        C = config.hidden_size
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(C, C) for _ in range(3))


class LayerNormWithoutScaleShift(nn.Module):
    """The blog's first LayerNorm: normalises, but has no learnable γ and β."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps)


class ConfigLayerNorm(correct.LayerNorm):
    """Takes the config, where tinyllm passes (dim, eps)."""

    def __init__(self, config):
        super().__init__(config.hidden_size, config.layer_norm_epsilon)


class UnbiasedLayerNorm(correct.LayerNorm):
    """torch's default x.var() is the unbiased one (÷ C - 1)."""

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(x.var(dim=-1, keepdim=True) + self.eps) * self.weight \
            + self.bias


class DetachedLayerNorm(correct.LayerNorm):
    """Uses its scale through .detach(): it never learns."""

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight.detach(), self.bias, self.eps)


class NaNLayerNorm(correct.LayerNorm):
    """Subtracts where it should add, and a large ε: the root of a negative variance is NaN."""

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(var - 10.0) * self.weight + self.bias


class Float32LayerNorm(correct.LayerNorm):
    """Writes its result into a new tensor made with torch's defaults: float32, on the CPU."""

    def forward(self, x):
        out = torch.empty(x.shape)
        out[:] = super().forward(x)
        return out


class ReluMLP(correct.MLP):
    """ReLU where GPT-Neo has gelu_new."""

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)))


class SummedLoss:
    """Adds the per-token losses up instead of averaging them."""

    def __call__(self, h, weight, targets, ignore_index=-100):
        logits = h @ weight.T
        keep = targets != ignore_index
        logits, targets = logits[keep], targets[keep]
        return (torch.logsumexp(logits, -1) - logits.gather(1, targets[:, None])[:, 0]).sum()


class ByteDroppingTokenizer(correct.Tokenizer):
    """Keeps only the ASCII bytes of each word: 'Ü', '日本語' and the emoji vanish."""

    def bpe(self, word):
        return super().bpe(word.encode("ascii", errors="ignore").decode("ascii"))


class NoNesterovMuon(correct.Muon):
    """Orthogonalises the momentum buffer itself, not the Nesterov look-ahead."""

    @torch.no_grad()
    def step(self):
        import math
        for group in self.param_groups:
            lr, mu = group["lr"], group["momentum"]
            for p in group["params"]:
                buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buf.mul_(mu).add_(p.grad, alpha=1 - mu)
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(self.newton_schulz(buf), alpha=-lr * 0.2 * math.sqrt(max(p.shape)))


class FixedMaskAttention(correct.Attention):
    """Keeps a causal mask for 16 positions, made once: right on the checks' 12 tokens, wrong
    on a longer context (training's)."""

    def __init__(self, config, layer_type="global"):
        super().__init__(config, layer_type)
        self.register_buffer("mask", torch.tril(torch.ones(16, 16)))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (self.split_heads(p(x)) for p in (self.q_proj, self.k_proj, self.v_proj))
        scores = q @ k.transpose(-2, -1) * self.scale
        scores = scores.masked_fill(self.mask[:T, :T] == 0, float("-inf"))
        if self.window is not None:
            i, j = torch.arange(T, device=x.device)[:, None], torch.arange(T, device=x.device)
            scores = scores.masked_fill(i - j >= self.window, float("-inf"))
        y = scores.softmax(dim=-1) @ v
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))
