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
import shutil
from pathlib import Path
from typing import Iterator

from ..errors import TinyLLMError

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
            _atomic_copy(Path(downloaded), target / n)
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
        tmp = path.with_suffix(".txt.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for row in stories:
                f.write(row["text"].strip() + f"\n{EOT}\n")
        os.replace(tmp, path)
    except Exception as e:
        raise TinyLLMError(
            f"TinyStories {split} split not found at {path} and the download from the Hugging Face "
            f"hub ({TINYSTORIES_REPO}) failed ({type(e).__name__}); put the stories there, "
            f"separated by lines holding {EOT} (or set TINYLLM_HOME), or pass a file path") from None
    return path


def resolve_text(source, split: str = "validation") -> Path:
    """The text file behind a data source: 'sample', 'tinystories', a file, or a directory
    holding ``{split}.txt``."""
    if source in (None, "tinystories"):
        return tinystories_path(split)
    if source == "sample":
        return sample_corpus_path()
    path = Path(source).expanduser()
    if path.is_dir():
        for name in (f"{split}.txt", "validation.txt" if split != "train" else "train.txt"):
            if (path / name).is_file():
                return path / name
        raise TinyLLMError(f"no {split}.txt in directory {path}: put the {split} stories there, "
                           f"separated by lines holding {EOT}")
    if not path.is_file():
        raise TinyLLMError(f"data file {path} does not exist: give an existing text file, a "
                           "directory with train.txt/validation.txt, 'sample' or 'tinystories'")
    return path


def iter_stories(path) -> Iterator[str]:
    """Stream the stories of a text file whose stories are separated by ``<|endoftext|>`` lines.

    A file with no separator is one story. Leading/trailing whitespace is stripped and empty
    stories are skipped. Memory stays bounded by the longest story."""
    lines: list[str] = []
    with open(path, encoding="utf-8", errors="strict") as f:
        for line in f:
            if line.strip() == EOT:
                story = "".join(lines).strip()
                if story:
                    yield story
                lines = []
            else:
                lines.append(line)
    story = "".join(lines).strip()
    if story:
        yield story


def read_stories(path) -> list[str]:
    """All stories of a file (see ``iter_stories``), with clear errors for unusable files."""
    path = Path(path)
    if not path.is_file():
        raise TinyLLMError(f"data file {path} does not exist")
    try:
        stories = list(iter_stories(path))
    except UnicodeDecodeError as e:
        raise TinyLLMError(f"data file {path} is not UTF-8 text (bad byte at offset {e.start}): "
                           "convert it to UTF-8") from None
    if not stories:
        raise TinyLLMError(f"data file {path} holds no stories (it is empty or only separators): "
                           f"give a text file with stories separated by lines holding {EOT}")
    return stories


def _atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
