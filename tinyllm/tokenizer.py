"""The tokenizer: byte-level BPE in GPT-2's format (``vocab.json`` + ``merges.txt``).

``Tokenizer()`` is GPT-Neo's tokenizer (= GPT-2's, 50,257 tokens, ``<|endoftext|>`` = 50256),
from the cache or the hub (see ``tinyllm.data.sources``). ``Tokenizer(dir)`` loads any
directory in the same format, such as one written by ``tinyllm tokenizer train``.

Two encoders give the same ids: ``backend='fast'`` (default) uses the Hugging Face
``tokenizers`` library (Rust, batched, multi-core); ``backend='tinyllm'`` uses tinyllm's own
from-scratch BPE (``tinyllm.bpe``), which the tests hold equal to it.
"""
import functools
import hashlib
import json
import shutil
from pathlib import Path

from .data.documents import open_source
from .data.sources import EOT, builtin_tokenizer_dir, gpt2_tokenizer_dir, home
from .errors import TinyLLMError
from .files import TOKENIZER_FILES, atomic_dir


class Tokenizer:
    def __init__(self, path=None, backend: str = "fast"):
        if path is None or path == "gpt2":
            directory = gpt2_tokenizer_dir()
        elif path == "builtin":
            directory = builtin_tokenizer_dir()
        else:
            directory = Path(path).expanduser()
        missing = [n for n in TOKENIZER_FILES if not (directory / n).is_file()]
        if missing:
            raise TinyLLMError(f"tokenizer directory {directory} lacks {', '.join(missing)}: "
                               "give a directory with vocab.json and merges.txt (GPT-2 format)")
        self.path = directory
        try:
            self.vocab: dict[str, int] = json.loads((directory / "vocab.json").read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TinyLLMError(f"{directory / 'vocab.json'} is not a JSON vocabulary ({e})") from None
        self.merges = read_merges(directory / "merges.txt")
        if EOT not in self.vocab:
            raise TinyLLMError(f"{directory / 'vocab.json'} has no {EOT} token")
        self.backend = backend
        if backend == "fast":
            self._impl = _fast_tokenizer(self.vocab, self.merges)
        elif backend == "tinyllm":
            from .bpe import BPE
            self._impl = BPE(self.vocab, self.merges, special_tokens=[EOT])
        else:
            raise TinyLLMError(f"unknown tokenizer backend {backend!r}: use 'fast' or 'tinyllm'")

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def eos_token_id(self) -> int:
        return self.vocab[EOT]

    def encode(self, text: str) -> list[int]:
        if self.backend == "fast":
            return self._impl.encode(text).ids
        return self._impl.encode(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Encode many texts at once (in parallel with the fast backend)."""
        if self.backend == "fast":
            return [e.ids for e in self._impl.encode_batch(texts)]
        return [self._impl.encode(t) for t in texts]

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        if self.backend == "fast":
            return self._impl.decode(ids, skip_special_tokens=False)
        return self._impl.decode(ids)

    @functools.cached_property
    def fingerprint(self) -> str:
        """A short hash of the vocabulary and merges: equal fingerprints, equal token ids."""
        h = hashlib.sha256()
        h.update(json.dumps(self.vocab, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update("\n".join(f"{a} {b}" for a, b in self.merges).encode("utf-8"))
        return h.hexdigest()[:16]

    def save(self, directory) -> None:
        """Write ``vocab.json`` and ``merges.txt`` to ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for n in TOKENIZER_FILES:
            if (self.path / n).resolve() != (directory / n).resolve():
                shutil.copyfile(self.path / n, directory / n)

    def __repr__(self) -> str:
        return f"Tokenizer({str(self.path)!r}, vocab_size={self.vocab_size})"


def read_merges(path) -> list[tuple[str, str]]:
    """The merge rules of a ``merges.txt``, in rank order (an optional ``#version`` line skipped)."""
    merges = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or (n == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise TinyLLMError(f"{path}:{n} is not a merge rule ('a b'): {line[:40]!r}")
            merges.append((parts[0], parts[1]))
    return merges


def _fast_tokenizer(vocab: dict, merges: list):
    from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers
    tok = HFTokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([EOT])
    return tok


def load_tokenizer(spec="gpt2", train_text=None, backend: str = "fast",
                   text_field: str = "text") -> Tokenizer:
    """The tokenizer a ``--tokenizer`` option names.

    - ``'gpt2'``: GPT-2's / GPT-Neo's 50,257 tokens; ``'builtin'``: the 1,024 shipped with tinyllm;
    - a directory holding ``vocab.json`` and ``merges.txt``;
    - ``'bpe-N'``: a byte-level BPE of N tokens trained on ``train_text`` (any data source
      ``tinyllm.data.open_source`` reads, or a ``Source``) with the fast trainer, and cached in
      ``$TINYLLM_HOME/tokenizers/bpe-N-<key>/``, the key made from the text's content
      (``Source.identity``) and N: the same text gives the same tokenizer, without retraining.
    """
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
        if not all((directory / n).is_file() for n in TOKENIZER_FILES):
            from .bpe_train import train_bpe_fast
            with atomic_dir(directory) as tmp:   # a half-written cache entry is never seen
                train_bpe_fast((piece for piece, _ in source.pieces()), int(size), out=tmp)
        return Tokenizer(directory, backend=backend)
    if Path(spec).expanduser().is_dir():
        return Tokenizer(spec, backend=backend)
    raise TinyLLMError(f"unknown tokenizer {spec!r}: use gpt2, builtin, bpe-N (e.g. bpe-4096, "
                       "trained on the data) or a directory with vocab.json and merges.txt")
