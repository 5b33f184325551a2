"""tinyllm's own byte-level BPE encoder (tinyllm.bpe) against the `tokenizers` library."""
import json
import shutil

import pytest
from hypothesis import given, settings, strategies as st

from tinyllm.tokenizer.bpe import BPE, bytes_to_unicode
from tinyllm.tokenizer import EOT
from tinyllm.errors import TinyLLMError
from tinyllm.tokenizer import Tokenizer, read_merges

from tests.conftest import GPT2_DIR, VALIDATION_HEAD, needs_shared

pytestmark = needs_shared
BACKENDS = ("fast", "tinyllm")


@pytest.fixture(scope="module")
def gpt2():
    """GPT-2's tokenizer with each backend: {'fast': ..., 'tinyllm': ...}."""
    if not GPT2_DIR.is_dir():
        pytest.skip("../shared/data is not beside the repository")
    return {b: Tokenizer(GPT2_DIR, backend=b) for b in BACKENDS}


def test_brief_example(gpt2):
    # the fact the series states for GPT-Neo's tokenizer
    assert gpt2["tinyllm"].encode("Hello, world!") == [15496, 11, 995, 0]


def test_same_ids_as_tokenizers_on_tinystories(gpt2):
    text = VALIDATION_HEAD.read_text(encoding="utf-8")
    fast = gpt2["fast"].encode(text)
    ours = gpt2["tinyllm"].encode(text)
    assert len(ours) > 100_000
    assert ours == fast
    assert gpt2["tinyllm"].decode(ours) == text


@pytest.mark.parametrize("text", [
    f"One story.{EOT}Another one.",
    f"The end.\n{EOT}\nOnce upon a time",
    f"{EOT}{EOT} {EOT}  {EOT}\n",
    f"<|endoftext|<|endoftext|>>endoftext|> <|{EOT}|>",
    f"a{EOT}",
])
def test_endoftext_is_one_token(gpt2, text):
    ids = gpt2["tinyllm"].encode(text)
    assert ids == gpt2["fast"].encode(text)
    assert ids.count(gpt2["tinyllm"].eos_token_id) == text.count(EOT)
    assert gpt2["tinyllm"].decode(ids) == text


def test_bytes_to_unicode_is_gpt2s_byte_vocabulary():
    table = bytes_to_unicode()
    chars = list(table.values())
    assert sorted(table) == list(range(256)) and len(set(chars)) == 256
    assert all(c.isprintable() and not c.isspace() for c in chars)
    assert table[ord("A")] == "A" and table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"
    vocab = json.loads((GPT2_DIR / "vocab.json").read_text(encoding="utf-8"))
    assert [vocab[c] for c in chars] == list(range(256))  # GPT-2's ids 0..255, in this order
    assert chars == sorted(chars)  # = code point order (what BpeTrainer's ids follow)


# Characters a tokenizer finds hard: emoji (with joiners and skin tones), CJK, combining marks,
# control characters, Unicode whitespace, and anything else (surrogates are not text).
HARD = st.sampled_from(list("👩‍👧‍👦👍🏽🙂🇫🇷日本語中文한국어ｶﾀｶﾅ" "e\u0301a\u0308\u0327\u20dd"
                            "\x00\x01\x07\x1b\x7f\x85\u200b\u200d\ufeff"
                            " \t\n\r\x0b\x0c\u00a0\u1680\u2028\u3000" "'sllve<|>"))
ANY = st.characters(exclude_categories=("Cs",))
TEXTS = st.lists(st.one_of(st.text(HARD, max_size=8), st.text(ANY, max_size=8),
                           st.just(EOT), st.sampled_from([" ", "  ", "\n\n", " \t \n "])),
                 max_size=12).map("".join)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=300, deadline=None)
@given(text=TEXTS)
def test_decode_encode_round_trip(gpt2, backend, text):
    tokenizer = gpt2[backend]
    assert tokenizer.decode(tokenizer.encode(text)) == text


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.one_of(st.text(HARD, max_size=8),
                               st.text(st.characters(exclude_categories=("Cs", "Cn")), max_size=8),
                               st.just(EOT)), max_size=12).map("".join))
def test_same_ids_as_tokenizers_on_any_text(gpt2, text):
    # Unassigned code points (Cn) are left out: the `regex` package and the Rust regex engine in
    # `tokenizers` may know different Unicode versions, so they may class them differently.
    assert gpt2["tinyllm"].encode(text) == gpt2["fast"].encode(text)


@settings(max_examples=300, deadline=None)
@given(ids=st.lists(st.one_of(st.integers(0, 255), st.integers(0, 50256)), max_size=10))
def test_decode_like_tokenizers_also_for_invalid_utf8(gpt2, ids):
    assert gpt2["tinyllm"].decode(ids) == gpt2["fast"].decode(ids)


def test_invalid_utf8_becomes_replacement_character(gpt2):
    byte_id = {b: gpt2["tinyllm"].vocab[c] for b, c in bytes_to_unicode().items()}
    cut = [byte_id[b] for b in "’".encode("utf-8")[:2]]  # a 3-byte character cut after 2
    for backend in BACKENDS:
        assert gpt2[backend].decode(cut) == "\ufffd"
        assert gpt2[backend].decode([byte_id[ord("a")]] + cut + [byte_id[ord("b")]]) == "a\ufffdb"


def test_merges_version_header_is_accepted(tmp_path, gpt2):
    shutil.copyfile(GPT2_DIR / "vocab.json", tmp_path / "vocab.json")
    merges = (GPT2_DIR / "merges.txt").read_text(encoding="utf-8")
    assert not merges.startswith("#version")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + merges, encoding="utf-8")
    assert read_merges(tmp_path / "merges.txt") == read_merges(GPT2_DIR / "merges.txt")
    text = VALIDATION_HEAD.read_text(encoding="utf-8")[:20_000]
    for backend in BACKENDS:
        assert Tokenizer(tmp_path, backend=backend).encode(text) == gpt2["fast"].encode(text)


def test_word_cache_is_used_and_bounded(gpt2):
    vocab, merges = gpt2["tinyllm"].vocab, gpt2["tinyllm"].merges
    bpe = BPE(vocab, merges, special_tokens=[EOT])
    bpe.CACHE_SIZE = 50
    first = bpe.encode(" hello hello")
    assert list(bpe.cache) == [" hello"]
    bpe.cache[" hello"] = [0]  # a poisoned entry shows that the cache is what answers
    assert bpe.encode(" hello") == [0]
    bpe.cache.clear()
    assert bpe.encode(" hello") == first[:1]
    bpe.encode(" ".join(f"w{i}" for i in range(500)))
    assert 0 < len(bpe.cache) <= 50


def test_bad_vocabularies_and_ids(gpt2):
    vocab, merges = gpt2["tinyllm"].vocab, gpt2["tinyllm"].merges
    with pytest.raises(TinyLLMError, match="byte tokens"):
        BPE({k: v for k, v in vocab.items() if k != "Ġ"}, [], special_tokens=[EOT])
    with pytest.raises(TinyLLMError, match="not in the vocabulary"):
        BPE(vocab, merges + [("Ġthe", "Ġthe")])
    with pytest.raises(TinyLLMError, match="special token"):
        BPE(vocab, merges, special_tokens=["<|pad|>"])
    with pytest.raises(TinyLLMError, match="outside the vocabulary"):
        gpt2["tinyllm"].decode([50257])
    with pytest.raises(TinyLLMError, match="surrogate"):
        gpt2["tinyllm"].encode("a\ud800b")
