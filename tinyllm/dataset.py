"""``TinyDataset``, the dataset of the blog series "Building GPT from Scratch": one sample per
story, padded with eos then cut to ``length`` tokens.

    sample = (tokens(story) + [eos] * length)[:length]

This is the learner's view of the data (and the series' API). ``tinyllm train`` instead packs
all stories into one token stream (``tinyllm.data.tokens``): no compute spent on padding and no
story cut short.
"""
import torch
from torch.utils.data import Dataset

from .data.documents import open_source
from .errors import TinyLLMError


class TinyDataset(Dataset):
    def __init__(self, tokenizer, length: int, set_type: str = "validation", path=None,
                 text_field: str = "text"):
        """``set_type``: the split ('validation' or 'train') of TinyStories, read from the cache
        or the hub, or of ``path``: any data source ``tinyllm.data.open_source`` reads — a text
        file (stories separated by ``<|endoftext|>``), a JSONL/JSON/Parquet file, a folder, a
        glob, ``hf:NAME`` — or 'sample' for the built-in corpus. One sample per document."""
        self.tokenizer = tokenizer
        self.length = length
        self.source = open_source(path if path is not None else "tinystories", split=set_type,
                                  text_field=text_field)
        stories = list(self.source.documents())
        if not stories:
            raise TinyLLMError(f"{self.source.name} holds no stories: give text with stories "
                               "separated by <|endoftext|>")
        pad = [tokenizer.eos_token_id] * length
        ids = tokenizer.encode_batch(stories) if hasattr(tokenizer, "encode_batch") else \
            [tokenizer.encode(s) for s in stories]
        self.data = torch.tensor([(t + pad)[:length] for t in ids], dtype=torch.long)

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.data[i]
