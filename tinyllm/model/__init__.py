"""The model: ``Config`` (every hyper-parameter), ``GPT`` (assembled from ``Parts``), generation
with a key/value cache, the shapes ``tinyllm train`` builds, and the FLOPs of training.

    from tinyllm.model import GPT, Config
    gpt = GPT(tokenizer, Config())

Nothing here reads or writes a file: ``GPT.from_pretrained`` and ``save_pretrained`` hand over to
``tinyllm.formats``. ``GPT`` and ``Parts`` are imported when first asked for, so that reading a
``Config`` (as the command line does to build its options) does not load PyTorch.
"""
from .config import Config

__all__ = ["GPT", "Config", "Parts"]


def __getattr__(name):
    if name == "GPT":
        from .gpt import GPT
        return GPT
    if name == "Parts":
        from .parts import Parts
        return Parts
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
