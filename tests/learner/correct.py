"""A learner's own components, one of each kind, written the way the blog series writes them
(from the formulas, not from tinyllm's code): every row of
``tinyllm check --use KIND=tests/learner/correct.py:NAME`` passes."""
import json
import math
from pathlib import Path

import regex
import torch
from torch import nn


class Embedding(nn.Module):
    def __init__(self, num_embeddings, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_embeddings, dim) * 0.02)

    def forward(self, ids):
        return self.weight[ids]


class LayerNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class Attention(nn.Module):
    """Separate query/key/value projections (GPT-Neo's names), heads, causal mask, window."""

    def __init__(self, config, layer_type="global"):
        super().__init__()
        C = config.hidden_size
        self.heads, self.head_size = config.num_heads, C // config.num_heads
        self.scale = 1.0 if config.attention == "gpt-neo" else 1 / math.sqrt(self.head_size)
        self.window = config.window_size if layer_type == "local" else None
        self.q_proj = nn.Linear(C, C, bias=False)
        self.k_proj = nn.Linear(C, C, bias=False)
        self.v_proj = nn.Linear(C, C, bias=False)
        self.out_proj = nn.Linear(C, C)

    def split_heads(self, t):
        B, T, C = t.shape
        return t.view(B, T, self.heads, self.head_size).transpose(1, 2)   # (B, H, T, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (self.split_heads(p(x)) for p in (self.q_proj, self.k_proj, self.v_proj))
        scores = q @ k.transpose(-2, -1) * self.scale                      # (B, H, T, T)
        i = torch.arange(T, device=x.device)[:, None]
        j = torch.arange(T, device=x.device)[None, :]
        hidden = j > i
        if self.window is not None:
            hidden = hidden | (i - j >= self.window)
        scores = scores.masked_fill(hidden, float("-inf"))
        y = scores.softmax(dim=-1) @ v                                     # (B, H, T, d)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))


def gelu_new(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        inner = config.intermediate_size or 4 * config.hidden_size
        self.c_fc = nn.Linear(config.hidden_size, inner)
        self.c_proj = nn.Linear(inner, config.hidden_size)

    def forward(self, x):
        return self.c_proj(gelu_new(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config, layer_type="global"):
        super().__init__()
        self.ln_1 = LayerNorm(config.hidden_size, config.layer_norm_epsilon)
        self.attn = Attention(config, layer_type)
        self.ln_2 = LayerNorm(config.hidden_size, config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


def cross_entropy(h, weight, targets, ignore_index=-100):
    logits = h @ weight.T                                                  # (N, V)
    keep = targets != ignore_index
    logits, targets = logits[keep], targets[keep]
    return (torch.logsumexp(logits, dim=-1) - logits.gather(1, targets[:, None])[:, 0]).mean()


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr, weight_decay, momentum=0.95):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum))

    @staticmethod
    def newton_schulz(g, steps=5):
        a, b, c = 3.4445, -4.7750, 2.0315
        x = g.T if g.shape[0] > g.shape[1] else g
        x = x / x.norm()
        for _ in range(steps):
            A = x @ x.T
            x = a * x + (b * A + c * A @ A) @ x
        return x.T if g.shape[0] > g.shape[1] else x

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, mu = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buf.mul_(mu).add_(p.grad, alpha=1 - mu)
                update = self.newton_schulz((1 - mu) * p.grad + mu * buf)
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(update, alpha=-lr * 0.2 * math.sqrt(max(p.shape)))


def bytes_to_unicode():
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table, n = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in table:
            table[b], n = chr(256 + n), n + 1
    return table


class Tokenizer:
    PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    EOT = "<|endoftext|>"

    def __init__(self, directory):
        directory = Path(directory)
        self.vocab = json.loads((directory / "vocab.json").read_text("utf-8"))
        lines = (directory / "merges.txt").read_text("utf-8").splitlines()
        merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#")]
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.inverse = {i: t for t, i in self.vocab.items()}
        self.byte_char = bytes_to_unicode()
        self.char_byte = {c: b for b, c in self.byte_char.items()}

    def bpe(self, word):
        symbols = [self.byte_char[b] for b in word.encode("utf-8")]
        while len(symbols) > 1:
            pairs = list(zip(symbols, symbols[1:]))
            best = min(pairs, key=lambda pair: self.ranks.get(pair, math.inf))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(symbols):
                if symbols[i:i + 2] == list(best):
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return [self.vocab[s] for s in symbols]

    def encode(self, text):
        ids = []
        for n, piece in enumerate(text.split(self.EOT)):
            if n:
                ids.append(self.vocab[self.EOT])
            for word in regex.findall(self.PATTERN, piece):
                ids += self.bpe(word)
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            token = self.inverse[int(i)]
            out += token.encode("utf-8") if token == self.EOT else \
                bytes(self.char_byte[c] for c in token)
        return out.decode("utf-8", errors="replace")
