"""The brief's dataset: one sample per story, padded with eos then cut to ``length`` tokens.

    sample = (tokens(story) + [eos] * length)[:length]

This is the learner's view of the data (and the brief's API). ``tinyllm train`` instead packs
all stories into one token stream (``tinyllm.data.tokens``): no compute spent on padding and no
story cut short.
"""
import torch
from torch.utils.data import Dataset

from .data.sources import read_stories, resolve_text


class TinyDataset(Dataset):
    def __init__(self, tokenizer, length: int, set_type: str = "validation", path=None):
        """``set_type``: TinyStories split ('validation' or 'train'), read from the cache or the
        hub; ``path``: a local text file (stories separated by ``<|endoftext|>`` lines) or a
        directory holding ``{set_type}.txt`` — or 'sample' for the built-in corpus."""
        self.tokenizer = tokenizer
        self.length = length
        self.path = resolve_text(path if path is not None else "tinystories", set_type)
        stories = read_stories(self.path)
        pad = [tokenizer.eos_token_id] * length
        ids = tokenizer.encode_batch(stories) if hasattr(tokenizer, "encode_batch") else \
            [tokenizer.encode(s) for s in stories]
        self.data = torch.tensor([(t + pad)[:length] for t in ids], dtype=torch.long)

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.data[i]
