"""Byte-level BPE encoding from scratch, as in GPT-2 (Radford et al., 2019).

A text becomes token ids in four steps:

1. special tokens: the text is cut at every ``<|endoftext|>``, which is one token by itself;
2. pre-tokenisation: each piece is split into "words" by GPT-2's regular expression
   (``PATTERN``: contractions, runs of letters, of digits, of other symbols, each with at most
   one leading space, and runs of whitespace); merges never cross a word boundary;
3. bytes as characters: a word's UTF-8 bytes are written with ``bytes_to_unicode``, one
   printable character per byte (space -> 'Ġ', newline -> 'Ċ'), so that every token is a str;
4. merges: starting from single bytes, repeatedly merge the adjacent pair with the lowest
   rank (its line number in ``merges.txt``) until no pair of the word is a merge rule::

       word = [b_1, ..., b_n]
       while some (w_i, w_i+1) is in ranks:
           (a, b) = argmin over adjacent pairs of ranks[(w_i, w_i+1)]
           replace every (a, b), left to right, by the single symbol a+b

   and look the final symbols up in ``vocab.json``.

Decoding maps ids back to strings, the characters back to bytes, and the bytes to text; bytes
that are not valid UTF-8 (a token sequence cut inside a character) become U+FFFD, as in the
``tokenizers`` library.

This is the readable reference; ``tinyllm.tokenizer.Tokenizer(backend='fast')`` uses the Rust
``tokenizers`` library instead, and the tests hold both to the same ids. One caveat: the
``regex`` package and the regex engine inside ``tokenizers`` each carry a Unicode database, so a
code point that one knows as a letter and the other as unassigned (a recent addition to
Unicode) can split words differently; for characters both know, the ids are the same.
Unknown ids in ``decode`` raise an error here, where ``tokenizers`` skips them silently.
"""
from functools import lru_cache

import regex  # not `re`: the pattern needs Unicode classes (\p{L} letters, \p{N} numbers)

from ..errors import TinyLLMError

# GPT-2's pre-tokenisation pattern (openai/gpt-2, encoder.py); `tokenizers`' ByteLevel uses it too.
PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@lru_cache(maxsize=None)
def bytes_to_unicode() -> dict[int, str]:
    """The 256 bytes -> 256 printable characters table of GPT-2.

    Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68
    (controls, space, soft hyphen...) are given the characters chr(256), chr(257), ... in order.
    So no token contains whitespace or a control character, and ``merges.txt`` can separate a
    pair with a space. The order of this dict is the order of the 256 byte tokens in GPT-2's
    vocabulary (and equals the order of their characters' code points)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


class BPE:
    """A byte-level BPE encoder/decoder for a GPT-2-format vocabulary and merge list.

    ``vocab``: token string -> id (``vocab.json``); ``merges``: pairs in rank order
    (``merges.txt``); ``special_tokens``: strings recognised verbatim in the text, each one id.
    """

    CACHE_SIZE = 100_000  # words remembered (a story reuses the same few hundred words)

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]],
                 special_tokens=()):
        self.vocab = dict(vocab)
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self.ranks = {tuple(pair): rank for rank, pair in enumerate(merges)}
        self.byte_to_char = bytes_to_unicode()
        self.char_to_byte = {c: b for b, c in self.byte_to_char.items()}
        missing = [c for c in self.byte_to_char.values() if c not in self.vocab]
        if missing:
            raise TinyLLMError(f"the vocabulary lacks {len(missing)} of the 256 byte tokens "
                               f"(e.g. {missing[0]!r}): it is not a byte-level BPE vocabulary")
        for a, b in self.ranks:
            if a + b not in self.vocab:
                raise TinyLLMError(f"merge rule {a!r} {b!r} makes {a + b!r}, which is not in the "
                                   "vocabulary: vocab.json and merges.txt do not belong together")
        self.special = {}
        for token in special_tokens:
            if token not in self.vocab:
                raise TinyLLMError(f"special token {token!r} is not in the vocabulary")
            self.special[token] = self.vocab[token]
        # longest first, so that a special token that contains another one wins
        alternatives = sorted(self.special, key=len, reverse=True)
        self.special_pattern = (regex.compile("(" + "|".join(map(regex.escape, alternatives)) + ")")
                                if alternatives else None)
        self.pattern = regex.compile(PATTERN)
        self.cache: dict[str, list[int]] = {}

    # -- encoding -------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""
        if not isinstance(text, str):
            raise TinyLLMError(f"encode takes a str, not {type(text).__name__}")
        ids: list[int] = []
        # re.split with a group keeps the separators: [text, special, text, special, ..., text]
        pieces = self.special_pattern.split(text) if self.special_pattern else [text]
        for n, piece in enumerate(pieces):
            if n % 2 == 1:
                ids.append(self.special[piece])
                continue
            for word in self.pattern.findall(piece):
                ids.extend(self._encode_word(word))
        return ids

    def _encode_word(self, word: str) -> list[int]:
        ids = self.cache.get(word)
        if ids is None:
            try:
                data = word.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate such as '\ud800'
                raise TinyLLMError(f"text holds {word!r}, which is not valid Unicode "
                                   "(a lone surrogate): it has no UTF-8 bytes to encode") from None
            symbols = self.merge([self.byte_to_char[b] for b in data])
            ids = [self.vocab[s] for s in symbols]
            if len(self.cache) >= self.CACHE_SIZE:
                self.cache.clear()
            self.cache[word] = ids
        return ids

    def merge(self, symbols: list[str]) -> list[str]:
        """Apply the merge rules to one word's symbols (initially one character per byte)."""
        while len(symbols) > 1:
            pairs = set(zip(symbols, symbols[1:]))
            best = min(pairs, key=lambda pair: self.ranks.get(pair, float("inf")))
            if best not in self.ranks:
                break  # no adjacent pair is a merge rule: done
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    # -- decoding -------------------------------------------------------------------------

    def decode(self, ids) -> str:
        """The text of token ids (invalid UTF-8 becomes U+FFFD)."""
        data = bytearray()
        for i in ids:
            token = self.id_to_token.get(int(i))
            if token is None:
                raise TinyLLMError(f"token id {int(i)} is outside the vocabulary "
                                   f"(0..{len(self.vocab) - 1})")
            if token in self.special or not all(c in self.char_to_byte for c in token):
                data += token.encode("utf-8")  # special tokens are written as themselves
            else:
                data += bytes(self.char_to_byte[c] for c in token)
        return data.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"BPE(vocab_size={len(self.vocab)}, merges={len(self.ranks)})"
