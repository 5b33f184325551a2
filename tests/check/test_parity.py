"""``tinyllm check``: every row passes on a correct tinyllm, and a learner who breaks one
component sees that component's row fail (plus the rows built from it), not the others."""

import pytest
import torch

from tinyllm import check
from tinyllm.cli import main
from tinyllm.model.nn import Embedding, attention, norm

pytest.importorskip("transformers")

COMPONENT_ROWS = {"Embedding", "LayerNorm", "gelu_new", "MLP", "Attention global",
                  "Attention local", "Attention scaled", "Attention kv cache"}
COMPOSITE_ROWS = {"Block", "GPT (HF import)", "No biases (GPT-Neo export)",  # built from the
                  "Block, parallel residual", "GPT (GPT-NeoX import)"}       # components above


def rows_by_name(rows):
    return {r.component: r for r in rows}


def broken_layernorm(self, x):
    # a classic slip: torch's default *unbiased* variance (divides by C - 1)
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True)
    return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def broken_window_mask(self, T, first_key, num_keys, pos, device):
    i = torch.arange(pos, pos + T, device=device)[:, None]
    j = torch.arange(first_key, first_key + num_keys, device=device)[None, :]
    allowed = j <= i
    if self.window is not None:
        allowed = allowed & (i - j <= self.window)  # off by one: window + 1 tokens
    return allowed


def test_all_rows_pass(parity_table):
    rows = parity_table
    assert [r.component for r in rows] == [c.component for c in check.CHECKS]
    assert all(r.status == "pass" for r in rows), check.format_table(rows)
    assert all(r.max_abs_diff <= r.tolerance for r in rows)
    assert rows_by_name(rows)["BPE tokenizer"].max_abs_diff == 0


def test_broken_layernorm_fails_its_row(tinyllm_home, monkeypatch):
    monkeypatch.setattr(norm.LayerNorm, "forward", broken_layernorm)
    table = check.run_checks()
    rows = rows_by_name(table)
    failed = {name for name, r in rows.items() if r.failed}
    assert failed & COMPONENT_ROWS == {"LayerNorm"}
    assert failed - COMPONENT_ROWS == COMPOSITE_ROWS
    assert rows["LayerNorm"].max_abs_diff > rows["LayerNorm"].tolerance
    assert "divides the variance by C - 1" in rows["LayerNorm"].note      # the slip, named
    assert "built from the layernorm" in rows["Block"].note
    first_failure = next(r for r in table if r.failed)
    assert first_failure.component == "LayerNorm"


def test_broken_window_fails_the_local_attention_rows(tinyllm_home, monkeypatch):
    monkeypatch.setattr(attention.Attention, "mask", broken_window_mask)
    rows = rows_by_name(check.run_checks())
    failed = {name for name, r in rows.items() if r.failed}
    assert "Attention local" in failed
    assert not failed & {"Embedding", "LayerNorm", "gelu_new", "MLP", "Attention global"}


def test_a_check_that_raises_fails_only_its_rows(monkeypatch):
    def boom(self, ids):
        raise IndexError("index out of range in self")
    monkeypatch.setattr(Embedding, "forward", boom)
    rows = rows_by_name(check.run_checks())
    assert rows["Embedding"].status == "fail"
    assert "IndexError" in rows["Embedding"].note
    assert f"test_parity.py:{boom.__code__.co_firstlineno + 1} in boom" in rows["Embedding"].note
    assert rows["LayerNorm"].status == "pass"  # the other checks still ran
    assert rows["GPT (HF import)"].status == "fail"  # the GPT uses Embedding


def test_tokenizer_row_is_skipped_without_tokenizer_files(empty_home, monkeypatch, tmp_path):
    monkeypatch.setattr(check.classic, "builtin_tokenizer_dir", lambda: tmp_path / "no_tokenizer")
    row = rows_by_name(check.run_checks())["BPE tokenizer"]
    assert row.status == "skipped"
    assert "no tokenizer files" in row.note
    assert "skipped: no tokenizer files" in check.format_table([row])


def test_cli_check_prints_the_table_and_exit_status(tinyllm_home, monkeypatch, capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["component", "reference"]
    assert len({line.index("torch.nn.") for line in lines[2:4]}) == 1  # aligned columns
    assert f"{len(check.CHECKS)} passed, 0 failed" in out

    monkeypatch.setattr(norm.LayerNorm, "forward", broken_layernorm)
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("LayerNorm"))
    assert row.rstrip().endswith("fail: divides the variance by C - 1 (x.var()'s default); "
                                 "LayerNorm's is mean((x - μ)²), x.var(unbiased=False)")
    assert "fix LayerNorm first" in out
