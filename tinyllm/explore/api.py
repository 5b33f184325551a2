"""The numbers behind ``tinyllm explore``: a model and a request in, a JSON-able dict out.

Every view of the page is one call here, and every call is one forward pass of the model with
standard PyTorch hooks on it (``trace``):

    tokens      ids = encode(text)[-context_size:]                         the text the model sees (≤ MAX_TOKENS)
    surprise    bits_t = -log₂ p(ids_t | ids_<t)                           t = 1..T-1 (the first has none)
    bits/byte   Σ_t bits_t / Σ_t bytes(ids_t)                              as ``tinyllm eval`` computes it
    next token  p = softmax(logits_t),  q = probabilities(logits_t, temperature, top_k, top_p)
                                        q is what ``generate`` samples from (one-hot at temperature 0)
    attention   A[h, i, j] = softmax_j(s_ij) of layer l                    (H, T, T), hooked, not recomputed
                                        (the pass then computes the formulas written out:
                                        the fused kernel keeps the probabilities to itself)
    logit lens  p_l(· | ids_≤t) = softmax(unembed(h_l[t]))                 h_0 = embeddings, h_l = after block l
    ablation    the same forward with head h's slice of the attention output, or an MLP's output, zeroed

Python users call these too::

    from tinyllm.model import GPT
    from tinyllm.explore import api
    model = GPT.from_pretrained("runs/sample")
    view = api.analyze(model, "Once upon a time", layer=0)
    view["bits_per_byte"], view["next"]["tokens"][0], view["lens"]["layers"][-1]["top"][0]

Bad requests (empty or huge text, an unknown layer or head, options out of range) raise
``TinyLLMError`` with a one-line message; the server turns it into HTTP 400.
"""
import math
import weakref
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import lru_cache

import torch

from ..data.tokens import token_byte_lengths
from ..errors import TinyLLMError, finite_number, whole_number
from ..model.generate import check_options, probabilities, sample, stream_text
from ..model.nn import formulas
from ..tokenizer.bpe import bytes_to_unicode

MAX_TEXT_CHARS = 20_000     # longer text is refused (the model sees only its last context_size tokens)
MAX_TOKENS = 512            # tokens a view reads at most (a GPT-Neo's 2048-token context: its last 512)
MAX_TOP = 100               # next-token rows a request may ask for
MAX_NEW_TOKENS = 500        # tokens one streamed continuation may produce
LN2 = math.log(2)


# -- the forward pass with hooks -------------------------------------------------------------

@dataclass
class Ablation:
    """What to switch off: attention heads as (layer, head) pairs, and whole layers' MLPs."""
    heads: list = field(default_factory=list)   # [(layer, head), ...]
    mlps: list = field(default_factory=list)    # [layer, ...]

    def __bool__(self) -> bool:
        return bool(self.heads or self.mlps)

    def to_dict(self) -> dict:
        return {"heads": [list(h) for h in self.heads], "mlps": list(self.mlps)}


@dataclass
class Trace:
    """What one forward pass saw. ``logits`` (B, T, V) fp32: row 0 the model as it is, row 1
    (only with an ablation) the ablated model; ``residuals`` (L+1, T, C): the residual stream of
    row 0 before block 0 and after each block; ``attention``: {layer: (H, T, T)} of row 0."""
    logits: torch.Tensor
    residuals: torch.Tensor | None = None
    attention: dict = field(default_factory=dict)


