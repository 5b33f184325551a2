"""Training (tinyllm.train): the blog series' Trainer, and the real loop behind `tinyllm train`."""
import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tinyllm.model.config import Config
from tinyllm.model import GPT
from tinyllm.train import TrainConfig, Trainer, fit
from tinyllm.train.loop import optimizer_step
from tinyllm.train.optim import param_groups
from tinyllm.train.schedule import lr_at, steps_for

from tests.conftest import patterned_tokens, tiny_model
from tinyllm.train.config import DEFAULT_MAX_STEPS

def test_brief_trainer_still_works(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model = tiny_model()
    data = torch.from_numpy(patterned_tokens(17 * 24)[:17 * 24].astype(np.int64)).view(24, 17)
    loader = DataLoader(data, batch_size=4, shuffle=True)
    trainer = Trainer(model, loader, epochs=2)
    trainer.train()
    assert len(trainer.losses) == 2 * len(loader)
    assert (tmp_path / "1.torch").is_file() and (tmp_path / "2.torch").is_file()
    state = torch.load(tmp_path / "2.torch", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    out = capsys.readouterr()
    assert "Epoch 0: " in out.out and "Epoch 1: " in out.out
    assert "Loss: " in out.err
    # the brief's optimizer: Adam, lr 1e-3, no decay, constant
    assert trainer.config.optimizer == "adam" and trainer.config.lr == 1e-3
    with pytest.raises(TypeError):
        Trainer(model, loader, epochs=1, learning_rate=1)


def test_brief_trainer_takes_train_config_extras(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tiny_model()
    data = torch.from_numpy(patterned_tokens(17 * 16).astype(np.int64)).view(16, 17)
    trainer = Trainer(model, DataLoader(data, batch_size=4), epochs=1, optimizer="adamw",
                      lr=3e-3, warmup_steps=2, clip=1.0, grad_accum=2)
    trainer.train()
    assert len(trainer.losses) == 2        # 4 batches, 2 per optimizer step


def test_fit_learns_the_builtin_corpus(tmp_path, monkeypatch):
    from tinyllm.data.sources import sample_corpus_path
    from tinyllm.data.tokens import prepare, token_byte_lengths
    from tinyllm.tokenizer import Tokenizer
    monkeypatch.setenv("TINYLLM_HOME", str(tmp_path))
    tok = Tokenizer("builtin")
    train, val = prepare(sample_corpus_path(), tok).split(0.05)
    torch.manual_seed(0)
    model = GPT(tok, Config(hidden_size=32, embedding_size=32, num_layers=2, num_heads=4,
                            context_size=32, attention="scaled"))
    cfg = TrainConfig(max_steps=40, batch_size=8, warmup_steps=5, lr=1e-2, eval_every=20,
                      log_every=1, device="cpu")
    r = fit(model, train, val, cfg, byte_lengths=token_byte_lengths(tok))
    losses = [m["loss"] for m in r["metrics"] if "loss" in m]
    vals = [m["val_loss"] for m in r["metrics"] if "val_loss" in m]
    assert r["steps"] == 40 and len(losses) == 40 and len(vals) == 2
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0
    assert vals[-1] < math.log(tok.vocab_size) - 1.0
    assert 0 < r["final"]["val_bpb"] < 8


def test_lr_schedule_shape():
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10)
    lrs = [lr_at(s, cfg, 100) for s in range(110)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)     # linear warmup
    assert all(b > a for a, b in zip(lrs[:9], lrs[1:10]))
    assert all(b <= a for a, b in zip(lrs[10:], lrs[11:]))                   # then only down
    assert lrs[55] == pytest.approx(0.55)                                    # cosine midpoint
    assert lrs[100] == pytest.approx(0.1) and lrs[109] == pytest.approx(0.1)  # floor
    assert TrainConfig(lr=2.0).min_lr is None and lr_at(10**6, TrainConfig(lr=2.0), 10) == 0.2
    # a time budget: the decay follows the fraction of time used
    assert lr_at(50, cfg, None, progress=0.5) == pytest.approx(0.55)
    assert lr_at(5, TrainConfig(lr=1.0, warmup_steps=0, schedule="constant"), 10) == 1.0


def test_weight_decay_only_on_linear_matrices():
    model = tiny_model()
    decayed, plain = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed_names = {names[id(p)] for p in decayed["params"]}
    plain_names = {names[id(p)] for p in plain["params"]}
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert "lm_head.weight" in decayed_names and "blocks.0.attn.qkv.weight" in decayed_names
    assert {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias",
            "blocks.0.mlp.c_fc.bias"} <= plain_names
    assert all(model.get_parameter(n).dim() == 2 for n in decayed_names)
    assert len(decayed_names) + len(plain_names) == len(list(model.parameters()))


def test_grad_accumulation_equals_one_big_batch():
    batch = torch.from_numpy(patterned_tokens(8 * 17).astype(np.int64)).view(8, 17)
    cfg = TrainConfig(clip=0.0, device="cpu", precision="fp32")
    results = []
    for micro in ([batch], [batch[:4], batch[4:]]):
        model = tiny_model()
        sgd = torch.optim.SGD(model.parameters(), lr=1.0)   # params - grad: shows the gradient
        loss, _ = optimizer_step(model.loss, sgd, micro, cfg, torch.device("cpu"),
                                 list(model.parameters()))
        results.append((loss.item(), [p.detach().clone() for p in model.parameters()]))
    (l1, p1), (l2, p2) = results
    assert l1 == pytest.approx(l2, rel=1e-6)
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_budgets_stop_where_they_should():
    tokens = patterned_tokens(3000)
    per_step = 4 * 2 * 16                                     # batch × accum × context
    assert steps_for(TrainConfig(max_steps=7), per_step, 3000) == 7
    assert steps_for(TrainConfig(max_tokens=1000), per_step, 3000) == math.ceil(1000 / per_step)
    assert steps_for(TrainConfig(epochs=1), per_step, 3000) == math.ceil(3000 / per_step)
    assert steps_for(TrainConfig(epochs=1, max_steps=3), per_step, 3000) == 3
    assert steps_for(TrainConfig(max_time=5), per_step, 3000) is None

    cfg = dict(batch_size=4, grad_accum=2, log_every=1, warmup_steps=0, device="cpu")
    r = fit(tiny_model(), tokens, None, TrainConfig(max_tokens=1000, **cfg))
    assert r["steps"] == math.ceil(1000 / per_step) and r["tokens"] == r["steps"] * per_step
    r = fit(tiny_model(), tokens, None, TrainConfig(epochs=0.5, **cfg))
    assert r["steps"] == math.ceil(1500 / per_step)
    r = fit(tiny_model(), tokens, None, TrainConfig(max_time=0.3, **cfg))
    assert r["steps"] >= 1 and 0.3 <= r["seconds"] < 3
    # no budget at all: the default one, as `tinyllm train` with no budget flag
    assert steps_for(TrainConfig(), per_step, 3000) == DEFAULT_MAX_STEPS


def test_same_seed_same_run():
    tokens = patterned_tokens(3000)
    runs = []
    for _ in range(2):
        cfg = TrainConfig(max_steps=6, batch_size=4, log_every=1, seed=7, device="cpu")
        r = fit(tiny_model(seed=3, dropout=0.1), tokens, tokens[:500], cfg)
        runs.append([m.get("loss", m.get("val_loss")) for m in r["metrics"]])
    assert runs[0] == runs[1]
    other = fit(tiny_model(seed=3, dropout=0.1), tokens, None,
                TrainConfig(max_steps=6, batch_size=4, log_every=1, seed=8, device="cpu"))
    assert [m["loss"] for m in other["metrics"]] != runs[0][:6]
