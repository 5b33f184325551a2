"""Training a byte-level BPE tokenizer: learning ``merges.txt`` (and ``vocab.json``) from text.

BPE training (Sennrich et al., 2016, on bytes as in GPT-2) starts from the 256 single-byte
tokens and repeats: count every adjacent pair of tokens in the corpus, merge the most frequent
pair into a new token, until the vocabulary has the size asked for::

    words  = counts of the corpus's pre-tokenised words, each a sequence of byte tokens
    repeat vocab_size - 257 times:
        (a, b) = argmax over pairs of  sum over words w of count(w) * occurrences of (a, b) in w
        merges.append((a, b));  vocab.append(a + b)
        in every word, replace each (a, b), left to right, by a + b

Two trainers write the same files:

- ``train_bpe``: from scratch in Python, to read. Pair counts are kept up to date incrementally:
  a merge only touches the words that contain the pair, and in those only the pairs next to each
  merged occurrence change, so a merge costs what it changes, not a pass over the corpus.
- ``train_bpe_fast``: the Rust ``tokenizers`` library's ``BpeTrainer`` (parallel, much faster).

Both give the same merges on the same input because ``train_bpe`` breaks ties the way
``BpeTrainer`` does (tokenizers/src/models/bpe/trainer.rs): of the pairs with the highest
count, the one whose (left id, right id) is smallest wins, where the 256 byte tokens have the
ids 0..255 in the order of their ``bytes_to_unicode`` characters' code points, and each new
token takes the next id when it is created. A merge whose result string already exists (two
routes to the same token) reuses that token's id and adds no vocabulary entry, as there; and
counts are updated with the same bookkeeping (per-merge word sets, stale heap entries
refreshed when popped), so even such rare cases agree.

The output directory is GPT-2's format, readable by ``tinyllm.tokenizer.Tokenizer(dir)`` with
either backend (and by ``transformers``' GPT2Tokenizer):

- ``vocab.json``: ids 0..255 the byte tokens (in GPT-2's order), then the merged tokens in the
  order they were learned, then ``<|endoftext|>`` last, at id ``vocab_size - 1`` as in GPT-2
  (50256 there). If the corpus runs out of pairs first, the vocabulary is smaller and
  ``<|endoftext|>`` is still its last id.
- ``merges.txt``: a ``#version: 0.2`` line, then one ``a b`` merge per line, in rank order.

``<|endoftext|>`` in the training text separates documents: it is cut out (never learned as
text), and words never span it, exactly as the encoder treats it.
"""
import heapq
import itertools
import json
import os
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator, Optional

import regex

from ..errors import TinyLLMError
from ..files import atomic_write
from .bpe import PATTERN, bytes_to_unicode
from .tokenizer import EOT

NUM_BYTES = 256
MIN_VOCAB_SIZE = NUM_BYTES + 1  # the bytes and <|endoftext|>, no merge


# -- input --------------------------------------------------------------------------------

def iter_documents(texts) -> Iterator[str]:
    """The texts of a corpus, an iterable of strings (a data source's documents or pieces:
    ``(piece for piece, _ in open_source(path).pieces())``); ``<|endoftext|>`` separates
    documents and is dropped, so no word spans it."""
    if isinstance(texts, (str, bytes, os.PathLike)):
        raise TinyLLMError("give the training texts as an iterable of strings, e.g. the pieces of "
                           "tinyllm.data.documents.open_source(path)")
    for n, text in enumerate(texts):
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError:
                raise TinyLLMError(f"training text #{n} is bytes that are not UTF-8: "
                                   "decode it or convert it to UTF-8") from None
        if not isinstance(text, str):
            raise TinyLLMError(f"training text #{n} is a {type(text).__name__}, not a str")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise TinyLLMError(f"training text #{n} holds a lone surrogate, which is not "
                               "valid Unicode: fix the text") from None
        yield from text.split(EOT)


def _check_vocab_size(vocab_size) -> int:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TinyLLMError(f"vocab size must be an integer, not {vocab_size!r}")
    if vocab_size < MIN_VOCAB_SIZE:
        raise TinyLLMError(f"vocab size {vocab_size} is too small: a byte-level BPE needs the "
                           f"{NUM_BYTES} byte tokens and {EOT}, so at least {MIN_VOCAB_SIZE}")
    return vocab_size


def _empty_corpus_error() -> TinyLLMError:
    return TinyLLMError("the training text holds no stories or other documents (it is empty, or "
                        "only <|endoftext|> separators): give a file with some text in it")


# -- the from-scratch trainer -------------------------------------------------------------

