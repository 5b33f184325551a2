"""Shared fixtures. ``../shared/data`` (beside the repository) holds GPT-2's tokenizer files and
the head of the TinyStories validation split; tests copy them into a temporary TINYLLM_HOME so
that the product's own loading code runs, offline."""
import shutil
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GPT2_DIR = SHARED / "gpt2"
STORIES = SHARED / "tinystories" / "validation_head_stories.txt"
VALIDATION_HEAD = SHARED / "tinystories" / "validation_head.txt"

needs_shared = pytest.mark.skipif(not GPT2_DIR.is_dir(), reason="../shared/data is not beside the repo")


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
def empty_home(tmp_path, monkeypatch):
    """A TINYLLM_HOME with nothing in it (and no network: downloads fail)."""
    home = tmp_path / "empty_home"
    home.mkdir()
    monkeypatch.setenv("TINYLLM_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home
