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
is no second implementation of the network to keep in step with it.

**Compiled.** With ``compile=True`` the decode step runs as a program compiled ahead of time
(``tinyllm.model.compiled``: the same step through a ``StaticKVCache``, exported and compiled to
C++ once per model shape, kept in ``$TINYLLM_HOME/compiled``); the prefill stays eager. It is
2–3× faster per token at ``tinyllm train``'s default shape on a CPU, and loads in milliseconds
once on disk, but the first compile of a shape takes 20–35 s: so generation is eager unless
asked (docs/models.md, "Generation speed").

**Several at once.** ``stream(..., num_samples=n)`` prefills each prompt once and decodes its n
samples as one batch; prompts of different lengths share one cache right-aligned
(``prefill_rows``: row b's column c holds position c - pad_b, and a query sees only its row's
columns), so ``continuations`` runs any prompts as one batch. Each row stops at its own eos.
``generate(..., dtype='int8' | 'bf16')`` generates with a lighter copy
(``tinyllm.model.dtypes``) and ``backend='llama.cpp'`` with llama.cpp
(``tinyllm.model.llama_cpp``). Speed of each: docs/models.md, "Generation speed".

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


def prefill_rows(model, rows: list, cache) -> torch.Tensor:
    """``prefill`` for sequences of any lengths (lists of ids): each length's rows run as one
    batch at positions 0.., then their keys and values go to the *last* columns of their rows
    of ``cache``, right-aligned (``cache.pad``: the empty columns before each row). Decoding then
    goes on for all rows together. The last positions' logits (B, V)."""
    L, device = max(map(len, rows)), model.device
    if all(len(r) == L for r in rows):
        return prefill(model, torch.tensor(rows, device=device), cache)
    by_length = {}
    for b, r in enumerate(rows):
        by_length.setdefault(len(r), []).append(b)
    logits = None
    cache.reset()
    for T, group in by_length.items():
        part = model.new_cache(len(group), T)
        out = prefill(model, torch.tensor([rows[b] for b in group], device=device), part)
        index = torch.tensor(group, device=device)
        logits = out.new_empty(len(rows), out.shape[-1]) if logits is None else logits
        logits[index] = out
        for layer, filled in zip(cache.layers, part.layers):
            layer.kv[index, :, :, L - T:L] = filled.kv      # (G, 2, H, T, d) into its rows
    for layer in cache.layers:
        layer.length = L
    cache.pad = torch.tensor([L - len(r) for r in rows], device=device)
    return logits


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


def check_options(max_new_tokens, temperature, top_k, top_p, num_samples=1) -> None:
    """Raise ``TinyLLMError`` for a sampling option out of range."""
    if num_samples < 1:
        raise TinyLLMError(f"the number of samples (-n) must be 1 or more, not {num_samples}")
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
           generator: torch.Generator | None = None, eos_token_id=_DEFAULT,
           num_samples: int = 1, compile: bool = False) -> Iterator[torch.Tensor]:
    """Yield the new tokens (B·num_samples,) of ids (B, T), one step at a time, as they are
    produced: ``num_samples`` continuations of each row (row b·n + j: sample j of row b), which
    share the row's prefill and are then decoded together, one batch. ``ids`` may also be a list
    of B lists of ids of different lengths (``prefill_rows``).

    Stops after ``max_new_tokens`` steps or once every sequence has produced ``eos_token_id``
    (default: the tokenizer's; None never stops early); a finished sequence gets eos from then
    on. ``seed`` seeds a fresh ``torch.Generator`` (``generator`` passes one in instead, to
    draw several samples from one seed). ``compile`` decodes with the compiled step
    (``tinyllm.model.compiled``; the same tokens). The model is in eval mode until the iterator
    ends (its previous mode is then restored).
    """
    check_options(max_new_tokens, temperature, top_k, top_p, num_samples)
    if compile:
        _check_compiles(model)
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise TinyLLMError(f"ids must be a (batch, length) tensor with length ≥ 1, not "
                               f"{tuple(ids.shape)}")
        ids = ids.tolist()
    if not ids or not all(ids):
        raise TinyLLMError("ids must hold at least one sequence, each of one token or more")
    low, high = min(min(r) for r in ids), max(max(r) for r in ids)
    if low < 0 or high >= model.config.vocab_size:
        raise TinyLLMError(f"token ids must lie in [0, {model.config.vocab_size}) for this model, "
                           f"got {low}..{high}")
    if eos_token_id is _DEFAULT:
        eos_token_id = model.tokenizer.eos_token_id if model.tokenizer is not None else None
    if generator is None and seed is not None:
        generator = torch.Generator(device=model.device).manual_seed(seed)
    return _stream(model, ids, max_new_tokens, temperature, top_k, top_p, generator, eos_token_id,
                   num_samples, compile)


