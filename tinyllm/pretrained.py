"""Models on disk: loading and saving a model with its config and tokenizer.

A **tinyllm model directory** (``GPT.save_pretrained``, the output of ``tinyllm train``):

    config.json          {"tinyllm": {<model Config>}, "format": 2, "version": ...}
    model.safetensors    the weights (format 1, tinyllm 0.1, stored W_q, W_k, W_v apart)
    vocab.json, merges.txt   the tokenizer (when the model has one)

A **Hugging Face GPT-Neo or Llama directory** (``config.json`` + ``model.safetensors`` or
``pytorch_model.bin``, optionally ``vocab.json`` + ``merges.txt``) or hub id loads through the
name and config mapping of ``tinyllm.hf`` (GPT-Neo) or ``tinyllm.llama``, chosen by
config.json's ``model_type``; ``export`` writes the one of the two that the model is, which
transformers loads.

Nothing here imports the model: ``load_model`` builds the class it is given (``GPT``), so the
model can hand its ``from_pretrained``/``save_pretrained`` over to this module. Weights are
safetensors; the only pickle ever read is an old GPT-Neo ``pytorch_model.bin``, through
``torch.load(weights_only=True)``, which reads plain tensors and never runs code.
"""
import json
import os
import re
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from . import __version__, hf, llama
from .config import Config
from .errors import TinyLLMError
from .files import (CONFIG, TOKENIZER_FILES, WEIGHTS, atomic_dir, check_state_fits, make_readable,
                    read_json, read_safetensors, write_json)
from .tokenizer import Tokenizer

FORMAT = 2
WEIGHTS_INDEX = "model.safetensors.index.json"
WEIGHTS_PICKLE = "pytorch_model.bin"


# -- tinyllm model directories ----------------------------------------------------------------

