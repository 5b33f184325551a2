"""bf16 against fp32 training on this CPU, side by side: speed and the loss curve.

    python benchmarks/bench_precision.py [--steps 300] [--seeds 1 2 3] [--repeats 5]

Speed: one training step (forward, backward, optimizer) of ``tinyllm train``'s default model
(batch 16 × 128 tokens, vocabulary 4,096, Muon) and of the brief's config (batch 32 × 64 tokens,
GPT-2's 50,257-token vocabulary, Adam), fp32 and bf16 (a bf16 copy of the model, fp32 master
weights: ``tinyllm.device.Bf16Copy``), interleaved repeats, min / median / max. Quality: the
default model trained ``--steps`` steps on the built-in corpus in each precision, same seed and
batches, held-out loss at the end (evaluated in fp32), for each seed. ``--precision auto`` takes
bf16 on a CPU with AMX (``tinyllm.device.cpu_has_bf16_units``).
"""
import argparse
import statistics
import time

import torch

from tinyllm.model.config import Config
from tinyllm.data.tokens import load_splits, random_batches, token_byte_lengths
from tinyllm.train.device import cpu_has_bf16_units
from tinyllm.train.peak import cpu_name
from tinyllm.model import GPT
from tinyllm.data.tokenizer import load_tokenizer
from tinyllm.train import Run, TrainConfig, fit
from tinyllm.train.plan import plan_run


def step_time(config: Config, train: TrainConfig, batch_size: int, repeats: int) -> dict:
    """Seconds per optimizer step, fp32 and bf16, interleaved."""
    runs = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        cfg = TrainConfig(**{**train.__dict__, "precision": precision, "batch_size": batch_size})
        model = GPT(None, config)
        run = Run(model, plan_run(cfg, None, model=model.config))
        batch = torch.randint(0, config.vocab_size, (batch_size, config.context_size + 1))
        runs[precision] = (run, batch)
        run.step([batch])                                           # warm up
    times = {p: [] for p in runs}
    for _ in range(repeats):
        for precision, (run, batch) in runs.items():
            t0 = time.perf_counter()
            run.step([batch])
            times[precision].append(time.perf_counter() - t0)
    return times


def quality(steps: int, seed: int) -> dict:
    tokenizer = load_tokenizer("builtin")
    splits = load_splits("sample", tokenizer)
    out = {}
    for precision in ("fp32", "bf16"):
        cfg = TrainConfig(max_steps=steps, precision=precision, eval_every=0, seed=seed)
        torch.manual_seed(seed)
        model = GPT(tokenizer, cfg.model)
        batches = random_batches(splits.train, 16, cfg.model.context_size,
                                 generator=torch.Generator().manual_seed(seed))
        t0 = time.perf_counter()
        r = fit(model, splits.train, splits.validation, cfg, batches=batches,
                byte_lengths=token_byte_lengths(tokenizer))
        out[precision] = (r["final"]["val_loss"], r["final"]["val_bpb"], time.perf_counter() - t0)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, bf16 matrix units (AMX): "
          f"{cpu_has_bf16_units()}")
    cases = {"default model (batch 16, Muon)": (TrainConfig().model.replace(vocab_size=4096),
                                                TrainConfig(), 16),
             "brief config (batch 32, Adam)": (Config(vocab_size=50257),
                                               TrainConfig(optimizer="adam", lr=1e-3), 32)}
    for name, (config, train, batch) in cases.items():
        t = step_time(config, train, batch, args.repeats)
        speed = [a / b for a, b in zip(t["fp32"], t["bf16"])]
        print(f"{name}: fp32 {1000 * min(t['fp32']):.0f}/{1000 * statistics.median(t['fp32']):.0f}"
              f"/{1000 * max(t['fp32']):.0f} ms, bf16 {1000 * min(t['bf16']):.0f}/"
              f"{1000 * statistics.median(t['bf16']):.0f}/{1000 * max(t['bf16']):.0f} ms "
              f"(min/median/max); bf16 speed-up per repeat {min(speed):.2f}/"
              f"{statistics.median(speed):.2f}/{max(speed):.2f}")
    for seed in args.seeds:
        q = quality(args.steps, seed)
        print(f"seed {seed}, {args.steps} steps on the built-in corpus: held-out loss fp32 "
              f"{q['fp32'][0]:.4f} ({q['fp32'][1]:.4f} bits/byte, {q['fp32'][2]:.0f} s), bf16 "
              f"{q['bf16'][0]:.4f} ({q['bf16'][1]:.4f} bits/byte, {q['bf16'][2]:.0f} s)")


if __name__ == "__main__":
    main()
