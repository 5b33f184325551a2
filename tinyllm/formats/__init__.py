"""The door through which models come in and go out: tinyllm's own model directories, and
Hugging Face's GPT-Neo, GPT-NeoX and Llama directories and hub ids, and GGUF files for llama.cpp. This layer reads and writes files; it
builds no model (``GPT.from_pretrained`` builds itself from what ``read_model`` reads).

    pretrained.py    read_model(name): any of them, to a ModelFiles (config fields, weights,
                     tokenizer)
    directory.py     a tinyllm model directory: config.json, model.safetensors, the tokenizer
    huggingface.py   Hugging Face directories read, and export() to the one a model is
    gpt_neo.py, gpt_neox.py, llama.py, hf_common.py   their config and parameter names, mapped
                     to tinyllm's
    gguf_file.py     export_gguf(): a model and its tokenizer as one GGUF file llama.cpp runs
    weights.py       safetensors read and written, the check that weights fit a model
"""
from .directory import is_model_dir, load_weights, save_model, write_model_files
from .gguf_file import export_gguf, gguf_architecture
from .huggingface import export, export_format
from .pretrained import read_model

__all__ = ["read_model", "save_model", "is_model_dir", "load_weights", "write_model_files",
           "export", "export_format", "export_gguf", "gguf_architecture"]
