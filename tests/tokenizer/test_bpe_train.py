"""BPE trainers (tinyllm.bpe_train): from scratch == tokenizers' BpeTrainer; the files they
write; load_tokenizer's bpe-N cache; the shipped built-in tokenizer; the CLI."""
import json
import os

import pytest
from hypothesis import given, settings, strategies as st

from tinyllm.tokenizer import bpe_train
from tinyllm.tokenizer.bpe import bytes_to_unicode
from tinyllm.data.documents import open_source
from tinyllm.tokenizer.bpe_train import train_bpe, train_bpe_fast
from tinyllm.cli import main
from tinyllm.data.sources import sample_corpus_path
from tinyllm.tokenizer import EOT
from tinyllm.tokenizer.tokenizer import builtin_tokenizer_dir
from tinyllm.errors import TinyLLMError
from tinyllm.data.tokenizer import load_tokenizer
from tinyllm.tokenizer import Tokenizer, read_merges

from tests.conftest import VALIDATION_HEAD, needs_shared

TRAINERS = (train_bpe, train_bpe_fast)


def texts_of(path) -> list[str]:
    """A file's text as the trainers take it: the pieces of its documents (the one reader's)."""
    return [piece for piece, _ in open_source(path).pieces()]
BYTE_CHARS = list(bytes_to_unicode().values())


@pytest.fixture(scope="module")
def head_50k():
    if not VALIDATION_HEAD.is_file():
        pytest.skip("../shared/data is not beside the repository")
    return VALIDATION_HEAD.read_text(encoding="utf-8")[:50_000]


@needs_shared
def test_trainers_agree_on_tinystories(tmp_path, head_50k):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(head_50k, encoding="utf-8")
    slow = train_bpe(texts_of(corpus), 600, out=tmp_path / "slow")
    fast = train_bpe_fast(texts_of(corpus), 600, out=tmp_path / "fast")
    assert len(slow[1]) == 600 - 257
    assert slow[1] == fast[1]  # the same merges in the same order
    assert slow[0] == fast[0]
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / "slow" / name).read_bytes() == (tmp_path / "fast" / name).read_bytes()

    tokenizers = [Tokenizer(tmp_path / "slow", backend=b) for b in ("fast", "tinyllm")]
    text = head_50k + f"\n{EOT}\nA brand-new story, with 日本語 and 🙂."
    ids = tokenizers[0].encode(text)
    assert tokenizers[1].encode(text) == ids
    assert len(ids) < len(text.encode("utf-8")) / 2  # the merges do compress the text
    assert all(t.decode(ids) == text for t in tokenizers)
    assert tokenizers[0].vocab_size == 600 and tokenizers[0].eos_token_id == 599


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.lists(st.text(st.sampled_from(list("ab cé日\n🙂")), max_size=20)
                               | st.just(EOT), max_size=4).map("".join), min_size=1, max_size=4),
       vocab_size=st.integers(257, 320))
def test_trainers_agree_on_small_corpora_full_of_ties(texts, vocab_size):
    if not "".join(texts).replace(EOT, ""):
        return  # an empty corpus: see test_bad_input
    assert train_bpe(texts, vocab_size) == train_bpe_fast(texts, vocab_size)


@pytest.mark.parametrize("trainer", TRAINERS)
def test_ties_go_to_the_smallest_pair_of_ids(trainer):
    # Every pair occurs once. Ids follow the code points of the byte characters:
    # 'a' < 'b' < 'x' < 'y' < 'Ġ' (the space), so ('b', 'a') is the smallest pair.
    _, merges = trainer(["xy ba"], 258)
    assert merges == [("b", "a")]
    # a count beats a smaller pair
    _, merges = trainer(["xy ba xy"], 258)
    assert merges == [("x", "y")]
    # A merged token's id is its creation order, not its string order: 'xy' is made first,
    # so ('xy', 'c') comes before ('ab', 'c') although both occur twice and 'ab' < 'xy'.
    _, merges = trainer(["xyc", "xyc", "xy", "abc", "abc"], 261)
    assert merges == [("x", "y"), ("a", "b"), ("xy", "c"), ("ab", "c")]


