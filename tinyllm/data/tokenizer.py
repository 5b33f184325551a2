"""The tokenizer a run reads its text with, from what ``--tokenizer`` names:

    'gpt2'        GPT-2's / GPT-Neo's 50,257 tokens (tinyllm.tokenizer.Tokenizer())
    'builtin'     the 1,024 shipped with tinyllm, trained on its built-in corpus
    a directory   holding vocab.json and merges.txt
    'bpe-N'       a byte-level BPE of N tokens trained on the run's training text, and cached in
                  $TINYLLM_HOME/tokenizers/bpe-N-<key>/, the key made from the text's content
                  (``Source.identity``) and N: the same text gives the same tokenizer, without
                  training it again (an entry whose checksums fail is trained again; what a
                  killed training left is removed)

Training a BPE needs the data, so it happens here, in the data layer, not in the tokenizer's.
"""
import hashlib
from pathlib import Path

from ..errors import TinyLLMError
from ..files import (DamagedFile, atomic_dir, check_manifest, home, remove_temporaries,
                     write_manifest)
from ..tokenizer import Tokenizer, bpe_train
from ..tokenizer.tokenizer import TOKENIZER_FILES, is_tokenizer_dir
from .documents import open_source


def load_tokenizer(spec="gpt2", train_text=None, backend: str = "fast",
                   text_field: str = "text") -> Tokenizer:
    """The tokenizer ``spec`` names (see the module docstring). ``train_text``: the text a
    ``bpe-N`` is trained on (anything ``tinyllm.data.open_source`` reads, or a ``Source``)."""
    spec = "gpt2" if spec is None else str(spec)
    if spec in ("gpt2", "builtin"):
        return Tokenizer(spec, backend=backend)
    if spec.startswith("bpe-"):
        size = spec[len("bpe-"):]
        if not size.isdigit():
            raise TinyLLMError(f"tokenizer {spec!r}: write bpe-N with N the vocabulary size, "
                               "e.g. bpe-4096")
        if train_text is None:
            raise TinyLLMError(f"tokenizer {spec!r} is trained on the training text: give one "
                               "(--data) or choose gpt2, builtin or a tokenizer directory")
        source = open_source(train_text, split="train", text_field=text_field)
        key = hashlib.sha256(f"{source.identity()}\n{int(size)}".encode()).hexdigest()[:16]
        directory = home() / "tokenizers" / f"bpe-{int(size)}-{key}"
        if directory.parent.is_dir():
            remove_temporaries(directory.parent)  # of trainings killed before they finished
        if not _cached(directory):
            with atomic_dir(directory) as tmp:   # a half-written cache entry is never seen
                bpe_train.train_bpe_fast((piece for piece, _ in source.pieces()), int(size),
                                         out=tmp)
                write_manifest(tmp, TOKENIZER_FILES)
        return Tokenizer(directory, backend=backend)
    if Path(spec).expanduser().is_dir():
        return Tokenizer(spec, backend=backend)
    raise TinyLLMError(f"unknown tokenizer {spec!r}: use gpt2, builtin, bpe-N (e.g. bpe-4096, "
                       "trained on the data) or a directory with vocab.json and merges.txt")


def _cached(directory: Path) -> bool:
    """A trained tokenizer is in the cache entry ``directory``, its checksums intact (a damaged
    one is trained again)."""
    if not is_tokenizer_dir(directory):
        return False
    try:
        check_manifest(directory)
    except DamagedFile:
        return False
    return True


__all__ = ["load_tokenizer"]
