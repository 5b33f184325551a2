"""The components a learner can swap for their own, one kind at a time: each kind's interface, as
``tinyllm check --interface KIND`` prints it, and how tinyllm makes a learner's class of it.

    kind        constructor (the arguments the model gives it)    call
    embedding   Embedding(num_embeddings, dim)                    (...) int ids -> (..., dim)
    layernorm   LayerNorm(dim, eps)                               (B, T, C) -> (B, T, C)
    rmsnorm     RMSNorm(dim, eps)                                 (B, T, C) -> (B, T, C)
    attention   Attention(config, layer_type)                     (B, T, C) -> (B, T, C)
    mlp         MLP(config)                                       (B, T, C) -> (B, T, C)
    block       Block(config, layer_type)                         (B, T, C) -> (B, T, C)
    loss        loss(h, weight, targets), a function or class     (N, C), (V, C), (N,) -> ()
    optimizer   Optimizer(params, lr, weight_decay)               .step() after backward
    tokenizer   Tokenizer(directory)                              .encode(text), .decode(ids)

Adding a kind is one ``Kind`` in ``KINDS`` here, tinyllm's own ``Implementation`` in
``tinyllm.check.implementations.OWN`` and, for a module of the model, its seat in
``tinyllm.model.parts.Parts``.
"""
import inspect
import textwrap
from dataclasses import dataclass, field
from typing import Callable

from ..errors import TinyLLMError
from .common import Mismatch
from .learner import blame

@dataclass(frozen=True)
class Kind:
    name: str
    summary: str                 # one line: what it is
    construct: Callable          # (cls, *args) -> instance: how tinyllm makes a learner's class,
                                 # with the arguments the model (tinyllm.model.parts) gives it
    interface: str               # constructor, call, shapes, formula (check --interface)
    parameters: dict = field(default_factory=dict)   # name -> what it is (weights load by name)
    example: str = ""            # the command that checks it
    own: str = ""                # tinyllm's own implementation, by name


def _optimizer(cls, params, lr, weight_decay):
    return _call(cls, params, lr=lr, weight_decay=weight_decay)


def _loss(obj):
    """A loss function as it is; a class is made with no arguments."""
    return _call(obj) if inspect.isclass(obj) else obj


def _call(cls, *args, **kwargs):
    """``cls(*args, **kwargs)``; a constructor that does not take these arguments is a
    ``Mismatch`` that shows its signature (a TypeError raised inside it stays the learner's)."""
    try:
        return cls(*args, **kwargs)
    except TypeError as e:
        if blame(e, learner_only=True) is not None:
            raise
        raise Mismatch(f"tinyllm makes it as {cls.__name__}({_arguments(args, kwargs)}), which "
                       f"{cls.__name__}{inspect.signature(cls)} does not take: see tinyllm "
                       "check --interface") from None


def _arguments(args, kwargs) -> str:
    shown = [type(a).__name__ if not isinstance(a, (int, float, str)) else repr(a) for a in args]
    return ", ".join(shown + [f"{k}={v!r}" for k, v in kwargs.items()])


_CHECK = "tinyllm check --use {kind}=my_{kind}.py:{name}"

