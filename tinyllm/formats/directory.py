"""A tinyllm model directory (``GPT.save_pretrained``, the output of ``tinyllm train``):

    config.json          {"tinyllm": {<model Config>}, "format": 2, "version": ...}
    model.safetensors    the weights (format 1, tinyllm 0.1, stored W_q, W_k, W_v apart)
    vocab.json, merges.txt   the tokenizer (when the model has one)
    checksums.json       the SHA-256 of each file above (``tinyllm.files.write_manifest``)
    last/                in a run directory (``tinyllm train``): its training checkpoint, itself
                         a model directory (``tinyllm.train.checkpoint``)

A new directory appears all at once; in an existing one each file is replaced atomically, the
weights last, the checksums after them (other files there are left alone). Weights are
safetensors: nothing is unpickled. Reading a directory checks its files against its checksums
first (``verify``), and refuses weights that are not finite; a directory without checksums
(older tinyllm) is read unchecked.
"""
from contextlib import contextmanager
from pathlib import Path

from .. import __version__
from ..errors import TinyLLMError
from ..files import (DamagedFile, atomic_dir, check_manifest, forget_manifest, read_json,
                     write_json, write_manifest)
from ..tokenizer import Tokenizer
from ..tokenizer.tokenizer import is_tokenizer_dir
from .hf_common import fuse_qkv
from .weights import ModelFiles, check_state_fits, read_safetensors, write_safetensors

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
FORMAT = 2
LAST = "last"                 # a run directory's training checkpoint
TRAINER_STATE = "trainer_state.json"   # in a training checkpoint (tinyllm.train.checkpoint)


def is_model_dir(path) -> bool:
    """True when ``path`` is a directory written by ``save_model`` (its config.json has a
    top-level "tinyllm" key, and there are weights)."""
    try:
        path = Path(path).expanduser()
        return (path / WEIGHTS).is_file() and "tinyllm" in read_json(path / CONFIG)
    except (OSError, TinyLLMError):
        return False


def save_model(model, path) -> None:
    """Write ``model``'s config, weights and tokenizer to directory ``path``."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise TinyLLMError(f"{path} exists and is not a directory: give a directory to save into")
    if path.exists():
        forget_manifest(path)
        write_manifest(path, write_model_files(model, path))
        return
    with atomic_dir(path) as tmp:
        write_manifest(tmp, write_model_files(model, tmp))


def write_model_files(model, directory: Path) -> list[str]:
    """Write the config, tokenizer and weights into ``directory``, each file atomically, the
    weights last; returns their names."""
    write_json(directory / CONFIG, {"tinyllm": model.config.to_dict(), "format": FORMAT,
                                    "version": __version__})
    names = [CONFIG]
    if getattr(model, "tokenizer", None) is not None:
        names += model.tokenizer.save(directory)
    write_safetensors(model.state_dict(), directory / WEIGHTS)   # tied tensors: stored twice
    return names + [WEIGHTS]


def read_model_dir(path, meta: dict | None = None) -> ModelFiles:
    """The files of tinyllm model directory ``path``; ``meta`` is its config.json when the
    caller has read it already."""
    path = Path(path).expanduser()
    verify(path)
    if meta is None:
        meta = read_json(path / CONFIG, "tinyllm model config")
    if "tinyllm" not in meta or not (path / WEIGHTS).is_file():
        raise TinyLLMError(f"{path} is not a tinyllm checkpoint (no {CONFIG} with a 'tinyllm' "
                           f"entry and {WEIGHTS}): give a directory written by 'tinyllm train' "
                           "or GPT.save_pretrained")
    return ModelFiles(meta["tinyllm"], lambda: Tokenizer(path) if is_tokenizer_dir(path) else None,
                      lambda: read_weights(path / WEIGHTS), str(path))


def read_weights(file) -> dict:
    """The weights of a model directory's safetensors file, in tinyllm's names (refused when
    not finite, saying what else is intact)."""
    with saying_what_is_intact(Path(file).parent):
        return fuse_qkv(read_safetensors(file))   # format 1 stored W_q, W_k, W_v apart


def verify(path) -> None:
    """Check model directory ``path`` against its checksums (``files.check_manifest``): a
    damaged file is one line naming it and what is intact."""
    with saying_what_is_intact(path):
        check_manifest(path)


@contextmanager
def saying_what_is_intact(path):
    """A ``DamagedFile`` raised in the block, about model directory ``path``, says what else is
    intact: a run directory's last/, or the best model of the run a damaged last/ belongs to."""
    try:
        yield
    except DamagedFile as e:
        raise DamagedFile(f"{e}; {what_is_intact(Path(path))}") from None


def what_is_intact(path: Path) -> str:
    """What is known to be intact (its checksums verify) beside damaged model directory
    ``path``, and how to use it."""
    if path.name == LAST and _intact(path.parent):
        return (f"{path.parent} (the run's best model) is intact and loads, but the run cannot "
                f"continue from {path}: start a new run")
    if _intact(path / LAST):
        return (f"{path / LAST} is intact: load it (--model {path / LAST}) or continue the "
                f"run with tinyllm train --resume {path}")
    return "nothing beside it is known to be intact: restore it from a copy, or train again"


def _intact(path: Path) -> bool:
    try:
        return is_model_dir(path) and check_manifest(path)
    except (OSError, TinyLLMError):
        return False


def load_weights(model, file) -> None:
    """Copy the tensors of a safetensors file into ``model`` (names and shapes must match)."""
    state = read_weights(file)
    check_state_fits(state, model.state_dict(), file)
    model.load_state_dict(state)


__all__ = ["is_model_dir", "save_model", "write_model_files", "read_model_dir", "load_weights",
           "verify", "saying_what_is_intact", "CONFIG", "WEIGHTS", "FORMAT", "LAST",
           "TRAINER_STATE"]
