"""Checkpoints: a model, or a whole training run, as a directory of plain files.

A **model checkpoint** (``save_model`` / ``load_model``; ``GPT.save_pretrained`` /
``GPT.from_pretrained``) is a directory holding

    config.json          {"tinyllm": {<model Config>}, "format": 1, "version": ...}
    model.safetensors    the weights
    vocab.json, merges.txt   the tokenizer (when the model has one)

A **training checkpoint** (``save_training_state`` / ``load_training_state``) is a model
checkpoint plus everything needed to continue the run exactly where it stopped:

    optimizer.safetensors + optimizer.json   the optimizer's tensors (AdamW moments, step) and
                                             its param groups / scalar state, as JSON
    rng.safetensors      random generator states (torch CPU/CUDA, the batch sampler's generator;
                         in a multi-process run also rank{r}.* for each process r > 0)
    trainer_state.json   step, tokens seen, elapsed time, best validation loss, python/numpy RNG
    train_config.json    the ``TrainConfig`` of the run
    metrics.jsonl        the metrics logged so far

The learning-rate schedule is a pure function of the step (``tinyllm.train.lr_at``), so the step
is its whole state. Nothing is ever unpickled: tensors are safetensors, the rest JSON.

Writes are atomic with respect to the process being killed: a directory is written beside its
target under a temporary name and then renamed into place, so a reader sees either the old
checkpoint or the new one, never half of one.
"""
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import Config
from .errors import TinyLLMError

FORMAT = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TOKENIZER_FILES = ("vocab.json", "merges.txt")
OPTIMIZER_TENSORS, OPTIMIZER_JSON = "optimizer.safetensors", "optimizer.json"
RNG = "rng.safetensors"
TRAINER_STATE = "trainer_state.json"
TRAIN_CONFIG = "train_config.json"
METRICS = "metrics.jsonl"


# -- model checkpoints ----------------------------------------------------------------------

def is_checkpoint(path) -> bool:
    """True when ``path`` is a directory written by ``save_model`` (its config.json has a
    top-level "tinyllm" key)."""
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
            _write_model_files(model, tmp)
        return
    with tempfile.TemporaryDirectory(prefix=".tinyllm-save-", dir=path) as tmp:
        names = _write_model_files(model, Path(tmp))
        for name in names:  # weights last: config and tokenizer of a run never change
            os.replace(Path(tmp) / name, path / name)


def load_model(path, device=None):
    """The ``GPT`` saved in directory ``path``, with its tokenizer (``model.tokenizer``, or None
    when the checkpoint has none)."""
    from .model import GPT
    path = Path(path).expanduser()
    if not is_checkpoint(path):
        raise TinyLLMError(f"{path} is not a tinyllm checkpoint (no {CONFIG} with a 'tinyllm' "
                           f"entry and {WEIGHTS}): give a directory written by 'tinyllm train' "
                           "or GPT.save_pretrained")
    try:
        config = Config.from_dict(json.loads((path / CONFIG).read_text("utf-8"))["tinyllm"])
    except (ValueError, TypeError, KeyError) as e:  # bad JSON, wrong types, unknown fields
        raise TinyLLMError(f"{path / CONFIG} does not hold a valid tinyllm model config "
                           f"({type(e).__name__}: {e})") from None
    tokenizer = None
    if all((path / n).is_file() for n in TOKENIZER_FILES):
        from .tokenizer import Tokenizer
        tokenizer = Tokenizer(path)
    model = GPT(tokenizer, config)
    load_weights(model, path / WEIGHTS)
    return model.to(device) if device is not None else model


def load_weights(model, file) -> None:
    """Copy the tensors of a safetensors file into ``model`` (names and shapes must match)."""
    state = _read_safetensors(file)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise TinyLLMError(f"{file} does not fit this model (missing {missing[:3]}, unexpected "
                           f"{unexpected[:3]}): was it written by another model configuration?")
    for name, t in state.items():
        if t.shape != own[name].shape:
            raise TinyLLMError(f"{file}: {name} has shape {tuple(t.shape)}, the model expects "
                               f"{tuple(own[name].shape)}")
    model.load_state_dict(state)


def _read_safetensors(file) -> dict:
    """The tensors of a safetensors file; anything else (a pickle, say) is refused, unread."""
    try:
        return load_file(str(file))
    except Exception as e:  # safetensors' own error type, OSError, ...
        raise TinyLLMError(f"{file} is not a readable safetensors file ({type(e).__name__}): "
                           "tinyllm only loads safetensors, never pickles") from None


