"""The data tinyllm knows by name: its built-in corpus, and TinyStories.

    'sample'       tinyllm/data/sample.txt: 205 original short stories in the TinyStories style,
                   written for tinyllm (its tokenizer ships beside it: Tokenizer('builtin'))
    'tinystories'  $TINYLLM_HOME/tinystories/train.txt, validation.txt: one story per block,
                   blocks separated by '<|endoftext|>' lines

Files already in the cache are used as they are, with no network access. A missing TinyStories
split is downloaded once from the Hugging Face hub (``roneneldan/TinyStories``, through
``datasets``); when that is impossible the error says what was tried and where to put the files.
"""
from pathlib import Path

from ..errors import TinyLLMError
from ..files import atomic_open, home
from ..tokenizer import EOT

TINYSTORIES_REPO = "roneneldan/TinyStories"
SPLITS = ("train", "validation")


def sample_corpus_path() -> Path:
    """The built-in corpus: original TinyStories-style stories written for tinyllm."""
    return Path(__file__).resolve().parent / "sample.txt"


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
