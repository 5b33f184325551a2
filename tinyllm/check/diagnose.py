"""Comparing an implementation with its reference twin, and saying why they differ: a parameter
missing, an output of the wrong shape, dtype or device, NaN, a parameter no gradient reaches
(``parity``); attention that is not causal or scaled otherwise, a LayerNorm without scale and
shift, another activation (``explain_*``)."""
from typing import Callable
import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .common import Diff, Mismatch, ReferenceAttention, max_diff, worst
from .kinds import KINDS
from .learner import blame, describe, where
from .weights import load_weights, view


# -- an implementation against its twin --------------------------------------------------

def parity(mine, ref: nn.Module, calls: list, *, kind: str | None = None, names=None,
           run_ref: Callable | None = None, explain: Callable | None = None) -> Diff:
    """Give ``mine`` (the module under test) the weights of its twin ``ref`` (``names`` maps
    ``ref``'s parameter names to tinyllm's), run both on each argument tuple of ``calls``
    (``run_ref(ref, *args)`` when the twin's output needs picking out), back-propagate the same
    random cotangent through both, and return the largest absolute difference of the outputs
    and of the gradients (of the float inputs and of every parameter).

    Gradients count relative to their largest entry, when it is above 1 (they are sums over
    the batch and the positions, so their rounding grows with them).

    Raises ``Mismatch`` for what is wrong whatever the numbers: parameters that do not line up,
    an output of another type, shape, dtype or device, NaN or inf, a parameter no gradient
    reaches, an output that is not float64 when the module and its input are, a tensor made on
    another device than the input's. When the outputs differ, ``explain(mine, state)`` (state:
    the weights, in tinyllm's names) may say why; the returned Diff carries it."""
    if not isinstance(mine, nn.Module):
        raise Mismatch(f"is a {type(mine).__name__}, not a torch.nn.Module: subclass nn.Module "
                       "and call super().__init__() first")
    names = names or (lambda d: d)
    run_ref = run_ref or (lambda module, *args: module(*args))
    ref_params = {n: p for n, p in ref.state_dict(keep_vars=True).items()
                  if isinstance(p, nn.Parameter)}
    state = names({n: p.detach() for n, p in ref_params.items()})
    binding = load_weights(mine, state, kind, KINDS[kind].parameters if kind in KINDS else None)
    mine.eval()
    ref.eval()
    g = torch.Generator().manual_seed(1)
    out_diff, grad_diff, where, grad_name = 0.0, 0.0, "", ""
    for args in calls:
        args_mine, args_ref = _inputs(args), _inputs(args)
        with torch.enable_grad():
            y_ref = run_ref(ref, *args_ref)
            y = mine(*args_mine)
            check_output(y, y_ref)
            d = (y.detach() - y_ref.detach()).abs()
            if d.max().item() > out_diff or math.isnan(d.max().item()):
                out_diff = d.max().item()
                at = tuple(int(i) for i in torch.unravel_index(d.argmax(), d.shape))
                where = (f"largest difference at index {at}: {y[at].item():.4g} where the "
                         f"reference has {y_ref[at].item():.4g}")
            cotangent = torch.randn(y_ref.shape, generator=g).to(y_ref.device)
            (y * cotangent).sum().backward()
            (y_ref * cotangent).sum().backward()
        ref_grads = names({n: p.grad if p.grad is not None else torch.zeros_like(p)
                           for n, p in ref_params.items()})
        pairs = [(f"its input {i}", a.grad, b.grad)
                 for i, (a, b) in enumerate(zip(args_mine, args_ref)) if b.grad is not None]
        if any(a is None for _, a, _ in pairs):
            raise Mismatch("no gradient flows back to its input: forward detaches it (or leaves "
                           "torch, e.g. through .numpy() or .item())")
        for name, p in mine.named_parameters():
            if p.grad is None or not p.grad.any():
                raise Mismatch(f"no gradient reaches {name}: it does not take part in the output "
                               "(detached, replaced by a constant, or not used in forward)")
            pairs.append((name, p.grad, view(ref_grads, binding[name])))
        for name, a, b in pairs:   # relative to the gradient's size: sums over B·T grow
            d = max_diff(a, b) / max(1.0, b.abs().max().item())
            if d > grad_diff or math.isnan(d):
                grad_diff, grad_name = d, name
        for module in (mine, ref):
            module.zero_grad(set_to_none=True)
    _probe_dtype(mine, calls[0])
    _probe_device(mine, calls[0])

    def why(tolerance):
        if not out_diff <= tolerance:
            return (explain(mine, state) if explain else None) or where
        return (f"the output matches but the gradient of {grad_name} differs by {grad_diff:.3g} "
                "(relative): does forward detach something, or change a tensor in place?")
    return Diff(worst([out_diff, grad_diff]), why)