def _write_model_files(model, directory: Path) -> list[str]:
    config = {"tinyllm": model.config.to_dict(), "format": FORMAT, "version": _version()}
    (directory / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    names = [CONFIG]
    if getattr(model, "tokenizer", None) is not None:
        model.tokenizer.save(directory)
        names += list(TOKENIZER_FILES)
    # clone: tied or non-contiguous tensors become independent plain tensors
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS), metadata={"format": "pt"})
    return names + [WEIGHTS]


# -- training checkpoints -------------------------------------------------------------------

def save_training_state(path, model, optimizer, *, state: dict, rng: dict, train_config: dict,
                        metrics: list) -> None:
    """Write a full training checkpoint to directory ``path`` atomically (replacing any old one).

    ``state`` is JSON (step, tokens, ...); ``rng`` maps names to uint8 generator-state tensors."""
    with atomic_dir(path) as tmp:
        _write_model_files(model, tmp)
        tensors, meta = optimizer_state_to_flat(optimizer.state_dict())
        save_file(tensors, str(tmp / OPTIMIZER_TENSORS))
        _write_json(tmp / OPTIMIZER_JSON, meta)
        save_file({k: v.contiguous() for k, v in rng.items()}, str(tmp / RNG))
        _write_json(tmp / TRAINER_STATE, state)
        _write_json(tmp / TRAIN_CONFIG, train_config)
        with open(tmp / METRICS, "w", encoding="utf-8") as f:
            for row in metrics:
                f.write(json.dumps(row) + "\n")


def is_training_checkpoint(path) -> bool:
    path = Path(path)
    return is_checkpoint(path) and (path / TRAINER_STATE).is_file()


def load_training_state(path, model, optimizer) -> dict:
    """Load a training checkpoint into ``model`` and ``optimizer`` (built like the saved ones);
    returns {"state", "rng", "train_config", "metrics"}."""
    path = Path(path)
    if not is_training_checkpoint(path):
        raise TinyLLMError(f"{path} is not a tinyllm training checkpoint (no {TRAINER_STATE}): "
                           "give the output directory of a 'tinyllm train' run")
    load_weights(model, path / WEIGHTS)
    meta = json.loads((path / OPTIMIZER_JSON).read_text("utf-8"))
    optimizer.load_state_dict(optimizer_state_from_flat(_read_safetensors(path / OPTIMIZER_TENSORS), meta))
    metrics = [json.loads(line) for line in (path / METRICS).read_text("utf-8").splitlines() if line]
    return {"state": json.loads((path / TRAINER_STATE).read_text("utf-8")),
            "rng": _read_safetensors(path / RNG),
            "train_config": json.loads((path / TRAIN_CONFIG).read_text("utf-8")),
            "metrics": metrics}


def optimizer_state_to_flat(sd: dict) -> tuple[dict, dict]:
    """Split a ``torch.optim`` state dict into {name: tensor} (for safetensors) and JSON.

    ``sd = {"state": {param_index: {key: tensor or number}}, "param_groups": [...]}``; tensor
    ``state[i][key]`` becomes ``"state.i.key"``, numbers go to the JSON under "scalars"."""
    tensors, scalars = {}, {}
    for index, param_state in sd["state"].items():
        for key, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_state_from_flat(tensors: dict, meta: dict) -> dict:
    """The inverse of ``optimizer_state_to_flat``."""
    state: dict = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


# -- atomic directories ---------------------------------------------------------------------

@contextmanager
def atomic_dir(path):
    """Yield a fresh temporary directory beside ``path``; on success it replaces ``path``.

    The swap is two renames (old -> .NAME.old, new -> NAME); a run killed between them leaves
    .NAME.old, which ``find_resumable`` still finds."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def find_resumable(path) -> Path:
    """The training checkpoint to resume from: ``path`` itself, ``path/last`` (the layout
    ``tinyllm train`` writes), or a ``.last.old`` left by a run killed mid-swap."""
    path = Path(path).expanduser()
    for candidate in (path, path / "last", path / ".last.old"):
        if is_training_checkpoint(candidate):
            return candidate
    raise TinyLLMError(f"nothing to resume in {path}: give the --out directory of an earlier "
                       "'tinyllm train' run (it holds last/trainer_state.json)")


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def _version() -> str:
    from . import __version__
    return __version__


__all__ = ["is_checkpoint", "save_model", "load_model", "load_weights", "save_training_state",
           "load_training_state", "is_training_checkpoint", "find_resumable", "atomic_dir",
           "optimizer_state_to_flat", "optimizer_state_from_flat"]
