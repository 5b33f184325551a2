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

Instruction examples (``tinyllm.data.instructions.Examples``) are scored on their answers: the
sums run over the answer tokens only, so their bits per byte are the answers'.
"""
import math

import numpy as np
import torch

from ..data.documents import open_source
from ..data.instructions import (IGNORE, Examples, is_instruction_data, load_examples,
                                 read_examples)
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
        for n, (x, y) in enumerate(_pairs(tokens, batch_size, block_size)):
            if max_batches and n >= max_batches:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)  # (B, T)
            with autocast(device, precision):
                nats = model.loss(x, y, reduction="sum")
            scored = y != IGNORE                                       # the targets scored
            total_nats += nats.double()
            total_bytes += (lengths[y.clamp(min=0)] * scored).sum()
            total_tokens += int(scored.sum())
    finally:
        model.train(was_training)
    if total_tokens == 0:
        raise TinyLLMError("nothing was evaluated: the text holds fewer than 2 tokens")
    nats, nbytes = total_nats.item(), int(total_bytes.item())
    loss = nats / total_tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),
            "bits_per_byte": nats / math.log(2) / nbytes,
            "tokens": total_tokens, "bytes": nbytes}


def _pairs(tokens, batch_size: int, block_size: int):
    """(inputs, targets) batches, (B, T) each, walking ``tokens`` once in order."""
    if isinstance(tokens, Examples):
        yield from tokens.in_order(batch_size)
        return
    for batch in eval_batches(tokens, batch_size, block_size):
        yield batch[:, :-1], batch[:, 1:]


def text_to_score(tokenizer, *, data=None, run=None, val_fraction: float | None = None,
                  everything: bool = False, text_field: str = "text",
                  context_size: int | None = None):
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
    if is_instruction_data(data, text_field):      # requests and answers: score the answers
        return _answers_to_score(tokenizer, data, run, text_field, context_size)
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


def _answers_to_score(tokenizer, data, run, text_field, context_size):
    """Instruction data: the run's held-out examples when it is the run's data, else every
    example; scored on the answers."""
    read = dict(template=tokenizer.chat_template, context_size=context_size or 1 << 30,
                text_field=text_field)
    if run is not None and data == run.data:
        splits = load_examples(data, tokenizer, val_data=run.val_data,
                               val_fraction=run.val_fraction, **read)
        return splits.validation, f"the answers of {splits.how}", False
    examples = read_examples(data, tokenizer, split="validation", **read)
    return examples, f"the answers of all {len(examples.ids):,} examples of {data}", False


__all__ = ["evaluate", "text_to_score"]
