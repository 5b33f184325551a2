"""A tinyllm model directory (``GPT.save_pretrained``, the output of ``tinyllm train``):

    config.json          {"tinyllm": {<model Config>}, "format": 2, "version": ...}
    model.safetensors    the weights (format 1, tinyllm 0.1, stored W_q, W_k, W_v apart)
    vocab.json, merges.txt   the tokenizer (when the model has one)

A new directory appears all at once; in an existing one each file is replaced atomically, the
weights last (other files there are left alone). Weights are safetensors: nothing is unpickled.
"""
from pathlib import Path

from .. import __version__
from ..errors import TinyLLMError
from ..files import atomic_dir, read_json, write_json
from ..tokenizer import Tokenizer
from ..tokenizer.tokenizer import is_tokenizer_dir
from .hf_common import fuse_qkv
from .weights import ModelFiles, check_state_fits, read_safetensors, write_safetensors

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
FORMAT = 2


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
        write_model_files(model, path)
        return
    with atomic_dir(path) as tmp:
        write_model_files(model, tmp)


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
    if meta is None:
        meta = read_json(path / CONFIG, "tinyllm model config")
    if "tinyllm" not in meta or not (path / WEIGHTS).is_file():
        raise TinyLLMError(f"{path} is not a tinyllm checkpoint (no {CONFIG} with a 'tinyllm' "
                           f"entry and {WEIGHTS}): give a directory written by 'tinyllm train' "
                           "or GPT.save_pretrained")
    return ModelFiles(meta["tinyllm"], lambda: Tokenizer(path) if is_tokenizer_dir(path) else None,
                      lambda: read_weights(path / WEIGHTS), str(path))


def read_weights(file) -> dict:
    """The weights of a model directory's safetensors file, in tinyllm's names."""
    return fuse_qkv(read_safetensors(file))       # format 1 stored W_q, W_k, W_v apart


def load_weights(model, file) -> None:
    """Copy the tensors of a safetensors file into ``model`` (names and shapes must match)."""
    state = read_weights(file)
    check_state_fits(state, model.state_dict(), file)
    model.load_state_dict(state)


__all__ = ["is_model_dir", "save_model", "write_model_files", "read_model_dir", "load_weights",
           "CONFIG", "WEIGHTS", "FORMAT"]
