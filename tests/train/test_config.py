"""One run configuration: `tinyllm train`'s options are TrainConfig's fields, with the same
defaults, so the command and `fit(model, train, val, TrainConfig())` are the same run."""
import json
import math
from dataclasses import fields, replace

import pytest
import torch

from tinyllm.cli import build_parser, main
from tinyllm.cli.options import config_changes
from tinyllm.data.tokenizer import load_tokenizer
from tinyllm.data.tokens import load_splits, token_byte_lengths
from tinyllm.errors import TinyLLMError
from tinyllm.model import GPT
from tinyllm.model.config import Config
from tinyllm.train import fit, train
from tinyllm.train.config import (REGULARIZATION, TrainConfig, default_model, planned_passes,
                                  regularization)


def parse(*flags):
    return build_parser().parse_args(["train", *flags])


def losses(rows):
    return [r["loss"] for r in rows if "loss" in r]


def test_no_flags_is_the_default_config():
    args = parse()
    assert replace(TrainConfig(), **config_changes(args, TrainConfig())) == TrainConfig()
    assert TrainConfig().model == default_model()


def test_every_field_is_an_option_with_its_default_in_the_help(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--max-steps", "--warmup", "--weight-decay", "--batch-size", "--layers",
                 "--hidden", "--heads", "--context", "--window", "--dropout", "--tie-embeddings",
                 "--attention", "--eval-steps", "--schedule", "--save-every"):
        assert flag in text
    assert "--warmup STEPS steps of linear warmup (default 20, 10 with --init-from)" in text
    assert "--weight-decay WEIGHT_DECAY decay of the weight matrices" in text
    assert "--layers N transformer blocks (default 4)" in text


def test_flags_change_their_fields_and_the_sizes_that_follow():
    args = parse("--layers", "3", "--hidden", "64", "--context", "32", "--dropout", "0.2",
                 "--warmup", "5", "--no-compile", "--betas", "0.8", "0.9")
    cfg = replace(TrainConfig(), **config_changes(args, TrainConfig()))
    m = cfg.model
    assert (m.num_layers, m.hidden_size, m.embedding_size, m.context_size) == (3, 64, 64, 32)
    assert m.max_position_embeddings == 32                 # follows the context
    assert m.attention_layers == ["global", "local", "global"]   # the pattern repeats
    assert m.residual_dropout == m.embedding_dropout == 0.2
    assert cfg.warmup_steps == 5 and cfg.compile is False and cfg.betas == (0.8, 0.9)


def test_cli_with_no_flags_and_fit_with_train_config_are_the_same_run(tmp_path, home, capsys):
    """`tinyllm train --out A` (a budget only, to keep it short) and the same TrainConfig run
    from Python — through `train`, and through `fit` with the pieces built by hand."""
    assert main(["train", "--out", str(tmp_path / "cli"), "--max-steps", "3", "--quiet",
                 "--log-every", "1"]) == 0
    cli = [json.loads(line) for line in (tmp_path / "cli" / "metrics.jsonl").read_text().splitlines()]
    saved = json.loads((tmp_path / "cli" / "last" / "train_config.json").read_text())

    cfg = TrainConfig(max_steps=3, log_every=1)
    tokenizer = load_tokenizer("builtin")            # what TrainConfig() resolves to for 'sample'
    splits = load_splits("sample", tokenizer, val_fraction=cfg.val_fraction)
    train_tokens, val_tokens = splits.train, splits.validation
    # the defaults that depend on the device and the data: batch, tokenizer, and the dropout and
    # weight decay that follow the planned passes over the data, as tinyllm train chooses them
    resolved = cfg.resolve(torch.device("cpu"), num_train_tokens=len(train_tokens))
    saved = TrainConfig.from_dict(saved)
    assert saved.model.vocab_size == 1024                    # the tokenizer's: builtin for sample
    assert replace(saved, model=saved.model.replace(vocab_size=None)) == resolved
    python = train(cfg, tmp_path / "python")["metrics"]

    torch.manual_seed(cfg.seed)
    model = GPT(tokenizer, resolved.model)
    by_hand = fit(model, train_tokens, val_tokens, cfg,
                  byte_lengths=token_byte_lengths(tokenizer))["metrics"]

    assert len(losses(cli)) == 3
    assert losses(cli) == losses(python) == losses(by_hand)
    assert [r["val_loss"] for r in cli if "val_loss" in r] == \
        [r["val_loss"] for r in by_hand if "val_loss" in r]


