"""Training-step speed on the CPU: tinyllm's from-scratch GPT against the same model built from
transformers' ``GPTNeoBlock`` (the brief's series, part 2).

The brief's configuration: GPT-2's 50,257-token vocabulary, batch 32, context 64, 8 local
GPT-Neo blocks 64 wide with 16 heads. One step is forward + cross-entropy + backward:

    reference      nn.Embedding ×2, 8 × transformers GPTNeoBlock, nn.LayerNorm, bias-free head;
                   loss = CrossEntropyLoss(model(X).transpose(1, 2), Y)      (the brief's loop)
    tinyllm        GPT(None, Config()) with the same loss                     (its default path)
    tinyllm.loss   GPT.loss(X, Y): the head and the loss fused and chunked    (what tinyllm train runs)
    (--explicit adds tinyllm under kernels.formulas(): the written-out softmax and GELU)

All start from the same weights. Runs are interleaved (ref, tinyllm, ..., ref, tinyllm, ...)
so that machine noise hits every variant alike; the table gives min / median / max seconds per
step and each median's ratio to the reference's.

    OMP_NUM_THREADS=1 python benchmarks/bench_forward.py            # the real measurement
    OMP_NUM_THREADS=1 python benchmarks/bench_forward.py --quick    # a few seconds
"""
import argparse
import sys
from pathlib import Path
import statistics
import time

import torch
import torch.nn.functional as F

from tinyllm.model.config import Config
from tinyllm.formats.gpt_neo import state_dict_from_hf
from tinyllm.model.nn import formulas
from tinyllm.model import GPT

sys.path.insert(0, str(Path(__file__).resolve().parent))
from brief_recipe import GPTNeoBlockModel  # noqa: E402  the brief's part-2 model, shared by the benchmarks

VOCAB = 50257


def brief_step(model, X, Y):
    loss = F.cross_entropy(model(X).transpose(1, 2), Y)  # as the brief's CrossEntropyLoss
    loss.backward()
    return loss


def fused_step(model, X, Y):
    loss = model.loss(X, Y)
    loss.backward()
    return loss


def build(config: Config, explicit: bool):
    torch.manual_seed(0)
    ref = GPTNeoBlockModel(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                   context_size=config.context_size, num_layers=config.num_layers,
                   num_heads=config.num_heads, window_size=config.window_size,
                   attention_layers=config.attention_layers,
                   max_position_embeddings=config.max_position_embeddings)
    hf_names = {"transformer." + k.replace("blocks.", "h.", 1): v            # GPT-Neo's names
                for k, v in ref.state_dict().items() if not k.startswith("lm_head")}
    hf_names["lm_head.weight"] = ref.lm_head.weight
    weights = state_dict_from_hf(hf_names)  # the same weights, through formats.gpt_neo's mapping
    variants = {"reference (GPTNeoBlock)": (ref, brief_step)}
    mine = GPT(None, config)
    mine.load_state_dict(weights)
    variants["tinyllm"] = (mine, brief_step)
    variants["tinyllm model.loss (fused)"] = (mine, fused_step)
    if explicit:
        def written_out_step(model, X, Y):
            with formulas():
                return brief_step(model, X, Y)
        variants["tinyllm explicit"] = (mine, written_out_step)
    return variants


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="batch 4, 2 repeats: seconds, not minutes")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--explicit", action="store_true", help="also time the formulas written out (kernels.formulas())")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.quick:
        args.batch_size, args.repeats, args.warmup = 4, 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)

    config = Config(vocab_size=VOCAB, context_size=args.context)
    variants = build(config, args.explicit)
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, VOCAB, (args.batch_size, args.context + 1), generator=g)
    X, Y = data[:, :-1], data[:, 1:]

    # same weights, same data: the losses agree (a benchmark of the wrong thing is worthless)
    losses = {}
    for name, (model, step) in variants.items():
        model.train()
        losses[name] = step(model, X, Y).item()
        model.zero_grad(set_to_none=True)
    spread = max(losses.values()) - min(losses.values())
    assert spread < 1e-4, f"variants disagree on the loss: {losses}"

    times = {name: [] for name in variants}
    for r in range(args.warmup + args.repeats):
        for name, (model, step) in variants.items():
            start = time.perf_counter()
            step(model, X, Y)
            elapsed = time.perf_counter() - start
            model.zero_grad(set_to_none=True)
            if r >= args.warmup:
                times[name].append(elapsed)

    ref_median = statistics.median(times["reference (GPTNeoBlock)"])
    print(f"forward + loss + backward, batch {args.batch_size} x context {args.context}, "
          f"vocab {VOCAB}, {torch.get_num_threads()} thread(s), {args.repeats} interleaved repeats; "
          f"loss {losses['tinyllm']:.4f} (all variants within {spread:.1e})")
    width = max(map(len, times))
    print(f"{'variant':<{width}}  {'min s':>8}  {'median s':>8}  {'max s':>8}  {'vs ref':>7}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<{width}}  {min(ts):8.4f}  {med:8.4f}  {max(ts):8.4f}  {med / ref_median:6.2f}x")


if __name__ == "__main__":
    main()
