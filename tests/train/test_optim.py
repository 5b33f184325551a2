"""Optimizers (tinyllm.optim): Muon against its reference twin torch.optim.Muon, the math of
its Newton–Schulz step, which parameters each optimizer gets, and saving a Muon + AdamW pair."""
import json

import pytest
import torch

from tinyllm.train.checkpoint import optimizer_state_from_flat, optimizer_state_to_flat
from tinyllm.train.optim import Muon, Optimizers, make_optimizer, orthogonalize
from tinyllm.train import TrainConfig

from tests.conftest import tiny_model


@pytest.mark.parametrize("shape", [(48, 24), (24, 48), (32, 32)])
def test_muon_matches_torch_muon(shape):
    """Iterating in bfloat16 as torch does, every step equals torch.optim.Muon's exactly; in
    float32 (our CPU default) it stays within bfloat16's rounding of it."""
    torch.manual_seed(0)
    w = torch.randn(shape)
    ours, ours32, ref = (w.clone().requires_grad_() for _ in range(3))
    opts = [Muon([ours], lr=0.02, weight_decay=0.5, ns_dtype=torch.bfloat16),
            Muon([ours32], lr=0.02, weight_decay=0.5),
            torch.optim.Muon([ref], lr=0.02, weight_decay=0.5, adjust_lr_fn="match_rms_adamw")]
    for _ in range(4):
        g = torch.randn(shape)
        for p, opt in zip((ours, ours32, ref), opts):
            p.grad = g.clone()
            opt.step()
    assert torch.equal(ours, ref)
    torch.testing.assert_close(ours32, ref, rtol=0, atol=0.02 * 0.2 * max(shape) ** 0.5 * 0.05)
    assert not torch.equal(ref, w)


def test_orthogonalize_keeps_singular_vectors_and_evens_singular_values():
    """NS₅(G) = U S' Vᵀ for G = U S Vᵀ, with S' near 1 although S spans 100×."""
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(40, 40, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(24, 24, dtype=torch.float64))
    s = torch.logspace(0, -2, 24, dtype=torch.float64)
    g = (u[:, :24] * s) @ v.T                                      # (40, 24), known SVD
    o = orthogonalize(g.float()).double()
    inner = u[:, :24].T @ o @ v                                    # = S' if vectors are kept
    off = inner - torch.diag(torch.diagonal(inner))
    assert off.abs().max() < 1e-4
    assert torch.diagonal(inner).min() > 0.55 and torch.diagonal(inner).max() < 1.3
    assert torch.linalg.svdvals(g).max() / torch.linalg.svdvals(g).min() > 99


def test_muon_takes_only_matrices():
    with pytest.raises(ValueError, match="2-D"):
        Muon([torch.zeros(3, requires_grad=True)])


def test_muon_gets_the_blocks_matrices_and_adamw_the_rest():
    model = tiny_model()
    opt = make_optimizer(model, TrainConfig(optimizer="muon", weight_decay=0.3),
                         torch.device("cpu"))
    muon, adamw = opt.parts
    names = {id(p): n for n, p in model.named_parameters()}
    to_muon = {names[id(p)] for g in muon.param_groups for p in g["params"]}
    to_adamw = {names[id(p)] for g in adamw.param_groups for p in g["params"]}
    assert to_muon == {n for n, p in model.named_parameters()
                       if n.startswith("blocks.") and n.endswith("weight") and p.dim() == 2}
    assert {"wte.weight", "wpe.weight", "lm_head.weight", "ln_f.weight",
            "blocks.0.mlp.c_fc.bias"} <= to_adamw
    assert not to_muon & to_adamw
    assert len(to_muon) + len(to_adamw) == len(list(model.parameters()))
    decayed = {names[id(p)] for p in adamw.param_groups[0]["params"]}
    assert decayed == {"lm_head.weight"} and adamw.param_groups[0]["weight_decay"] == 0.3


def test_muon_and_adamw_state_round_trips_through_a_checkpoint():
    model = tiny_model()
    opt = make_optimizer(model, TrainConfig(optimizer="muon", lr=1e-3, weight_decay=2.0),
                         torch.device("cpu"))
    model.loss(torch.randint(0, 97, (2, 8)), torch.randint(0, 97, (2, 8))).backward()
    opt.step()
    tensors, meta = optimizer_state_to_flat(opt.state_dict())
    back = optimizer_state_from_flat(tensors, json.loads(json.dumps(meta)))
    fresh = make_optimizer(tiny_model(seed=1), TrainConfig(optimizer="muon", lr=5.0, weight_decay=2.0),
                           torch.device("cpu"))
    fresh.load_state_dict(back)
    for a, b in zip(opt.parts, fresh.parts):
        sa, sb = a.state_dict(), b.state_dict()
        assert [g["lr"] for g in sb["param_groups"]] == [1e-3] * len(sb["param_groups"])
        assert sa["state"].keys() == sb["state"].keys() and sa["state"]
        for i, st in sa["state"].items():
            for k, v in st.items():
                assert torch.equal(v, sb["state"][i][k]), (i, k)


def test_optimizers_step_and_zero_every_part():
    a, b = torch.ones(2, 2, requires_grad=True), torch.ones(2, requires_grad=True)
    opt = Optimizers(torch.optim.SGD([a], lr=1.0), torch.optim.SGD([b], lr=0.5))
    (a.sum() + b.sum()).backward()
    opt.step()
    assert torch.equal(a, torch.zeros(2, 2)) and torch.equal(b, torch.full((2,), 0.5))
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    assert len(opt.param_groups) == 2
