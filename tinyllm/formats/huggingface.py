"""Hugging Face model directories: GPT-Neo, GPT-NeoX and Llama read for tinyllm's ``GPT`` (its
config's fields, its weights in tinyllm's names, the tokenizer), and a tinyllm model written as
the one of the three it is (``export``), which transformers loads.

A directory holds ``config.json`` and ``model.safetensors`` (or sharded safetensors with an index,
or an older ``pytorch_model.bin``), and optionally the tokenizer's ``vocab.json`` + ``merges.txt``.
The names and config are mapped by ``tinyllm.formats.gpt_neo``, ``gpt_neox`` or ``llama``
(``LAYOUTS``), chosen by config.json's ``model_type``. The only pickle ever read is an old GPT-Neo
``pytorch_model.bin``, through ``torch.load(weights_only=True)``, which reads plain tensors and
never runs code.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import TinyLLMError
from ..files import read_json, write_json
from ..tokenizer import EOT, Tokenizer
from ..tokenizer.tokenizer import is_tokenizer_dir
from . import gpt_neo, gpt_neox, llama
from .directory import CONFIG, WEIGHTS, is_model_dir
from .weights import ModelFiles, check_finite, read_safetensors, write_safetensors

WEIGHTS_INDEX = "model.safetensors.index.json"
WEIGHTS_PICKLE = "pytorch_model.bin"


@dataclass(frozen=True)
class Layout:
    """One Hugging Face architecture, as tinyllm maps it: what keeps a tinyllm config from it
    (``incompatibilities``), its config.json from and to tinyllm's fields, its state dict from
    and to tinyllm's names (each ``(state_dict, config)``), and the positions it has."""
    name: str
    position: str
    incompatibilities: Callable
    config_from: Callable
    config_to: Callable
    state_from: Callable
    state_to: Callable


LAYOUTS = {  # config.json's model_type -> its layout; export tries them in this order
    "gpt_neo": Layout("GPT-Neo", "learned", gpt_neo.incompatibilities, gpt_neo.config_from_hf,
                      gpt_neo.config_to_hf, lambda sd, c: gpt_neo.state_dict_from_hf(sd),
                      gpt_neo.state_dict_to_hf),
    "gpt_neox": Layout("GPT-NeoX", "rotary", gpt_neox.incompatibilities, gpt_neox.config_from_neox,
                       gpt_neox.config_to_neox,
                       lambda sd, c: gpt_neox.state_dict_from_neox(sd, c["num_heads"]),
                       gpt_neox.state_dict_to_neox),
    "llama": Layout("Llama", "rotary", llama.incompatibilities, llama.config_from_llama,
                    llama.config_to_llama, lambda sd, c: llama.state_dict_from_llama(sd),
                    llama.state_dict_to_llama),
}


def read_hf(directory: Path, hf_config: dict) -> ModelFiles:
    """The files of the Hugging Face GPT-Neo, GPT-NeoX or Llama model in ``directory``
    (``hf_config``: its config.json), in tinyllm's terms. The tokenizer is the directory's
    ``vocab.json`` + ``merges.txt``; without them GPT-2's for a GPT-Neo with GPT-2's vocabulary
    (its own), else none."""
    model_type = hf_config.get("model_type", "gpt_neo")   # old GPT-Neo configs lack it
    if model_type not in LAYOUTS:
        raise TinyLLMError(f"config.json is for a {model_type!r} model; tinyllm loads GPT-Neo, "
                           "GPT-NeoX and Llama models (model_type 'gpt_neo', 'gpt_neox' or "
                           "'llama')")
    layout = LAYOUTS[model_type]
    config = layout.config_from(hf_config)
    is_gpt_neo = model_type == "gpt_neo"

    def weights() -> dict:
        state = layout.state_from(read_hf_weights(directory), config)
        if config["tie_embeddings"] and "wte.weight" in state:
            state["lm_head.weight"] = state["wte.weight"]
        return state

    def tokenizer():
        found = None
        if is_tokenizer_dir(directory):
            found = Tokenizer(directory)
        elif is_gpt_neo and config["vocab_size"] >= gpt_neo.GPT2_VOCAB_SIZE:
            found = Tokenizer()  # GPT-Neo's own; a clear error when its files cannot be had
        if found is not None and found.vocab_size > config["vocab_size"]:
            raise TinyLLMError(f"the tokenizer ({found.path}) has {found.vocab_size} tokens but "
                               f"the model in {directory} only {config['vocab_size']}: put the "
                               "model's own vocab.json and merges.txt in its directory")
        return found

    return ModelFiles(config, tokenizer, weights, str(directory))


