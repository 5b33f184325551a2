"""Text generation with a key/value cache: prefill, one-position decode steps, sampling, streaming.

Generating N tokens by re-running the model over the whole text for each one (the blog series'
``text += gpt.next_token(text)``) costs N full forward passes, each pushing every position
through the (vocab × C) head. A key/value cache keeps every layer's keys and values, so each
new token costs one position:

    prefill:  GPT(prompt, cache)          write K, V of positions 0..T-1      (B, T) -> cache
    decode:   GPT(token, cache)           write K, V at pos, attend to 0..pos  (B, 1)
    head:     logits = LN_f(h_last) W_headᵀ      only the last position      (B, V)
    sample:   next = argmax(logits)                              temperature 0 (greedy)
              next ~ softmax(logits / t), restricted to the top k / top p    otherwise

Both passes are the model's own forward (``GPT.forward(ids, cache=..., last_only=True)``): there
is no second implementation of the network to keep in step with it. ``torch.compile`` of a
decode step was measured and does not pay on a CPU: about 90 s of compilation to save well
under a millisecond per token.

**Past the context.** The model learned positions 0..context_size-1 only (a table of them, or
rotary angles it saw no further), so the exact continuation of a longer sequence is the model
run over its *last* ``context_size`` tokens at positions 0..context_size-1 (what
``GPT.next_token`` does). Once the cache is full, every new
token shifts all positions by one, so every cached key and value changes: ``generate`` then
recomputes the cache over the last ``context_size`` tokens for each new token (a prefill, still
with only the last position through the head). Its output is therefore always equal to
recomputing over the last ``context_size`` ids, for any length; past the context a token costs
a ``context_size``-long forward pass instead of one position.
"""
from typing import Iterator

import torch

from ..errors import TinyLLMError

_DEFAULT = object()  # "the tokenizer's eos" for eos_token_id


# -- forward passes that fill and extend the cache ------------------------------------------

def prefill(model, ids: torch.Tensor, cache) -> torch.Tensor:
    """Run ``ids`` (B, T) at positions 0..T-1, (re)filling ``cache``; the last position's
    logits (B, V)."""
    cache.reset()
    return model(ids, cache=cache, last_only=True)[:, -1]


def decode(model, token: torch.Tensor, cache) -> torch.Tensor:
    """One new token per sequence, ``token`` (B,), at position ``cache.length``: its keys and
    values go into the cache; returns its logits (B, V)."""
    return model(token[:, None], cache=cache, last_only=True)[:, -1]


# -- sampling --------------------------------------------------------------------------------

