"""Hugging Face GPT-Neo weights in and out of tinyllm.

tinyllm's GPT has GPT-Neo's architecture, and its parameters are named so that a GPT-Neo
state dict maps onto them one to one:

    transformer.wte.weight                         ->  wte.weight
    transformer.wpe.weight                         ->  wpe.weight
    transformer.h.{i}.ln_1.{weight,bias}           ->  blocks.{i}.ln_1.{weight,bias}
    transformer.h.{i}.attn.attention.q_proj.weight ->  blocks.{i}.attn.q_proj.weight  (k, v, out)
    transformer.h.{i}.ln_2 / mlp.c_fc / mlp.c_proj ->  blocks.{i}.ln_2 / mlp.c_fc / mlp.c_proj
    transformer.ln_f.{weight,bias}                 ->  ln_f.{weight,bias}
    lm_head.weight                                 ->  lm_head.weight  (GPT-Neo ties it to wte)

``from_hf`` reads a directory in the Hugging Face layout (``config.json`` + ``model.safetensors``
or ``pytorch_model.bin``, optionally ``vocab.json`` + ``merges.txt``) or downloads one from the hub;
``export`` writes one that ``transformers.AutoModelForCausalLM.from_pretrained`` loads.
Neither needs ``transformers`` installed.
"""
import json
import math
import re
from pathlib import Path

import torch

from .config import Config
from .errors import TinyLLMError

WEIGHTS_SAFETENSORS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
WEIGHTS_PICKLE = "pytorch_model.bin"
TOKENIZER_FILES = ("vocab.json", "merges.txt")
GPT2_VOCAB_SIZE = 50257

