"""Data and tokenizer sources.

The cache lives in ``$TINYLLM_HOME`` (default ``~/.cache/tinyllm``):

    $TINYLLM_HOME/gpt2/vocab.json, merges.txt          GPT-2 / GPT-Neo tokenizer
    $TINYLLM_HOME/tinystories/train.txt, validation.txt TinyStories, one story per block,
                                                         blocks separated by '<|endoftext|>' lines

Files already there are used as they are, with no network access. Missing ones are
downloaded once from the Hugging Face hub (``EleutherAI/gpt-neo-125M`` for the tokenizer,
``roneneldan/TinyStories`` for the stories, through ``datasets``). When that is impossible the
error says what was tried and where to put the files.
"""
import os
from pathlib import Path

from ..errors import TinyLLMError
from ..files import atomic_open, atomic_write

EOT = "<|endoftext|>"

TOKENIZER_REPO = "EleutherAI/gpt-neo-125M"
TINYSTORIES_REPO = "roneneldan/TinyStories"
SPLITS = ("train", "validation")
_PACKAGE_DATA = Path(__file__).resolve().parent


def home() -> Path:
    """The cache directory: ``$TINYLLM_HOME`` or ``~/.cache/tinyllm``."""
    return Path(os.environ.get("TINYLLM_HOME", "~/.cache/tinyllm")).expanduser()


def sample_corpus_path() -> Path:
    """The built-in corpus: original TinyStories-style stories written for tinyllm."""
    return _PACKAGE_DATA / "sample.txt"


def builtin_tokenizer_dir() -> Path:
    """The byte-level BPE tokenizer trained on the built-in corpus (shipped with tinyllm)."""
    return _PACKAGE_DATA / "tokenizer"


def gpt2_tokenizer_dir() -> Path:
    """A directory holding GPT-2's ``vocab.json`` and ``merges.txt``; downloads them if needed."""
    target = home() / "gpt2"
    names = ("vocab.json", "merges.txt")
    if all((target / n).is_file() for n in names):
        return target
    try:
        from huggingface_hub import hf_hub_download
        target.mkdir(parents=True, exist_ok=True)
        for n in names:
            downloaded = hf_hub_download(TOKENIZER_REPO, n)
            atomic_write(target / n, Path(downloaded).read_bytes())
    except Exception as e:  # no network, no hub, no permission: say what to do
        raise TinyLLMError(
            f"GPT-2 tokenizer files not found in {target} and the download from the Hugging Face "
            f"hub ({TOKENIZER_REPO}) failed ({type(e).__name__}); put vocab.json and merges.txt "
            f"there (or set TINYLLM_HOME), or pass a directory: Tokenizer('path/to/dir')") from None
    return target


def tinystories_path(split: str = "validation") -> Path:
    """``$TINYLLM_HOME/tinystories/{split}.txt``, downloaded from the hub the first time."""
    if split not in SPLITS:
        raise TinyLLMError(f"unknown TinyStories split {split!r}: use 'train' or 'validation'")
    path = home() / "tinystories" / f"{split}.txt"
    if path.is_file():
        return path
    try:
        from datasets import load_dataset
        stories = load_dataset(TINYSTORIES_REPO, split=split)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "w") as f:
            for row in stories:
                f.write(row["text"].strip() + f"\n{EOT}\n")
    except Exception as e:
        raise TinyLLMError(
            f"TinyStories {split} split not found at {path} and the download from the Hugging Face "
            f"hub ({TINYSTORIES_REPO}) failed ({type(e).__name__}); put the stories there, "
            f"separated by lines holding {EOT} (or set TINYLLM_HOME), or pass a file path") from None
    return path