def train_bpe(texts, vocab_size: int, out=None,
              progress: Optional[Callable[[int, int], None]] = None):
    """Learn a byte-level BPE of ``vocab_size`` tokens (bytes + merges + ``<|endoftext|>``).

    ``texts``: an iterable of strings (see ``iter_documents``). Returns ``(vocab, merges)``
    (token -> id, and the merge pairs in rank order) and writes them to the directory ``out``
    if given. ``progress(done, total)`` is called after each merge."""
    _check_vocab_size(vocab_size)

    # 1. Pre-tokenise into word counts: {b'Once': 3, b' upon': 3, ...}
    pattern = regex.compile(PATTERN)
    word_counts: Counter = Counter()
    for document in iter_documents(texts):
        word_counts.update(pattern.findall(document))
    if not word_counts:
        raise _empty_corpus_error()

    # 2. Tokens: the 256 bytes, with BpeTrainer's ids (code point order of their characters).
    byte_chars = sorted(bytes_to_unicode().values())
    id_to_token: list[str] = list(byte_chars)  # id -> token string
    token_to_id = {t: i for i, t in enumerate(id_to_token)}
    byte_id = {b: token_to_id[c] for b, c in bytes_to_unicode().items()}
    words = []   # words[w]: its current tokens, e.g. [' ', 'u', 'p', 'on'] as ids
    counts = []  # counts[w]: how often the word occurs
    for word, count in word_counts.items():
        words.append([byte_id[b] for b in word.encode("utf-8")])
        counts.append(count)

    # 3. Count the pairs, and remember which words hold each pair.
    pair_counts: Counter = Counter()
    where: dict[tuple[int, int], set[int]] = {}
    for w, (word, count) in enumerate(zip(words, counts)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += count
            where.setdefault(pair, set()).add(w)

    # A max-heap by count, then by smallest pair: entries (-count, pair, tiebreak, words).
    # Counts only fall after an entry is pushed, so an entry whose count is out of date is
    # refreshed and pushed back when it comes out on top ("lazy" updates).
    tiebreak = itertools.count()
    heap = [(-pair_counts[p], p, next(tiebreak), ws) for p, ws in where.items()]
    heapq.heapify(heap)

    # 4. Merge, most frequent pair first.
    target = vocab_size - 1  # the last id is <|endoftext|>
    merges: list[tuple[int, int]] = []
    while len(id_to_token) < target and heap:
        neg_count, pair, _, positions = heapq.heappop(heap)
        if -neg_count != pair_counts[pair]:  # out of date: refresh and retry
            heapq.heappush(heap, (-pair_counts[pair], pair, next(tiebreak), positions))
            continue
        if pair_counts[pair] < 1:
            break  # no pair left to merge
        a, b = pair
        new_token = id_to_token[a] + id_to_token[b]
        if new_token not in token_to_id:
            token_to_id[new_token] = len(id_to_token)
            id_to_token.append(new_token)
        new = token_to_id[new_token]
        merges.append(pair)

        # Merge in the words that hold the pair; only the neighbours of a merge change count.
        new_pairs: dict[tuple[int, int], set[int]] = {}
        for w in positions:
            for changed, delta in _merge_word(words[w], a, b, new):
                pair_counts[changed] += delta * counts[w]
                if delta > 0:
                    new_pairs.setdefault(changed, set()).add(w)
        for p, ws in new_pairs.items():
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], p, next(tiebreak), ws))
        if progress is not None:
            progress(len(id_to_token), target)

    vocab = {t: i for i, t in enumerate(id_to_token)}
    vocab[EOT] = len(vocab)
    merge_strings = [(id_to_token[a], id_to_token[b]) for a, b in merges]
    if out is not None:
        save_bpe(vocab, merge_strings, out)
    return vocab, merge_strings


def _merge_word(word: list[int], a: int, b: int, new: int) -> list[tuple[tuple[int, int], int]]:
    """Replace each (a, b) in ``word`` (in place, left to right) by ``new``; return the pair
    count changes around each merge: ``x a b y`` loses (x, a) and (b, y), gains (x, new) and
    (new, y). (The merged pair itself is not counted down, as in ``tokenizers``.)"""
    changes = []
    i = 0
    while i < len(word) - 1:
        if word[i] == a and word[i + 1] == b:
            if i > 0:
                changes += [((word[i - 1], a), -1), ((word[i - 1], new), +1)]
            word[i:i + 2] = [new]
            if i + 1 < len(word):
                changes += [((b, word[i + 1]), -1), ((new, word[i + 1]), +1)]
        i += 1
    return changes


# -- the fast trainer ---------------------------------------------------------------------

def train_bpe_fast(texts, vocab_size: int, out=None):
    """Like ``train_bpe`` (same arguments, same result), with ``tokenizers``' ``BpeTrainer``:
    the ByteLevel pre-tokenizer (GPT-2's pattern, no prefix space), the 256 bytes as initial
    alphabet, no minimum frequency; ``<|endoftext|>`` is appended last afterwards."""
    from tokenizers import Tokenizer as HFTokenizer, models, pre_tokenizers, trainers

    _check_vocab_size(vocab_size)
    tokenizer = HFTokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1, min_frequency=0, show_progress=False, special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())

    # Errors raised inside the generator would surface from Rust as a generic exception: catch
    # them here, stop feeding, and raise them once training returns.
    seen = {"chars": 0, "error": None}

    def documents():
        try:
            for document in iter_documents(texts):
                seen["chars"] += len(document)
                yield document
        except TinyLLMError as e:
            seen["error"] = e

    tokenizer.train_from_iterator(documents(), trainer)
    if seen["error"] is not None:
        raise seen["error"]
    if seen["chars"] == 0:
        raise _empty_corpus_error()

    model = json.loads(tokenizer.to_str())["model"]
    id_to_token = sorted(model["vocab"], key=model["vocab"].get)
    vocab = {t: i for i, t in enumerate(id_to_token)}
    vocab[EOT] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    if out is not None:
        save_bpe(vocab, merges, out)
    return vocab, merges


# -- output -------------------------------------------------------------------------------

def save_bpe(vocab: dict[str, int], merges: list[tuple[str, str]], directory) -> Path:
    """Write ``vocab.json`` (in id order) and ``merges.txt`` (with GPT-2's ``#version`` line,
    which some readers expect and skip) to ``directory``."""
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    ordered = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    atomic_write(directory / "merges.txt", "\n".join(lines) + "\n")
    atomic_write(directory / "vocab.json", json.dumps(ordered, ensure_ascii=False))
    return directory
