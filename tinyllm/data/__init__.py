"""Where text and tokenizer files come from: the local cache, explicit paths, the Hugging Face
hub (downloaded once into the cache), and the built-in sample corpus shipped with tinyllm."""
from .sources import (EOT, home, iter_stories, read_stories, sample_corpus_path,
                      tinystories_path, gpt2_tokenizer_dir, builtin_tokenizer_dir, resolve_text)

__all__ = ["EOT", "home", "iter_stories", "read_stories", "sample_corpus_path", "tinystories_path",
           "gpt2_tokenizer_dir", "builtin_tokenizer_dir", "resolve_text"]
