"""Where text comes from and how it becomes tokens.

    sources.py     the cache ($TINYLLM_HOME), the hub, the built-in corpus and tokenizer
    documents.py   the one reader of documents: any file, folder, glob, JSONL/JSON/Parquet, hf:
    tokens.py      token files (prepared once, cached), train/validation splits, batches
"""
from .documents import Source, open_source
from .sources import (EOT, builtin_tokenizer_dir, gpt2_tokenizer_dir, home, sample_corpus_path,
                      tinystories_path)

__all__ = ["EOT", "Source", "open_source", "home", "sample_corpus_path", "tinystories_path",
           "gpt2_tokenizer_dir", "builtin_tokenizer_dir"]
