"""Training checkpoints: a run's whole state as a directory of plain files, written atomically.

A run directory (``tinyllm train --out DIR``) holds the model with the best validation loss
(a model directory, ``tinyllm.formats.directory``), ``metrics.jsonl``, ``loss.png`` and ``last/``,
the training checkpoint: a model directory plus everything needed to continue the run exactly
where it stopped:

    optimizer.safetensors + optimizer.json   the optimizer's tensors (AdamW moments, Muon momenta)
                                             and its param groups / scalar state, as JSON
    rng.safetensors      random generator states (torch's, the batch sampler's, CUDA's; in a
                         multi-process run also rank{r}.* for each process r > 0)
    trainer_state.json   step, tokens seen, elapsed time, best validation loss, processes
    train_config.json    the run's ``TrainConfig``
    metrics.jsonl        the metrics logged so far
    checksums.json       the SHA-256 of each file above, checked before any of it is used
                         (``tinyllm.formats.directory.verify``): resume never trains on damaged
                         state

``RunState`` is what changes as a run goes (everything above but the weights, the optimizer and
the configuration); ``save`` writes it whole and ``load`` reads it whole. The learning-rate
schedule is a pure function of the step (``tinyllm.schedule``), so the step is its whole state.
Nothing is ever unpickled: tensors are safetensors, the rest JSON.

The directory is written beside its target under a temporary name and then renamed into place
(``files.atomic_dir``), so a reader sees either the old checkpoint or the new one, never half.
"""
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import TinyLLMError
from ..files import (atomic_dir, read_json, read_metrics, remove_temporaries, write_json,
                     write_manifest, write_metrics)
from ..formats.directory import (CONFIG, LAST, TRAINER_STATE, WEIGHTS, is_model_dir,
                                 load_weights, verify, write_model_files)
from ..formats.weights import read_safetensors, write_safetensors

METRICS, LOSS_PLOT = "metrics.jsonl", "loss.png"     # in a run directory, beside LAST
OPTIMIZER_TENSORS, OPTIMIZER_JSON = "optimizer.safetensors", "optimizer.json"
RNG = "rng.safetensors"
TRAIN_CONFIG = "train_config.json"


@dataclass
class RunState:
    """Where a training run stands."""
    step: int = 0                         # optimizer steps taken
    tokens: int = 0                       # training tokens seen, all processes
    elapsed: float = 0.0                  # seconds of training so far (evaluation included)
    best_val_loss: float = math.inf       # the lowest validation loss, the saved model's
    best_step: int | None = None          # the step it was reached at
    evals_since_best: int = 0             # evaluations in a row that did not beat it
    world_size: int = 1                   # processes that trained it
    metrics: list = field(default_factory=list)   # every metrics row so far
    rng: dict = field(default_factory=dict)       # name -> uint8 generator-state tensor


def save(path, model, optimizer, state: RunState, train_config: dict) -> None:
    """Write a training checkpoint to directory ``path`` atomically, replacing any old one."""
    with atomic_dir(path) as tmp:
        names = write_model_files(model, tmp)
        tensors, meta = optimizer_state_to_flat(optimizer.state_dict())
        write_safetensors(tensors, tmp / OPTIMIZER_TENSORS)
        write_safetensors(state.rng, tmp / RNG)
        write_json(tmp / OPTIMIZER_JSON, meta)
        scalars = {k: v for k, v in asdict(state).items() if k not in ("metrics", "rng")}
        if math.isinf(state.best_val_loss):
            scalars["best_val_loss"] = None           # JSON has no infinity
        write_json(tmp / TRAINER_STATE, scalars)
        write_json(tmp / TRAIN_CONFIG, train_config)
        write_metrics(tmp / METRICS, state.metrics)
        write_manifest(tmp, names + [OPTIMIZER_TENSORS, RNG, OPTIMIZER_JSON, TRAINER_STATE,
                                     TRAIN_CONFIG, METRICS])


def load(path, model, optimizer) -> RunState:
    """Load training checkpoint ``path`` into ``model`` and ``optimizer`` (built like the saved
    ones) and return its ``RunState``. Its files are checked against its checksums first."""
    path = Path(path)
    if not is_training_checkpoint(path):
        raise TinyLLMError(f"{path} is not a tinyllm training checkpoint (no {TRAINER_STATE}): "
                           "give the output directory of a 'tinyllm train' run")
    verify(path)
    saved = trainer_state(path)
    meta = read_json(path / OPTIMIZER_JSON, "optimizer state")
    if not (isinstance(meta.get("param_groups"), list) and isinstance(meta.get("scalars"), dict)):
        raise TinyLLMError(f"{path / OPTIMIZER_JSON} is not a tinyllm optimizer state (it needs "
                           "'param_groups' and 'scalars'): the checkpoint is damaged")
    load_weights(model, path / WEIGHTS)
    optimizer.load_state_dict(optimizer_state_from_flat(read_safetensors(path / OPTIMIZER_TENSORS),
                                                        meta))
    best = saved.get("best_val_loss")
    return RunState(step=saved["step"], tokens=saved["tokens"], elapsed=saved["elapsed"],
                    best_val_loss=math.inf if best is None else best,
                    best_step=saved.get("best_step"),
                    evals_since_best=saved.get("evals_since_best", 0),
                    world_size=saved.get("world_size", 1), metrics=read_metrics(path / METRICS),
                    rng=read_safetensors(path / RNG))


