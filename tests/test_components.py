"""The components of newer models — rotary positions, RMSNorm, SwiGLU and ReLU² MLPs, QK-norm,
bias-free linears, a logit soft-cap, zero-initialised projections — each against its reference
twin (``check_*`` below: the largest absolute difference, like the rows of ``tinyllm.check``),
and what a parity row cannot say: that a wrong convention fails, that the key/value cache stays
exact, the warmup-stable-decay schedule, and the regularisation that follows the planned passes."""
import math
from dataclasses import replace

import pytest
import torch

from tinyllm import hf, llama
from tinyllm.check.common import T, max_diff as diff, randomize, small_config as config
from tinyllm.check.modern import (check_attention_rotary, check_llama_block, check_llama_model,
                                  check_swiglu, llama_config)
from tinyllm.cli import build_parser, config_changes
from tinyllm.components import parts
from tinyllm.config import Config
from tinyllm.errors import TinyLLMError
from tinyllm.model import GPT
from tinyllm.nn import GatedMLP, Rotary, apply_rotary, rotate_half
from tinyllm.schedule import lr_at
from tinyllm.train_config import (REGULARIZATION, TrainConfig, default_model, gpt_neo_model,
                                  llama_model, planned_passes, regularization)

transformers = pytest.importorskip("transformers")

TOL = 1e-5        # one component, fp32
TOL_MODEL = 1e-4  # a whole block or model


# -- the checks can fail ------------------------------------------------------------------------