KINDS = {k.name: k for k in [
    Kind("embedding", "a learnable lookup table: token and position embeddings",
         lambda cls, num, dim: _call(cls, num, dim), """\
    class Embedding(nn.Module):
        def __init__(self, num_embeddings, dim)   # (vocab_size or max positions, hidden_size)
        def forward(self, ids)                    # ids: (...) int64  ->  (..., dim)

    E ∈ R^(N × dim),  embed(ids) = E[ids]        row i of E is the vector of id i

The model makes two: token ids (B, T) index a (vocab_size × C) table; positions 0..T-1, a 1-D
tensor (T,), index a (max_position_embeddings × C) table and broadcast over the batch. GPT-Neo
starts E at N(0, 0.02).""",
         {"weight": "E, (num_embeddings, dim); the output head shares the token table when "
                    "config.tie_embeddings"},
         _CHECK.format(kind="embedding", name="Embedding"),
         own='tinyllm.model.nn.Embedding'),
    Kind("layernorm", "layer normalisation with a learnable scale and shift",
         lambda cls, dim, eps: _call(cls, dim, eps), """\
    class LayerNorm(nn.Module):
        def __init__(self, dim, eps=1e-5)         # (hidden_size, layer_norm_epsilon)
        def forward(self, x)                      # x: (..., dim)  ->  (..., dim)

    μ = mean(x),  σ² = mean((x - μ)²)             over the last dimension (biased: ÷ dim)
    y = (x - μ) / √(σ² + ε) · γ + β

γ starts at ones, β at zeros (torch.nn.LayerNorm's defaults).""",
         {"weight": "γ, the learnable scale, (dim,)", "bias": "β, the learnable shift, (dim,)"},
         _CHECK.format(kind="layernorm", name="LayerNorm"),
         own='tinyllm.model.nn.LayerNorm'),
    Kind("rmsnorm", "RMS normalisation with a learnable scale (Llama's norm)",
         lambda cls, dim, eps: _call(cls, dim, eps), """\
    class RMSNorm(nn.Module):
        def __init__(self, dim, eps=1e-6)         # (hidden_size, layer_norm_epsilon)
        def forward(self, x)                      # x: (..., dim)  ->  (..., dim)

    rms(x) = √(mean(x²) + ε)                      over the last dimension
    y = x / rms(x) · γ

γ starts at ones (torch.nn.RMSNorm's default). No mean is subtracted and there is no shift.""",
         {"weight": "γ, the learnable scale, (dim,)"},
         _CHECK.format(kind="rmsnorm", name="RMSNorm"),
         own='tinyllm.model.nn.RMSNorm'),
    Kind("attention", "causal multi-head self-attention, global or with GPT-Neo's local window",
         lambda cls, config, layer_type: _call(cls, config, layer_type), """\
    class Attention(nn.Module):
        def __init__(self, config, layer_type="global")   # layer_type: 'global' or 'local'
        def forward(self, x)                              # x: (B, T, C)  ->  (B, T, C)

config: hidden_size C, num_heads H (head size d = C / H), attention ('gpt-neo': s = 1, as
GPT-Neo, which does not scale; 'scaled': s = 1/√d), window_size W (a 'local' layer's query i sees
the keys i-W+1 .. i, itself included; None: no window; 'global' sees 0 .. i).

    q, k, v = x W_qᵀ, x W_kᵀ, x W_vᵀ            each split into H heads: (B, H, T, d)
    s_ij = s · q_i · k_j                         -∞ where j > i (causal); local: also i - j ≥ W
    y = concat_heads(softmax_j(s) v) W_oᵀ + b_o  (B, T, C)

Keep the matrices in nn.Linear layers: training decays nn.Linear weights (and gives them Muon).
Optional: forward(self, x, cache=None) with tinyllm's key/value cache, which generation passes:
x then sits at positions cache.length.., and k, v = cache.update(torch.stack((k, v), dim=1))
stores this call's keys and values, (B, 2, H, T, d), and gives back all those its queries may
see, (B, H, S, d) each (see tinyllm/model/nn/kv_cache.py). The 'kv cache' rows check it; without
it they are skipped.""",
         {"q_proj.weight, k_proj.weight, v_proj.weight":
              "W_q, W_k, W_v: nn.Linear(C, C, bias=False) each (GPT-Neo's names) -- or one "
              "qkv = nn.Linear(C, 3C, bias=False) holding [W_q; W_k; W_v] (tinyllm's)",
          "out_proj.weight, out_proj.bias": "W_o, b_o: nn.Linear(C, C)"},
         _CHECK.format(kind="attention", name="Attention"),
         own='tinyllm.model.nn.Attention'),
    Kind("mlp", "the position-wise feed-forward network of a block",
         lambda cls, config: _call(cls, config), """\
    class MLP(nn.Module):
        def __init__(self, config)
        def forward(self, x)                      # x: (B, T, C)  ->  (B, T, C)

config: hidden_size C, intermediate_size I (None: 4C), activation ('gelu_new' is the one
checked: GPT-Neo's).

    MLP(x) = act(x W₁ᵀ + b₁) W₂ᵀ + b₂
    gelu_new(x) = ½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))     GELU, tanh approximation

Keep the matrices in nn.Linear layers: training decays nn.Linear weights (and gives them Muon).""",
         {"c_fc.weight, c_fc.bias": "W₁, b₁: nn.Linear(C, I)",
          "c_proj.weight, c_proj.bias": "W₂, b₂: nn.Linear(I, C)"},
         _CHECK.format(kind="mlp", name="MLP"),
         own='tinyllm.model.nn.MLP'),
    Kind("block", "a pre-LayerNorm transformer block (GPT-2 / GPT-Neo layout)",
         lambda cls, config, layer_type: _call(cls, config, layer_type), """\
    class Block(nn.Module):
        def __init__(self, config, layer_type="global")
        def forward(self, x)                      # x: (B, T, C)  ->  (B, T, C)

    x = x + Attention(LN₁(x))
    x = x + MLP(LN₂(x))

Its parts may be yours or tinyllm's (tinyllm.model.nn.LayerNorm, Attention, MLP); they keep
their own parameter names under the block's. Optional: forward(self, x, cache=None), passed on to
the attention (see attention).""",
         {"ln_1.*, ln_2.*": "two LayerNorms (weight, bias)", "attn.*": "an attention",
          "mlp.*": "an MLP"},
         _CHECK.format(kind="block", name="Block"),
         own='tinyllm.model.nn.Block'),
    Kind("loss", "the vocabulary head and the cross-entropy of the next token",
         lambda obj: _loss(obj), """\
    def loss(h, weight, targets, ignore_index=-100)     # or a class whose instances do this
        # h: (N, C) hidden states, weight: (V, C) head, targets: (N,) int64  ->  a 0-d tensor

    z_i = W h_i                                   the logits of row i, (V,)
    ℓ_i = logsumexp(z_i) - z_i[y_i]               its cross-entropy
    L = (1/n) Σ_i ℓ_i                             over the n rows whose target is not ignore_index

Gradients reach h and W through autograd (or your own backward).""",
         {}, _CHECK.format(kind="loss", name="cross_entropy"),
         own='tinyllm.model.nn.loss.linear_cross_entropy'),
    Kind("optimizer", "Muon for 2-D weight matrices (the blocks' nn.Linear weights)",
         _optimizer, """\
    class Muon(torch.optim.Optimizer):
        def __init__(self, params, lr, weight_decay, momentum=0.95)
        def step(self)                            # after backward: update each p with a grad

For a matrix W (m × n) with gradient G, momentum μ, learning rate η and decay λ:

    B ← μ B + (1 - μ) G                           momentum buffer (starts at 0)
    U = (1 - μ) G + μ B                           Nesterov: look one step ahead
    O = NS₅(U / ‖U‖_F)                            5 iterations X ← aX + (bA + cA²)X, A = X Xᵀ,
                                                  (a, b, c) = (3.4445, -4.7750, 2.0315), on the
                                                  wide orientation (transpose when m > n)
    W ← W (1 - η λ) - η · 0.2 √max(m, n) · O

Checked against torch.optim.Muon(adjust_lr_fn='match_rms_adamw'), which iterates NS₅ in
bfloat16: a float32 one agrees to about 5e-4 after 3 steps.""",
         {}, _CHECK.format(kind="optimizer", name="Muon"),
         own='tinyllm.train.optim.Muon'),
    Kind("tokenizer", "byte-level BPE in GPT-2's format (vocab.json + merges.txt)",
         lambda cls, directory: cls(directory), """\
    class Tokenizer:
        def __init__(self, directory)             # a pathlib.Path holding vocab.json and merges.txt
        def encode(self, text) -> list[int]
        def decode(self, ids) -> str

    1. cut the text at each <|endoftext|> (one token by itself)
    2. split each piece into words with GPT-2's pattern (tinyllm.tokenizer.bpe.PATTERN)
    3. write a word's UTF-8 bytes as characters (tinyllm.tokenizer.bpe.bytes_to_unicode:
       space -> 'Ġ')
    4. merge the adjacent pair of lowest rank (its line in merges.txt) until none is a rule;
       look the symbols up in vocab.json
    decode: ids -> strings -> bytes -> text (invalid UTF-8 -> U+FFFD)

decode(encode(text)) must give the text back, and the ids must equal the tokenizers library's.""",
         {}, _CHECK.format(kind="tokenizer", name="Tokenizer"),
         own="tinyllm.tokenizer.bpe.BPE, as Tokenizer(directory, backend='tinyllm')"),
]}


def interface(kind: str) -> str:
    """The interface of ``kind`` as ``tinyllm check --interface`` prints it."""
    k = kind_named(kind)
    lines = [f"{k.name}: {k.summary}", "", k.interface]
    if k.parameters:
        lines += ["", "parameters (the checks load the reference's weights into yours by name):"]
        for name, what in k.parameters.items():
            lines += [f"    {name}"] + textwrap.wrap(what, 92, initial_indent=" " * 8,
                                                     subsequent_indent=" " * 8)
    train = "" if k.name == "optimizer" else "  [--train 200]"   # see retrain.check_request
    lines += ["", f"tinyllm's own: {k.own}", f"check yours:   {k.example}{train}"]
    return "\n".join(lines)


def kinds() -> str:
    """The kinds, one line each (``tinyllm check --interface`` without a kind)."""
    return "\n".join([f"{k.name:<10} {k.summary}" for k in KINDS.values()]
                     + ["", "tinyllm check --interface KIND prints one in full"])


def kind_named(name: str) -> Kind:
    if name not in KINDS:
        raise TinyLLMError(f"unknown component kind {name!r}: use one of {', '.join(KINDS)}")
    return KINDS[name]


__all__ = ["Kind", "KINDS", "interface", "kinds", "kind_named"]
