"""Held-out evaluation: loss, perplexity and bits per byte of a model on a token span.

Over the predicted targets y_1..y_N of a span, each once — every token of a span of a token
file (its first predicted from the token before it, or from an end of text where its file
starts), every token but the first of a bare array of ids:

    loss       = (1/N) Σ_i -ln p(y_i | y_<i)                     nats per token
    perplexity = exp(loss)
    bpb        = Σ_i -ln p(y_i | y_<i) / ln 2 / Σ_i bytes(y_i)    bits per UTF-8 byte of text

Loss and perplexity depend on the tokenizer (a bigger vocabulary has fewer, harder tokens);
bits per byte does not, so it compares models with different tokenizers on the same text.
``bytes(y)`` is ``token_byte_lengths(tokenizer)[y]`` (the end-of-story token counts as 1 byte).
"""
import math

import numpy as np
import torch

from ..data.documents import open_source
from ..data.tokens import eval_batches, load_splits, prepare
from .device import autocast
from ..errors import TinyLLMError


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


def text_to_score(tokenizer, *, data=None, run=None, val_fraction: float | None = None,
                  everything: bool = False, text_field: str = "text"):
    """Which text ``tinyllm eval`` scores: (token span, what it is in words, whether the model
    trained on some of it). ``run`` is the ``TrainConfig`` of the run that made the model, or
    None.

    - no ``data``: the text the run held out (the same split ``tinyllm train`` validated on);
    - ``data`` that is the run's own training data: still only its held-out part, unless
      ``everything`` (then all of it, labelled as including training text);
    - ``val_fraction``: the part of ``data`` that fraction holds out (by the run's rule);
    - other data: its validation split where it has one, else all of it."""
    if data is None:
        if run is None:
            raise TinyLLMError("give --data: this model was not written by 'tinyllm train', so "
                               "there is no held-out text of its own to score")
        data, text_field = run.data, run.text_field
    source = open_source(data, split="train", text_field=text_field)
    same = run is not None and source.identity() == \
        open_source(run.data, split="train", text_field=run.text_field).identity()
    if val_fraction is not None:
        _, held_out, how = prepare(source, tokenizer).holdout(
            val_fraction, run.val_by if run is not None else "bytes")
        trained_on = same and run.val_data is None and source.validation() is None \
            and val_fraction > run.val_fraction
        return held_out, f"held out: {how}", trained_on
    if same and not everything:
        splits = load_splits(run.data, tokenizer, val_data=run.val_data,
                             val_fraction=run.val_fraction, val_by=run.val_by,
                             text_field=run.text_field)
        return splits.validation, f"the text the run held out: {splits.how}", False
    if same:
        return (prepare(source, tokenizer).span(),
                f"all of {source.name}, the text the run trained on included", True)
    source = open_source(data, split="validation", text_field=text_field)
    return prepare(source, tokenizer).span(), f"all of {source.name}", False


__all__ = ["evaluate", "text_to_score"]
