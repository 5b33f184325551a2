"""Fine-tuning defaults by measurement: learning rate × optimizer, starting from a trained model.

A model is pretrained on the built-in corpus (its own 1,024-token BPE), then fine-tuned for a
short budget with each learning rate and optimizer on one of two tasks:

    --task text          other text: the first TinyStories validation stories (last 10 % held
                         out), 40 steps of 8 windows
    --task instructions  requests "Tell a story about a {animal} called {name}." and short
                         stories that use both (56 of the 64 combinations; the other 8 held
                         out), 150 steps of 16 examples, answer-only targets

The table gives the task's held-out bits per byte (for instructions: of the held-out answers)
and the built-in corpus's held-out bits per byte after tuning (what the model forgot), beside
the model before tuning and a fresh model trained on the same budget.

    OMP_NUM_THREADS=1 python benchmarks/bench_finetune.py --task text           # ~10 minutes
    OMP_NUM_THREADS=1 python benchmarks/bench_finetune.py --task instructions   # ~6 minutes
    OMP_NUM_THREADS=1 python benchmarks/bench_finetune.py --quick               # a minute
"""
import json
import random
import argparse
import tempfile
import time
from pathlib import Path

from tinyllm.model import GPT
from tinyllm.train import TrainConfig, train
from tinyllm.train.evaluate import evaluate
from tinyllm.data.tokens import load_splits, token_byte_lengths

STORIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinystories" / \
    "validation_head_stories.txt"


def held_out_bpb(model_dir, data, val_fraction=0.1) -> float:
    """Held-out bits per byte of ``data`` (instruction data: of its held-out answers)."""
    model = GPT.from_pretrained(model_dir)
    if data.endswith(".jsonl"):
        from tinyllm.data.instructions import load_examples
        held = load_examples(data, model.tokenizer, template=model.tokenizer.chat_template,
                             context_size=model.config.context_size,
                             val_fraction=val_fraction).validation
    else:
        held = load_splits(data, model.tokenizer, val_fraction=val_fraction).validation
    return evaluate(model, held, token_byte_lengths(model.tokenizer),
                    batch_size=16)["bits_per_byte"]


def instruction_task(path: Path) -> str:
    """56 requests and answers to tune on, then the 8 held-out combinations (last 1/8)."""
    animals = ["cat", "dog", "bird", "fish", "bear", "frog", "duck", "lion"]
    names = ["Tom", "Lily", "Max", "Sue", "Ben", "Mia", "Sam", "Anna"]
    pairs = [(a, n) for a in animals for n in names]
    random.Random(0).shuffle(pairs)
    with open(path, "w") as f:
        for a, n in pairs[8:] + pairs[:8]:
            f.write(json.dumps({"prompt": f"Tell a story about a {a} called {n}.",
                                "completion": f"Once upon a time, there was a {a} called {n}. "
                                              f"{n} liked to play with a ball."}) + "\n")
    return str(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--task", choices=["text", "instructions"], default="text")
    parser.add_argument("--data", default=str(STORIES), help="the fine-tuning text")
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--steps", type=int, default=None,
                        help="fine-tuning steps (default 40 text, 150 instructions)")
    args = parser.parse_args(argv)
    args.steps = args.steps or (40 if args.task == "text" else 150)
    lrs = [3e-4, 3e-3] if args.quick else [1e-4, 3e-4, 1e-3, 3e-3]
    optimizers = ["adamw", "muon"]
    pre_steps = 30 if args.quick else args.pretrain_steps
    steps = 10 if args.quick else args.steps
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fraction = 0.1 if args.task == "text" else 1 / 8
        if args.task == "instructions":
            args.data = instruction_task(tmp / "tasks.jsonl")
        common = dict(data=args.data, max_steps=steps, eval_every=0, val_fraction=fraction,
                      batch_size=8 if args.task == "text" else 16, weight_decay=0.0)
        t0 = time.perf_counter()
        train(TrainConfig(data="sample", max_steps=pre_steps, eval_every=0), tmp / "pre")
        print(f"pretrained {pre_steps} steps on the built-in corpus in "
              f"{time.perf_counter() - t0:.0f}s; fine-tuning {steps} steps on "
              f"{Path(args.data).name} ({args.task}, last {fraction:.0%} held out)")

        def scores(out):
            return held_out_bpb(out, args.data, fraction), held_out_bpb(out, "sample", 0.05)
        rows = [("before fine-tuning", "", *scores(tmp / "pre"))]
        if args.task == "text":
            train(TrainConfig(tokenizer=str(tmp / "pre"), lr=3e-3, **common), tmp / "fresh")
            rows.append(("fresh model, same steps", "muon 3e-3", *scores(tmp / "fresh")))
        for optimizer in optimizers:
            for lr in lrs:
                out = tmp / f"{optimizer}-{lr:g}"
                train(TrainConfig(init_from=str(tmp / "pre"), optimizer=optimizer, lr=lr,
                                  warmup_steps=max(1, steps // 4), **common), out)
                rows.append(("fine-tuned", f"{optimizer} {lr:g}", *scores(out)))
                print(f"  {optimizer} {lr:g}: {rows[-1][2]:.4f} {rows[-1][3]:.4f}", flush=True)
    print("\n| run | optimizer, lr | task held-out bits per byte | built-in corpus held-out "
          "(forgetting) |\n|---|---|---|---|")
    for what, setting, bpb, before in rows:
        print(f"| {what} | {setting} | {bpb:.4f} | {before:.4f} |")
    best = min((r for r in rows if r[0] == "fine-tuned"), key=lambda r: r[2])
    print(f"\nbest: {best[1]} ({best[2]:.4f})")


if __name__ == "__main__":
    main()