def trace(model, ids: list[int], *, attention_layers=(), residuals: bool = False,
          ablation: Ablation | None = None) -> Trace:
    """Run ``ids`` (T,) through ``model`` once, reading (and with ``ablation``, changing) its
    insides through forward hooks. With an ablation the batch holds the text twice and only the
    second copy is ablated, so one pass gives both distributions."""
    batch = 2 if ablation else 1
    x = torch.tensor([ids] * batch, device=model.device)              # (B, T)
    saved_residuals, saved_attention = [], {}
    was_training = model.training
    model.eval()
    with ExitStack() as hooks, torch.inference_mode():
        hooks.callback(model.train, was_training)
        if attention_layers:                         # the path that forms the probabilities
            hooks.enter_context(formulas())
        if residuals:
            hooks.enter_context(model.blocks[0].register_forward_pre_hook(
                lambda module, args: saved_residuals.append(args[0][0])))   # embeddings (T, C)
            for block in model.blocks:
                hooks.enter_context(block.register_forward_hook(
                    lambda module, args, out: saved_residuals.append(out[0])))
        for layer in attention_layers:
            attn = model.blocks[layer].attn
            hooks.enter_context(attn.probs.register_forward_hook(
                lambda module, args, out, layer=layer: saved_attention.__setitem__(layer, out[0])))
        if ablation:
            for layer, head in ablation.heads:
                hooks.enter_context(model.blocks[layer].attn.out_proj.register_forward_pre_hook(
                    _zero_head(head, model.config.hidden_size // model.config.num_heads)))
            for layer in ablation.mlps:
                hooks.enter_context(model.blocks[layer].mlp.register_forward_hook(_zero_mlp))
        logits = model(x).float()                                        # (B, T, V)
        residual_stream = torch.stack(saved_residuals) if residuals else None
    return Trace(logits, residual_stream, saved_attention)


def _zero_head(head: int, head_dim: int):
    """A pre-hook for ``out_proj``: its input is the heads side by side (B, T, H·d); zero head
    ``head``'s columns in batch row 1."""
    def hook(module, args):
        y = args[0].clone()
        y[1, :, head * head_dim:(head + 1) * head_dim] = 0
        return (y,) + args[1:]
    return hook


def _zero_mlp(module, args, out):
    """A forward hook for a block's MLP: its contribution to batch row 1 becomes zero."""
    out = out.clone()
    out[1] = 0
    return out


# -- the views (one per panel of the page) ---------------------------------------------------

def analyze(model, text: str, *, position: int | None = None, temperature: float = 1.0,
            top_k: int | None = None, top_p: float | None = None, top: int = 10,
            layer: int | None = 0, lens: bool = True) -> dict:
    """Everything the page shows for a new text, from one forward pass: its tokens and their
    surprise, bits per byte, the next-token table at ``position`` (default: the last token),
    the attention of ``layer`` (None: none) and the logit lens (``lens``)."""
    ids, dropped = encode(model, text)
    position = _position(position, len(ids))
    sampling = _sampling(temperature, top_k, top_p)
    top = whole_number("top", top, 1, MAX_TOP)
    if layer is not None:
        layer = _layer(model, layer)
    if not isinstance(lens, bool):
        raise TinyLLMError(f"lens must be true or false, not {lens!r}")
    t = trace(model, ids, attention_layers=() if layer is None else (layer,), residuals=lens)
    logits = t.logits[0]                                                # (T, V)
    view = {"context_size": model.config.context_size, "max_tokens": max_tokens(model),
            "dropped_tokens": dropped,
            **token_surprise(model.tokenizer, ids, logits),
            "next": next_token_table(model.tokenizer, ids, logits, position, sampling, top)}
    if layer is not None:
        view["attention"] = attention_view(model, layer, t.attention[layer])
    if lens:
        view["lens"] = logit_lens_view(model, ids, t.residuals, logits)
    return view


def next_tokens(model, text: str, *, position: int | None = None, temperature: float = 1.0,
                top_k: int | None = None, top_p: float | None = None, top: int = 10,
                ablate: dict | None = None) -> dict:
    """The next-token table at ``position`` under the sampling settings; with ``ablate``
    ({"heads": [[layer, head], ...], "mlps": [layer, ...]}) also the table and bits per byte of
    the model with those parts switched off, how far the distribution moved (KL(p ‖ q), bits),
    and ``changes``: both probabilities of every token in the top ``top`` of either."""
    ids, dropped = encode(model, text)
    position = _position(position, len(ids))
    sampling = _sampling(temperature, top_k, top_p)
    top = whole_number("top", top, 1, MAX_TOP)
    ablation = parse_ablation(model, ablate)
    t = trace(model, ids, ablation=ablation)
    view = {"dropped_tokens": dropped,
            "next": next_token_table(model.tokenizer, ids, t.logits[0], position, sampling, top)}
    if ablation:
        view["ablation"] = ablation.to_dict()
        view["ablated"] = next_token_table(model.tokenizer, ids, t.logits[1], position, sampling, top)
        view["bits_per_byte"] = token_surprise(model.tokenizer, ids, t.logits[0])["bits_per_byte"]
        view["ablated_bits_per_byte"] = token_surprise(model.tokenizer, ids, t.logits[1])["bits_per_byte"]
        p = t.logits[0, position].softmax(-1).double()                  # (V,) the model
        q = t.logits[1, position].softmax(-1).double()                  # (V,) ablated
        view["kl_bits"] = float((p * (p.clamp_min(1e-30).log() - q.clamp_min(1e-30).log())).sum()) / LN2
        either = sorted(set(p.topk(top).indices.tolist()) | set(q.topk(top).indices.tolist()),
                        key=lambda i: -q[i].item())                     # top of either, by q
        view["changes"] = [{**_token(model.tokenizer, i), "probability": p[i].item(),
                            "ablated_probability": q[i].item()} for i in either]
    return view


def step(model, text: str, *, temperature: float = 1.0, top_k: int | None = None,
         top_p: float | None = None, seed: int | None = None) -> dict:
    """Append one token to ``text``, chosen as ``generate`` chooses it (``sample``: argmax at
    temperature 0, else a draw from ``probabilities``); returns the token and the new text."""
    ids, _ = encode(model, text)
    sampling = _sampling(temperature, top_k, top_p)
    generator = torch.Generator(device=model.device)
    if seed is None:
        generator.seed()                                                  # a fresh random draw
    else:
        generator.manual_seed(whole_number("seed", seed, 0, 2**63 - 1))
    logits = trace(model, ids).logits[0, -1:]                           # (1, V)
    token = int(sample(logits, generator=generator, **sampling)[0])
    piece = model.tokenizer.decode([token])
    return {"text": text + piece, "token": _token(model.tokenizer, token),
            "probability": _sampling_probabilities(logits[0], sampling)[token].item()}


def continuation(model, text: str, *, max_new_tokens: int = 100, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None):
    """An iterator over the text pieces of a continuation, as ``tinyllm generate`` streams it
    (``stream_text``); the options are checked before it is returned. An empty text starts a
    story."""
    _check_text(text)
    max_new_tokens = whole_number("max_new_tokens", max_new_tokens, 1, MAX_NEW_TOKENS)
    sampling = _sampling(temperature, top_k, top_p)
    if seed is not None:
        seed = whole_number("seed", seed, 0, 2**63 - 1)
    return stream_text(model, text, max_new_tokens=max_new_tokens, seed=seed, **sampling)


def as_request(model, text: str) -> dict:
    """{'text': ``text`` as a request in the model's chat template (``GPT.as_request``)}: what
    a model tuned on requests is asked with, for the page to continue; a model without a
    template gets the text as it is."""
    _check_text(text)
    return {"text": model.as_request(text)}


def compare(models: dict, text: str, *, position: int | None = None, temperature: float = 1.0,
            top_k: int | None = None, top_p: float | None = None, top: int = 5) -> dict:
    """The same text through several models side by side ({name: model}): each one's token
    surprise, bits per byte and next-token table."""
    return {"models": [{"name": name, **analyze(m, text, position=position, temperature=temperature,
                                                 top_k=top_k, top_p=top_p, top=top, layer=None,
                                                 lens=False)}
                       for name, m in models.items()]}


def token_surprise(tokenizer, ids: list[int], logits: torch.Tensor) -> dict:
    """The tokens of the text with their bits (-log₂ p of each token given the ones before; the
    first token has none) and the text's bits per byte (Σ bits / Σ bytes of tokens 1..T-1)."""
    target = torch.tensor(ids[1:], device=logits.device)
    nats = -logits[:-1].log_softmax(-1).gather(1, target[:, None])[:, 0]   # (T-1,)
    lengths = _byte_lengths(tokenizer)
    total_bytes = int(lengths[ids[1:]].sum()) if len(ids) > 1 else 0
    total_bits = float(nats.double().sum()) / LN2
    bits = [None] + (nats / LN2).tolist()
    return {"tokens": [{**_token(tokenizer, i), "bits": b} for i, b in zip(ids, bits)],
            "bits": total_bits, "bytes": total_bytes,
            "bits_per_byte": total_bits / total_bytes if total_bytes else None}


def next_token_table(tokenizer, ids: list[int], logits: torch.Tensor, position: int,
                     sampling: dict, top: int) -> dict:
    """The ``top`` most likely tokens after ``ids[:position + 1]``: their probability under the
    model (softmax of the logits) and under the sampling settings (what ``generate`` draws
    from), and the token that really comes next in the text, if any, with its rank."""
    row = logits[position]                                               # (V,)
    p = row.softmax(-1)
    q = _sampling_probabilities(row, sampling)
    top_probs, top_ids = p.topk(min(top, p.shape[0]))
    table = {"position": position, "sampling": sampling,
             "entropy_bits": float(-(p * p.clamp_min(1e-30).log2()).sum()),
             "candidates": int((q > 0).sum()),
             "tokens": [{**_token(tokenizer, i), "probability": pi, "sampling_probability": qi,
                         "logit": li}
                        for i, pi, qi, li in zip(top_ids.tolist(), top_probs.tolist(),
                                                 q[top_ids].tolist(), row[top_ids].tolist())]}
    if position + 1 < len(ids):
        actual = ids[position + 1]
        table["actual"] = {**_token(tokenizer, actual), "probability": p[actual].item(),
                           "rank": int((p > p[actual]).sum()) + 1}
    return table


def attention_view(model, layer: int, probs: torch.Tensor) -> dict:
    """Layer ``layer``'s attention probabilities (H, T, T) as rows: ``heads[h][i]`` is what
    token i looks at, keys 0..i (the later ones are masked: zero). Local layers give zero
    outside their ``window`` (the last ``window`` tokens, the query's own included)."""
    attn = model.blocks[layer].attn
    probs = probs.double().round(decimals=6)        # 6 decimals: a short JSON number, exact to 5e-7
    rows = [[r[:i + 1] for i, r in enumerate(head)] for head in probs.tolist()]
    return {"layer": layer, "kind": model.config.attention_layers[layer],
            "window": attn.window, "heads": rows}


def logit_lens_view(model, ids: list[int], residuals: torch.Tensor, logits: torch.Tensor,
                    top: int = 3) -> dict:
    """What each layer would predict at each position if the rest of the network were skipped:
    ``model.unembed`` (final norm + head) of the residual stream before block 0 (the embeddings)
    and after each block. ``final`` is the model's own top token at each position, and
    ``final_probability[t]`` the probability each layer gives it."""
    final = logits.argmax(-1)                                            # (T,)
    positions = torch.arange(len(ids), device=final.device)
    table, tokenizer = _table(model.tokenizer), model.tokenizer
    layers = []
    with torch.inference_mode():
        for l, h in enumerate(residuals):                                # h: (T, C), a layer at a time
            z = model.unembed(h).float()                                 # (T, V) logits
            log_norm = z.logsumexp(-1, keepdim=True)                     # p = exp(z - logsumexp z)
            values, indices = z.topk(top, dim=-1)                        # (T, top)
            layers.append({
                "name": "embeddings" if l == 0 else f"block {l - 1}",
                "top": [[{"id": i, "text": table.token(tokenizer, i)["text"], "probability": v}
                         for i, v in zip(ii, vv)]
                        for ii, vv in zip(indices.tolist(), (values - log_norm).exp().tolist())],
                "final_probability": (z[positions, final] - log_norm[:, 0]).exp().tolist()})
    return {"final": [_token(model.tokenizer, i) for i in final.tolist()], "layers": layers}


def run_info(model, metrics: list[dict] | None = None) -> dict:
    """The model and its training run: config, parameter count, the loss curves from the rows
    of ``metrics.jsonl`` (``tinyllm.files.read_metrics``) and the held-out bits per byte of the
    evaluation with the lowest validation loss (the model ``tinyllm train`` keeps)."""
    metrics = metrics or []
    validation = [{"step": r["step"], "loss": r["val_loss"], "bits_per_byte": r.get("val_bpb")}
                  for r in metrics if "val_loss" in r]
    return {"parameters": model.num_parameters(), "config": model.config.to_dict(),
            "tokenizer": {"vocab_size": model.tokenizer.vocab_size,
                          "eos_token_id": model.tokenizer.eos_token_id,
                          "chat_template": model.tokenizer.chat_template},
            "train": [{"step": r["step"], "loss": r["loss"]} for r in metrics if "loss" in r],
            "validation": validation,
            "best": min(validation, key=lambda r: r["loss"]) if validation else None}


# -- requests: text, options -----------------------------------------------------------------

def encode(model, text: str) -> tuple[list[int], int]:
    """The ids the views read for ``text`` — its last ``context_size`` tokens (at most
    ``MAX_TOKENS``: attention maps grow as T²) — and how many tokens were cut from the front."""
    if model.tokenizer is None:
        raise TinyLLMError("this model has no tokenizer: explore a checkpoint that includes "
                           "vocab.json and merges.txt")
    _check_text(text)
    if not text:
        raise TinyLLMError("the text is empty: type a few words for the model to read")
    ids = model.tokenizer.encode(text)
    if not ids:
        raise TinyLLMError("the text has no tokens: type a few words for the model to read")
    keep = max_tokens(model)
    return ids[-keep:], max(0, len(ids) - keep)


def max_tokens(model) -> int:
    """How many tokens of a text the views read: the model's context, at most ``MAX_TOKENS``."""
    return min(model.config.context_size, MAX_TOKENS)


def parse_ablation(model, spec: dict | None) -> Ablation:
    """{"heads": [[layer, head], ...], "mlps": [layer, ...]} (either may be absent) as an
    ``Ablation``, every layer and head checked against the model."""
    if spec is None:
        return Ablation()
    if not isinstance(spec, dict) or set(spec) - {"heads", "mlps"}:
        raise TinyLLMError('ablate must look like {"heads": [[layer, head], ...], "mlps": [layer, ...]}')
    heads, mlps = spec.get("heads") or [], spec.get("mlps") or []
    if not isinstance(heads, list) or not all(isinstance(h, (list, tuple)) and len(h) == 2 for h in heads):
        raise TinyLLMError('ablate "heads" must be a list of [layer, head] pairs, e.g. [[0, 3]]')
    if not isinstance(mlps, list):
        raise TinyLLMError('ablate "mlps" must be a list of layers, e.g. [1]')
    H = model.config.num_heads
    heads = sorted({(_layer(model, l), whole_number("head", h, 0, H - 1)) for l, h in heads})
    mlps = sorted({_layer(model, l) for l in mlps})
    return Ablation(heads, mlps)


def _check_text(text) -> None:
    if not isinstance(text, str):
        raise TinyLLMError(f"text must be a string, not {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise TinyLLMError(f"the text is {len(text):,} characters: at most {MAX_TEXT_CHARS:,} characters are "
                           "accepted (the model reads only its last context_size tokens anyway)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise TinyLLMError("the text is not valid Unicode (it holds a lone surrogate): "
                           "send UTF-8 text") from None


def _sampling(temperature, top_k, top_p) -> dict:
    """The sampling settings, checked as ``generate`` checks them."""
    temperature = finite_number("temperature", temperature)
    top_k = None if top_k is None else whole_number("top_k", top_k)      # ranges: check_options
    top_p = None if top_p is None else finite_number("top_p", top_p)
    check_options(0, temperature, top_k, top_p)
    return {"temperature": temperature, "top_k": top_k, "top_p": top_p}


def _sampling_probabilities(logits: torch.Tensor, sampling: dict) -> torch.Tensor:
    """(V,): what ``sample`` draws from: one-hot on the argmax at temperature 0, else
    ``probabilities``."""
    if sampling["temperature"] == 0:
        return torch.nn.functional.one_hot(logits.argmax(), logits.shape[-1]).float()
    return probabilities(logits[None], **sampling)[0]


def _position(position, length: int) -> int:
    if position is None:
        return length - 1
    return whole_number("position", position, 0, length - 1,
                        hint=f"the text the model sees has {length} tokens")


def _layer(model, layer) -> int:
    return whole_number("layer", layer, 0, model.config.num_layers - 1,
                        hint=f"this model has {model.config.num_layers} layers")


# -- tokens as the page shows them ---------------------------------------------------------

class _TokenTable:
    """What the views need to know about a tokenizer's tokens, built once per tokenizer."""

    def __init__(self, tokenizer):
        self.strings = {i: s for s, i in tokenizer.vocab.items()}    # id -> vocabulary string
        self.byte_lengths = token_byte_lengths(tokenizer)             # (V,) as tinyllm eval counts
        self.shown = {}                                                # id -> token dict, filled lazily

    def token(self, tokenizer, i: int) -> dict:
        """A token as the page shows it: id, text (U+FFFD where it holds part of a character)
        and the bytes it stands for, in hex (byte-level BPE: one vocabulary character a byte)."""
        if i not in self.shown:
            string, char_to_byte = self.strings.get(i, ""), _char_to_byte()
            special = i == tokenizer.eos_token_id or not all(c in char_to_byte for c in string)
            raw = string.encode("utf-8") if special else bytes(char_to_byte[c] for c in string)
            self.shown[i] = {"id": i, "text": tokenizer.decode([i]), "bytes": raw.hex(" "),
                             "special": special}
        return self.shown[i]


_TABLES = weakref.WeakKeyDictionary()   # tokenizer -> _TokenTable


def _table(tokenizer) -> _TokenTable:
    if tokenizer not in _TABLES:
        _TABLES[tokenizer] = _TokenTable(tokenizer)
    return _TABLES[tokenizer]


def _byte_lengths(tokenizer):
    return _table(tokenizer).byte_lengths


def _token(tokenizer, i: int) -> dict:
    """A token as the page shows it (a fresh dict: callers add their own fields)."""
    return dict(_table(tokenizer).token(tokenizer, i))


@lru_cache(maxsize=None)
def _char_to_byte() -> dict:
    return {c: b for b, c in bytes_to_unicode().items()}


__all__ = ["analyze", "next_tokens", "step", "continuation", "as_request", "compare", "run_info", "encode",
           "trace", "Trace", "Ablation", "parse_ablation", "token_surprise", "next_token_table",
           "attention_view", "logit_lens_view", "max_tokens", "MAX_TOKENS", "MAX_TEXT_CHARS", "MAX_NEW_TOKENS", "MAX_TOP"]
