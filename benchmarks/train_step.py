"""Time one training step (forward + backward + AdamW) of the brief's model, with the fused
chunked head + loss (``GPT.loss``, tinyllm.nn.loss) and with the plain path (logits, then
``F.cross_entropy``), interleaved in one process so that both see the same machine.

    OMP_NUM_THREADS=1 python benchmarks/train_step.py            # 10 steps each
    OMP_NUM_THREADS=1 python benchmarks/train_step.py --quick    # 3 steps each
"""
import argparse
import time

import torch
import torch.nn.functional as F

from tinyllm.config import Config
from tinyllm.model import GPT


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=50257)
    args = ap.parse_args()
    steps = 3 if args.quick else args.steps
    torch.manual_seed(0)
    model = GPT(None, Config(vocab_size=args.vocab))           # the brief's Config: 64 wide, 8 layers
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    T = model.config.context_size
    batch = torch.randint(0, args.vocab, (args.batch_size, T + 1))
    x, y = batch[:, :-1], batch[:, 1:]

    def fused():
        return model.loss(x, y)

    def plain():
        logits = model(x)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten())

    times = {"fused": [], "plain": []}
    for i in range(steps + 1):                                  # step 0: warm-up, not timed
        for name, fn in (("fused", fused), ("plain", plain)):
            t = time.perf_counter()
            fn().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i:
                times[name].append(time.perf_counter() - t)
    print(f"threads {torch.get_num_threads()}, batch {args.batch_size} x context {T}, "
          f"vocab {args.vocab}, {steps} steps each (median):")
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    for k, v in med.items():
        print(f"  {k:6s} {v * 1000:8.1f} ms/step")
    print(f"  speed-up {med['plain'] / med['fused']:.2f}x")


if __name__ == "__main__":
    main()