def read_hf_weights(directory: Path) -> dict:
    """The tensors of a Hugging Face directory, however they are stored."""
    if (directory / WEIGHTS).is_file():
        return read_safetensors(directory / WEIGHTS)
    if (directory / WEIGHTS_INDEX).is_file():  # big models: several shards and an index
        index = read_json(directory / WEIGHTS_INDEX, "safetensors index")
        shards = sorted(set(index["weight_map"].values()))
        return {k: v for shard in shards for k, v in read_safetensors(directory / shard).items()}
    if (directory / WEIGHTS_PICKLE).is_file():
        # weights_only: plain tensors are read, no code is ever unpickled
        state = torch.load(directory / WEIGHTS_PICKLE, map_location="cpu", weights_only=True)
        check_finite(state, directory / WEIGHTS_PICKLE)
        return state
    raise TinyLLMError(f"{directory} has no {WEIGHTS} or {WEIGHTS_PICKLE}: give a Hugging Face "
                       "model directory")


def export_layout(config) -> Layout:
    """The Hugging Face layout ``export`` writes for a model with ``config``; a model none
    holds is one clear error naming what stands in the way of the closest one."""
    wrong = {layout: layout.incompatibilities(config) for layout in LAYOUTS.values()}
    for layout in LAYOUTS.values():
        if not wrong[layout]:
            return layout
    # the fewest parts in the way; of as few, one with the model's kind of positions
    closest = min(wrong, key=lambda lay: (len(wrong[lay]), lay.position != config.position))
    raise TinyLLMError(f"no Hugging Face layout holds this model: the closest, {closest.name}, cannot "
                       f"hold its {'; '.join(wrong[closest])} (tinyllm loads its own directory; "
                       "GPT-Neo, GPT-NeoX and Llama shapes export)")


def export_format(config) -> str:
    """'GPT-Neo', 'GPT-NeoX' or 'Llama': the name of ``export_layout(config)``."""
    return export_layout(config).name


def export(model, directory) -> Path:
    """Write ``model`` as a Hugging Face GPT-Neo, GPT-NeoX or Llama directory
    (``export_layout``): ``config.json``, ``model.safetensors`` (that model's names) and the
    tokenizer's ``vocab.json`` + ``merges.txt``. ``transformers.AutoModelForCausalLM.
    from_pretrained(directory)`` loads it."""
    layout = export_layout(model.config)
    directory = Path(directory)
    if is_model_dir(directory):
        raise TinyLLMError(f"{directory} holds a tinyllm checkpoint; exporting there would "
                           "overwrite it: give another output directory")
    directory.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
    tied = model.config.tie_embeddings
    if tied:  # the head is the embedding, stored once
        del sd["lm_head.weight"]
    write_safetensors(layout.state_to(sd, model.config), directory / WEIGHTS)
    tokenizer = getattr(model, "tokenizer", None)
    eos = getattr(tokenizer, "eos_token_id", None)
    write_json(directory / CONFIG, layout.config_to(model.config, tie_word_embeddings=tied,
                                                    eos_token_id=eos))
    if tokenizer is not None:
        tokenizer.save(directory)
        write_json(directory / "tokenizer_config.json",
                   {"tokenizer_class": "GPT2Tokenizer",
                    "model_max_length": model.config.max_position_embeddings,
                    "bos_token": EOT, "eos_token": EOT, "unk_token": EOT})
    return directory


__all__ = ["LAYOUTS", "Layout", "read_hf", "read_hf_weights", "export", "export_format",
           "export_layout"]
