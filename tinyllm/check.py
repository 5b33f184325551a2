"""The parity table: every from-scratch component against its reference twin.

Each row builds the tinyllm component and its twin (``torch.nn``, ``torch.nn.functional``,
transformers' GPT-Neo, the ``tokenizers`` library), gives both the same weights and the same
small random input, and reports the largest absolute difference of their outputs (over every
variant the row covers: layer types, score scalings, activations, written-out and fused paths):

    Embedding    vs torch.nn.Embedding          LayerNorm   vs torch.nn.LayerNorm
    gelu_new     vs F.gelu(approximate='tanh')  MLP         vs GPTNeoMLP
    Attention    explicit softmax vs fused SDPA, kv-cache decoding vs one full pass,
                 global and local vs GPTNeoSelfAttention
    Block        vs GPTNeoBlock                 GPT         vs GPTNeoForCausalLM (via tinyllm.hf)
    Head + loss  (fused, chunked) vs F.cross_entropy(h @ W.T, y): the loss and both gradients
    Muon         three optimizer steps vs torch.optim.Muon (both iterating in bfloat16)
    BPE          vs tokenizers (token ids that differ)

Rows run bottom-up: a broken component also breaks the rows built from it (Block, GPT), so the
first failing row is the one to fix. ``tinyllm check`` prints the table; the tests run the
same rows (``tests/test_nn.py``) and keep what a row cannot express.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import Config
from .data.sources import builtin_tokenizer_dir, home, sample_corpus_path
from .hf import config_from_hf, config_to_hf, fuse_qkv, state_dict_from_hf
from .model import GPT
from .nn import MLP, Attention, Block, Embedding, LayerNorm, gelu_new
from .nn.loss import linear_cross_entropy
from .optim import Muon
from .files import TOKENIZER_FILES
from .tokenizer import Tokenizer

TOL = 1e-5        # one component, fp32
TOL_MODEL = 1e-4  # a whole block or model

# C=32 wide, 4 heads, window 5 < T=12: small enough to be instant, big enough that every
# mask and scale matters
_SMALL = dict(hidden_size=32, embedding_size=32, num_layers=2, num_heads=4, context_size=16,
              window_size=5, max_position_embeddings=64, vocab_size=97,
              attention_layers=["global", "local"])
_T = 12

TOKENIZER_SAMPLE = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside!\n\n"
    "\"Can I have   3 apples?\" asked Tom. It's 12:30 -- they'll be late; we've 99 cats.\n"
    "Ünïcödé, 日本語, emoji 🙂 and tabs\tand trailing spaces   \n<|endoftext|>The end.")


@dataclass
class Row:
    component: str
    reference: str
    max_abs_diff: float | None   # None when skipped or when the check raised
    tolerance: float
    status: str                  # 'pass', 'fail' or 'skipped'
    note: str = ""               # why it was skipped, or the error it raised

    @property
    def failed(self) -> bool:
        return self.status == "fail"


class Skip(Exception):
    """A check that cannot run here (a library or file is missing)."""


# -- helpers ------------------------------------------------------------------------------

def _config(**kw):
    return Config(**{**_SMALL, **kw})


def randomize(module, seed=0, std=0.2):
    """Weights far from the defaults so every term counts (LayerNorm γ around 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
        for m in module.modules():
            if isinstance(m, (torch.nn.LayerNorm, LayerNorm)):
                m.weight.add_(1.0)
    return module.eval()


def _diff(a, b) -> float:
    return (a.float() - b.float()).abs().max().item()


def _gpt_neo():
    try:
        from transformers import GPTNeoConfig
        from transformers.models.gpt_neo import modeling_gpt_neo
    except ImportError:
        raise Skip("transformers is not installed (pip install transformers)") from None
    return GPTNeoConfig, modeling_gpt_neo


def _hf_config(c):
    GPTNeoConfig, _ = _gpt_neo()
    d = config_to_hf(c)
    d.update(bos_token_id=None, eos_token_id=None, attn_implementation="eager")
    return GPTNeoConfig(**d)


def gpt_neo_state(hf_module) -> dict:
    """A GPT-Neo module's weights in tinyllm's names (W_q, W_k, W_v stacked; mask buffers out)."""
    return fuse_qkv({k.replace("attn.attention.", "attn."): v
                     for k, v in hf_module.state_dict().items()
                     if not k.endswith(("attention.bias", "masked_bias")) and k != "bias"})


# -- the checks: each returns the max abs diff ------------------------------------

def check_embedding():
    ref = torch.nn.Embedding(50, 16)
    mine = Embedding(50, 16)
    mine.load_state_dict(ref.state_dict())
    ids = torch.randint(0, 50, (3, _T))
    return _diff(mine(ids), ref(ids))


def check_layernorm():
    """The written-out formula (and the fused kernel the model runs by default)."""
    ref = randomize(torch.nn.LayerNorm(32, eps=1e-5))
    x = torch.randn(3, _T, 32) * 2 + 0.5
    worst = 0.0
    for explicit in (True, False):
        mine = LayerNorm(32, eps=1e-5, explicit=explicit)
        mine.load_state_dict(ref.state_dict())
        worst = max(worst, _diff(mine(x), ref(x)))
    return worst


def check_gelu():
    x = torch.linspace(-6, 6, 1001)
    return _diff(gelu_new(x), F.gelu(x, approximate="tanh"))


def check_mlp():
    _, neo = _gpt_neo()
    x = torch.randn(3, _T, 32)
    worst = 0.0
    for activation in ("gelu_new", "gelu", "relu"):
        for explicit in (False, True):
            c = _config(activation=activation, explicit=explicit, intermediate_size=48)
            ref = randomize(neo.GPTNeoMLP(48, _hf_config(c)))
            mine = MLP(c).eval()
            mine.load_state_dict(ref.state_dict())
            worst = max(worst, _diff(mine(x), ref(x)))
    return worst


def _attention_pair(kind, scoring="gpt-neo"):
    fused = randomize(Attention(_config(attention=scoring), kind))
    explicit = Attention(_config(attention=scoring, explicit=True), kind).eval()
    explicit.load_state_dict(fused.state_dict())
    return fused, explicit


def check_attention_explicit():
    x = torch.randn(2, _T, 32)
    worst = 0.0
    for kind in ("global", "local"):
        for scoring in ("gpt-neo", "scaled"):
            fused, explicit = _attention_pair(kind, scoring)
            worst = max(worst, _diff(explicit(x), fused(x)))
    return worst


def check_attention_cache():
    x = torch.randn(2, _T, 32)
    worst = 0.0
    for kind in ("global", "local"):
        for attn in _attention_pair(kind):
            kv = torch.zeros(2, 2, attn.num_heads, _T, attn.head_dim)   # keys [:, 0], values [:, 1]
            steps = [attn(x[:, :3], kv=kv, pos=0)]                        # prefill
            steps += [attn(x[:, t:t + 1], kv=kv, pos=t) for t in range(3, _T)]  # decode
            worst = max(worst, _diff(torch.cat(steps, dim=1), attn(x)))
    return worst


def _check_attention_vs_neo(kind):
    _, neo = _gpt_neo()
    x = torch.randn(2, _T, 32)
    worst = 0.0
    for explicit in (False, True):
        c = _config(attention_layers=[kind, kind], explicit=explicit)
        # GPTNeoSelfAttention masks with its own causal/local `bias` buffer; no attention_mask
        ref = randomize(neo.GPTNeoSelfAttention(_hf_config(c), kind, layer_id=0))
        mine = Attention(c, kind).eval()
        mine.load_state_dict(gpt_neo_state(ref))
        worst = max(worst, _diff(mine(x), ref(x, attention_mask=None)[0]))
    return worst


def check_attention_global():
    return _check_attention_vs_neo("global")


def check_attention_local():
    return _check_attention_vs_neo("local")


def check_block():
    _, neo = _gpt_neo()
    x = torch.randn(2, _T, 32)
    worst = 0.0
    for explicit in (False, True):
        c = _config(explicit=explicit)
        for layer, kind in enumerate(c.attention_layers):
            ref = randomize(neo.GPTNeoBlock(_hf_config(c), layer_id=layer), std=0.2)
            mine = Block(c, kind).eval()
            mine.load_state_dict(gpt_neo_state(ref))
            worst = max(worst, _diff(mine(x), ref(x)[0]))
    return worst


def check_model():
    _, neo = _gpt_neo()
    c = _config()
    ref = randomize(neo.GPTNeoForCausalLM(_hf_config(c)), std=0.1)
    mine = GPT(None, config_from_hf(ref.config.to_dict())).eval()  # through tinyllm.hf
    mine.load_state_dict(state_dict_from_hf(ref.state_dict()))
    ids = torch.randint(0, c.vocab_size, (2, _T))
    return _diff(mine(ids), ref(ids).logits)


def check_model_cache():
    """GPT.forward with a key/value cache — a prefill, then one token at a time, as generation
    runs it — against one forward pass over the whole sequence."""
    mine = randomize(GPT(None, _config()), std=0.1)
    ids = torch.randint(0, 97, (2, _T))
    cache = mine.new_cache(2)
    steps = [mine(ids[:, :4], cache=cache)] + [mine(ids[:, t:t + 1], cache=cache)
                                               for t in range(4, _T)]
    return _diff(torch.cat(steps, dim=1), mine(ids))


def check_loss():
    """The fused, chunked head + cross-entropy: its loss and its gradients for h and W."""
    with torch.enable_grad():
        h = torch.randn(50, 16, requires_grad=True)
        W = (torch.randn(97, 16) * 2).requires_grad_()
        y = torch.randint(0, 97, (50,))
        y[::7] = -100                                   # ignored targets, as padding gives
        mine = linear_cross_entropy(h, W, y, chunk_size=16)
        ref = F.cross_entropy(h @ W.T, y, ignore_index=-100)
        pairs = [(mine, ref), *zip(torch.autograd.grad(mine, (h, W)), torch.autograd.grad(ref, (h, W)))]
    return max(_diff(a, b) for a, b in pairs)


def check_muon():
    """Muon's update (momentum, Newton–Schulz, decay, RMS-matched step) on a tall, a wide and a
    square matrix, against torch.optim.Muon; ours iterates in bfloat16 here as torch's does."""
    worst = 0.0
    for shape in ((24, 10), (10, 24), (16, 16)):
        w = torch.randn(shape)
        mine, ref = w.clone().requires_grad_(), w.clone().requires_grad_()
        opts = (Muon([mine], lr=0.02, weight_decay=0.1, ns_dtype=torch.bfloat16),
                torch.optim.Muon([ref], lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw"))
        for _ in range(3):
            g = torch.randn(shape)
            for p, opt in zip((mine, ref), opts):
                p.grad = g.clone()
                opt.step()
        worst = max(worst, _diff(mine, ref))
    return worst


def check_tokenizer():
    """tinyllm's BPE against the Rust ``tokenizers`` on the same vocabulary: ids that differ."""
    for directory in (home() / "gpt2", builtin_tokenizer_dir()):
        if all((directory / n).is_file() for n in TOKENIZER_FILES):
            break
    else:
        raise Skip(f"no tokenizer files (neither GPT-2's in {home() / 'gpt2'} nor a built-in one)")
    try:
        mine = Tokenizer(directory, backend="tinyllm")
    except ModuleNotFoundError as e:
        raise Skip(f"tinyllm.bpe is not available ({e.name})") from None
    ref = Tokenizer(directory, backend="fast")
    text = TOKENIZER_SAMPLE + "\n" + sample_corpus_path().read_text("utf-8")[:3000]
    a, b = mine.encode(text), ref.encode(text)
    wrong = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
    if mine.decode(a) != text:
        wrong += 1  # decoding must give the text back
    return float(wrong)


CHECKS = [  # (component, reference, check, tolerance), bottom-up
    ("Embedding", "torch.nn.Embedding", check_embedding, TOL),
    ("LayerNorm", "torch.nn.LayerNorm", check_layernorm, TOL),
    ("gelu_new", "F.gelu(approximate='tanh')", check_gelu, TOL),
    ("MLP", "GPTNeoMLP", check_mlp, TOL),
    ("Attention explicit", "F.scaled_dot_product_attention", check_attention_explicit, TOL),
    ("Attention kv cache", "one full forward pass", check_attention_cache, TOL),
    ("Attention global", "GPTNeoSelfAttention (global)", check_attention_global, TOL),
    ("Attention local", "GPTNeoSelfAttention (local)", check_attention_local, TOL),
    ("Block", "GPTNeoBlock (global, local)", check_block, TOL_MODEL),
    ("GPT (HF import)", "GPTNeoForCausalLM", check_model, TOL_MODEL),
    ("GPT kv cache", "one full forward pass", check_model_cache, TOL_MODEL),
    ("Head + loss", "F.cross_entropy (and grads)", check_loss, TOL),
    ("Muon", "torch.optim.Muon (3 steps)", check_muon, TOL),
    ("BPE tokenizer", "tokenizers (ids that differ)", check_tokenizer, 0.0),
]


def run_checks(seed: int = 0) -> list[Row]:
    """Run every check; a check that raises fails its own row (with the error as its note)."""
    rows = []
    for component, reference, check, tol in CHECKS:
        torch.manual_seed(seed)
        try:
            with torch.no_grad():
                diff = check()
        except Skip as e:
            rows.append(Row(component, reference, None, tol, "skipped", str(e)))
            continue
        except Exception as e:  # a broken component: its row fails, the others still run
            rows.append(Row(component, reference, None, tol, "fail", f"{type(e).__name__}: {e}"))
            continue
        ok = diff <= tol  # NaN fails
        rows.append(Row(component, reference, diff, tol, "pass" if ok else "fail"))
    return rows


def format_table(rows: list[Row]) -> str:
    """The rows as an aligned text table."""
    header = ("component", "reference", "max abs diff", "tolerance", "result")
    body = []
    for r in rows:
        diff = "-" if r.max_abs_diff is None else f"{r.max_abs_diff:.3g}"
        result = r.status + (f": {r.note}" if r.note else "")
        body.append((r.component, r.reference or "-", diff, f"{r.tolerance:g}", result))
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line[:4], widths)) + "  " + line[4]
             for line in [header, *body]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