@pytest.mark.parametrize("trainer", TRAINERS)
def test_layout_bytes_then_merges_then_endoftext(trainer, tmp_path):
    vocab, merges = trainer(["the cat and the hat and the bat"] * 3, 270, out=tmp_path)
    assert list(vocab)[:256] == BYTE_CHARS and list(vocab.values()) == list(range(270))
    assert list(vocab)[256:269] == [a + b for a, b in merges] and len(merges) == 13
    assert vocab[EOT] == 269
    assert json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8")) == vocab
    lines = (tmp_path / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#version: 0.2" and len(lines) == 14
    assert read_merges(tmp_path / "merges.txt") == merges


@pytest.mark.parametrize("trainer", TRAINERS)
def test_endoftext_separates_documents_and_is_not_learned(trainer, tmp_path):
    corpus = tmp_path / "stories.txt"
    corpus.write_text(f"x\n{EOT}\ny{EOT}x{EOT}{EOT}", encoding="utf-8")
    # words: 'x', 'Ċ' | 'Ċ', 'y' | 'x': no word has two bytes, so there is nothing to merge
    vocab, merges = trainer(texts_of(corpus), 300)
    assert merges == [] and len(vocab) == 257 and vocab[EOT] == 256
    vocab, merges = trainer(["abab", EOT + "ab"], 300)
    assert merges == [("a", "b"), ("ab", "ab")]


@pytest.mark.parametrize("trainer", TRAINERS)
def test_bad_input(trainer, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    only_separators = tmp_path / "separators.txt"
    only_separators.write_text(f"{EOT}{EOT}", encoding="utf-8")
    for corpus in (empty, only_separators, [], [""]):
        with pytest.raises(TinyLLMError, match="empty"):
            trainer(corpus if isinstance(corpus, list) else texts_of(corpus), 300)
    for size in (0, 256, 300.0, "300"):
        with pytest.raises(TinyLLMError, match="vocab size"):
            trainer(["some text"], size)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Once upon a time, a café.\n".encode("latin-1") * 10)
    with pytest.raises(TinyLLMError, match="not UTF-8"):
        trainer(texts_of(latin1), 300)
    with pytest.raises(TinyLLMError, match="not UTF-8"):
        trainer([b"caf\xe9"], 300)
    with pytest.raises(TinyLLMError, match="not a file"):
        trainer(texts_of(tmp_path / "missing.txt"), 300)
    with pytest.raises(TinyLLMError, match="iterable of strings"):
        trainer(tmp_path / "missing.txt", 300)
    with pytest.raises(TinyLLMError, match="not a str"):
        trainer([1, 2], 300)


# -- load_tokenizer ---------------------------------------------------------------------------

def test_load_tokenizer_bpe_n_trains_once_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLLM_HOME", str(tmp_path / "home"))
    corpus = tmp_path / "train.txt"
    corpus.write_text("The little dog ran to the park.\n" * 50 + f"{EOT}\nThe cat sat.\n",
                      encoding="utf-8")
    first = load_tokenizer("bpe-270", train_text=corpus)
    assert first.vocab_size == 270 and first.eos_token_id == 269
    assert first.path.parent == tmp_path / "home" / "tokenizers"
    assert first.path.name.startswith("bpe-270-")
    assert first.encode("The little dog") == Tokenizer(first.path, backend="tinyllm").encode(
        "The little dog")

    calls = []
    monkeypatch.setattr(bpe_train, "train_bpe_fast", lambda *a, **k: calls.append(a))
    again = load_tokenizer("bpe-270", train_text=str(corpus))
    assert calls == [] and again.path == first.path and again.fingerprint == first.fingerprint
    monkeypatch.setattr(bpe_train, "train_bpe_fast", train_bpe_fast)

    other_size = load_tokenizer("bpe-260", train_text=corpus)
    corpus.write_text("Completely different words here.\n" * 20, encoding="utf-8")
    os.utime(corpus, ns=(1, 1))  # a new size and mtime: another key
    changed = load_tokenizer("bpe-270", train_text=corpus)
    assert len({first.path, other_size.path, changed.path}) == 3
    assert changed.fingerprint != first.fingerprint
    assert sorted(p.name[:8] for p in (tmp_path / "home" / "tokenizers").iterdir()) == \
        ["bpe-260-", "bpe-270-", "bpe-270-"]  # no temporary directory left behind


def test_the_tokenizer_cache_is_checked_and_tidied(tmp_path, monkeypatch):
    """A cached bpe-N whose files were changed is trained again; the temporaries a killed
    training left (its process gone) are removed."""
    from tinyllm import files
    monkeypatch.setenv("TINYLLM_HOME", str(tmp_path / "home"))
    corpus = tmp_path / "train.txt"
    corpus.write_text("The little dog ran to the park.\n" * 50, encoding="utf-8")
    first = load_tokenizer("bpe-270", train_text=corpus)
    merges = (first.path / "merges.txt").read_text("utf-8")
    (first.path / "merges.txt").write_text(merges.replace("\n", "\n\n", 3), "utf-8")
    left = first.path.parent / f".bpe-270-x.tmp-999999-{files._host()}-abcd1234"  # gone
    left.mkdir()
    files._verified.clear()
    again = load_tokenizer("bpe-270", train_text=corpus)
    assert (again.path / "merges.txt").read_text("utf-8") == merges
    assert not left.exists()


def test_load_tokenizer_other_specs(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLLM_HOME", str(tmp_path / "home"))
    assert load_tokenizer("builtin").vocab_size == 1024
    train_bpe_fast(["a small corpus, a small corpus"], 260, out=tmp_path / "mine")
    assert load_tokenizer(str(tmp_path / "mine")).vocab_size == 260
    assert load_tokenizer(tmp_path / "mine", backend="tinyllm").backend == "tinyllm"
    for spec, message in [("gpt3", "unknown tokenizer"), ("bpe-", "bpe-N"),
                          ("bpe-4k", "bpe-N"), ("bpe-300", "training text"),
                          (str(tmp_path / "nothing"), "unknown tokenizer")]:
        with pytest.raises(TinyLLMError, match=message):
            load_tokenizer(spec)
    with pytest.raises(TinyLLMError, match="does not exist"):
        load_tokenizer("bpe-300", train_text=tmp_path / "missing.txt")


@needs_shared
def test_load_tokenizer_gpt2(tinyllm_home):
    assert load_tokenizer("gpt2").eos_token_id == 50256
    assert load_tokenizer(None, backend="tinyllm").encode("Hello, world!") == [15496, 11, 995, 0]


# -- the built-in tokenizer -------------------------------------------------------------------

def test_builtin_tokenizer_round_trips_the_sample_corpus():
    text = sample_corpus_path().read_text(encoding="utf-8")
    fast, ours = Tokenizer("builtin"), Tokenizer("builtin", backend="tinyllm")
    assert fast.vocab_size == 1024 and fast.eos_token_id == 1023
    ids = fast.encode(text)
    assert ours.encode(text) == ids
    assert ids.count(1023) == text.count(EOT) > 100
    assert fast.decode(ids) == text and ours.decode(ids) == text
    assert len(text.encode("utf-8")) / len(ids) > 2.5  # it was trained on this text


def test_builtin_tokenizer_is_what_the_trainers_make_of_the_sample():
    shipped_vocab = json.loads((builtin_tokenizer_dir() / "vocab.json").read_text("utf-8"))
    shipped_merges = read_merges(builtin_tokenizer_dir() / "merges.txt")
    assert train_bpe(texts_of(sample_corpus_path()), 1024) == (shipped_vocab, shipped_merges)


# -- CLI ----------------------------------------------------------------------------------------

def test_cli_tokenizer_train(tmp_path, capsys):
    corpus = tmp_path / "stories.txt"
    corpus.write_text(sample_corpus_path().read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    assert main(["tokenizer", "train", "--data", str(corpus), "--vocab-size", "300",
                 "--out", str(tmp_path / "fast")]) == 0
    assert "300 tokens" in capsys.readouterr().out
    assert main(["tokenizer", "train", "--data", str(corpus), "--vocab-size", "300",
                 "--out", str(tmp_path / "slow"), "--slow"]) == 0
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / "fast" / name).read_bytes() == (tmp_path / "slow" / name).read_bytes()
    assert Tokenizer(tmp_path / "fast").vocab_size == 300

    assert main(["tokenizer", "train", "--data", "sample", "--vocab-size", "100",
                 "--out", str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err.strip()
    assert "too small" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad").exists()
