"""Generation speed, side by side in one process: the brief's loop, tinyllm's own decoder (fp32,
bf16, int8; -n 8 as one batch; eager and compiled) and llama.cpp on the very same model (f32
and q8_0).

The brief generates with

    text = 'Once upon a'
    for i in range(n):
        text += gpt.next_token(text)

where each call re-encodes the whole text, runs the full model over it (the brief's ``forward``
keeps the *first* ``context_size`` tokens) and sends every position through the head.
``brief_next_token`` below reproduces that call faithfully (under ``torch.no_grad``, which only
makes the baseline faster).

    (a) the brief's Config() (8 layers, 64 wide, context 64, GPT-2's 50,257-token head)
    (b) tinyllm train's default shape (4 layers, 128 wide, context 128, rotary), on tinyllm's
        built-in 1,024-token BPE: the model's own vocabulary, as a trained run has one

Every runner generates ``--new`` greedy tokens after 'Once upon a' (eos never stops it), from
untrained weights (speed does not depend on them). Runners are interleaved repeat by repeat, so
that machine noise hits all alike; the table gives tokens/s min / median / max and each median
against tinyllm fp32's. "-n 8" is 8 samples of the prompt decoded as one batch: total tokens/s
and per sequence. "compiled" is ``compile=True`` (``tinyllm generate --compile``), its compile
paid in the warm-up (``bench_compiled_decode.py`` measures that time). llama.cpp runs the GGUF
file tinyllm exports (``tinyllm.model.llama_cpp``, the ``--backend llama.cpp`` of ``tinyllm
generate``); q8_0 is llama.cpp's 8-bit format, beside tinyllm's int8.

    python benchmarks/bench_generate.py                    # 1 and 2 threads, 5 repeats
    python benchmarks/bench_generate.py --quick            # 1 thread, 2 repeats

``--agreement RUN`` instead measures what bf16 and int8 change on a trained model (a ``tinyllm
train`` directory): bits per byte over held-out text, and how often the greedy token is fp32's.
"""
import argparse
import math
import statistics
import time
from pathlib import Path

import torch

from tinyllm.errors import TinyLLMError  # noqa: E402
from tinyllm.files import home  # noqa: E402
from tinyllm.model import GPT  # noqa: E402
from tinyllm.model.config import Config  # noqa: E402
from tinyllm.model.dtypes import convert  # noqa: E402
from tinyllm.model.generate import stream  # noqa: E402
from tinyllm.model.presets import default_model  # noqa: E402
from tinyllm.tokenizer import Tokenizer  # noqa: E402
from tinyllm.train.peak import cpu_name  # noqa: E402

PROMPT = "Once upon a"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@torch.no_grad()
def brief_next_token(gpt, text: str) -> str:
    """The brief's ``next_token``: encode everything, full forward (first context_size tokens),
    greedy pick of the last position."""
    X = torch.tensor([gpt.tokenizer.encode(text)], device=gpt.device)
    X = X[:, :gpt.config.context_size]             # the brief's forward keeps the first tokens
    logits = gpt(X)                                # (1, T, V): every position through the head
    return gpt.tokenizer.decode([int(logits[0, -1].argmax())])


def runners(model, new: int, brief: bool, llama: bool):
    """name -> (function generating, tokens it generates)."""
    ids = torch.tensor([model.tokenizer.encode(PROMPT)])
    light = {}
    for dtype in ("bf16", "int8"):
        try:
            light[dtype] = convert(model, dtype)
        except TinyLLMError as e:                # bf16 on a CPU without bf16 instructions
            print(f"  no {dtype} runner: {e}")

    def ours(m, n=1, compile=False):
        return lambda: sum(1 for _ in stream(m, ids, new, temperature=0, eos_token_id=None,
                                             num_samples=n, compile=compile))

    out = {}
    if brief:
        def loop():
            text = PROMPT
            for _ in range(new):
                text += brief_next_token(model, text)
        out["brief next_token loop"] = (loop, new)
    out["tinyllm fp32"] = (ours(model), new)
    for dtype, light_model in light.items():
        out[f"tinyllm {dtype}"] = (ours(light_model), new)
    out["tinyllm fp32 -n 8"] = (ours(model, 8), 8 * new)
    out["tinyllm fp32 compiled"] = (ours(model, compile=True), new)   # compiled in the warm-up
    out["tinyllm fp32 -n 8 compiled"] = (ours(model, 8, compile=True), 8 * new)
    if llama:
        from tinyllm.model import llama_cpp
        for dtype in ("f32", "q8_0"):
            llm = llama_cpp.load(model, dtype)
            out[f"llama.cpp {dtype}"] = (
                lambda llm=llm: sum(1 for _ in llama_cpp.run(
                    llm, model.config.context_size, ids[0].tolist(), new, 0.0, None, None,
                    None, None)), new)
    return out