def _inputs(args) -> list:
    """Fresh copies of a call's arguments; float tensors require a gradient."""
    return [a.detach().clone().requires_grad_() if torch.is_tensor(a) and a.is_floating_point()
            else a for a in args]


def check_output(y, expected: torch.Tensor) -> None:
    if not torch.is_tensor(y):
        raise Mismatch(f"returned a {type(y).__name__}, expected a tensor of shape "
                       f"{tuple(expected.shape)}")
    if y.shape != expected.shape:
        raise Mismatch(f"returned {tuple(y.shape)}, expected {tuple(expected.shape)}")
    if y.dtype != expected.dtype:
        raise Mismatch(f"returned {y.dtype}, expected {expected.dtype} (its input's and weights')")
    if y.device != expected.device:
        raise Mismatch(f"returned a tensor on {y.device}, expected {expected.device}")
    bad = ~torch.isfinite(y.detach())
    if bad.any():
        first = tuple(int(i) for i in torch.unravel_index(bad.flatten().nonzero()[0, 0], y.shape))
        raise Mismatch(f"returned NaN or inf at {int(bad.sum())} of {y.numel()} positions (first "
                       f"at index {first})")


def _copy(module):
    try:
        return copy.deepcopy(module)
    except Exception:     # a module that cannot be copied is not probed
        return None


def _probe_dtype(mine: nn.Module, args) -> None:
    """In float64 (weights and input) the output must be float64 too."""
    module = _copy(mine)
    if module is None:
        return
    args = [a.detach().double() if torch.is_tensor(a) and a.is_floating_point() else a
            for a in args]
    try:
        with torch.no_grad():
            y = module.double()(*args)
    except Exception as e:
        raise Mismatch(f"fails with float64 weights and input: {describe(e)}: compute in the "
                       "input's dtype") from e
    if torch.is_tensor(y) and y.dtype != torch.float64:
        raise Mismatch(f"returned {y.dtype} for float64 weights and input: compute in the "
                       "input's dtype (no .float(), no new tensors in torch's default dtype)")


def _probe_device(mine: nn.Module, args) -> None:
    """On another device than the CPU (the 'meta' device: shapes only, no data) the output must
    be there too, and nothing may be made on the CPU on the way."""
    module = _copy(mine)
    if module is None:
        return
    args = [a.detach().to("meta") if torch.is_tensor(a) else a for a in args]
    try:
        with torch.no_grad():
            y = module.to("meta")(*args)
    except Exception as e:
        if "device" in str(e):
            frame = blame(e)
            raise Mismatch("makes a tensor on the CPU whatever its input's device (tried on "
                           f"torch's 'meta' device{', ' + where(frame) if frame else ''}): make it "
                           "with device=x.device, or register it as a buffer") from e
        return                                      # an operation meta cannot run: not probed
    if torch.is_tensor(y) and y.device.type != "meta":
        raise Mismatch(f"returned a tensor on {y.device} for a module and input on another "
                       "device: make tensors on x.device")


def same(a, b, what: str) -> float:
    """max |a - b| for two outputs of the module under test that must agree (``what``)."""
    try:
        check_output(a, b)
    except Mismatch as e:
        raise Mismatch(f"{what}: {e}") from None
    return max_diff(a, b)


# -- why an output differs: the slips learners make --------------------------------------------

def _close(a, b, tol=1e-4) -> bool:
    return torch.is_tensor(a) and a.shape == b.shape and max_diff(a, b) <= tol


def look_alike(y, candidates) -> str | None:
    """The message of the first (message, output) candidate that ``y`` equals."""
    return next((message for message, out in candidates if _close(y, out)), None)


def explain_causal(module: nn.Module, x: torch.Tensor, t: int = 6) -> str | None:
    """Changing the inputs at positions ≥ t must leave the outputs before t as they are."""
    x2 = x.clone()
    x2[:, t:] = torch.randint_like(x[:, t:], 1, 50) if not x.is_floating_point() \
        else torch.randn_like(x[:, t:])
    with torch.no_grad():
        changed = (module(x)[:, :t] - module(x2)[:, :t]).abs().amax(dim=(0, *range(2, x.dim())))
    if not (changed > 1e-6).any():
        return None
    first = int((changed > 1e-6).nonzero()[0, 0])
    return (f"not causal: changing the tokens from position {t} on changed the output at "
            f"position {first}: mask the scores where key j > query i, before the softmax")


