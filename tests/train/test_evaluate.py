"""Held-out evaluation (tinyllm.evaluate): loss, perplexity and bits per byte."""
import math

import numpy as np
import pytest
import torch

from tinyllm.model.config import Config
from tinyllm.train.evaluate import evaluate
from tinyllm.model import GPT


def _uniform_model(V=1024):
    """A model whose head is zero: every token has probability 1/V, loss ln V per token."""
    cfg = Config(hidden_size=16, embedding_size=16, num_layers=1, num_heads=2, context_size=8,
                 vocab_size=V)
    model = GPT(None, cfg)
    with torch.no_grad():
        model.lm_head.weight.zero_()
    return model


def test_bits_per_byte_by_hand():
    # 1024 equally likely tokens: 10 bits per token. 9 tokens -> 8 targets, each standing for
    # 2 bytes of text except id 7 (5 bytes): 10 * 8 / (7 * 2 + 5) bits per byte.
    model = _uniform_model(1024)
    tokens = np.array([3, 1, 4, 1, 5, 9, 2, 7, 8], dtype=np.uint16)
    byte_lengths = np.full(1024, 2, dtype=np.int64)
    byte_lengths[7] = 5
    r = evaluate(model, tokens, byte_lengths, batch_size=2, block_size=3)
    assert r["tokens"] == 8 and r["bytes"] == 19
    assert r["loss"] == pytest.approx(math.log(1024), rel=1e-6)
    assert r["perplexity"] == pytest.approx(1024, rel=1e-5)
    assert r["bits_per_byte"] == pytest.approx(80 / 19, rel=1e-6)


@pytest.mark.parametrize("batch_size,block_size", [(1, 8), (3, 5), (4, 2)])
def test_every_target_once_whatever_the_batching(batch_size, block_size):
    torch.manual_seed(0)
    cfg = Config(hidden_size=16, embedding_size=16, num_layers=1, num_heads=2, context_size=8,
                 vocab_size=50)
    model = GPT(None, cfg)
    tokens = np.random.default_rng(0).integers(0, 50, 41).astype(np.uint16)
    lengths = np.arange(1, 51, dtype=np.int64)
    r = evaluate(model, tokens, lengths, batch_size=batch_size, block_size=block_size)
    assert r["tokens"] == 40
    assert r["bytes"] == int(lengths[tokens[1:]].sum())
    # the same windows scored directly, one by one
    nats = 0.0
    with torch.no_grad():
        for s in range(0, 40, block_size):
            w = torch.from_numpy(tokens[s:s + block_size + 1].astype(np.int64))[None]
            nats += model.loss(w[:, :-1], w[:, 1:], reduction="sum").item()
    assert r["loss"] == pytest.approx(nats / 40, rel=1e-5)
    assert r["bits_per_byte"] == pytest.approx(nats / math.log(2) / r["bytes"], rel=1e-5)


def test_max_batches_and_eval_mode_restored():
    model = _uniform_model(64)
    model.train()
    tokens = np.arange(64, dtype=np.uint16)
    r = evaluate(model, tokens, np.ones(64, np.int64), batch_size=2, block_size=4, max_batches=3)
    assert r["tokens"] == 3 * 2 * 4
    assert model.training