def test_resume_merges_the_flags_given_with_the_saved_config():
    saved = TrainConfig(max_steps=10, lr=1e-3, warmup_steps=3)
    cfg = saved.resumed(max_time=60.0, lr=2e-3)
    assert cfg.max_time == 60.0 and cfg.max_steps is None      # a budget replaces the budget
    assert cfg.lr == 2e-3 and cfg.warmup_steps == 3             # the rest is kept
    assert saved.resumed(optimizer="muon") == saved            # the same value is no change
    with pytest.raises(TinyLLMError, match="--optimizer cannot change when resuming"):
        saved.resumed(optimizer="adamw")
    with pytest.raises(TinyLLMError, match="--layers cannot change when resuming"):
        saved.resumed(model=saved.model.replace(num_layers=2))
    with pytest.raises(TinyLLMError, match="--tokenizer cannot change"):
        saved.resumed(tokenizer="gpt2")


@pytest.mark.parametrize("field, value, message", [
    ("batch_size", 0, "--batch-size must be a whole number"),
    ("lr", -1.0, "learning rate must be positive"),
    ("max_steps", 0, "--max-steps must be positive"),
    ("optimizer", "sgd", "unknown optimizer 'sgd'"),
    ("val_fraction", 1.5, "val-fraction"),
    ("eval_every", -1, "--eval-every must be 0 or more"),
])
def test_bad_settings_are_one_clear_error(field, value, message):
    with pytest.raises(TinyLLMError, match=message):
        TrainConfig(**{field: value})


@pytest.mark.parametrize("changes, message", [
    (dict(layer_norm_epsilon=-1), "layer_norm_epsilon must be a small positive number"),
    (dict(window_size=0), "window_size must be a whole number of at least 1"),
    (dict(hidden_size="wide"), "hidden_size must be a whole number"),
    (dict(residual_dropout=1.0), r"residual_dropout must be a probability in \[0, 1\)"),
    (dict(activation="tanh"), "unknown activation 'tanh'"),
    (dict(tie_embeddings="yes"), "tie_embeddings must be true or false"),
])
def test_every_model_field_is_validated(changes, message):
    with pytest.raises(TinyLLMError, match=message):
        Config(**changes)
    assert issubclass(TinyLLMError, ValueError)     # callers that catch ValueError still do


