"""The rows of GPT-Neo's components (and the loss, Muon and the BPE tokenizer): each takes the
``parts`` under test (tinyllm's own or a learner's, ``tinyllm.check.implementations``) and
returns the largest difference from its reference twin."""
import difflib
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.sources import sample_corpus_path
from ..files import home
from ..formats.gpt_neo import config_from_hf, state_dict_from_hf
from ..model import Config
from ..model.nn import Block, StaticLayerCache, gelu_new
from ..tokenizer import Tokenizer
from ..tokenizer.tokenizer import builtin_tokenizer_dir, is_tokenizer_dir
from .common import (T, TOKENIZER_SAMPLE, TOL_MUON, Diff, Mismatch, ReferenceAttention, Skip,
                     gpt_neo_classes, gpt_neo_config, layer_cache, max_diff, neo_names,
                     over_variants, randomize, small_config, worst)
from .diagnose import (check_output, explain_attention, explain_causal, explain_layernorm,
                       explain_mlp, look_alike, parity, same)
from .implementations import build_block, build_gpt


# -- the checks: each takes the parts and returns the max abs diff -------------------------------

def check_embedding(parts):
    impl = parts["embedding"]
    ref = torch.nn.Embedding(50, 16)
    ids = torch.randint(0, 50, (3, T))
    calls = [(ids,), (torch.arange(T),)]    # token ids (B, T), and positions (T,)
    return over_variants(impl, lambda v: parity(impl.make(50, 16), ref, calls, kind="embedding"))


def check_layernorm(parts):
    """The written-out formula (and the fused kernel the model runs by default)."""
    impl = parts["layernorm"]
    ref = randomize(torch.nn.LayerNorm(32, eps=1e-5))
    x = torch.randn(3, T, 32) * 2 + 0.5
    return over_variants(impl, lambda v: parity(
        impl.make(32, 1e-5), ref, [(x,)], kind="layernorm",
        explain=lambda m, s: explain_layernorm(m, s, x, 1e-5)))


def check_gelu(parts):
    x = torch.linspace(-6, 6, 1001)
    return max_diff(gelu_new(x), F.gelu(x, approximate="tanh"))


def check_mlp(parts):
    _, neo = gpt_neo_classes()
    impl = parts["mlp"]
    x = torch.randn(3, T, 32)

    def run(v):
        c = small_config(intermediate_size=48, **v)
        ref = randomize(neo.GPTNeoMLP(48, gpt_neo_config(c)))
        return parity(impl.make(c), ref, [(x,)], kind="mlp",
                      explain=lambda m, s: explain_mlp(m, s, x, c.activation))
    return over_variants(impl, run)


def _check_attention_vs_neo(parts, layer_type):
    _, neo = gpt_neo_classes()
    impl = parts["attention"]
    x = torch.randn(2, T, 32)

    def run(v):
        c = small_config(attention_layers=[layer_type] * 2, **v)
        # GPTNeoSelfAttention masks with its own causal/local `bias` buffer; no attention_mask
        ref = randomize(neo.GPTNeoSelfAttention(gpt_neo_config(c), layer_type, layer_id=0))
        return parity(impl.make(c, layer_type), ref, [(x,)], kind="attention", names=neo_names,
                      run_ref=lambda m, x: m(x, attention_mask=None)[0],
                      explain=lambda m, s: explain_attention(m, s, x, c, layer_type))
    return over_variants(impl, run)


def check_attention_global(parts):
    return _check_attention_vs_neo(parts, "global")


def check_attention_local(parts):
    return _check_attention_vs_neo(parts, "local")


def check_attention_scaled(parts):
    """config.attention = 'scaled' (1/√d, the series' formula) against torch's fused kernel."""
    impl = parts["attention"]
    x = torch.randn(2, T, 32)

    def run(v, layer_type):
        c = small_config(attention="scaled", **v)
        ref = randomize(ReferenceAttention.of(c, layer_type))
        return parity(impl.make(c, layer_type), ref, [(x,)], kind="attention",
                      explain=lambda m, s: explain_attention(m, s, x, c, layer_type))
    return worst(over_variants(impl, lambda v: run(v, t)) for t in ("global", "local"))


def _needs_cache(*impls):
    for impl in impls:
        if not impl.cached:
            raise Skip(f"{impl.name}.forward takes no key/value cache (optional: see tinyllm "
                       f"check --interface {impl.kind})")


def check_attention_cache(parts):
    """A prefill, then one position at a time through the layer's key/value cache, against one
    pass over the whole sequence; global and local layers."""
    impl = parts["attention"]
    _needs_cache(impl)
    x = torch.randn(2, T, 32)

    def run(v, layer_type):
        c = small_config(**v)
        attn = randomize(impl.make(c, layer_type))
        cache = layer_cache(c, layer_type)
        with torch.no_grad():
            steps = [attn(x[:, :3], cache)]                                   # prefill
            steps += [attn(x[:, t:t + 1], cache) for t in range(3, T)]       # decode
            return same(torch.cat(steps, dim=1), attn(x), "decoding with the key/value cache")
    return worst(over_variants(impl, lambda v: run(v, t)) for t in ("global", "local"))