def _stream(model, ids, max_new_tokens, temperature, top_k, top_p, generator, eos_token_id,
            num_samples, compile):
    if max_new_tokens == 0:
        return
    context = model.config.context_size
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            rows = [r[-context:] for r in ids]                  # the tokens the model sees
            cache = model.new_cache(len(rows), context)
            logits = prefill_rows(model, rows, cache)
            if num_samples > 1:                                  # one prefill for the samples
                logits = logits.repeat_interleave(num_samples, 0)
                cache.repeat_rows(num_samples)
                rows = [r for r in rows for _ in range(num_samples)]
            if compile:                   # its program on disk: I/O, imported when asked
                from .compiled import CompiledStep
                one_token = CompiledStep(model, cache)
            else:
                def one_token(token):
                    return decode(model, token, cache)
            done = torch.zeros(len(rows), dtype=torch.bool, device=logits.device)
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
                rows = [r + [t] for r, t in zip(rows, token.tolist())]
                if cache.length < context:                 # room left: one more position
                    logits = one_token(token)
                else:                                      # full: slide the window by one
                    rows = [r[-context:] for r in rows]
                    logits = prefill_rows(model, rows, cache)
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


BACKENDS = ("tinyllm", "llama.cpp")


def stream_text(model, prompt: str, backend: str = "tinyllm", **options) -> Iterator[str]:
    """Yield the continuation of ``prompt`` as text pieces, as tokens are produced (up to, not
    including, eos). ``options`` as for ``stream``; ``backend`` 'llama.cpp' runs the model's
    GGUF file in llama.cpp instead (``tinyllm.model.llama_cpp``)."""
    tok = _tokenizer(model)
    ids = tok.encode(prompt) or [tok.eos_token_id]               # nothing yet: start a story
    eos = options.get("eos_token_id", _DEFAULT)
    eos = tok.eos_token_id if eos is _DEFAULT else eos
    return decode_incrementally(tok, _until(_tokens(model, ids, backend, options), eos))


def check_backend(backend: str, dtype: str = "fp32", compile: bool = False) -> None:
    """Raise ``TinyLLMError`` for an unknown backend, or llama.cpp with a dtype (it runs f32)
    or with ``compile`` (its code is compiled already)."""
    if backend not in BACKENDS:
        raise TinyLLMError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend != "tinyllm" and dtype != "fp32":
        raise TinyLLMError("the llama.cpp backend runs the model in f32: leave out --dtype "
                           "(dtype='fp32')")
    if backend != "tinyllm" and compile:
        raise TinyLLMError("the llama.cpp backend runs llama.cpp's own compiled code: leave out "
                           "--compile (compile=False)")


def _tokens(model, ids: list, backend: str, options: dict) -> Iterator[int]:
    """The new token ids after ``ids`` (one sequence), from ``backend``."""
    check_backend(backend, compile=options.get("compile", False))
    if backend == "tinyllm":
        return (int(t[0]) for t in stream(model, torch.tensor([ids]), **options))
    from .llama_cpp import stream_tokens
    check_options(options.get("max_new_tokens", 100), options.get("temperature", 1.0),
                  options.get("top_k"), options.get("top_p"))
    eos = options.pop("eos_token_id", _DEFAULT)
    options.pop("generator", None)                                # llama.cpp draws its own
    options.pop("compile", None)
    return stream_tokens(model, ids, eos_token_id=model.tokenizer.eos_token_id
                         if eos is _DEFAULT else eos, **options)


