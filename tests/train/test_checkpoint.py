"""Checkpoints (tinyllm.train.checkpoint, tinyllm.formats.directory): model directories, full training state, exact resume,
atomic writes, and no unpickling."""
import json
import os
import pickle

import pytest
import torch

from tinyllm.train import checkpoint
from tinyllm.train.checkpoint import optimizer_state_from_flat, optimizer_state_to_flat
from tinyllm.formats import is_model_dir as is_checkpoint, save_model
from tinyllm.formats.directory import read_model_dir
from tinyllm.model.config import Config
from tinyllm.errors import TinyLLMError
from tinyllm.model import GPT
from tinyllm.tokenizer import Tokenizer
from tinyllm.train import TrainConfig, fit

from tests.conftest import patterned_tokens, tiny_model


def test_save_and_load_model_with_its_tokenizer(tmp_path):
    tok = Tokenizer("builtin")
    torch.manual_seed(0)
    model = GPT(tok, Config(hidden_size=32, embedding_size=32, num_layers=2, num_heads=4,
                            context_size=16, attention="scaled", window_size=8,
                            attention_layers=["global", "local"]))
    assert not is_checkpoint(tmp_path / "m")
    model.save_pretrained(tmp_path / "m")
    assert is_checkpoint(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["tinyllm"]["attention_layers"] == ["global", "local"]
    loaded = GPT.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config
    assert loaded.tokenizer.fingerprint == tok.fingerprint
    ids = torch.tensor([tok.encode("Once upon a time")])
    torch.testing.assert_close(loaded.eval()(ids), model.eval()(ids), rtol=0, atol=0)
    # saving again into the existing directory replaces the weights, keeps other files
    (tmp_path / "m" / "notes.txt").write_text("mine")
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    save_model(model, tmp_path / "m")
    assert torch.equal(GPT.from_pretrained(tmp_path / "m").lm_head.weight, model.lm_head.weight)
    assert (tmp_path / "m" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "m").iterdir() if p.name.startswith(".")) == []


def test_a_model_saved_with_a_kernel_choice_still_loads(tmp_path):
    """Older configs saved how the layers computed (``explicit``); it is chosen at run time now
    (tinyllm.model.nn.formulas) and left out when such a config is read."""
    model = tiny_model()
    model.save_pretrained(tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "config.json").read_text())
    meta["tinyllm"]["explicit"] = True
    (tmp_path / "old" / "config.json").write_text(json.dumps(meta))
    (tmp_path / "old" / "checksums.json").unlink()     # older tinyllm wrote none
    loaded = GPT.from_pretrained(tmp_path / "old")
    assert loaded.config == model.config
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_tied_head_stays_tied_through_training_and_loading(tmp_path):
    torch.manual_seed(0)
    c = dict(hidden_size=32, embedding_size=32, num_layers=2, num_heads=4, context_size=16,
             attention="scaled", vocab_size=300)
    model = GPT(None, Config(**c, tie_embeddings=True))
    assert model.lm_head.weight is model.wte.weight
    assert model.num_parameters() == GPT(None, Config(**c)).num_parameters() - 300 * 32
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.randint(0, 300, (4, 17))
    model.loss(ids[:, :-1], ids[:, 1:]).backward()
    opt.step()
    model.save_pretrained(tmp_path / "m")
    loaded = GPT.from_pretrained(tmp_path / "m")
    assert loaded.config.tie_embeddings and loaded.lm_head.weight is loaded.wte.weight
    assert torch.equal(loaded.wte.weight, model.wte.weight)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt_neo"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert not is_checkpoint(tmp_path) and not is_checkpoint(tmp_path / "nope")
    with pytest.raises(TinyLLMError, match="not a tinyllm checkpoint"):
        read_model_dir(tmp_path)


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_pickle_in_place_of_weights_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_model().save_pretrained(tmp_path / "m")
    with open(tmp_path / "m" / "model.safetensors", "wb") as f:
        pickle.dump({"wte.weight": _Boom()}, f)
    with pytest.raises(TinyLLMError, match="safetensors"):
        GPT.from_pretrained(tmp_path / "m")
    assert not (tmp_path / "PWNED").exists()


def test_optimizer_state_round_trip():
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.loss(torch.randint(0, 97, (2, 8)), torch.randint(0, 97, (2, 8))).backward()
    opt.step()
    tensors, meta = optimizer_state_to_flat(opt.state_dict())
    json.dumps(meta)                                              # plain JSON, no objects
    back = optimizer_state_from_flat(tensors, json.loads(json.dumps(meta)))
    fresh = torch.optim.AdamW(tiny_model().parameters(), lr=5.0)
    fresh.load_state_dict(back)
    a, b = opt.state_dict(), fresh.state_dict()
    assert b["param_groups"][0]["lr"] == 1e-3
    for i, st in a["state"].items():
        for k, v in st.items():
            assert torch.equal(v, b["state"][i][k])


def test_training_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    tokens = patterned_tokens(2000)
    cfg = TrainConfig(max_steps=2, batch_size=2, log_every=1, device="cpu")
    fit(tiny_model(), tokens, None, cfg, out_dir=tmp_path / "run")
    before = json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())
    real = checkpoint.write_safetensors

    def fail_on_optimizer(tensors, path, *a, **k):
        if str(path).endswith("optimizer.safetensors"):
            raise OSError("disk full")
        return real(tensors, path, *a, **k)

    monkeypatch.setattr(checkpoint, "write_safetensors", fail_on_optimizer)
    with pytest.raises(OSError, match="disk full"):
        fit(tiny_model(), tokens, None, TrainConfig(max_steps=4, batch_size=2, device="cpu"),
            out_dir=tmp_path / "run", resume_from=tmp_path / "run")
    after = json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())
    assert after == before                                         # the old state, whole
    assert checkpoint.is_training_checkpoint(tmp_path / "run" / "last")
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("accum, optimizer", [(1, "adamw"), (2, "adamw"), (1, "muon")])
def test_resume_gives_the_same_run(tmp_path, accum, optimizer):
    """N steps straight == N/2 steps, save, resume, N/2 more (dropout on: RNG state too).
    Weight decay is set: left to default it follows the planned passes, which differ."""
    tokens, val = patterned_tokens(3000), patterned_tokens(300, seed=1)
    N = 8
    base = dict(batch_size=4, grad_accum=accum, optimizer=optimizer, decay_steps=N, weight_decay=0.1,
                warmup_steps=2, log_every=1, eval_every=3, device="cpu", seed=5)
    straight = fit(tiny_model(seed=1, dropout=0.1), tokens, val, TrainConfig(max_steps=N, **base),
                   out_dir=tmp_path / "a")
    fit(tiny_model(seed=1, dropout=0.1), tokens, val, TrainConfig(max_steps=N // 2, **base),
        out_dir=tmp_path / "b")
    resumed = fit(tiny_model(seed=99, dropout=0.1), tokens, val, TrainConfig(max_steps=N, **base),
                  out_dir=tmp_path / "b", resume_from=tmp_path / "b")
    rows_a = [r for r in straight["metrics"] if "loss" in r]
    rows_b = [r for r in resumed["metrics"] if "loss" in r]
    assert [r["step"] for r in rows_b] == list(range(1, N + 1))
    for a, b in zip(rows_a, rows_b):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6), (a, b)
        assert a["lr"] == b["lr"]
    m_a, m_b = GPT.from_pretrained(tmp_path / "a" / "last"), GPT.from_pretrained(tmp_path / "b" / "last")
    for (name, p), q in zip(m_a.named_parameters(), m_b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines if "loss" in json.loads(x)] == list(range(1, N + 1))
