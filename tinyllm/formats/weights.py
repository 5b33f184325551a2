"""Weights on disk: safetensors files read and written (atomically), the check that a state dict
fits a model, and ``ModelFiles``: what a model directory holds, read. Nothing is ever unpickled
here: a file that is not safetensors is refused, unread."""
from dataclasses import dataclass
from typing import Callable

from safetensors.torch import save_file

from ..errors import TinyLLMError
from ..files import DamagedFile, atomic_file


def read_safetensors(file) -> dict:
    """The tensors of a safetensors file, every one finite; anything else (a pickle, say) is
    refused, unread."""
    from safetensors.torch import load_file
    try:
        tensors = load_file(str(file))
    except Exception as e:  # safetensors' own error type, OSError, ...: not a weights file
        raise TinyLLMError(f"{file} is not a readable safetensors file ({type(e).__name__}): "
                           "tinyllm only loads safetensors, never pickles") from None
    check_finite(tensors, file)
    return tensors


def check_finite(tensors: dict, source) -> None:
    """A ``DamagedFile`` naming the first tensor of ``tensors`` that holds a NaN or infinity:
    no training run saves one (it stops first), so the file is damaged."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(t.isfinite().all()):
            raise DamagedFile(f"{source} is damaged: {name} holds values that are not finite "
                              "(NaN or infinity)")


def write_safetensors(tensors: dict, file) -> None:
    """``tensors`` (name -> tensor) into the safetensors file ``file``, atomically; each becomes
    a plain tensor of its own on the CPU (tied or non-contiguous ones included)."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    with atomic_file(file) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})


def check_state_fits(state: dict, own: dict, source, config: str = "this model's config") -> None:
    """Raise a clear error unless ``state`` has exactly the names and shapes of ``own`` (a
    model's state dict): weights written for another configuration are refused, not mixed in."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
             for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise TinyLLMError(f"the weights in {source} do not fit {config} (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}, wrong shape {wrong[:3]}): were they "
                           "written for another configuration?")


@dataclass
class ModelFiles:
    """A model's files: the fields of its ``Config``, read; ``tokenizer()`` and ``weights()``,
    which read its tokenizer (None when it has none) and its weights in tinyllm's names once the
    config is known to make a model; ``where``, their directory. The model builds itself from
    them (``GPT.from_pretrained``): this layer reads and writes files, it builds no model."""
    config: dict
    tokenizer: Callable[[], object]
    weights: Callable[[], dict]
    where: str

    def load_into(self, model, state: dict) -> None:
        """Copy ``state`` (what ``weights()`` read) into ``model``, built from ``config``: the
        names and shapes must be the model's own."""
        check_state_fits(state, model.state_dict(), self.where, "its config.json")
        model.load_state_dict(state)


__all__ = ["read_safetensors", "check_finite", "write_safetensors", "check_state_fits", "ModelFiles"]
