"""The one door models come in by: a name — a tinyllm model directory, a Hugging Face GPT-Neo or
Llama directory, or a hub id such as ``roneneldan/TinyStories-1M`` — to the model's files, read
(``ModelFiles``: its config's fields, its weights, its tokenizer), from which
``GPT.from_pretrained`` builds the model.

The directory's config.json is read once, and says which it is: a top-level "tinyllm" entry
(``tinyllm.formats.directory``), else a Hugging Face ``model_type``
(``tinyllm.formats.huggingface``). A hub id is downloaded once into the Hugging Face cache; a
name that looks like a path (it starts with '.', '/' or '~', or its first folder is here) is
never taken for one.
"""
import re
from pathlib import Path

from ..errors import TinyLLMError
from ..files import DamagedFile, read_json
from ..tokenizer.chat import CHAT_TEMPLATE_FILE
from ..tokenizer.tokenizer import TOKENIZER_FILES
from .directory import (CONFIG, LAST, TRAINER_STATE, read_model_dir, saying_what_is_intact,
                        verify)
from .huggingface import WEIGHTS_PICKLE, read_hf
from .weights import ModelFiles


def read_model(name_or_path) -> ModelFiles:
    """The files of the model ``name_or_path`` names, read: its config.json once, then what it
    says it is."""
    directory = local_directory(name_or_path)
    if not (directory / CONFIG).is_file():
        raise TinyLLMError(f"{directory} has no config.json: give a Hugging Face GPT-Neo or "
                           "Llama model directory or a tinyllm checkpoint")
    verify(directory)                       # its checksums, when tinyllm wrote it
    meta = read_json(directory / CONFIG, "model config.json")
    if "tinyllm" not in meta and any((directory / n).exists() for n in (LAST, TRAINER_STATE)):
        with saying_what_is_intact(directory):      # a run's directory: not a Hugging Face one
            raise DamagedFile(f"{directory / CONFIG} is damaged: it has no 'tinyllm' entry, "
                              "though a tinyllm training run wrote this directory")
    return read_model_dir(directory, meta) if "tinyllm" in meta else read_hf(directory, meta)


def local_directory(name_or_path) -> Path:
    """The directory ``name_or_path`` is, or for a hub id its downloaded snapshot."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise TinyLLMError(f"{path} is a file: give a model directory or a hub id")
    name = str(name_or_path)
    if _looks_like_hub_id(name) and not _looks_like_path(name):
        return _download(name)
    raise TinyLLMError(f"model directory {path} does not exist: give a directory with "
                       "config.json and model.safetensors, or a hub id like "
                       "roneneldan/TinyStories-1M")


def _looks_like_hub_id(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", name)) and ".." not in name


def _looks_like_path(name: str) -> bool:
    """'runs/nosuch' when runs/ is here: a path, never a hub id (an owner named like a local
    folder is unlikely; a mistyped run directory is not)."""
    return name.startswith((".", "/", "~")) or ("/" in name and Path(name).parent.is_dir())


def _download(repo_id: str) -> Path:
    """A local snapshot of ``repo_id`` holding its config, weights and tokenizer files."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError
    try:
        directory = Path(snapshot_download(
            repo_id, allow_patterns=[CONFIG, "model*.safetensors*", *TOKENIZER_FILES,
                                     CHAT_TEMPLATE_FILE]))
        if not list(directory.glob("model*.safetensors")):  # older repos: pickle weights only
            directory = Path(hf_hub_download(repo_id, WEIGHTS_PICKLE)).parent  # same snapshot
    except RepositoryNotFoundError:
        raise TinyLLMError(f"no model {repo_id!r} on the Hugging Face hub (or it is private): "
                           "check the name, or pass a local directory") from None
    except Exception as e:  # no network, hub errors: say what to do instead
        raise TinyLLMError(f"{repo_id!r} is no directory here, and the Hugging Face hub is "
                           f"unreachable ({type(e).__name__}): pass a local directory in the "
                           "Hugging Face layout (config.json + model.safetensors) instead") from None
    return directory


__all__ = ["read_model", "local_directory"]