def explain_attention(module, state, x, config, layer_type) -> str | None:
    """Not causal; or the output of the reference formula with one knob turned: another score
    scale, no window, a window one token off, one head instead of H."""
    causal = explain_causal(module, x)
    if causal:
        return causal
    with torch.no_grad():
        y = module(x)
        d, C = config.hidden_size // config.num_heads, config.hidden_size
        expected = ReferenceAttention.of(config, layer_type)
        scales = {1.0: "does not scale the scores", 1 / math.sqrt(d): "scales the scores by 1/√d",
                  1 / d: "scales the scores by 1/d", 1 / math.sqrt(C): "scales the scores by 1/√C"}
        if config.attention == "gpt-neo":
            wanted = ("but GPT-Neo does not (this row's config.attention is 'gpt-neo': use "
                      "s = 1 then)")
        else:
            wanted = (f"but config.attention = 'scaled' expects 1/√d = {1 / math.sqrt(d):.3g} "
                      f"(d = {d}, the head size)")
        W = config.window_size
        knobs = [(f"{text}, {wanted}", dict(scale=s)) for s, text in scales.items()
                 if not math.isclose(s, expected.scale)]
        if layer_type == "local":
            knobs += [(f"ignores the window: a 'local' layer's query i sees only keys i-{W - 1} "
                       f"..i (config.window_size = {W})", dict(window=None)),
                      (f"window one token too wide: query i must see keys i-{W - 1}..i "
                       f"(i - j < window_size = {W}), not i-{W}", dict(window=W + 1)),
                      (f"window one token too narrow: query i must see keys i-{W - 1}..i "
                       f"(window_size = {W} keys, itself included)", dict(window=W - 1))]
        else:
            knobs.append(("applies the local window on a 'global' layer", dict(window=W)))
        knobs.append((f"computes one head over all C = {C} channels: split q, k, v into "
                      f"config.num_heads = {config.num_heads} heads of d = {d}",
                      dict(heads=1)))
        candidates = []
        for message, change in knobs:
            twin = ReferenceAttention.of(config, layer_type, **change)
            twin.load_state_dict({k: state[k] for k in ("qkv.weight", "out_proj.weight",
                                                        "out_proj.bias")})
            candidates.append((message, twin(x)))
        return look_alike(y, candidates)


def explain_layernorm(module, state, x, eps) -> str | None:
    """LayerNorm without its scale and shift, with the unbiased variance, ε outside the root,
    over the wrong dimension, or dividing by the variance."""
    w, b = state["weight"], state["bias"]
    mu = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    with torch.no_grad():
        return look_alike(module(x), [
            ("ignores its scale and shift: multiply by γ (weight) and add β (bias) after "
             "normalising", (x - mu) / torch.sqrt(var + eps)),
            ("divides the variance by C - 1 (x.var()'s default); LayerNorm's is mean((x - μ)²), "
             "x.var(unbiased=False)", (x - mu) / torch.sqrt(x.var(-1, keepdim=True) + eps) * w + b),
            ("adds ε to the standard deviation; the reference adds it to the variance: "
             "(x - μ) / √(σ² + ε)", (x - mu) / (torch.sqrt(var) + eps) * w + b),
            ("divides by the variance σ² instead of the standard deviation √(σ² + ε)",
             (x - mu) / (var + eps) * w + b),
            ("normalises over the positions (dimension -2); LayerNorm normalises each vector "
             "over its last dimension", F.layer_norm(x.transpose(-1, -2), x.shape[-2:-1],
                                                     eps=eps).transpose(-1, -2) * w + b),
        ])


ACTIVATION_FORMULAS = {
    "gelu_new": (lambda x: F.gelu(x, approximate="tanh"), "½x(1 + tanh(√(2/π)(x + 0.044715x³)))"),
    "gelu": (F.gelu, "x·Φ(x), the exact (erf) GELU"),
    "relu": (F.relu, "max(x, 0)"),
    "silu": (F.silu, "x·σ(x)"),
    "relu2": (lambda x: F.relu(x).square(), "max(x, 0)²"),
    "tanh": (torch.tanh, "tanh(x)"),
    "no activation": (lambda x: x, "x"),
}


def explain_mlp(module, state, x, activation: str) -> str | None:
    """The MLP's output with another activation than ``activation``."""
    def mlp(act):
        h = act(F.linear(x, state["c_fc.weight"], state.get("c_fc.bias")))
        return F.linear(h, state["c_proj.weight"], state.get("c_proj.bias"))
    expected = ACTIVATION_FORMULAS.get(activation, (None, activation))[1]
    with torch.no_grad():
        return look_alike(module(x), [
            (f"its activation looks like {name} ({formula}), but config.activation is "
             f"{activation!r}: {expected}", mlp(act))
            for name, (act, formula) in ACTIVATION_FORMULAS.items() if name != activation])