def check_block(parts):
    _, neo = gpt_neo_classes()
    x = torch.randn(2, T, 32)

    def run(v):
        c = small_config(**v)
        return worst(parity(build_block(parts, c, layer_type),
                            randomize(neo.GPTNeoBlock(gpt_neo_config(c), layer_id=layer), std=0.2),
                            [(x,)], kind="block", names=neo_names, run_ref=lambda m, x: m(x)[0],
                            explain=lambda m, s: explain_causal(m, x))
                     for layer, layer_type in enumerate(c.attention_layers))
    return over_variants(parts["block"], run)


def check_model(parts):
    _, neo = gpt_neo_classes()
    c = small_config()
    ref = randomize(neo.GPTNeoForCausalLM(gpt_neo_config(c)), std=0.1)
    mine = build_gpt(parts, Config(**config_from_hf(ref.config.to_dict())))   # formats.gpt_neo
    ids = torch.randint(0, c.vocab_size, (2, T))
    return parity(mine, ref, [(ids,)], names=state_dict_from_hf,
                  run_ref=lambda m, ids: m(ids).logits,
                  explain=lambda m, s: explain_causal(m, ids))


def check_model_cache(parts):
    """GPT.forward with a key/value cache — a prefill, then one token at a time, as generation
    runs it — against one forward pass over the whole sequence."""
    _needs_cache(parts["attention"], parts["block"])
    mine = randomize(build_gpt(parts, small_config()), std=0.1)
    ids = torch.randint(0, 97, (2, T))
    cache = mine.new_cache(2)
    with torch.no_grad():
        steps = [mine(ids[:, :4], cache=cache)] + [mine(ids[:, t:t + 1], cache=cache)
                                                   for t in range(4, T)]
        return same(torch.cat(steps, dim=1), mine(ids), "decoding with the key/value cache")


def check_block_step(parts):
    """tinyllm's ``Block.step`` (one position per call, generation's fast path) against
    ``Block.forward`` with a key/value cache over the same positions: GPT-Neo's global and local
    layers, and a Llama-shaped block with QK-norm (rotary at the cached positions); each step
    through a ``LayerCache`` and through a ``StaticLayerCache`` (the compiled step's: the whole
    buffer, masked)."""
    worst_diff = 0.0
    configs = [(small_config(), kind) for kind in ("global", "local")] + [
        (small_config(position="rotary", norm="rmsnorm", mlp="gated", activation="silu",
                      bias=False, qk_norm=True, attention="scaled"), "global")]
    x = torch.randn(2, T, 32)
    for config, kind in configs:
        block = randomize(Block(config, kind))
        full = layer_cache(config, kind)
        with torch.no_grad():
            whole = block(x, full)
            empty = layer_cache(config, kind)
            static = StaticLayerCache(empty.kv, empty.window, torch.zeros(1, dtype=torch.long))
            for by_step in (layer_cache(config, kind), static):
                steps = torch.stack([block.step(x[:, t], by_step) for t in range(T)], 1)
                worst_diff = max(worst_diff, max_diff(steps, whole), max_diff(by_step.kv, full.kv))
    return worst_diff


def check_loss(parts):
    """The head + cross-entropy: its loss and its gradients for h and W."""
    impl = parts["loss"]
    h = torch.randn(50, 16)
    W = torch.randn(97, 16) * 2
    y = torch.randint(0, 97, (50,))
    y[::7] = -100                                       # ignored targets, as padding gives
    z = h @ W.T
    rows = torch.logsumexp(z, -1) - z.gather(1, y.clamp(min=0)[:, None]).squeeze(1)
    kept = y != -100
    diffs = []
    for v in impl.variants:
        loss = impl.make()
        with torch.enable_grad():
            hm, Wm = h.clone().requires_grad_(), W.clone().requires_grad_()
            hr, Wr = h.clone().requires_grad_(), W.clone().requires_grad_()
            mine = loss(hm, Wm, y, ignore_index=-100, **v)
            ref = F.cross_entropy(hr @ Wr.T, y, ignore_index=-100)
            check_output(mine, ref)
            grads = torch.autograd.grad(mine, (hm, Wm), allow_unused=True)
            for name, grad in zip(("h", "the head weight W"), grads):
                if grad is None:
                    raise Mismatch(f"no gradient reaches {name}: the loss must be computed from "
                                   "it with torch operations (or a backward of your own)")
            pairs = [(mine, ref), *zip(grads, torch.autograd.grad(ref, (hr, Wr)))]
        value, expected = mine.detach(), ref.detach()

        def why(tolerance, value=value, expected=expected):
            return look_alike(value, [
                ("returns the sum over the targets; the loss is their mean", rows[kept].sum()),
                (f"divides by all {len(y)} rows; the mean is over the {int(kept.sum())} whose "
                 f"target is not ignore_index", rows[kept].sum() / len(y)),
                ("is in bits (log base 2); cross-entropy is in nats (natural log)",
                 rows[kept].mean() / math.log(2)),
            ]) or f"returned {value.item():.6g}, the reference {expected.item():.6g}"
        diffs.append(Diff(max(max_diff(a, b) for a, b in pairs), why))
    return worst(diffs)


