"""Held-out evaluation: loss, perplexity and bits per byte of a model on a token span.

Over the predicted targets y_1..y_N of a span (every token but the first, each once):

    loss       = (1/N) Σ_i -ln p(y_i | y_<i)                     nats per token
    perplexity = exp(loss)
    bpb        = Σ_i -ln p(y_i | y_<i) / ln 2 / Σ_i bytes(y_i)    bits per UTF-8 byte of text

Loss and perplexity depend on the tokenizer (a bigger vocabulary has fewer, harder tokens);
bits per byte does not, so it compares models with different tokenizers on the same text.
``bytes(y)`` is ``token_byte_lengths(tokenizer)[y]`` (the end-of-story token counts as 1 byte).
"""
import math
from pathlib import Path

import numpy as np
import torch

from .data.tokens import eval_batches, prepare, token_byte_lengths
from .device import autocast
from .errors import TinyLLMError


@torch.no_grad()
def evaluate(model, tokens, byte_lengths: np.ndarray, *, batch_size: int = 32,
             block_size: int | None = None, max_batches: int | None = None,
             precision: str = "auto") -> dict:
    """Evaluate ``model`` on ``tokens`` (a ``TokenSpan`` or 1-D array), walking it once in
    order in windows of ``block_size`` (default: the model's context), or only its first
    ``max_batches`` batches (None or 0: all). ``precision``: 'auto' is bf16 autocast on CUDA. Returns a dict with loss, perplexity,
    bits_per_byte, tokens (targets scored) and bytes (their UTF-8 bytes)."""
    device = model.device
    block_size = block_size or model.config.context_size
    lengths = torch.as_tensor(np.asarray(byte_lengths), dtype=torch.int64, device=device)
    total_nats = torch.zeros((), dtype=torch.float64, device=device)
    total_bytes = torch.zeros((), dtype=torch.int64, device=device)
    total_tokens = 0
    was_training = model.training
    model.eval()
    try:
        for n, batch in enumerate(eval_batches(tokens, batch_size, block_size)):
            if max_batches and n >= max_batches:
                break
            batch = batch.to(device, non_blocking=True)
            x, y = batch[:, :-1], batch[:, 1:]                         # (B, T) each
            with autocast(device, precision):
                nats = model.loss(x, y, reduction="sum")
            total_nats += nats.double()
            total_bytes += lengths[y].sum()
            total_tokens += y.numel()
    finally:
        model.train(was_training)
    if total_tokens == 0:
        raise TinyLLMError("nothing was evaluated: the text holds fewer than 2 tokens")
    nats, nbytes = total_nats.item(), int(total_bytes.item())
    loss = nats / total_tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),
            "bits_per_byte": nats / math.log(2) / nbytes,
            "tokens": total_tokens, "bytes": nbytes}


def evaluate_file(model, path, *, val_fraction: float | None = None, batch_size: int = 32,
                  max_batches: int | None = None, cache_dir=None) -> dict:
    """Evaluate ``model`` on a text file (stories separated by ``<|endoftext|>`` lines),
    tokenised with the model's own tokenizer (cached by ``tokens.prepare``); with
    ``val_fraction``, on its last stories only (the part ``tinyllm train`` holds out)."""
    if model.tokenizer is None:
        raise TinyLLMError("this model has no tokenizer to read text with: load a checkpoint "
                           "that includes vocab.json and merges.txt")
    token_file = prepare(Path(path), model.tokenizer, cache_dir=cache_dir)
    span = token_file.split(val_fraction)[1] if val_fraction else token_file.span()
    return evaluate(model, span, token_byte_lengths(model.tokenizer),
                    batch_size=batch_size, max_batches=max_batches)


__all__ = ["evaluate", "evaluate_file"]
