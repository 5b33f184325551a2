"""Instruction data: requests and answers, rendered with a chat template, learned on the answers.

Records in the formats people already use (TRL's), from any source of records that
``open_source`` reads (JSONL, JSON, Parquet, ``hf:``):

    {"prompt": "Tell a story about a cat called Tom.", "completion": "Once upon a time ..."}
    {"messages": [{"role": "system" | "user" | "assistant", "content": "..."}, ...]}

Each record is one example: its conversation rendered with the chat template
(``tinyllm.tokenizer.chat``), tokenized part by part, with a target mask that is true on the
answers' tokens (the assistant messages and the end of text after each):

    ids      x_0 x_1 ... x_n                      the example's tokens, n + 1 ≤ context + 1
    inputs   x_0 ... x_{n-1}        targets   x_1 ... x_n, where the mask is false: ignored

so the loss is the mean over answer tokens of -ln p(x_i | x_<i): the prompt is read, never
learned (``train_on_prompt`` learns it too). Each example gets a row of its own in a batch,
padded after its end (the padding is ignored as a target, and causal attention never lets a
real token see it), so one example never attends to another. An example longer than the
context is cut at context + 1 tokens; how many were cut is counted and reported.
"""
import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from ..errors import TinyLLMError
from ..tokenizer import EOT
from ..tokenizer.chat import DEFAULT_TEMPLATE, check_messages, segments
from .documents import FORMATS_HINT, open_source

IGNORE = -100                 # the target of a position that is not learned (cross-entropy's)


def conversation(record, where: str) -> list[dict] | None:
    """The conversation of an instruction record, checked; None when the record is not one
    (it has neither ``messages`` nor ``prompt``)."""
    if not isinstance(record, dict):
        return None
    if "messages" in record:
        return check_messages(record["messages"], where)
    if "prompt" in record:
        if not isinstance(record.get("completion"), str):
            raise TinyLLMError(f"{where}: a record with a 'prompt' needs a 'completion' text "
                               "(the answer to learn)")
        if not isinstance(record["prompt"], str):
            raise TinyLLMError(f"{where}: 'prompt' is not text")
        return [{"role": "user", "content": record["prompt"]},
                {"role": "assistant", "content": record["completion"]}]
    return None


def is_instruction_data(spec, text_field: str = "text") -> bool:
    """Whether ``spec`` names records of requests and answers (its first record has
    ``messages`` or ``prompt``, and no ``text_field``)."""
    source = open_source(spec, text_field=text_field)
    try:
        first = next(iter(source.records()), None)
    except TinyLLMError:
        return False          # text, or a reader error that the document reader reports
    return first is not None and isinstance(first[0], dict) and text_field not in first[0] \
        and ("messages" in first[0] or "prompt" in first[0])


