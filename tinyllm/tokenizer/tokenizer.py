"""The tokenizer: byte-level BPE in GPT-2's format (``vocab.json`` + ``merges.txt``).

``Tokenizer()`` is GPT-Neo's tokenizer (= GPT-2's, 50,257 tokens, ``<|endoftext|>`` = 50256),
from the cache (``$TINYLLM_HOME/gpt2``), downloaded once from the Hugging Face hub
(``EleutherAI/gpt-neo-125M``) when it is not there. ``Tokenizer('builtin')`` is the 1,024-token
BPE shipped with tinyllm, trained on its built-in corpus. ``Tokenizer(dir)`` loads any directory
in the same format, such as one written by ``tinyllm tokenizer train``.

Two encoders give the same ids: ``backend='fast'`` (default) uses the Hugging Face
``tokenizers`` library (Rust, batched, multi-core); ``backend='tinyllm'`` uses tinyllm's own
from-scratch BPE (``tinyllm.tokenizer.bpe``), which the tests hold equal to it.
"""
import functools
import hashlib
import json
from pathlib import Path

from ..errors import TinyLLMError
from ..files import atomic_write, home
from .chat import CHAT_TEMPLATE_FILE

EOT = "<|endoftext|>"                      # ends every document; GPT-2's id 50256
TOKENIZER_FILES = ("vocab.json", "merges.txt")
GPT2_REPO = "EleutherAI/gpt-neo-125M"      # GPT-Neo's tokenizer is GPT-2's
BUILTIN = Path(__file__).resolve().parent / "builtin"


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
        check_vocab(self.vocab, directory / "vocab.json")
        self.merges = read_merges(directory / "merges.txt")
        if EOT not in self.vocab:
            raise TinyLLMError(f"{directory / 'vocab.json'} has no {EOT} token")
        for rank, (a, b) in enumerate(self.merges, 1):
            if a not in self.vocab or b not in self.vocab or a + b not in self.vocab:
                raise TinyLLMError(f"merge rule {rank} of {directory / 'merges.txt'} ({a} {b!s}) "
                                   "joins tokens that are not in vocab.json: are these files "
                                   "from the same tokenizer?")
        self.backend = backend
        # how a conversation is laid out for a model tuned on requests (tinyllm.tokenizer.chat)
        template = directory / CHAT_TEMPLATE_FILE
        self.chat_template: str | None = template.read_text("utf-8") if template.is_file() \
            else None
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

    def save(self, directory) -> list[str]:
        """Write ``vocab.json`` and ``merges.txt`` to ``directory`` (each atomically), and the
        chat template when there is one; returns their names."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for n in TOKENIZER_FILES:
            if (self.path / n).resolve() != (directory / n).resolve():
                atomic_write(directory / n, (self.path / n).read_bytes())
        if self.chat_template is None:
            return list(TOKENIZER_FILES)
        atomic_write(directory / CHAT_TEMPLATE_FILE, self.chat_template.encode("utf-8"))
        return [*TOKENIZER_FILES, CHAT_TEMPLATE_FILE]

    def chat_prompt(self, request: str) -> str:
        """The text that asks a tuned model ``request``: the request as a user message in the
        chat template, ending where the answer begins."""
        from .chat import render, request as as_messages
        return render(self.chat_template, as_messages(request), EOT, add_generation_prompt=True)

    def __repr__(self) -> str:
        return f"Tokenizer({str(self.path)!r}, vocab_size={self.vocab_size})"


def read_merges(path) -> list[tuple[str, str]]:
    """The merge rules of a ``merges.txt``, in rank order (an optional ``#version`` line skipped)."""
    merges = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line or (n == 1 and line.startswith("#version")):
                    continue
                parts = line.split(" ")
                if len(parts) != 2:
                    raise TinyLLMError(f"{path}:{n} is not a merge rule ('a b'): {line[:40]!r}")
                merges.append((parts[0], parts[1]))
    except UnicodeDecodeError:
        raise TinyLLMError(f"{path} is not UTF-8 text: a merges.txt holds one merge rule "
                           "('a b') a line") from None
    return merges


def check_vocab(vocab, path) -> None:
    """A GPT-2 vocab.json maps each token (a string) to its id, the ids 0 .. size - 1 each once."""
    if not isinstance(vocab, dict):
        raise TinyLLMError(f"{path} is not a vocabulary (a JSON object of token: id was expected)")
    ids = set()
    for token, i in vocab.items():
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(vocab) or i in ids:
            raise TinyLLMError(f"{path} gives token {token[:40]!r} the id {str(i)[:40]}: the ids "
                               f"of a vocabulary of {len(vocab):,} tokens are 0..{len(vocab) - 1}, "
                               "each once")
        ids.add(i)


def _fast_tokenizer(vocab: dict, merges: list):
    from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers
    tok = HFTokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([EOT])
    return tok


def is_tokenizer_dir(directory) -> bool:
    """Whether ``directory`` holds a tokenizer's files."""
    return all((Path(directory) / n).is_file() for n in TOKENIZER_FILES)


def builtin_tokenizer_dir() -> Path:
    """The byte-level BPE tokenizer trained on the built-in corpus (shipped with tinyllm)."""
    return BUILTIN


def gpt2_tokenizer_dir() -> Path:
    """A directory holding GPT-2's ``vocab.json`` and ``merges.txt``; downloads them if needed."""
    target = home() / "gpt2"
    if is_tokenizer_dir(target):
        return target
    try:
        from huggingface_hub import hf_hub_download
        target.mkdir(parents=True, exist_ok=True)
        for n in TOKENIZER_FILES:
            atomic_write(target / n, Path(hf_hub_download(GPT2_REPO, n)).read_bytes())
    except Exception as e:  # no network, no hub, no permission: say what to do
        raise TinyLLMError(
            f"GPT-2 tokenizer files not found in {target} and the download from the Hugging Face "
            f"hub ({GPT2_REPO}) failed ({type(e).__name__}); put vocab.json and merges.txt "
            f"there (or set TINYLLM_HOME), or pass a directory: Tokenizer('path/to/dir')") from None
    return target