def check_muon(parts):
    """Muon's update (momentum, Newton–Schulz, decay, RMS-matched step) on a tall, a wide and a
    square matrix, three steps, against torch.optim.Muon."""
    impl = parts["optimizer"]
    diffs = []
    for v in impl.variants:
        for shape in ((24, 10), (10, 24), (16, 16)):
            w = torch.randn(shape)
            mine, ref = nn.Parameter(w.clone()), nn.Parameter(w.clone())
            opts = (impl.make([mine], lr=0.02, weight_decay=0.1, **v),
                    torch.optim.Muon([ref], lr=0.02, weight_decay=0.1,
                                     adjust_lr_fn="match_rms_adamw"))
            for step in range(1, 4):
                g = torch.randn(shape)
                before = ref.detach().clone()
                for p, opt in zip((mine, ref), opts):
                    p.grad = g.clone()
                    opt.step()
                d = same(mine.detach(), ref.detach(), f"step {step}: the parameter")
                if d > TOL_MUON or math.isnan(d):
                    moved = max_diff(ref.detach(), before)
                    if step == 1 and torch.equal(mine.detach(), w):
                        text = ("step() left the matrix unchanged: update each p with a .grad in "
                                "place (p.add_, under torch.no_grad())")
                    else:
                        text = (f"differs from torch.optim.Muon after step {step} on a {shape} "
                                f"matrix by {d:.3g} (the step moves it by {moved:.3g}): check the "
                                "Nesterov momentum, NS₅ (coefficients, 5 iterations, the wide "
                                "orientation), the 0.2·√max(m, n) scale and the decoupled decay")
                    diffs.append(Diff(d, lambda tolerance, text=text: text))
                    break
            else:
                diffs.append(d)
    return worst(diffs)


def check_tokenizer(parts):
    """The BPE against the Rust ``tokenizers`` on the same vocabulary: ids that differ, and
    texts decode does not give back."""
    for directory in (home() / "gpt2", builtin_tokenizer_dir()):
        if is_tokenizer_dir(directory):
            break
    else:
        raise Skip(f"no tokenizer files (neither GPT-2's in {home() / 'gpt2'} nor a built-in one)")
    try:
        mine = parts["tokenizer"].make(directory)
    except ModuleNotFoundError as e:
        raise Skip(f"{parts['tokenizer'].name} is not available ({e.name})") from None
    ref = Tokenizer(directory, backend="fast")
    text = TOKENIZER_SAMPLE + "\n" + sample_corpus_path().read_text("utf-8")[:3000]
    a, b = _ids(mine.encode(text)), ref.encode(text)
    back, back_ref = mine.decode(a), mine.decode(b)
    if not isinstance(back, str):
        raise Mismatch(f"decode returned a {type(back).__name__}, expected a str")
    wrong = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
    wrong += (back != text) + (back_ref != text)     # decoding must give the text back

    def why(tolerance):
        if back != text:
            return f"does not round-trip: decode(encode(text)) {_text_change(text, back)}"
        if back_ref != text:
            return f"decode of the reference's ids {_text_change(text, back_ref)}"
        k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        return (f"ids differ from the tokenizers library's from token {k}: yours {a[k:k + 4]}, "
                f"the reference {b[k:k + 4]} (for {ref.decode(b[k:k + 4])!r}): check the "
                "pre-tokenisation pattern and that the lowest-ranked pair merges first")
    return Diff(float(wrong), why)


def _ids(ids) -> list[int]:
    try:
        return [int(i) for i in ids]
    except (TypeError, ValueError):
        raise Mismatch(f"encode returned {type(ids).__name__} {str(ids)[:40]!r}, expected a list "
                       "of token ids (ints)") from None


def _text_change(text: str, got: str) -> str:
    """How ``got`` differs from ``text``, at the first place where they part."""
    i = next((i for i, (a, b) in enumerate(zip(text, got)) if a != b), min(len(text), len(got)))
    if i == len(got):
        return f"stops at character {i} of {len(text)}: {text[i:i + 12]!r} and what follows is lost"
    ops = difflib.SequenceMatcher(None, text[i:i + 200], got[i:i + 200], autojunk=False)
    op, a1, a2, b1, b2 = next(o for o in ops.get_opcodes() if o[0] != "equal")
    lost, added = text[i + a1:i + a2], got[i + b1:i + b2]
    if op == "delete":
        return (f"drops {lost!r} (UTF-8 bytes {lost.encode('utf-8').hex(' ')}) at character "
                f"{i + a1}: every byte of the text must come back")
    if op == "insert":
        return f"adds {added!r} at character {i + b1}"
    return f"gives {added!r} at character {i + a1}, where the text has {lost!r}"


