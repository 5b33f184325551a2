"""``tinyllm check``: every component against its reference twin — tinyllm's, or a learner's."""
import sys

from ..errors import TinyLLMError

HELP = "check every component against its reference — tinyllm's, or yours"


def add(sub):
    p = sub.add_parser(
        "check", help=HELP,
        description="Run each component and its reference twin (torch.nn, transformers' GPT-Neo, "
                    "the tokenizers library) on the same weights and small random inputs; print "
                    "the largest difference of outputs and gradients per row, and why a row "
                    "fails. Exits 1 if any row fails; the first failing row is the component to "
                    "fix (the rows built from it, Block and GPT, fail with it). With --use, your "
                    "own class goes through the same rows, and --train re-trains the model with "
                    "it beside tinyllm's. The references need transformers: "
                    "pip install \"tinyllm[check]\".")
    p.add_argument("--seed", type=int, default=0, help="random seed for weights and inputs")
    p.add_argument("--use", action="append", default=[], metavar="KIND=PATH:NAME",
                   help="check your own class NAME from PATH (a .py file or a dotted module) as "
                        "component KIND (--interface lists the kinds); once per kind. Only the "
                        "rows that build it run")
    p.add_argument("--interface", nargs="?", const="", metavar="KIND",
                   help="print what a KIND must look like (constructor, forward, shapes, "
                        "parameter names, formula) and exit; without KIND, list the kinds")
    p.add_argument("--train", type=int, metavar="STEPS",
                   help="then re-train tinyllm train --arch gpt-neo's model on the built-in "
                        "corpus for STEPS steps with your components and with tinyllm's (same "
                        "seed, weights, batches) and compare the losses")
    p.add_argument("--plot", default="check-train.png", metavar="FILE",
                   help="with --train: where to draw both loss curves (default check-train.png)")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch
    from ..check import CHECKS, format_table, run_checks
    from ..check import implementations, kinds
    from ..check.common import TRANSFORMERS_MISSING

    if args.interface is not None:
        print(kinds.interface(args.interface) if args.interface else kinds.kinds())
        return 0
    mine = [implementations.load(spec) for spec in args.use]
    chosen_kinds = [impl.kind for impl in mine]
    twice = next((k for k in chosen_kinds if chosen_kinds.count(k) > 1), None)
    if twice:
        raise TinyLLMError(f"--use gives {twice} twice: one class per kind")
    parts = implementations.parts(*mine)
    if args.train is not None:
        from ..check.retrain import check_request
        check_request(parts, args.train)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead
    try:
        rows = run_checks(seed=args.seed, parts=parts, kinds=chosen_kinds or None)
    finally:
        torch.set_num_threads(threads)
    missing = sum(r.note == TRANSFORMERS_MISSING for r in rows)
    if missing:
        print(f"{missing} of these {len(rows)} rows need transformers, which is not installed: "
              "pip install \"tinyllm[check]\" to run them", file=sys.stderr)
    for impl in mine:
        print(f"yours: {impl.kind} = {impl.label}")
    print(format_table(rows))
    failed = [r.component for r in rows if r.failed]
    passed = sum(r.status == "pass" for r in rows)
    skipped = sum(r.status == "skipped" for r in rows)
    print(f"\n{passed} passed, {len(failed)} failed, {skipped} skipped"
          + (f": fix {failed[0]} first" if failed else ""))
    if mine and len(rows) < len(CHECKS):
        print(f"({len(CHECKS) - len(rows)} other rows build none of your classes and do not "
              "apply to them: tinyllm check without --use runs them)")
    if args.train is not None:
        _check_train(parts, args)
    return 1 if failed else 0


def _check_train(parts, args) -> None:
    from ..check.retrain import retrain

    def on_start(label, model):
        print(f"training {label}: {model.num_parameters() / 1e6:.2f}M parameters, "
              f"{args.train} step{'s' if args.train != 1 else ''}", file=sys.stderr)
    result = retrain(parts, args.train, plot=args.plot, progress=True, on_start=on_start)
    ours, yours = result["tinyllm"], result["yours"]
    start = "the same initial weights" if result["same_start"] else \
        "their own initial weights (your parameters do not line up with tinyllm's by name)"
    print(f"\nre-trained {args.train} steps on the built-in corpus, same seed and batches, "
          f"{start}, AdamW, no dropout:")
    print(f"  {'':8} {'train loss':>10} {'validation loss':>16}")
    for label, run_ in (("tinyllm", ours), ("yours", yours)):
        print(f"  {label:8} {run_['final_loss']:>10.4f} {run_['val_loss']:>16.4f}")
    last = "the last step" if ours["last_steps"] == 1 else f"the mean of the last " \
                                                            f"{ours['last_steps']} steps"
    gap = round(yours["val_loss"] - ours["val_loss"], 4) + 0.0      # no "-0.0000"
    print(f"  (train loss: {last}; validation, yours - tinyllm's: {gap:+.4f})")
    if abs(gap) <= 0.01:
        print("your components train as tinyllm's do")
    elif gap < 0:
        print("yours learns faster than tinyllm's: a model that sees the token it predicts (not "
              "causal) does; check the rows above")
    else:
        print("yours trains worse than tinyllm's: check the rows above")
    print(f"loss curves: {result['plot']}")