def bench(name, model, new, repeats, brief, llama):
    run = runners(model, new, brief, llama)
    for fn, _ in run.values():
        fn()                                       # warm up allocators, files, the tokenizer
    speeds = {label: [] for label in run}
    for _ in range(repeats):
        for label, (fn, tokens) in run.items():
            t0 = time.perf_counter()
            fn()
            speeds[label].append(tokens / (time.perf_counter() - t0))
    base = statistics.median(speeds["tinyllm fp32"])
    print(f"\n{name}: {new} new tokens, {repeats} interleaved repeats, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"  {'':28s} {'min':>8s} {'median':>8s} {'max':>8s}   tokens/s   ÷ tinyllm fp32")
    for label, s in speeds.items():
        med = statistics.median(s)
        extra = f"   ({med / 8:.0f} per sequence)" if "-n 8" in label else ""
        print(f"  {label:28s} {min(s):8.0f} {med:8.0f} {max(s):8.0f}   {med / base:6.2f}{extra}")


@torch.no_grad()
def agreement(run_dir: str, text_file: Path) -> None:
    """bits per byte and greedy agreement of bf16 and int8 against fp32, over the last 5 % of
    ``text_file`` (a run on that file held it out), in windows of the context."""
    model = GPT.from_pretrained(run_dir)
    text = text_file.read_text(encoding="utf-8")
    held = text[int(len(text) * 0.95):]
    ids = torch.tensor(model.tokenizer.encode(held))
    T = model.config.context_size
    windows = ids[:len(ids) // (T + 1) * (T + 1)].view(-1, T + 1)
    nbytes = sum(len(model.tokenizer.decode(w[1:].tolist()).encode()) for w in windows)
    ref = None
    print(f"{run_dir}: {windows.numel()} held-out tokens of {text_file.name}, windows of {T}")
    for dtype, everywhere in (("fp32", 0), ("bf16", 0), ("int8", 0), ("int8", 1)):
        try:
            m = convert(model, dtype, **({"int8_min_weights": 0} if everywhere else {}))
        except TinyLLMError as e:                # bf16 on a CPU without bf16 instructions
            print(f"{dtype}: {e}")
            continue
        dtype += ", every linear layer" if everywhere else ""
        nats, greedy = 0.0, []
        for w in windows.split(16):
            logits = m(w[:, :-1]).float()
            nats += torch.nn.functional.cross_entropy(logits.flatten(0, 1), w[:, 1:].flatten(),
                                                      reduction="sum").item()
            greedy.append(logits.argmax(-1))
        greedy = torch.cat(greedy)
        bpb = nats / math.log(2) / nbytes
        ref = (bpb, greedy) if ref is None else ref
        same = (greedy == ref[1]).float().mean().item()
        texts = [m.generate(p, max_new_tokens=60, temperature=0) for p in
                 ("Once upon a time", "Tom and Lily", "The little dog")]
        if dtype == "fp32":
            ref_texts = texts
        whole = sum(a == b for a, b in zip(texts, ref_texts))
        print(f"  {dtype}: {bpb:.4f} bits/byte ({bpb - ref[0]:+.5f}), greedy token = fp32's at "
              f"{100 * same:.1f} % of positions; {whole}/3 60-token greedy stories identical")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one thread, two repeats")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new", type=int, default=60, help="new tokens per run (default 60)")
    parser.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    parser.add_argument("--agreement", metavar="RUN", help="measure bf16/int8 on a trained run")
    parser.add_argument("--text", default=SHARED / "tinystories" / "validation_head.txt",
                        type=Path, help="its training text (for --agreement)")
    args = parser.parse_args(argv)
    if args.agreement:
        return agreement(args.agreement, args.text)
    try:
        import llama_cpp  # noqa: F401
        llama = True
    except ImportError:
        llama = False
        print("llama-cpp-python is not installed: no llama.cpp rows")
    gpt2 = SHARED / "gpt2" if not (home() / "gpt2" / "merges.txt").is_file() else None
    repeats, threads = (2, [1]) if args.quick else (args.repeats, map(int, args.threads.split(",")))
    print(f"CPU: {cpu_name()}")
    torch.manual_seed(0)
    brief = GPT(Tokenizer(gpt2), Config()).eval()
    torch.manual_seed(0)
    default = GPT(Tokenizer("builtin"), default_model()).eval()
    for n in threads:
        torch.set_num_threads(n)
        bench("(a) brief Config(), GPT-2's vocabulary", brief, args.new, repeats, True, llama)
        bench("(b) tinyllm train's default shape, 1,024-token vocabulary", default, args.new,
              repeats, False, llama)


if __name__ == "__main__":
    main()
