"""Would a compiled one-token step pay? The model's own decode step, compiled, against eager.

``torch.compile`` of the decode step as generation runs it today recompiles at every position:
the key/value cache's length is a Python int (docs/models.md). Here the cache has a static
shape instead, as gpt-fast and Hugging Face's StaticCache do: every buffer is the full context,
the length is a tensor, the new keys and values are written with ``index_copy_`` at it and the
queries see the whole buffer through a mask (columns ≤ length, and within the window for a
local layer). The step itself is the model's own (``Block.step``, ``Attention.step``): only the
cache differs, so nothing of the network is written twice.

    StaticLayerCache.update(kv_new)  kv (B, 2, H, S, d); kv_new (B, 2, H, 1, d) written at
                                     column ``length`` (a (1,) tensor) -> k, v (B, H, S, d)
    key_mask()                       (1, 1, 1, S): length - W < column ≤ length

For each model shape the benchmark prints the eager step (tinyllm's ``generate``), the compiled
static step (Inductor's default Python wrapper, and its C++ wrapper), the compile time in a
fresh process twice — with an empty Inductor cache, then with the cache the first left on disk
(``TORCHINDUCTOR_CACHE_DIR``: what could be kept beside a model) — and the break-even length:
compile time ÷ the time saved per token. Every compiled run's greedy tokens are checked equal
to ``generate``'s.

    OMP_NUM_THREADS=1 python benchmarks/bench_compiled_decode.py            # ~3 minutes
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

SHAPES = ("default", "brief")
NEW = 60                 # greedy tokens per timing (within the brief's 64-token context)


class StaticLayerCache:
    """``LayerCache``'s interface with a static shape: the length is a (1,) tensor."""

    def __init__(self, kv: torch.Tensor, window: int | None, length: torch.Tensor):
        self.kv, self.window, self.length, self.pad = kv, window, length, None
        self.columns = torch.arange(kv.shape[3])

    def update(self, kv_new):
        self.kv.index_copy_(3, self.length, kv_new)
        return self.kv[:, 0], self.kv[:, 1]

    def key_mask(self):
        seen = self.columns <= self.length
        if self.window is not None:
            seen = seen & (self.columns > self.length - self.window)
        return seen.view(1, 1, 1, -1)


def model_of(shape: str):
    from tinyllm.model import GPT, Config
    from tinyllm.model.presets import default_model
    from tinyllm.tokenizer import Tokenizer
    torch.manual_seed(0)
    if shape == "default":       # tinyllm train's shape with the built-in 1,024-token BPE
        return GPT(Tokenizer("builtin"), default_model()).eval()
    return GPT(None, Config(vocab_size=50257)).eval()       # the brief's Config(), GPT-2's head


def decode(model, token, layers, length):
    """One greedy step of every row: token (B,) at position ``length`` -> logits (B, V)."""
    x = model.wte(token)                                                   # (B, C)
    if model.wpe is not None:
        x = x + model.wpe(length)
    for layer, block in zip(layers, model.blocks):
        x = block.step(x, layer)
    length.add_(1)
    return model.lm_head(model.ln_f(x))


def measure(shape: str, wrapper: str) -> dict:
    """In this process: per-token seconds eager and compiled, and the first call's seconds."""
    import tinyllm.model.nn.kernels as kernels

    class Off:                   # Dynamo cannot read a ContextVar: the kernels, always
        def get(self):
            return False
    kernels._FORMULAS = Off()
    torch.set_num_threads(1)
    import torch._inductor.config as inductor
    inductor.cpp_wrapper = wrapper == "cpp"
    model = model_of(shape)
    c = model.config
    length = torch.zeros(1, dtype=torch.long)
    layers = [StaticLayerCache(torch.zeros(1, 2, c.num_heads, c.context_size, c.head_dim),
                               c.window_size if kind == "local" else None, length)
              for kind in c.attention_layers]
    start = torch.zeros(1, dtype=torch.long)
    with torch.no_grad():
        def eager():
            return model.generate(start[None], max_new_tokens=NEW, temperature=0)[0, 1:]
        expected = eager()
        step = torch.compile(decode, fullgraph=True, dynamic=False)

        def compiled():
            length.zero_()
            token, out = start, []
            for _ in range(NEW):
                token = step(model, token, layers, length).argmax(-1)
                out.append(token)
            return torch.cat(out)
        t0 = time.perf_counter()
        step(model, start, layers, length)
        first = time.perf_counter() - t0
        if not torch.equal(compiled(), expected):
            raise AssertionError(f"the compiled step's greedy tokens differ ({shape})")
        times = {"eager": [], "compiled": []}
        for _ in range(5):                                 # interleaved
            for name, fn in (("eager", eager), ("compiled", compiled)):
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) / NEW)
    return {"first_call_s": first, **{k: sorted(v) for k, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--measure", nargs=2, metavar=("SHAPE", "WRAPPER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    print(f"CPU: {open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}"
          f", torch {torch.__version__}, one thread, {NEW} greedy tokens")
    print("| shape | wrapper | eager µs/token | compiled µs/token | speed-up | compile, cold cache "
          "| compile, warm cache | break-even, cold / warm |\n|---|---|---:|---:|---:|---:|---:|---:|")
    for shape in SHAPES:
        for wrapper in ("python", "cpp"):
            with tempfile.TemporaryDirectory() as cache:
                env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "OMP_NUM_THREADS": "1"}
                runs = [json.loads(subprocess.run(
                    [sys.executable, __file__, "--measure", shape, wrapper], env=env,
                    check=True, capture_output=True, text=True).stdout.splitlines()[-1])
                    for _ in range(2)]                     # cold, then warm
            eager = _median(runs[1]["eager"]) * 1e6
            fast = _median(runs[1]["compiled"]) * 1e6
            cold, warm = runs[0]["first_call_s"], runs[1]["first_call_s"]
            saved = (eager - fast) / 1e6
            even = (f"{cold / saved:,.0f} / {warm / saved:,.0f} tokens" if saved > 0
                    else "never")
            print(f"| {shape} | {wrapper} | {eager:.0f} | {fast:.0f} | {eager / fast:.2f}× | "
                  f"{cold:.1f} s | {warm:.1f} s | {even} |", flush=True)


def _median(values):
    return sorted(values)[len(values) // 2]


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
