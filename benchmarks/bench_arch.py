"""Training-step speed of each ``tinyllm train --arch`` model, side by side on this machine.

    python benchmarks/bench_arch.py [--repeats 20]

One optimizer step (forward, backward, Muon + AdamW; ``--precision auto``: bf16 on a CPU with
AMX) of each preset at ``tinyllm train``'s size (4 layers, 128 wide, context 128, vocabulary
4,096, batch 16), interleaved repeats, min / median / max milliseconds, and each step's time
over ``--arch gpt-neo``'s in the same repeat (gpt-neo is the default before rotary positions
joined it).
"""
import argparse
import statistics
import time

import torch

from tinyllm.train.peak import cpu_name
from tinyllm.model import GPT
from tinyllm.model.presets import ARCHITECTURES
from tinyllm.train import Run, TrainConfig
from tinyllm.train.device import cpu_has_bf16_units
from tinyllm.train.plan import plan_run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, AMX: {cpu_has_bf16_units()}")
    runs = {}
    for arch, make in ARCHITECTURES.items():
        torch.manual_seed(0)
        cfg = TrainConfig(model=make().replace(vocab_size=4096))
        model = GPT(None, cfg.model)
        run = Run(model, plan_run(cfg, None, model=model.config))
        batch = torch.randint(0, 4096, (run.cfg.batch_size, cfg.model.context_size + 1))
        run.step([batch])                                              # warm up
        runs[arch] = (run, batch)
    times = {arch: [] for arch in runs}
    for _ in range(args.repeats):
        for arch, (run, batch) in runs.items():
            t0 = time.perf_counter()
            run.step([batch])
            times[arch].append(time.perf_counter() - t0)
    base = times["gpt-neo"]
    for arch, t in times.items():
        ratio = [a / b for a, b in zip(t, base)]
        print(f"--arch {arch:8s} {runs[arch][0].model.num_parameters():>10,} parameters: "
              f"{1000 * min(t):.0f} / {1000 * statistics.median(t):.0f} / {1000 * max(t):.0f} ms "
              f"per step; time / gpt-neo's {min(ratio):.2f} / {statistics.median(ratio):.2f} / "
              f"{max(ratio):.2f}")


if __name__ == "__main__":
    main()
