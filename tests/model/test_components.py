"""The components of newer models — rotary positions, RMSNorm, SwiGLU and ReLU² MLPs, QK-norm,
bias-free linears, a logit soft-cap, zero-initialised projections — each against its reference
twin (``check_*`` below: the largest absolute difference, like the rows of ``tinyllm.check``),
and what a parity row cannot say: that a wrong convention fails, that the key/value cache stays
exact, and the validation of their fields."""
import pytest
import torch

from tinyllm.check.common import T, max_diff as diff, randomize, small_config as config
from tinyllm.check.implementations import parts
from tinyllm.check.modern import (check_attention_rotary, check_llama_block, check_llama_model,
                                  check_swiglu, llama_config)
from tinyllm.errors import TinyLLMError
from tinyllm.model import GPT
from tinyllm.model.config import Config
from tinyllm.model.nn import GatedMLP, Rotary, activate, apply_rotary, formulas, rotate_half
from tinyllm.train import TrainConfig

from tests.conftest import TOL, TOL_MODEL

transformers = pytest.importorskip("transformers")


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
    monkeypatch.setattr("tinyllm.model.nn.rotary.apply_rotary", _interleaved)
    torch.manual_seed(0)
    with torch.no_grad():
        assert run(parts()) > 1e-3


def test_swapped_gate_and_up_fails_the_swiglu_check(monkeypatch):
    def swapped(self, x):
        gate, up = self.c_fc(x).chunk(2, dim=-1)
        return self.c_proj(activate(self.activation, up) * gate)
    monkeypatch.setattr(GatedMLP, "forward", swapped)
    with torch.no_grad():
        assert check_swiglu(parts()) > 1e-3


def test_rotate_half_is_a_quarter_turn_of_each_pair():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert rotate_half(x).tolist() == [-3.0, -4.0, 1.0, 2.0]
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    rotary = Rotary(8)
    # q·k depends only on the distance: positions (7, 3) score as (4, 0)
    score = lambda m, n: (apply_rotary(q, *rotary.tables(m, 1))
                          * apply_rotary(k, *rotary.tables(n, 1))).sum()
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
        fused = model.loss(ids[:, :-1], ids[:, 1:])
        with formulas():
            written_out = model.loss(ids[:, :-1], ids[:, 1:])
        assert abs(fused - written_out) < TOL


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