def continuations(model, prompts: list, num_samples: int = 1, backend: str = "tinyllm",
                  **options) -> list:
    """``num_samples`` continuations (text, up to eos) of each prompt: a list per prompt.

    All prompts run as one batch (``prefill_rows``: right-aligned in one cache; a model whose
    blocks lack the one-token step, or inside ``formulas()``, one batch per length in tokens),
    and each prompt's samples share its prefill (``stream(..., num_samples=n)``); every row
    stops at its own eos. Greedy, each
    continuation is the one ``stream_text`` gives for its prompt alone; sampled, one seed gives
    the same texts again. ``options`` as for ``stream``."""
    tok = _tokenizer(model)
    eos = options.get("eos_token_id", _DEFAULT)
    eos = tok.eos_token_id if eos is _DEFAULT else eos
    encoded = [tok.encode(p) or [tok.eos_token_id] for p in prompts]
    if backend != "tinyllm":              # llama.cpp: one sequence at a time, sample j: seed + j
        seed = options.pop("seed", None)
        return [[tok.decode(list(_until(_tokens(model, ids, backend, dict(
                     options, seed=None if seed is None else seed + j)), eos)))
                 for j in range(num_samples)] for ids in encoded]
    out = [None] * len(prompts)
    by_length = {}
    for i, ids in enumerate(encoded):                  # one batch: right-aligned rows (their
        by_length.setdefault(len(ids) if not _pads_rows(model) else 0, []).append(i)  # step)
    for rows in by_length.values():                    # (rows·n, new tokens) per batch
        steps = list(stream(model, [encoded[i] for i in rows], num_samples=num_samples,
                            **options))
        new = torch.stack(steps, dim=1).tolist() if steps else [[]] * (len(rows) * num_samples)
        for r, i in enumerate(rows):
            out[i] = [tok.decode(list(_until(new[r * num_samples + j], eos)))
                      for j in range(num_samples)]
    return out


def generate(model, prompt, max_new_tokens: int = 100, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             dtype: str = "fp32", backend: str = "tinyllm", num_samples: int = 1, **options):
    """Continue ``prompt``: a string gives the text (prompt + continuation, stopping at eos), a
    list of strings a list of texts (``num_samples`` per prompt, in order, run as batches:
    ``continuations``); a LongTensor of ids, (T,) or (B, T), gives the ids (prompt + new
    tokens, eos included; a sequence that stops early is padded with eos). ``temperature=0``
    is greedy. ``dtype`` 'bf16' or 'int8' generates with a lighter copy of the model
    (``tinyllm.model.dtypes``: lossy); ``backend`` 'llama.cpp' generates text with llama.cpp.
    ``options``: ``eos_token_id`` (None: never stop early), ``generator`` and ``compile`` (the
    compiled decode step, for long runs: see above), as for ``stream``."""
    from .dtypes import convert
    options.update(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                   top_p=top_p, seed=seed)
    check_backend(backend, dtype, options.get("compile", False))
    model = convert(model, dtype)
    if isinstance(prompt, str) and num_samples == 1:
        return prompt + "".join(stream_text(model, prompt, backend, **options))
    if isinstance(prompt, (str, list)) and all(isinstance(p, str) for p in prompt):
        prompts = [prompt] if isinstance(prompt, str) else prompt
        texts = continuations(model, prompts, num_samples, backend, **options)
        return [p + t for p, ts in zip(prompts, texts) for t in ts]
    if backend != "tinyllm":
        raise TinyLLMError("the llama.cpp backend takes text prompts (a str or a list of str)")
    if not isinstance(prompt, torch.Tensor) or prompt.is_floating_point() or prompt.is_complex() \
            or prompt.dtype == torch.bool:
        raise TinyLLMError(f"prompt must be a str, a list of str or a LongTensor of token ids, "
                           f"not {getattr(prompt, 'dtype', type(prompt).__name__)}")
    ids = (prompt if prompt.dim() == 2 else prompt[None]).long()
    new = [t.clone() for t in stream(model, ids, num_samples=num_samples, **options)]
    ids = ids.to(model.device).repeat_interleave(num_samples, 0)   # clone: leave inference mode
    out = torch.cat([ids] + [t[:, None] for t in new], dim=1)
    return out if prompt.dim() == 2 or num_samples > 1 else out[0]


def _pads_rows(model) -> bool:
    """Whether sequences of different lengths can decode as one batch (``prefill_rows``): with
    every block's one-token step, outside ``kernels.formulas()``."""
    from .nn import written_out
    return getattr(model, "_steps", False) and not written_out()


def _check_compiles(model) -> None:
    """Raise ``TinyLLMError`` unless the compiled step can run ``model``."""
    from .dtypes import has_int8
    if not _pads_rows(model):
        raise TinyLLMError("compiled generation runs every block's one-token step (Block.step), "
                           "outside formulas(): generate without compile for this model")
    if has_int8(model):
        raise TinyLLMError("compiled generation runs fp32 or bf16 weights (int8's packed layers "
                           "do not compile): leave out --compile or --dtype int8")


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


__all__ = ["prefill", "prefill_rows", "decode", "probabilities", "sample", "stream", "stream_text",
           "continuations", "decode_incrementally", "generate", "check_backend", "BACKENDS"]
