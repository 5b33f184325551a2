"""Shared fixtures and helpers.

``../shared/data`` (beside the repository) holds GPT-2's tokenizer files and the head of the
TinyStories validation split; tests copy them into a temporary TINYLLM_HOME so that the
product's own loading code runs, offline. The helpers below (small models, token streams,
tolerances) are imported by the tests that use them: ``from tests.conftest import tiny_model``.
"""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

# No test reaches the Hugging Face hub (there is no network here): the libraries read these when
# first imported, so they are set before any test imports them.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# One thread per process, fixed (tinyllm.train.cpu takes it as the user's choice): the tests run
# on 2 cores, several processes at a time in the torchrun tests.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
GPT2_DIR = SHARED / "gpt2"
STORIES = SHARED / "tinystories" / "validation_head_stories.txt"
VALIDATION_HEAD = SHARED / "tinystories" / "validation_head.txt"
LEARNER = REPO / "tests" / "learner"

needs_shared = pytest.mark.skipif(not GPT2_DIR.is_dir(), reason="../shared/data is not beside the repo")

TOL = 1e-5        # one component, fp32
TOL_MODEL = 1e-4  # a whole block or model
V = 97            # the vocabulary of the tiny models


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _one_thread():
    """2-core CI machine: keep each test to one intra-op thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tinyllm_home(tmp_path, monkeypatch):
    """A TINYLLM_HOME filled from ../shared/data: gpt2/ and tinystories/validation.txt."""
    if not GPT2_DIR.is_dir():
        pytest.skip("../shared/data is not beside the repository")
    home = tmp_path / "tinyllm_home"
    shutil.copytree(GPT2_DIR, home / "gpt2")
    (home / "tinystories").mkdir(parents=True)
    shutil.copyfile(STORIES, home / "tinystories" / "validation.txt")
    monkeypatch.setenv("TINYLLM_HOME", str(home))
    return home


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A TINYLLM_HOME of its own, empty at first (what a run caches goes there)."""
    monkeypatch.setenv("TINYLLM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """A TINYLLM_HOME with nothing in it (and no network: downloads fail)."""
    home = tmp_path / "empty_home"
    home.mkdir()
    monkeypatch.setenv("TINYLLM_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def parity_table(tmp_path_factory):
    """The whole parity table with tinyllm's own classes, run once for every test that only
    reads it (with GPT-2's tokenizer files where ../shared/data has them)."""
    from tinyllm import check
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("parity_home")
        if GPT2_DIR.is_dir():
            shutil.copytree(GPT2_DIR, home / "gpt2")
        mp.setenv("TINYLLM_HOME", str(home))
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return check.run_checks()
        finally:
            torch.set_num_threads(n)


# -- helpers --------------------------------------------------------------------------------------

def small_config(**kw):
    """A 2-layer, 32-wide GPT-Neo config (window 5) with a 100-token vocabulary."""
    from tinyllm.model import Config
    base = dict(hidden_size=32, embedding_size=32, num_layers=2, num_heads=4, context_size=16,
                window_size=5, max_position_embeddings=64, vocab_size=100)
    return Config(**{**base, **kw})


def tiny_model(seed=0, dropout=0.0, vocab=V, context=16):
    """A seeded 2-layer, 32-wide GPT with 1/√d attention."""
    from tinyllm.model import GPT, Config
    torch.manual_seed(seed)
    cfg = Config(hidden_size=32, embedding_size=32, num_layers=2, num_heads=4,
                 context_size=context, vocab_size=vocab, attention="scaled",
                 attention_dropout=dropout, residual_dropout=dropout, embedding_dropout=dropout)
    return GPT(None, cfg)


def patterned_tokens(n=4000, seed=0):
    """A learnable stream: a repeating sequence with some noise."""
    rng = np.random.default_rng(seed)
    base = np.tile(np.arange(0, 40), n // 40 + 1)[:n]
    noise = rng.integers(0, V, n)
    return np.where(rng.random(n) < 0.1, noise, base).astype(np.uint16)


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


def write_byte_tokenizer(directory: Path) -> None:
    """A 257-token byte-level tokenizer (the 256 bytes + <|endoftext|>, no merges)."""
    from tokenizers import pre_tokenizers
    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab["<|endoftext|>"] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab), "utf-8")
    (directory / "merges.txt").write_text("", "utf-8")
