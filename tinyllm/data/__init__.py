"""Where text comes from and how it becomes tokens: text -> documents -> tokens -> batches.

    sources.py     the data known by name: the built-in corpus, TinyStories
    documents.py   the one reader of documents: any file, folder, glob, JSONL/JSON/Parquet, hf:
    tokenizer.py   the tokenizer a run uses (a bpe-N is trained here, on the run's own text)
    tokens.py      token files (prepared once, cached), train/validation splits, batches
"""
from .documents import Source, open_source
from .sources import sample_corpus_path, tinystories_path
from .tokenizer import load_tokenizer

__all__ = ["Source", "open_source", "load_tokenizer", "sample_corpus_path", "tinystories_path"]