# tinyllm activation name -> Hugging Face ``activation_function`` (and back, plus synonyms)
_ACT_TO_HF = {"gelu_new": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu"}
_ACT_FROM_HF = {**{v: k for k, v in _ACT_TO_HF.items()},
                "gelu_pytorch_tanh": "gelu_new", "swish": "silu"}

# GPT-Neo names that are not parameters: the attention masks older checkpoints stored
_HF_BUFFERS = re.compile(r".*\.attn\.attention\.(bias|masked_bias)$")


# -- config ---------------------------------------------------------------------------------

def expand_attention_types(attention_types) -> list[str]:
    """GPT-Neo's compact layer pattern to one type per layer:
    ``[[["global", "local"], 2]]`` -> ``["global", "local", "global", "local"]``."""
    layers = []
    for pattern, repeat in attention_types:
        layers.extend(list(pattern) * int(repeat))
    return layers


def compress_attention_layers(layers: list[str]) -> list:
    """The inverse of ``expand_attention_types``: the shortest repeating pattern of ``layers``."""
    n = len(layers)
    for size in range(1, n + 1):
        if n % size == 0 and layers == layers[:size] * (n // size):
            return [[list(layers[:size]), n // size]]
    return [[list(layers), 1]]  # unreachable: size == n always matches


def config_from_hf(hf: dict) -> Config:
    """A tinyllm ``Config`` from the dict of a GPT-Neo ``config.json``."""
    model_type = hf.get("model_type", "gpt_neo")
    if model_type != "gpt_neo":
        raise TinyLLMError(f"config.json is for a {model_type!r} model; tinyllm loads only "
                           "GPT-Neo models (model_type 'gpt_neo')")
    if hf.get("attention_types") is not None:
        layers = expand_attention_types(hf["attention_types"])
    elif hf.get("attention_layers") is not None:
        layers = list(hf["attention_layers"])
    else:
        layers = expand_attention_types([[["global", "local"], 12]])  # GPT-Neo's default
    act = hf.get("activation_function", "gelu_new")
    if act not in _ACT_FROM_HF:
        raise TinyLLMError(f"activation_function {act!r} is not supported by tinyllm: use one of "
                           f"{', '.join(sorted(_ACT_FROM_HF))}")
    hidden = hf.get("hidden_size", 2048)
    max_pos = hf.get("max_position_embeddings", 2048)
    try:
        return Config(
            hidden_size=hidden,
            embedding_size=hidden,
            context_size=min(hf.get("tinyllm_context_size") or max_pos, max_pos),
            num_layers=hf.get("num_layers", len(layers)),
            layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-5),
            attention_layers=layers,
            max_position_embeddings=max_pos,
            window_size=hf.get("window_size", 256),
            attention_dropout=float(hf.get("attention_dropout", 0.0)),
            residual_dropout=float(hf.get("resid_dropout", 0.0)),
            embedding_dropout=float(hf.get("embed_dropout", 0.0)),
            num_heads=hf.get("num_heads", 16),
            intermediate_size=hf.get("intermediate_size"),
            activation=_ACT_FROM_HF[act],
            attention="gpt-neo",
            vocab_size=hf.get("vocab_size", 50257),
            tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
        )
    except ValueError as e:  # inconsistent numbers, e.g. heads not dividing the width
        raise TinyLLMError(f"GPT-Neo config.json does not describe a valid model: {e}") from None


def config_to_hf(config: Config, tie_word_embeddings: bool = True,
                 eos_token_id: int | None = None) -> dict:
    """The dict of a GPT-Neo ``config.json`` for a tinyllm ``Config``.

    GPT-Neo has no ``context_size``: it is kept as ``tinyllm_context_size`` (ignored by
    transformers). A 'scaled' model is exported as 'gpt-neo' with the scale folded into W_q
    (see ``state_dict_to_hf``)."""
    if config.activation not in _ACT_TO_HF:
        raise TinyLLMError(f"activation {config.activation!r} has no GPT-Neo equivalent")
    return {
        "architectures": ["GPTNeoForCausalLM"],
        "model_type": "gpt_neo",
        "vocab_size": config.vocab_size,
        "max_position_embeddings": config.max_position_embeddings,
        "hidden_size": config.hidden_size,
        "num_layers": config.num_layers,
        "attention_types": compress_attention_layers(config.attention_layers),
        "num_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "window_size": config.window_size,
        "activation_function": _ACT_TO_HF[config.activation],
        "resid_dropout": config.residual_dropout,
        "embed_dropout": config.embedding_dropout,
        "attention_dropout": config.attention_dropout,
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": eos_token_id,
        "eos_token_id": eos_token_id,
        "tie_word_embeddings": tie_word_embeddings,
        "torch_dtype": "float32",
        "tinyllm_context_size": config.context_size,
    }


# -- state dict -----------------------------------------------------------------------------

def _hf_to_tinyllm_name(name: str) -> str:
    if name.startswith("transformer."):
        name = name[len("transformer."):]
    name = re.sub(r"^h\.(\d+)\.", r"blocks.\1.", name)
    return name.replace(".attn.attention.", ".attn.")


def _tinyllm_to_hf_name(name: str) -> str:
    if name.startswith("lm_head."):
        return name
    name = re.sub(r"^blocks\.(\d+)\.", r"h.\1.", name)
    return "transformer." + name.replace(".attn.", ".attn.attention.")


def state_dict_from_hf(sd: dict) -> dict:
    """A GPT-Neo state dict renamed to tinyllm's names (mask buffers dropped). When it has no
    ``lm_head.weight`` (GPT-Neo ties it to the token embedding) the embedding is used."""
    out = {_hf_to_tinyllm_name(k): v for k, v in sd.items() if not _HF_BUFFERS.match(k)}
    if "lm_head.weight" not in out and "wte.weight" in out:
        out["lm_head.weight"] = out["wte.weight"]
    return out


def state_dict_to_hf(sd: dict, config: Config | None = None) -> dict:
    """A tinyllm state dict renamed to GPT-Neo's names.

    GPT-Neo never scales attention scores; for a 'scaled' config the 1/√d is folded into the
    query weights, which gives the same scores: (s·W_q x)·k = s·(q·k)."""
    out = {}
    for k, v in sd.items():
        if config is not None and config.attention == "scaled" and k.endswith("attn.q_proj.weight"):
            v = v / math.sqrt(config.hidden_size // config.num_heads)
        out[_tinyllm_to_hf_name(k)] = v
    return out


# -- loading --------------------------------------------------------------------------------

def _looks_like_hub_id(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", name)) and ".." not in name


def _download(repo_id: str) -> Path:
    """A local snapshot of ``repo_id`` holding its config, weights and tokenizer files."""
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
        from huggingface_hub.errors import RepositoryNotFoundError
    except ImportError:
        raise TinyLLMError(f"{repo_id!r} is not a local directory and huggingface_hub is not "
                           "installed to download it: pip install huggingface_hub, or pass a "
                           "directory with config.json and model.safetensors") from None
    try:
        directory = Path(snapshot_download(
            repo_id, allow_patterns=["config.json", "model*.safetensors*", *TOKENIZER_FILES]))
        if not list(directory.glob("model*.safetensors")):  # older repos: pickle weights only
            directory = Path(hf_hub_download(repo_id, WEIGHTS_PICKLE)).parent  # same snapshot
    except RepositoryNotFoundError:
        raise TinyLLMError(f"no model {repo_id!r} on the Hugging Face hub (or it is private): "
                           "check the name, or pass a local directory") from None
    except Exception as e:
        raise TinyLLMError(f"could not download {repo_id!r}: the Hugging Face hub is unreachable "
                           f"({type(e).__name__}); pass a local directory in the Hugging Face "
                           "layout (config.json + model.safetensors) instead") from None
    return directory


def _read_weights(directory: Path) -> dict:
    from safetensors.torch import load_file
    if (directory / WEIGHTS_SAFETENSORS).is_file():
        return load_file(str(directory / WEIGHTS_SAFETENSORS))
    if (directory / WEIGHTS_INDEX).is_file():  # big models: several shards and an index
        index = json.loads((directory / WEIGHTS_INDEX).read_text("utf-8"))
        shards = sorted(set(index["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(str(directory / shard)).items()}
    if (directory / WEIGHTS_PICKLE).is_file():
        # weights_only: plain tensors are read, no code is ever unpickled
        return torch.load(directory / WEIGHTS_PICKLE, map_location="cpu", weights_only=True)
    raise TinyLLMError(f"{directory} has no {WEIGHTS_SAFETENSORS} or {WEIGHTS_PICKLE}: give a "
                       "Hugging Face model directory")


def _tokenizer_for(directory: Path, vocab_size: int):
    """The directory's own tokenizer; else GPT-2's (GPT-Neo's own) when the model's vocabulary
    can hold it; else None (a model without a tokenizer still runs on token ids)."""
    from .tokenizer import Tokenizer
    if all((directory / n).is_file() for n in TOKENIZER_FILES):
        return Tokenizer(directory)
    if vocab_size >= GPT2_VOCAB_SIZE:
        return Tokenizer()  # raises a clear error when GPT-2's files cannot be had
    return None


def from_hf(name_or_path):
    """A tinyllm ``GPT`` holding the weights of a Hugging Face GPT-Neo model: a local directory
    (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``) or a hub id such as
    ``roneneldan/TinyStories-1M``. The tokenizer is the directory's ``vocab.json`` +
    ``merges.txt``; without them GPT-2's (GPT-Neo's own), or none for a vocabulary smaller
    than GPT-2's."""
    from .model import GPT
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
    if not (directory / "config.json").is_file():
        raise TinyLLMError(f"{directory} has no config.json: give a Hugging Face GPT-Neo model "
                           "directory or a tinyllm checkpoint")
    try:
        hf_config = json.loads((directory / "config.json").read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TinyLLMError(f"{directory / 'config.json'} is not valid JSON ({e})") from None
    config = config_from_hf(hf_config)
    state = state_dict_from_hf(_read_weights(directory))
    if hf_config.get("tie_word_embeddings", True) and "wte.weight" in state:
        state["lm_head.weight"] = state["wte.weight"]

    tokenizer = _tokenizer_for(directory, config.vocab_size)
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise TinyLLMError(f"the tokenizer ({tokenizer.path}) has {tokenizer.vocab_size} tokens "
                           f"but the model in {directory} only {config.vocab_size}: put the "
                           "model's own vocab.json and merges.txt in its directory")
    model = GPT(tokenizer, config)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise TinyLLMError(f"the weights in {directory} do not fit its config.json (missing "
                           f"{missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]})")
    model.load_state_dict(state)
    return model


# -- saving ---------------------------------------------------------------------------------

def _is_tinyllm_checkpoint(directory: Path) -> bool:
    try:
        return "tinyllm" in json.loads((directory / "config.json").read_text("utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def export(model, directory) -> Path:
    """Write ``model`` as a Hugging Face GPT-Neo directory: ``config.json``,
    ``model.safetensors`` (GPT-Neo names) and the tokenizer's ``vocab.json`` + ``merges.txt``.
    ``transformers.AutoModelForCausalLM.from_pretrained(directory)`` loads it."""
    from safetensors.torch import save_file
    directory = Path(directory)
    if _is_tinyllm_checkpoint(directory):
        raise TinyLLMError(f"{directory} holds a tinyllm checkpoint; exporting there would "
                           "overwrite it: give another output directory")
    directory.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
    tied = torch.equal(sd["lm_head.weight"], sd["wte.weight"])
    if tied:  # GPT-Neo's layout: the head is the embedding, stored once
        del sd["lm_head.weight"]
    hf_sd = {k: v.contiguous() for k, v in state_dict_to_hf(sd, model.config).items()}
    save_file(hf_sd, str(directory / WEIGHTS_SAFETENSORS), metadata={"format": "pt"})

    tokenizer = getattr(model, "tokenizer", None)
    eos = getattr(tokenizer, "eos_token_id", None)
    hf_config = config_to_hf(model.config, tie_word_embeddings=tied, eos_token_id=eos)
    (directory / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n", "utf-8")
    if tokenizer is not None and hasattr(tokenizer, "save"):
        tokenizer.save(directory)
        special = "<|endoftext|>"
        tok_config = {"tokenizer_class": "GPT2Tokenizer",
                      "model_max_length": model.config.max_position_embeddings,
                      "bos_token": special, "eos_token": special, "unk_token": special}
        (directory / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n",
                                                         "utf-8")
    return directory
