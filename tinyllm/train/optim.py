"""The optimizers of ``tinyllm train``.

* AdamW over two parameter groups: the Linear layers' weight matrices (decayed) and the rest.
* Muon (``--optimizer muon``) for the 2-D weight matrices inside the transformer blocks, with
  AdamW for the embeddings, the vocabulary head, biases and LayerNorms. For a matrix W with
  gradient G, momentum μ, learning rate η and decay λ:

      B ← μ B + (1 - μ) G              momentum (an exponential average)
      U = (1 - μ) G + μ B              Nesterov: look one step ahead
      O = NS₅(U / ‖U‖_F) ≈ U' V'ᵀ     U's singular values pushed toward 1 (Newton–Schulz, 5 steps)
      W ← W (1 - η λ) - η · 0.2 √max(m, n) · O

  so every direction of the update moves by about the same amount; 0.2 √max(m, n) gives O the
  root-mean-square of an AdamW update (Moonshot's "match_rms_adamw"), so one learning rate and
  weight decay serve both optimizers. Newton–Schulz is 5 iterations of the odd quintic
  X ← a X + (b A + c A²) X with A = X Xᵀ, (a, b, c) = (3.4445, -4.7750, 2.0315) (Keller Jordan).
  Reference twin: ``torch.optim.Muon(adjust_lr_fn="match_rms_adamw")`` (tests/test_optim.py); it
  always iterates in bfloat16, which is 20× slower than float32 on CPUs without bf16 units, so
  ours iterates in float32 on the CPU and bfloat16 on a GPU.
"""
import math

import torch
from torch import nn

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: torch.Tensor, steps: int = 5, dtype=torch.float32, eps: float = 1e-7):
    """NS₅(g): about U Vᵀ for g = U S Vᵀ (singular values land in roughly [0.7, 1.2])."""
    a, b, c = NS_COEFFICIENTS
    x = g.to(dtype)
    if g.size(0) > g.size(1):        # iterate on the wide orientation: the Gram matrix is small
        x = x.T
    x = x / x.norm().clamp(min=eps)  # spectral norm ≤ Frobenius norm = 1: inside NS's range
    for _ in range(steps):
        gram = x @ x.T                                    # (m, m), m = the smaller side
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    if g.size(0) > g.size(1):
        x = x.T
    return x.to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Muon for 2-D parameters (see the module docstring). ``ns_dtype`` None: float32 on the
    CPU, bfloat16 elsewhere."""

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.1,
                 momentum: float = 0.95, ns_steps: int = 5, ns_dtype=None):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                                      ns_steps=ns_steps))
        self.ns_dtype = ns_dtype
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon takes 2-D matrices only, got shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, mu = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - mu)
                update = p.grad.lerp(buf, mu)
                dtype = self.ns_dtype or (torch.float32 if p.device.type == "cpu"
                                          else torch.bfloat16)
                update = orthogonalize(update, group["ns_steps"], dtype)
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(update, alpha=-lr * 0.2 * math.sqrt(max(p.shape)))


class Optimizers:
    """Several optimizers over disjoint parameters, stepped (and saved) as one.

    ``state_dict()`` has the usual ``torch.optim`` layout, the parts' parameter indices numbered
    on, so a checkpoint stores it like any single optimizer's."""

    def __init__(self, *parts):
        self.parts = parts

    @property
    def param_groups(self) -> list[dict]:
        return [g for part in self.parts for g in part.param_groups]

    def step(self):
        for part in self.parts:
            part.step()

    def zero_grad(self, set_to_none: bool = True):
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        state, groups, offset = {}, [], 0
        for part in self.parts:
            sd = part.state_dict()
            state.update({i + offset: s for i, s in sd["state"].items()})
            groups += [{**g, "params": [i + offset for i in g["params"]]}
                       for g in sd["param_groups"]]
            offset += sum(len(g["params"]) for g in sd["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict):
        groups, offset = list(sd["param_groups"]), 0
        for part in self.parts:
            mine, groups = groups[:len(part.param_groups)], groups[len(part.param_groups):]
            n = sum(len(g["params"]) for g in mine)
            part.load_state_dict({
                "state": {i - offset: s for i, s in sd["state"].items()
                          if offset <= i < offset + n},
                "param_groups": [{**g, "params": [i - offset for i in g["params"]]} for g in mine]})
            offset += n


def param_groups(model: nn.Module, weight_decay: float, exclude: set = frozenset()) -> list[dict]:
    """Two AdamW groups: the weight matrices of ``nn.Linear`` layers (decayed) and everything
    else — biases, LayerNorm scales/shifts, token and position embeddings (not decayed);
    parameters whose id is in ``exclude`` are left out (another optimizer has them).

    Decay pulls weights toward 0 at every step. Embedding rows are only updated when their
    token (position) appears, so decaying them would shrink rare tokens' vectors between uses;
    nanoGPT decays them too, minGPT and most recipes since do not. We follow minGPT."""
    decay = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in exclude]
    return [{"params": [p for p in params if id(p) in decay], "weight_decay": weight_decay},
            {"params": [p for p in params if id(p) not in decay], "weight_decay": 0.0}]


def block_matrices(model: nn.Module) -> set:
    """ids of the weight matrices of the Linear layers inside the transformer blocks: the ones
    Muon takes. Embeddings and the vocabulary head stay with AdamW, as Muon's authors advise."""
    return {id(m.weight) for block in model.blocks for m in block.modules()
            if isinstance(m, nn.Linear)}


def make_optimizer(model: nn.Module, cfg, device: torch.device, muon=None):
    """The optimizer ``cfg`` (a TrainConfig, its weight decay given or resolved by the run's
    plan) names: 'adamw', 'muon' (+ AdamW) or plain 'adam' (as the blog series trains);
    Adam/AdamW fused on CUDA/CPU where this torch has it. ``muon(params, lr=, weight_decay=)``
    builds the Muon part (default ``Muon``: ``tinyllm check --train`` passes a learner's)."""
    if cfg.weight_decay is None:
        raise ValueError("make_optimizer takes a planned run's configuration (tinyllm.train.plan): "
                         "its weight_decay is still None")
    kwargs = dict(lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    if device.type in ("cuda", "cpu"):
        kwargs["fused"] = True
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), **kwargs)
    matrices = block_matrices(model) if cfg.optimizer == "muon" else set()
    groups = param_groups(model, cfg.weight_decay, exclude=matrices)
    try:
        adamw = torch.optim.AdamW(groups, **kwargs)
    except (RuntimeError, TypeError):   # no fused kernel here: the multi-tensor one
        kwargs.pop("fused")
        adamw = torch.optim.AdamW(groups, foreach=True, **kwargs)
    if not matrices:
        return adamw
    muon = (muon or Muon)([p for p in model.parameters() if id(p) in matrices], lr=cfg.lr,
                          weight_decay=cfg.weight_decay)
    return Optimizers(muon, adamw)


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def set_weight_decay(optimizer, weight_decay: float) -> None:
    """The weight decay of the groups that decay (the others keep 0)."""
    for group in optimizer.param_groups:
        if group.get("weight_decay"):
            group["weight_decay"] = weight_decay