@dataclass
class Examples:
    """Tokenized examples: ``ids[i]`` (n_i + 1,) and ``learn[i]`` (n_i,), true where the
    target ``ids[i][j + 1]`` is learned."""
    ids: list[np.ndarray] = field(default_factory=list)
    learn: list[np.ndarray] = field(default_factory=list)
    eos: int = 0
    cut: int = 0              # examples cut to the context

    def __len__(self) -> int:
        """Tokens of all examples (what a plan counts as the data)."""
        return sum(len(x) for x in self.ids)

    @property
    def num_targets(self) -> int:
        return int(sum(m.sum() for m in self.learn))

    def batch(self, rows) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets), both (B, T) for the longest example among ``rows``: padded with
        end of text, whose targets are ``IGNORE``, as are the targets not learned."""
        T = max(len(self.ids[i]) - 1 for i in rows)
        x = torch.full((len(rows), T), self.eos, dtype=torch.long)
        y = torch.full((len(rows), T), IGNORE, dtype=torch.long)
        for r, i in enumerate(rows):
            ids, n = torch.from_numpy(self.ids[i].astype(np.int64)), len(self.ids[i]) - 1
            x[r, :n] = ids[:-1]
            y[r, :n] = ids[1:].masked_fill(~torch.from_numpy(self.learn[i]), IGNORE)
        return x, y

    def random_batches(self, batch_size: int, generator: torch.Generator) -> Iterator:
        """Batches of ``batch_size`` examples drawn at random, forever."""
        if not self.ids:
            raise TinyLLMError("there are no examples to train on")
        while True:
            rows = torch.randint(len(self.ids), (batch_size,), generator=generator).tolist()
            yield self.batch(rows)

    def in_order(self, batch_size: int) -> Iterator:
        """Every example once, in order, ``batch_size`` at a time (evaluation)."""
        for start in range(0, len(self.ids), batch_size):
            yield self.batch(range(start, min(start + batch_size, len(self.ids))))


def tokenize_example(tokenizer, messages: list[dict], *, template: str, context_size: int,
                     train_on_prompt: bool = False) -> tuple[np.ndarray, np.ndarray, bool]:
    """(ids, learn, cut) of one conversation: its parts (``segments``) tokenized one by one and
    joined, so an answer's tokens are exactly the tokens of its text; cut to
    ``context_size + 1`` tokens (``cut`` says whether it was)."""
    ids, learned = [], []
    for text, is_answer in segments(template, messages, EOT):
        pieces = text.split(EOT)                       # the end of text is one token
        for n, piece in enumerate(pieces):
            part = (tokenizer.encode(piece) if piece else []) + \
                ([tokenizer.eos_token_id] if n < len(pieces) - 1 else [])
            ids += part
            learned += [is_answer or train_on_prompt] * len(part)
    cut = len(ids) > context_size + 1
    ids, learned = ids[:context_size + 1], learned[:context_size + 1]
    return (np.asarray(ids, dtype=np.int32), np.asarray(learned[1:], dtype=bool), cut)


def read_examples(spec, tokenizer, *, template: str | None, context_size: int,
                  train_on_prompt: bool = False, text_field: str = "text",
                  split: str = "train") -> Examples:
    """The examples of every record of ``spec``; a record that is not an instruction record
    is one line naming it."""
    source = open_source(spec, split=split, text_field=text_field)
    out = Examples(eos=tokenizer.eos_token_id)
    for record, where in source.records():
        messages = conversation(record, where)
        if messages is None:
            fields = ", ".join(map(str, record)) if isinstance(record, dict) else "none"
            raise TinyLLMError(f"{where} is not an instruction record (its fields: {fields}): "
                               "give 'prompt' and 'completion', or 'messages'")
        ids, learn, cut = tokenize_example(tokenizer, messages, template=template or
                                           DEFAULT_TEMPLATE, context_size=context_size,
                                           train_on_prompt=train_on_prompt)
        if len(ids) < 2 or not learn.any():
            continue          # nothing to learn within the context
        out.ids.append(ids)
        out.learn.append(learn)
        out.cut += cut
    if not out.ids:
        raise TinyLLMError(f"{source.name} holds no example with an answer to learn: "
                           f"give {FORMATS_HINT} of instruction records")
    return out


@dataclass
class ExampleSplits:
    train: Examples
    validation: Examples
    how: str                  # which examples are held out, in words


def load_examples(data, tokenizer, *, template: str | None, context_size: int,
                  val_data=None, val_fraction: float = 0.05, train_on_prompt: bool = False,
                  text_field: str = "text") -> ExampleSplits:
    """The training and held-out examples: ``val_data``'s, else the source's validation split,
    else the last ceil(``val_fraction`` × their number) examples. Held-out targets are always
    the answers only (their bits per byte are the answers')."""
    read = dict(template=template, context_size=context_size, text_field=text_field)
    train = read_examples(data, tokenizer, train_on_prompt=train_on_prompt, **read)
    held = val_data or (data if open_source(data, text_field=text_field).validation() else None)
    if held is not None:
        validation = read_examples(held, tokenizer, split="validation", **read)
        return ExampleSplits(train, validation, f"the {len(validation.ids):,} examples of "
                                                f"{held}'s validation split")
    if len(train.ids) < 2:
        raise TinyLLMError("one example cannot be split into training and held-out examples: "
                           "give more, or --val-data")
    k = math.ceil(val_fraction * len(train.ids))      # as the documents rule (data/tokens)
    answers = read_examples(data, tokenizer, **read) if train_on_prompt else train
    validation = Examples(answers.ids[-k:], answers.learn[-k:], train.eos)
    train = Examples(train.ids[:-k], train.learn[:-k], train.eos, train.cut)
    return ExampleSplits(train, validation, f"the last {k:,} of {k + len(train.ids):,} "
                                            "examples")


__all__ = ["IGNORE", "Examples", "ExampleSplits", "conversation", "is_instruction_data",
           "tokenize_example", "read_examples", "load_examples"]
