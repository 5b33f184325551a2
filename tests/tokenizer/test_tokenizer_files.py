"""Tokenizer files that are not what they claim are one line each (the built-in tokenizer's
files, damaged): merges.txt not UTF-8, a '#version' line deep inside, merges of unknown tokens,
string or huge ids in vocab.json."""
import json
import shutil

import pytest

from tinyllm.errors import TinyLLMError
from tinyllm.tokenizer import Tokenizer
from tinyllm.tokenizer.tokenizer import builtin_tokenizer_dir


@pytest.fixture
def files(tmp_path):
    shutil.copytree(builtin_tokenizer_dir(), tmp_path / "tok")
    return tmp_path / "tok"


def test_the_copy_loads(files):
    assert Tokenizer(files).vocab_size == Tokenizer("builtin").vocab_size


def edit_merges(files, change):
    lines = (files / "merges.txt").read_text("utf-8").splitlines()
    (files / "merges.txt").write_text("\n".join(change(lines)) + "\n", "utf-8")


@pytest.mark.parametrize("damage, says", [
    (lambda f: (f / "merges.txt").write_bytes(b"\xff\xfe a b\n"), "is not UTF-8"),
    (lambda f: edit_merges(f, lambda ls: ls[:50] + ["#version: 0.2"] + ls[50:]), "merge rule"),
    (lambda f: edit_merges(f, lambda ls: ls + ["zzqx yyqw"]), "not in vocab.json"),
    (lambda f: (f / "vocab.json").write_text(json.dumps(
        {**json.loads((f / "vocab.json").read_text()), "a": "7"})), "the id 7"),
    (lambda f: (f / "vocab.json").write_text(json.dumps(
        {**json.loads((f / "vocab.json").read_text()), "zzqx": 10**30})), "the id 1000"),
    (lambda f: (f / "vocab.json").write_text("[1, 2]"), "not a vocabulary"),
])
@pytest.mark.parametrize("backend", ["fast", "tinyllm"])
def test_tokenizer_files_that_are_not_what_they_claim_are_one_line(files, damage, says, backend):
    damage(files)
    with pytest.raises(TinyLLMError, match=says) as e:
        Tokenizer(files, backend=backend)
    assert "\n" not in str(e.value)