def probabilities(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """The distribution (B, V) that ``sample`` draws from, for logits (B, V) and temperature > 0:

        p = softmax(logits / temperature)
        top_k: keep the k most likely tokens
        top_p: keep the fewest most likely tokens whose probability adds up to at least top_p
        p = p / Σ p                                        (renormalised over the kept tokens)
    """
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]                 # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p          # mass of the more likely tokens
        sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)  # the first token always stays
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def sample(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """The next token (B,) for logits (B, V): argmax when temperature is 0, else a draw from
    ``probabilities(...)`` with ``generator``."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = probabilities(logits, temperature, top_k, top_p)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def check_options(max_new_tokens, temperature, top_k, top_p) -> None:
    """Raise ``TinyLLMError`` for a sampling option out of range."""
    if max_new_tokens < 0:
        raise TinyLLMError(f"max_new_tokens must be 0 or more, not {max_new_tokens}")
    if temperature < 0:
        raise TinyLLMError(f"temperature must be 0 (greedy) or more, not {temperature}")
    if top_k is not None and top_k < 1:
        raise TinyLLMError(f"top_k must be 1 or more (or None for no limit), not {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise TinyLLMError(f"top_p must be in (0, 1] (or None for no limit), not {top_p}")


# -- the generation loop ---------------------------------------------------------------------

def stream(model, ids: torch.Tensor, max_new_tokens: int = 100, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
           generator: torch.Generator | None = None, eos_token_id=_DEFAULT) -> Iterator[torch.Tensor]:
    """Yield the new tokens (B,) of ids (B, T), one step at a time, as they are produced.

    Stops after ``max_new_tokens`` steps or once every sequence has produced ``eos_token_id``
    (default: the tokenizer's; None never stops early); a finished sequence gets eos from then
    on. ``seed`` seeds a fresh ``torch.Generator`` (``generator`` passes one in instead, to
    draw several samples from one seed). The model is in eval mode until the iterator ends
    (its previous mode is then restored).
    """
    check_options(max_new_tokens, temperature, top_k, top_p)
    if ids.dim() != 2 or ids.shape[1] == 0:
        raise TinyLLMError(f"ids must be a (batch, length) tensor with length ≥ 1, not {tuple(ids.shape)}")
    if ids.min() < 0 or ids.max() >= model.config.vocab_size:
        raise TinyLLMError(f"token ids must lie in [0, {model.config.vocab_size}) for this model, "
                           f"got {int(ids.min())}..{int(ids.max())}")
    if eos_token_id is _DEFAULT:
        eos_token_id = model.tokenizer.eos_token_id if model.tokenizer is not None else None
    if generator is None and seed is not None:
        generator = torch.Generator(device=model.device).manual_seed(seed)
    return _stream(model, ids, max_new_tokens, temperature, top_k, top_p, generator, eos_token_id)


def _stream(model, ids, max_new_tokens, temperature, top_k, top_p, generator, eos_token_id):
    if max_new_tokens == 0:
        return
    context = model.config.context_size
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            window = ids.to(model.device)[:, -context:]          # the tokens the model sees
            cache = model.new_cache(window.shape[0], context)
            logits = prefill(model, window, cache)
            done = torch.zeros(window.shape[0], dtype=torch.bool, device=window.device)
        for step in range(max_new_tokens):
            with torch.inference_mode():
                token = sample(logits, temperature, top_k, top_p, generator)   # (B,)
                if eos_token_id is not None:
                    token = token.masked_fill(done, eos_token_id)
                    done = done | (token == eos_token_id)
            yield token
            if step == max_new_tokens - 1 or (eos_token_id is not None and bool(done.all())):
                return
            with torch.inference_mode():
                if cache.length < context:                 # room left: one more position
                    logits = decode(model, token, cache)
                    window = torch.cat([window, token[:, None]], dim=1)
                else:                                      # full: slide the window by one
                    window = torch.cat([window[:, 1:], token[:, None]], dim=1)
                    logits = prefill(model, window, cache)
    finally:
        model.train(was_training)


def decode_incrementally(tokenizer, tokens) -> Iterator[str]:
    """Yield the text of a stream of token ids piece by piece. A token may end in the middle of
    a multi-byte UTF-8 character (its text then ends in U+FFFD): it is held back until the
    tokens that complete it arrive."""
    pending = []
    for t in tokens:
        pending.append(int(t))
        text = tokenizer.decode(pending)
        if not text.endswith("\ufffd"):
            yield text
            pending = []
    if pending:
        yield tokenizer.decode(pending)


def stream_text(model, prompt: str, **options) -> Iterator[str]:
    """Yield the continuation of ``prompt`` as text pieces, as tokens are produced (up to, not
    including, eos). ``options`` as for ``stream``."""
    tok = _tokenizer(model)
    ids = tok.encode(prompt) or [tok.eos_token_id]               # nothing yet: start a story
    eos = options.get("eos_token_id", _DEFAULT)
    eos = tok.eos_token_id if eos is _DEFAULT else eos
    tokens = (int(t[0]) for t in stream(model, torch.tensor([ids]), **options))
    return decode_incrementally(tok, _until(tokens, eos))


def generate(model, prompt, max_new_tokens: int = 100, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             **options):
    """Continue ``prompt``: a string gives the text (prompt + continuation, stopping at eos);
    a LongTensor of ids, (T,) or (B, T), gives the ids (prompt + new tokens, eos included; a
    sequence that stops early is padded with eos). ``temperature=0`` is greedy. ``options``:
    ``eos_token_id`` (None: never stop early) and ``generator``, as for ``stream``."""
    options.update(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                   top_p=top_p, seed=seed)
    if isinstance(prompt, str):
        return prompt + "".join(stream_text(model, prompt, **options))
    if not isinstance(prompt, torch.Tensor) or prompt.is_floating_point() or prompt.is_complex() \
            or prompt.dtype == torch.bool:
        raise TinyLLMError(f"prompt must be a str or a LongTensor of token ids, not "
                           f"{getattr(prompt, 'dtype', type(prompt).__name__)}")
    ids = (prompt if prompt.dim() == 2 else prompt[None]).long()
    new = [t.clone() for t in stream(model, ids, **options)]  # clone: leave inference mode
    out = torch.cat([ids.to(model.device)] + [t[:, None] for t in new], dim=1)
    return out if prompt.dim() == 2 else out[0]


def _until(tokens, eos):
    for t in tokens:
        if t == eos:
            return
        yield t


def _tokenizer(model):
    if model.tokenizer is None:
        raise TinyLLMError("this model has no tokenizer: give token ids (a LongTensor), or "
                           "build it as GPT(tokenizer, config)")
    return model.tokenizer


__all__ = ["prefill", "decode", "probabilities", "sample", "stream",
           "stream_text", "decode_incrementally", "generate"]
