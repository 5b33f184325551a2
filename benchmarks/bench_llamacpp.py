"""tinyllm's generation against llama.cpp's on the very same model: tokens per second of prompt
processing and of greedy generation, one thread each, for tinyllm train's default shape and the
blog series' Config(), llama.cpp's file in f32 and q8_0.

    OMP_NUM_THREADS=1 python benchmarks/bench_llamacpp.py [--repeats 5]

The model is exported with ``tinyllm export --format gguf`` (tinyllm.formats.export_gguf) and run
by llama-cpp-python; tinyllm runs its own decoder (``tinyllm.model.generate.stream``, eos never
stops it, as llama.cpp's loop here). Speed does not depend on the weights' values, so the models
are freshly initialised. Figures: min / median / max over the repeats, and llama.cpp ÷ tinyllm.
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tinyllm.formats import export_gguf  # noqa: E402
from tinyllm.model import GPT, Config  # noqa: E402
from tinyllm.model.generate import stream  # noqa: E402
from tinyllm.model.presets import default_model  # noqa: E402
from tinyllm.tokenizer import Tokenizer  # noqa: E402
from tinyllm.train.peak import cpu_name  # noqa: E402

GPT2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpt2"


def shapes():
    """(name, model, prompt length, new tokens): prompt + new tokens fill the context."""
    builtin = Tokenizer("builtin")
    gpt2 = Tokenizer(GPT2) if GPT2.is_dir() else Tokenizer()
    yield "default shape (4 x 128, GPT-2 vocab)", GPT(gpt2, default_model()), 28, 100
    yield "default shape (4 x 128, 1,024-token BPE)", GPT(builtin, default_model()), 28, 100
    yield "series Config() (8 x 64, GPT-2 vocab)", GPT(gpt2, Config()), 16, 48


def time_tinyllm(model, prompt, new):
    with torch.no_grad():
        ids = torch.tensor([prompt])
        t0 = time.perf_counter()
        cache = model.new_cache(1)
        model(ids, cache=cache)
        prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = sum(1 for _ in stream(model, ids, new, temperature=0, eos_token_id=None))
        total = time.perf_counter() - t0
    return len(prompt) / prefill, n / max(total - prefill, 1e-9)


def time_llama_cpp(llm, prompt, new):
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    prefill = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(new):
        token = llm.sample(top_k=1, temp=0.0)
        llm.eval([token])
    return len(prompt) / prefill, new / (time.perf_counter() - t0)


def spread(xs):
    return f"{min(xs):7.0f} {statistics.median(xs):7.0f} {max(xs):7.0f}"


def main():
    import llama_cpp
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"CPU: {cpu_name()}; one thread each; tokens/s min / median / max over {args.repeats}")
    print(f"{'model':42} {'runner':16} {'prompt tok/s':>23} {'generate tok/s':>23} {'gen ratio':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, n_prompt, new in shapes():
            model.eval()
            prompt = model.tokenizer.encode("Once upon a time, there was a little girl "
                                            "named Lily. She loved to play outside in the "
                                            "sun with her dog.")[:n_prompt]
            ours = [time_tinyllm(model, prompt, new) for _ in range(args.repeats)]
            base = statistics.median(g for _, g in ours)
            print(f"{name:42} {'tinyllm eager':16} {spread([p for p, _ in ours])} "
                  f"{spread([g for _, g in ours])} {1.0:9.2f}")
            for dtype in ("f32", "q8_0"):
                path = export_gguf(model, Path(tmp) / f"m-{dtype}.gguf", dtype).path
                llm = llama_cpp.Llama(model_path=str(path), n_ctx=model.config.context_size,
                                      n_threads=1, n_threads_batch=1, verbose=False)
                theirs = [time_llama_cpp(llm, prompt, new) for _ in range(args.repeats)]
                ratio = statistics.median(g for _, g in theirs) / base
                print(f"{'':42} {'llama.cpp ' + dtype:16} {spread([p for p, _ in theirs])} "
                      f"{spread([g for _, g in theirs])} {ratio:9.2f}")
                llm.close()


if __name__ == "__main__":
    main()