def test_a_bad_config_json_is_one_line_through_the_cli(tmp_path, capsys):
    from tinyllm.tokenizer import Tokenizer
    model_dir = tmp_path / "m"
    GPT(Tokenizer("builtin"), Config(hidden_size=32, num_heads=4, num_layers=1)).save_pretrained(model_dir)
    meta = json.loads((model_dir / "config.json").read_text())
    meta["tinyllm"]["window_size"] = 0
    (model_dir / "config.json").write_text(json.dumps(meta))
    (model_dir / "checksums.json").unlink()     # as written by hand (else: refused as damaged)
    assert main(["generate", "--model", str(model_dir), "hi"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyllm generate: error:") and "window_size" in err and "\n" not in err


def test_a_bug_is_not_reported_as_bad_input(monkeypatch, capsys):
    """Only TinyLLMError is the user's to fix; any other exception is tinyllm's bug and keeps
    its traceback. --debug shows the traceback of a TinyLLMError too."""
    import tinyllm.cli.check as check_command

    def broken(args):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(check_command, "run", broken)
    with pytest.raises(ZeroDivisionError):
        main(["check"])

    def user_error(args):
        raise TinyLLMError("your mistake")
    monkeypatch.setattr(check_command, "run", user_error)
    assert main(["check"]) == 1
    assert capsys.readouterr().err == "tinyllm check: error: your mistake\n"
    assert main(["--debug", "check"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("tinyllm check: error: your mistake\n")


def test_train_config_round_trips_through_json():
    cfg = TrainConfig(max_steps=5, betas=(0.8, 0.9), model=default_model().replace(num_layers=2))
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert {f.name for f in fields(TrainConfig)} >= {"model", "data", "tokenizer", "max_steps"}


# -- regularisation that follows the planned passes ----------------------------------------------

# -- regularisation that follows the planned passes ----------------------------------------------

def test_regularization_follows_the_planned_passes():
    (p0, drop0, wd0), (p1, drop1, wd1) = REGULARIZATION
    assert regularization(0.3) == regularization(p0) == {"dropout": drop0, "weight_decay": wd0}
    assert regularization(40) == regularization(p1) == {"dropout": drop1, "weight_decay": wd1}
    assert regularization(None) == regularization(p1)     # unknown: today's many-pass defaults
    middle = regularization(math.sqrt(p0 * p1))            # halfway in log(passes)
    assert middle["weight_decay"] == pytest.approx((wd0 + wd1) / 2, abs=1e-3)
    values = [regularization(p)["weight_decay"] for p in (1, 2, 4, 8, 14)]
    assert values == sorted(values) and len(set(values)) == 5


def test_planned_passes_from_each_budget():
    model = default_model().replace(vocab_size=4096)
    per_step = 16 * 128
    cfg = TrainConfig(model=model, max_steps=100)
    assert planned_passes(cfg, 204_800, per_step) == pytest.approx(1.0)
    assert planned_passes(TrainConfig(model=model, epochs=3), 204_800, per_step) == \
        pytest.approx(3.0, rel=0.01)
    assert planned_passes(TrainConfig(model=model, max_tokens=409_600), 204_800, per_step) == 2
    # a time budget: seconds × the assumed speed; 10 CPU minutes over the README's 160 K tokens
    # is many passes (measured: ~15), over TinyStories' 470 M tokens far below one
    timed = TrainConfig(model=model, max_time=600)
    assert 8 < planned_passes(timed, 160_000, per_step) < 25
    assert planned_passes(timed, 470_000_000, per_step) < 0.01
    assert planned_passes(TrainConfig(model=model, max_time=600, max_steps=10), 160_000,
                          per_step) == pytest.approx(10 * per_step / 160_000)


def test_resolve_fills_only_what_was_left_to_it():
    cpu = torch.device("cpu")
    cfg = TrainConfig(max_steps=100)                      # weight decay left to the run
    assert cfg.weight_decay is None
    assert cfg.resolve(cpu).weight_decay == regularization(None)["weight_decay"]
    one_pass = cfg.resolve(cpu, num_train_tokens=100 * 16 * 128)
    assert one_pass.weight_decay == regularization(1.0)["weight_decay"]
    assert one_pass.model.residual_dropout == regularization(1.0)["dropout"]
    assert replace(cfg, weight_decay=0.5).resolve(cpu, 1000).weight_decay == 0.5
    given = replace(cfg, model=default_model().replace(residual_dropout=0.3))
    assert given.resolve(cpu, 1000).model.residual_dropout == 0.3             # given: kept
    auto = cfg                                             # tinyllm train's model: dropout None
    many = auto.resolve(cpu, num_train_tokens=1000)       # 100 steps over 1,000 tokens
    assert many.model.residual_dropout == many.model.embedding_dropout == \
        regularization(200.0)["dropout"]
    assert auto.resolve(cpu, num_train_tokens=10**9).model.residual_dropout == \
        regularization(0.01)["dropout"]