def _interleaved(x, cos, sin):
    """Rotary with the other convention, pairs (2i, 2i+1) (Meta's, GPT-J's)."""
    d = x.shape[-1]
    cos, sin = (t[..., :d // 2].repeat_interleave(2, dim=-1).to(x.dtype) for t in (cos, sin))
    pairs = torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)
    return x * cos + pairs * sin


@pytest.mark.parametrize("run", [check_attention_rotary, check_llama_block, check_llama_model])
def test_interleaved_rotary_fails_the_checks(monkeypatch, run):
    torch.manual_seed(0)
    with torch.no_grad():
        assert run(parts()) <= TOL_MODEL
    monkeypatch.setattr("tinyllm.nn.attention.apply_rotary", _interleaved)
    torch.manual_seed(0)
    with torch.no_grad():
        assert run(parts()) > 1e-3


def test_swapped_gate_and_up_fails_the_swiglu_check(monkeypatch):
    def swapped(self, x):
        gate, up = self.c_fc(x).chunk(2, dim=-1)
        return self.c_proj(self.act(up) * gate)
    monkeypatch.setattr(GatedMLP, "forward", swapped)
    with torch.no_grad():
        assert check_swiglu(parts()) > 1e-3


def test_rotate_half_is_a_quarter_turn_of_each_pair():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert rotate_half(x).tolist() == [-3.0, -4.0, 1.0, 2.0]
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    rotary = Rotary(8)
    # q·k depends only on the distance: positions (7, 3) score as (4, 0)
    score = lambda m, n: (apply_rotary(q, *rotary(m, 1)) * apply_rotary(k, *rotary(n, 1))).sum()
    assert abs(score(7, 3) - score(4, 0)) < 1e-5
    assert abs(score(7, 3) - score(7, 4)) > 1e-4


# -- the model with the new components ---------------------------------------------------------

def test_zero_init_starts_every_block_as_the_identity():
    c = config(zero_init=True)
    torch.manual_seed(0)
    model = GPT(None, c).eval()
    for block in model.blocks:
        assert block.attn.out_proj.weight.abs().max() == 0 == block.mlp.c_proj.weight.abs().max()
    ids = torch.randint(0, 97, (2, T))
    embedded = model.wte(ids) + model.wpe(torch.arange(T))
    assert diff(model(ids), model.unembed(embedded)) == 0.0
    # and the gradient still reaches the projections (they do not stay at zero)
    model.train().loss(ids[:, :-1], ids[:, 1:]).backward()
    assert model.blocks[0].attn.out_proj.weight.grad.abs().max() > 0


def test_softcap_bounds_the_logits_and_both_loss_paths_agree():
    c = config(logit_softcap=2.0)
    model = randomize(GPT(None, c), std=0.5)
    ids = torch.randint(0, 97, (2, T))
    with torch.no_grad():
        logits = model(ids)
        assert logits.abs().max() < 2.0
        plain = GPT(None, c.replace(logit_softcap=None)).eval()
        plain.load_state_dict(model.state_dict())
        assert plain(ids).abs().max() > 2.0                 # the cap is what bounds them
        explicit = GPT(None, c.replace(explicit=True)).eval()
        explicit.load_state_dict(model.state_dict())
        fused = model.loss(ids[:, :-1], ids[:, 1:])
        assert abs(fused - explicit.loss(ids[:, :-1], ids[:, 1:])) < TOL


def test_learned_positions_are_gone_with_rotary():
    model = GPT(None, llama_config())
    assert model.wpe is None and not any("wpe" in k for k in model.state_dict())
    assert not any(k.endswith(".bias") for k in model.state_dict())        # bias-free
    assert model.blocks[0].mlp.c_fc.weight.shape == (2 * 88, 32)          # [W_gate; W_up]
    # past the positions it was built for: one clear error, as with learned positions
    with pytest.raises(TinyLLMError, match="exceeds max_position_embeddings"):
        model(torch.zeros(1, 65, dtype=torch.long))


def test_gated_mlp_keeps_about_the_parameters_of_the_plain_one():
    for C in (32, 48, 128, 256):
        plain, gated = Config(hidden_size=C, num_heads=4), Config(hidden_size=C, num_heads=4,
                                                                 mlp="gated")
        assert gated.mlp_size % 8 == 0 and gated.mlp_size >= 8 * C / 3
        assert abs(3 * gated.mlp_size - 2 * plain.mlp_size) <= 24
    assert Config(mlp="gated", intermediate_size=100).mlp_size == 100


@pytest.mark.parametrize("arch", ["gpt-neo", "llama"])
def test_every_component_trains_and_generates_exactly(arch):
    """A few optimizer steps with every new switch on (Muon + AdamW): the loss falls, and greedy
    generation through the cache equals recomputing the whole sequence each token."""
    from tinyllm.train import fit
    extra = dict(qk_norm=True, logit_softcap=15.0, zero_init=True, activation="relu2")
    c = (llama_config if arch == "llama" else config)(**extra, residual_dropout=0.1)
    torch.manual_seed(0)
    model = GPT(None, c)
    tokens = torch.randint(0, 20, (2000,)).numpy()        # a small vocabulary to learn
    out = fit(model, tokens, None, TrainConfig(max_steps=25, batch_size=8, lr=1e-2, warmup_steps=2,
                                               log_every=1, device="cpu"))
    losses = [r["loss"] for r in out["metrics"] if "loss" in r]
    assert losses[-1] < losses[0] - 0.5
    model.eval()
    prompt = torch.randint(0, 97, (1, 3))
    generated = model.generate(prompt, max_new_tokens=8, temperature=0, eos_token_id=None)
    ids = prompt
    with torch.no_grad():
        for _ in range(8):
            ids = torch.cat([ids, model(ids)[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(generated, ids)


# -- configuration: fields, flags, presets -----------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    (dict(position="alibi"), "position must be one of learned, rotary"),
    (dict(norm="batchnorm"), "norm must be one of layernorm, rmsnorm"),
    (dict(mlp="moe"), "mlp must be one of plain, gated"),
    (dict(bias="no"), "bias must be true or false"),
    (dict(qk_norm=1), "qk_norm must be true or false"),
    (dict(logit_softcap=0.0), "logit_softcap must be a positive number"),
    (dict(rope_theta=0.5), "rope_theta must be a number above 1"),
    (dict(position="rotary", hidden_size=36, num_heads=4), "head size .* must be even"),
    (dict(activation="relu3"), "unknown activation 'relu3'"),
])
def test_new_fields_are_validated(changes, message):
    with pytest.raises(TinyLLMError, match=message):
        Config(**changes)


def test_every_component_is_a_train_flag():
    args = build_parser().parse_args([
        "train", "--position", "rotary", "--rope-theta", "500", "--norm", "rmsnorm", "--mlp",
        "gated", "--activation", "relu2", "--no-bias", "--qk-norm", "--logit-softcap", "15",
        "--zero-init", "--schedule", "wsd", "--cooldown", "0.3"])
    cfg = replace(TrainConfig(), **config_changes(args, TrainConfig()))
    m = cfg.model
    assert (m.position, m.rope_theta, m.norm, m.mlp, m.activation, m.bias, m.qk_norm,
            m.logit_softcap, m.zero_init) == ("rotary", 500.0, "rmsnorm", "gated", "relu2",
                                               False, True, 15.0, True)
    assert (cfg.schedule, cfg.cooldown) == ("wsd", 0.3)
    assert TrainConfig().model == default_model()              # the default is unchanged
    assert Config().position == "learned" and Config().bias and Config().norm == "layernorm"
    # tinyllm train's default: GPT-Neo's components with rotary positions (the ladder's winner)
    assert default_model() == gpt_neo_model().replace(position="rotary")


def test_arch_llama_is_the_llama_preset_with_flags_on_top(tmp_path, capsys):
    from tinyllm.cli import main
    assert not llama.incompatibilities(llama_model())
    assert not hf.incompatibilities(gpt_neo_model())
    neo = gpt_neo_model()
    assert llama_model().replace(position="learned", norm="layernorm", mlp="plain",
                                 activation="gelu_new", bias=True,
                                 attention_layers=neo.attention_layers) == neo
    assert main(["train", "--resume", str(tmp_path), "--arch", "llama"]) == 1
    assert "--arch sets up a new model" in capsys.readouterr().err
    assert main(["train", "--arch", "llama", "--layers", "1", "--hidden", "32", "--heads", "4",
                 "--context", "16", "--max-steps", "2", "--eval-every", "0", "--quiet",
                 "--out", str(tmp_path / "run")]) == 0
    saved = GPT.from_pretrained(tmp_path / "run").config
    assert saved.residual_dropout == saved.embedding_dropout == 0.0   # 2 steps: a fraction of a pass
    assert saved == llama_model().replace(num_layers=1, hidden_size=32, num_heads=4,
                                          context_size=16, vocab_size=saved.vocab_size,
                                          residual_dropout=0.0)


# -- warmup-stable-decay ----------------------------------------------------------------------

def test_wsd_holds_the_peak_then_falls_in_a_straight_line():
    cfg = TrainConfig(schedule="wsd", lr=1.0, min_lr=0.1, warmup_steps=10, cooldown=0.25)
    lrs = [lr_at(s, cfg, decay_steps=110) for s in range(110)]      # 100 steps after warmup
    assert lrs[4] == pytest.approx(0.5) and lrs[9] == 1.0             # linear warmup
    assert set(lrs[10:85]) == {1.0}                                   # stable: 75 % of the rest
    cooldown = lrs[85:]
    assert all(a > b for a, b in zip(cooldown, cooldown[1:]))         # falling ...
    steps = [b - a for a, b in zip(cooldown, cooldown[1:])]
    assert max(steps) - min(steps) < 1e-9                             # ... in a straight line
    assert lr_at(110, cfg, 110) == pytest.approx(0.1)                 # to min_lr at the end
    # a time budget: the cooldown starts at 75 % of the time
    assert lr_at(50, cfg, None, progress=0.7) == 1.0
    assert lr_at(50, cfg, None, progress=0.9) == pytest.approx(0.1 + 0.9 * 0.4)
    with pytest.raises(TinyLLMError, match="--cooldown"):
        TrainConfig(cooldown=0.0)


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
