"""Hugging Face model directories: GPT-Neo and Llama read for tinyllm's ``GPT`` (its config's
fields, its weights in tinyllm's names, the tokenizer), and a tinyllm model written as the one of
the two it is (``export``), which transformers loads.

A directory holds ``config.json`` and ``model.safetensors`` (or sharded safetensors with an index,
or an older ``pytorch_model.bin``), and optionally the tokenizer's ``vocab.json`` + ``merges.txt``.
The names and config are mapped by ``tinyllm.formats.gpt_neo`` or ``tinyllm.formats.llama``,
chosen by config.json's ``model_type``. The only pickle ever read is an old GPT-Neo
``pytorch_model.bin``, through ``torch.load(weights_only=True)``, which reads plain tensors and
never runs code.
"""
from pathlib import Path

import torch

from ..errors import TinyLLMError
from ..files import read_json, write_json
from ..tokenizer import EOT, Tokenizer
from ..tokenizer.tokenizer import is_tokenizer_dir
from . import gpt_neo, llama
from .directory import CONFIG, WEIGHTS, is_model_dir
from .weights import ModelFiles, read_safetensors, write_safetensors

WEIGHTS_INDEX = "model.safetensors.index.json"
WEIGHTS_PICKLE = "pytorch_model.bin"


def read_hf(directory: Path, hf_config: dict) -> ModelFiles:
    """The files of the Hugging Face GPT-Neo or Llama model in ``directory`` (``hf_config``: its
    config.json), in tinyllm's terms. The tokenizer is the directory's ``vocab.json`` +
    ``merges.txt``; without them GPT-2's for a GPT-Neo with GPT-2's vocabulary (its own), else
    none."""
    is_llama = hf_config.get("model_type") == "llama"
    if is_llama:
        config, to_tinyllm = llama.config_from_llama(hf_config), llama.state_dict_from_llama
    else:       # config_from_hf refuses model types it does not know
        config, to_tinyllm = gpt_neo.config_from_hf(hf_config), gpt_neo.state_dict_from_hf

    def weights() -> dict:
        state = to_tinyllm(read_hf_weights(directory))
        if config["tie_embeddings"] and "wte.weight" in state:
            state["lm_head.weight"] = state["wte.weight"]
        return state

    def tokenizer():
        found = None
        if is_tokenizer_dir(directory):
            found = Tokenizer(directory)
        elif not is_llama and config["vocab_size"] >= gpt_neo.GPT2_VOCAB_SIZE:
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
        return torch.load(directory / WEIGHTS_PICKLE, map_location="cpu", weights_only=True)
    raise TinyLLMError(f"{directory} has no {WEIGHTS} or {WEIGHTS_PICKLE}: give a Hugging Face "
                       "model directory")


def export_format(config) -> str:
    """'GPT-Neo' or 'Llama': the Hugging Face layout ``export`` writes for a model with
    ``config``; a model that is neither is one clear error saying why."""
    neo, lla = gpt_neo.incompatibilities(config), llama.incompatibilities(config)
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
    tied = model.config.tie_embeddings
    if tied:  # the head is the embedding, stored once
        del sd["lm_head.weight"]
    to_state, to_config = ((gpt_neo.state_dict_to_hf, gpt_neo.config_to_hf) if kind == "GPT-Neo"
                           else (llama.state_dict_to_llama, llama.config_to_llama))
    write_safetensors(to_state(sd, model.config), directory / WEIGHTS)
    tokenizer = getattr(model, "tokenizer", None)
    eos = getattr(tokenizer, "eos_token_id", None)
    write_json(directory / CONFIG, to_config(model.config, tie_word_embeddings=tied,
                                             eos_token_id=eos))
    if tokenizer is not None:
        tokenizer.save(directory)
        write_json(directory / "tokenizer_config.json",
                   {"tokenizer_class": "GPT2Tokenizer",
                    "model_max_length": model.config.max_position_embeddings,
                    "bos_token": EOT, "eos_token": EOT, "unk_token": EOT})
    return directory


__all__ = ["read_hf", "read_hf_weights", "export", "export_format"]