def saved_train_config(path) -> dict:
    """The ``TrainConfig`` (as a dict) of the run whose checkpoint is ``path``, its model's
    config taken from the checkpoint's own config.json."""
    path = Path(path)
    saved = read_json(path / TRAIN_CONFIG, "training configuration")
    saved["model"] = read_json(path / CONFIG, "tinyllm model config")["tinyllm"]
    return saved


def saved_step(path) -> int:
    """The step of the training checkpoint ``path``."""
    return trainer_state(path)["step"]


def trainer_state(path) -> dict:
    """The trainer_state.json of checkpoint ``path``, its step, tokens and time checked."""
    file = Path(path) / TRAINER_STATE
    saved = read_json(file, "trainer state")
    for key in ("step", "tokens", "elapsed"):
        value = saved.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise TinyLLMError(f"{file} is not a tinyllm trainer state ({key!r} is {value!r}, "
                               "not a count): the checkpoint is damaged")
    return saved


def run_config(path) -> dict | None:
    """The saved ``TrainConfig`` (a dict) of the run whose directory (or checkpoint) ``path``
    is; None for a model that no tinyllm run wrote (a saved model, a Hugging Face one)."""
    path = Path(path).expanduser()
    for candidate in (path / LAST, path):
        if is_training_checkpoint(candidate):
            return saved_train_config(candidate)
    return None


def is_training_checkpoint(path) -> bool:
    path = Path(path)
    return is_model_dir(path) and (path / TRAINER_STATE).is_file()


def find_resumable(path) -> Path:
    """The training checkpoint to resume from: ``path`` itself, ``path/last`` (the layout
    ``tinyllm train`` writes), or a ``.last.old`` left by a run killed mid-swap."""
    path = Path(path).expanduser()
    for candidate in (path, path / LAST, path / f".{LAST}.old"):
        if is_training_checkpoint(candidate):
            verify(candidate)
            return candidate
    for candidate in (path, path / LAST):
        if (candidate / TRAINER_STATE).is_file():   # its config.json is what is wrong: say how
            if "tinyllm" not in read_json(candidate / CONFIG, "tinyllm model config"):
                raise TinyLLMError(f"{candidate / CONFIG} is not a tinyllm model config (no "
                                   "'tinyllm' entry): the checkpoint is damaged")
            raise TinyLLMError(f"{candidate} has no {WEIGHTS}: the checkpoint is damaged")
    raise TinyLLMError(f"nothing to resume in {path}: give the --out directory of an earlier "
                       "'tinyllm train' run (it holds last/trainer_state.json)")


def run_dir(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to: DIR for DIR/last (or DIR/.last.old)."""
    return checkpoint.parent if checkpoint.name in (LAST, f".{LAST}.old") else checkpoint


def tidy(directory) -> list[str]:
    """Clear what a killed run left in its directory (call it holding the directory's lock):
    half-written temporaries are deleted, never trusted; a checkpoint moved aside as
    ``.last.old`` by a swap that did not finish becomes ``last`` again (or is deleted when a
    complete ``last`` exists). Returns what was removed."""
    directory = Path(directory)
    removed = remove_temporaries(directory, holding_lock=True)
    removed += [p.name for p in directory.glob(".tinyllm-save-*")   # written by tinyllm 0.1
                if shutil.rmtree(p, ignore_errors=True) is None]
    old, last = directory / f".{LAST}.old", directory / LAST
    if old.is_dir():
        if is_training_checkpoint(last):
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old.name)
        elif is_training_checkpoint(old):
            shutil.rmtree(last, ignore_errors=True)
            os.replace(old, last)
    return removed


# -- the optimizer's state as safetensors + JSON ----------------------------------------------

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


__all__ = ["RunState", "save", "load", "saved_train_config", "run_config", "is_training_checkpoint",
           "find_resumable", "run_dir", "tidy", "saved_step", "optimizer_state_to_flat",
           "optimizer_state_from_flat", "LAST", "METRICS", "LOSS_PLOT", "TRAINER_STATE"]
