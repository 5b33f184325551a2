"""The tokenizer: text to token ids and back, byte-level BPE in GPT-2's format.

    tokenizer.py   Tokenizer: GPT-2's (the default), the built-in one, or any directory
    bpe.py         the encoder written from scratch (the readable reference)
    bpe_train.py   learning a BPE's merges from text (from scratch, and with `tokenizers`)
"""
from .tokenizer import EOT, Tokenizer, read_merges

__all__ = ["Tokenizer", "EOT", "read_merges"]