def is_model_dir(path) -> bool:
    """True when ``path`` is a directory written by ``save_model`` (its config.json has a
    top-level "tinyllm" key, and there are weights)."""
    try:
        path = Path(path).expanduser()
        if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
            return False
        return "tinyllm" in json.loads((path / CONFIG).read_text("utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def save_model(model, path) -> None:
    """Write ``model``'s config, weights and tokenizer to directory ``path``.

    A new directory appears all at once; in an existing one each file is replaced atomically
    (other files there are left alone)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise TinyLLMError(f"{path} exists and is not a directory: give a directory to save into")
    if not path.exists():
        with atomic_dir(path) as tmp:
            write_model_files(model, tmp)
        return
    with tempfile.TemporaryDirectory(prefix=".tinyllm-save-", dir=path) as tmp:
        for name in write_model_files(model, Path(tmp)):  # weights last
            os.replace(Path(tmp) / name, path / name)


def write_model_files(model, directory: Path) -> list[str]:
    """Write the config, tokenizer and weights into ``directory``; returns their names."""
    write_json(directory / CONFIG, {"tinyllm": model.config.to_dict(), "format": FORMAT,
                                    "version": __version__})
    names = [CONFIG]
    if getattr(model, "tokenizer", None) is not None:
        model.tokenizer.save(directory)
        names += list(TOKENIZER_FILES)
    # clone: tied or non-contiguous tensors become independent plain tensors
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS), metadata={"format": "pt"})
    make_readable(directory / WEIGHTS)
    return names + [WEIGHTS]


def load_model(name_or_path, cls):
    """A ``cls`` (``GPT``) model from a tinyllm model directory, a Hugging Face GPT-Neo or Llama
    directory or a hub id, with its tokenizer (``model.tokenizer``; None when there is none)."""
    if is_model_dir(name_or_path):
        return load_model_dir(name_or_path, cls)
    return _load_hf(name_or_path, cls)


def load_model_dir(path, cls):
    """A ``cls`` model from a tinyllm model directory (and nothing else)."""
    path = Path(path).expanduser()
    if not is_model_dir(path):
        raise TinyLLMError(f"{path} is not a tinyllm checkpoint (no {CONFIG} with a 'tinyllm' "
                           f"entry and {WEIGHTS}): give a directory written by 'tinyllm train' "
                           "or GPT.save_pretrained")
    meta = read_json(path / CONFIG, "tinyllm model config")
    try:
        config = Config.from_dict(meta["tinyllm"])
    except (TinyLLMError, TypeError) as e:  # wrong types, unknown fields, bad values
        raise TinyLLMError(f"{path / CONFIG} does not hold a valid tinyllm model config "
                           f"({e})") from None
    tokenizer = Tokenizer(path) if _has_tokenizer(path) else None
    model = cls(tokenizer, config)
    load_weights(model, path / WEIGHTS)
    return model


def load_weights(model, file) -> None:
    """Copy the tensors of a safetensors file into ``model`` (names and shapes must match)."""
    state = hf.fuse_qkv(read_safetensors(file))     # format 1 stored W_q, W_k, W_v apart
    check_state_fits(state, model.state_dict(), file)
    model.load_state_dict(state)


def _has_tokenizer(directory: Path) -> bool:
    return all((directory / n).is_file() for n in TOKENIZER_FILES)


# -- Hugging Face GPT-Neo and Llama -----------------------------------------------------------

def _load_hf(name_or_path, cls):
    """A ``cls`` holding the weights of a Hugging Face GPT-Neo or Llama model: a local directory
    or a hub id. The tokenizer is the directory's ``vocab.json`` + ``merges.txt``; without them
    GPT-2's for a GPT-Neo with GPT-2's vocabulary (its own), else none."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        directory = path
    elif path.exists():
        raise TinyLLMError(f"{path} is a file: give a model directory or a hub id")
    elif _looks_like_hub_id(str(name_or_path)):
        directory = _download(str(name_or_path))
    else:
        raise TinyLLMError(f"model directory {path} does not exist: give a directory with "
                           "config.json and model.safetensors, or a hub id like "
                           "roneneldan/TinyStories-1M")
    if not (directory / CONFIG).is_file():
        raise TinyLLMError(f"{directory} has no config.json: give a Hugging Face GPT-Neo or "
                           "Llama model directory or a tinyllm checkpoint")
    hf_config = read_json(directory / CONFIG, "Hugging Face config.json")
    is_llama = hf_config.get("model_type") == "llama"
    if is_llama:
        config = llama.config_from_llama(hf_config)
        state = llama.state_dict_from_llama(_read_hf_weights(directory))
    else:
        config = hf.config_from_hf(hf_config)       # refuses model types it does not know
        state = hf.state_dict_from_hf(_read_hf_weights(directory))
    if config.tie_embeddings and "wte.weight" in state:
        state["lm_head.weight"] = state["wte.weight"]
    tokenizer = None
    if _has_tokenizer(directory):
        tokenizer = Tokenizer(directory)
    elif not is_llama and config.vocab_size >= hf.GPT2_VOCAB_SIZE:
        tokenizer = Tokenizer()  # GPT-Neo's own; a clear error when its files cannot be had
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise TinyLLMError(f"the tokenizer ({tokenizer.path}) has {tokenizer.vocab_size} tokens "
                           f"but the model in {directory} only {config.vocab_size}: put the "
                           "model's own vocab.json and merges.txt in its directory")
    model = cls(tokenizer, config)
    check_state_fits(state, model.state_dict(), directory, "its config.json")
    model.load_state_dict(state)
    return model


def _read_hf_weights(directory: Path) -> dict:
    if (directory / WEIGHTS).is_file():
        return read_safetensors(directory / WEIGHTS)
    if (directory / WEIGHTS_INDEX).is_file():  # big models: several shards and an index
        index = read_json(directory / WEIGHTS_INDEX, "safetensors index")
        shards = sorted(set(index["weight_map"].values()))
        return {k: v for shard in shards for k, v in read_safetensors(directory / shard).items()}
    if (directory / WEIGHTS_PICKLE).is_file():
        # weights_only: plain tensors are read, no code is ever unpickled
        return torch.load(directory / WEIGHTS_PICKLE, map_location="cpu", weights_only=True)
    raise TinyLLMError(f"{directory} has no {WEIGHTS} or {WEIGHTS_PICKLE}: give a Hugging Face "
                       "model directory")


def _looks_like_hub_id(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", name)) and ".." not in name


def _download(repo_id: str) -> Path:
    """A local snapshot of ``repo_id`` holding its config, weights and tokenizer files."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError
    try:
        directory = Path(snapshot_download(
            repo_id, allow_patterns=[CONFIG, "model*.safetensors*", *TOKENIZER_FILES]))
        if not list(directory.glob("model*.safetensors")):  # older repos: pickle weights only
            directory = Path(hf_hub_download(repo_id, WEIGHTS_PICKLE)).parent  # same snapshot
    except RepositoryNotFoundError:
        raise TinyLLMError(f"no model {repo_id!r} on the Hugging Face hub (or it is private): "
                           "check the name, or pass a local directory") from None
    except Exception as e:  # no network, hub errors: say what to do instead
        raise TinyLLMError(f"could not download {repo_id!r}: the Hugging Face hub is unreachable "
                           f"({type(e).__name__}); pass a local directory in the Hugging Face "
                           "layout (config.json + model.safetensors) instead") from None
    return directory


def export_format(config: Config) -> str:
    """'GPT-Neo' or 'Llama': the Hugging Face layout ``export`` writes for a model with
    ``config``; a model that is neither is one clear error saying why."""
    neo, lla = hf.incompatibilities(config), llama.incompatibilities(config)
    if not neo:
        return "GPT-Neo"
    if not lla:
        return "Llama"
    raise TinyLLMError(f"this model is neither a GPT-Neo ({'; '.join(neo)}) nor a Llama "
                       f"({'; '.join(lla)}), so no Hugging Face model can load it (tinyllm loads "
                       "its own directory; to export, train with --arch gpt-neo or --arch llama)")


def export(model, directory) -> Path:
    """Write ``model`` as a Hugging Face GPT-Neo or Llama directory (``export_format``):
    ``config.json``, ``model.safetensors`` (that model's names) and the tokenizer's
    ``vocab.json`` + ``merges.txt``. ``transformers.AutoModelForCausalLM.from_pretrained
    (directory)`` loads it."""
    kind = export_format(model.config)
    directory = Path(directory)
    if is_model_dir(directory):
        raise TinyLLMError(f"{directory} holds a tinyllm checkpoint; exporting there would "
                           "overwrite it: give another output directory")
    directory.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
    tied = torch.equal(sd["lm_head.weight"], sd["wte.weight"])
    if tied:  # the head is the embedding, stored once
        del sd["lm_head.weight"]
    to_state, to_config = ((hf.state_dict_to_hf, hf.config_to_hf) if kind == "GPT-Neo"
                           else (llama.state_dict_to_llama, llama.config_to_llama))
    hf_sd = {k: v.contiguous() for k, v in to_state(sd, model.config).items()}
    save_file(hf_sd, str(directory / WEIGHTS), metadata={"format": "pt"})
    make_readable(directory / WEIGHTS)
    tokenizer = getattr(model, "tokenizer", None)
    eos = getattr(tokenizer, "eos_token_id", None)
    write_json(directory / CONFIG, to_config(model.config, tie_word_embeddings=tied,
                                             eos_token_id=eos))
    if tokenizer is not None:
        tokenizer.save(directory)
        special = "<|endoftext|>"
        write_json(directory / "tokenizer_config.json",
                   {"tokenizer_class": "GPT2Tokenizer",
                    "model_max_length": model.config.max_position_embeddings,
                    "bos_token": special, "eos_token": special, "unk_token": special})
    return directory


__all__ = ["is_model_dir", "save_model", "write_model_files", "load_model", "load_model_dir",
           "load_weights", "export", "export_format", "FORMAT"]
