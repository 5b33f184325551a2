"""The ``tinyllm`` command line. Each subcommand is a small ``add_*`` (its arguments) plus a
``cmd_*`` (what it does, by calling the library). ``tinyllm train``'s options are generated from
the fields of ``TrainConfig`` and ``Config``.

A ``TinyLLMError`` (something the user can fix) is printed as one line, exit status 1; anything
else is a bug in tinyllm and shows its traceback (``--debug`` or ``TINYLLM_DEBUG=1`` shows it for
``TinyLLMError`` too). The library modules that import PyTorch are imported by the commands that
need them, so that ``tinyllm --help`` answers at once.
"""
import argparse
import os
import signal
import sys
import traceback
import typing
from dataclasses import fields, replace
from pathlib import Path

from .config import Config
from .errors import TinyLLMError
from .train_config import ARCHITECTURES, DATA, MODEL, TrainConfig

# -- subcommands --------------------------------------------------------------------------
# (each section: add_<name>(subparsers) registers it; cmd_<name>(args) runs it and returns 0)

COMMANDS = []  # add_* functions, in the order --help lists them


def command(add):
    COMMANDS.append(add)
    return add


# -- tokenizer ------------------------------------------------------------------------------

@command
def add_tokenizer(sub):
    p = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer",
                       description="Byte-level BPE tokenizers (GPT-2 format).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = actions.add_parser(
        "train", help="learn a BPE tokenizer from text",
        description="Learn a byte-level BPE (256 byte tokens, merges, <|endoftext|> last) and "
                    "write vocab.json + merges.txt, loadable with --tokenizer DIR.")
    t.add_argument("--data", required=True, metavar="SOURCE",
                   help="the text to learn from: anything 'tinyllm train --data' takes (a text, "
                        "JSONL, JSON or Parquet file, a folder, a glob, hf:NAME, 'sample', "
                        "'tinystories'); its train split")
    t.add_argument("--text-field", default="text", metavar="NAME",
                   help="the JSON field or Parquet column holding the text (default text)")
    t.add_argument("--vocab-size", type=int, required=True, metavar="N",
                   help="tokens in all, <|endoftext|> included (at least 257)")
    t.add_argument("--out", required=True, metavar="DIR", help="directory to write")
    t.add_argument("--slow", action="store_true",
                   help="use tinyllm's from-scratch Python trainer (same result, slower) instead "
                        "of the tokenizers library's")
    t.set_defaults(func=cmd_tokenizer)


def cmd_tokenizer(args) -> int:
    import time
    from .bpe_train import train_bpe, train_bpe_fast
    from .data.documents import open_source

    source = open_source(args.data, split="train", text_field=args.text_field)
    trainer = train_bpe if args.slow else train_bpe_fast
    start = time.perf_counter()
    vocab, merges = trainer(source, args.vocab_size, out=args.out)
    seconds = time.perf_counter() - start
    name = "tinyllm (from scratch)" if args.slow else "tokenizers"
    short = "" if len(vocab) == args.vocab_size else \
        f" (the text ran out of pairs before {args.vocab_size})"
    print(f"trained a byte-level BPE of {len(vocab)} tokens{short}: 256 bytes, {len(merges)} "
          f"merges, <|endoftext|> = {len(vocab) - 1}")
    size = f" ({source.size / 1e6:.2f} MB)" if source.size else ""
    print(f"on {source.name}{size} in {seconds:.1f} s with {name}")
    print(f"wrote {args.out}/vocab.json and merges.txt; use it with --tokenizer {args.out}")
    return 0


# -- train ----------------------------------------------------------------------------------

@command
def add_train(sub):
    p = sub.add_parser(
        "train", help="train a model (or continue a run) on stories",
        description="Train a tiny GPT on a text corpus. DIR (--out) ends up holding the model with "
                    "the best validation loss (load it with GPT.from_pretrained(DIR) or "
                    "'tinyllm eval --model DIR'), DIR/last/ the full state to --resume from, "
                    "DIR/metrics.jsonl and DIR/loss.png. Ctrl-C or SIGTERM saves before exiting. "
                    "Under torchrun (torchrun --nproc_per_node N -m tinyllm train ...) each "
                    "process trains on its shard of the data, with DistributedDataParallel.")
    g = p.add_argument_group(DATA)
    g.add_argument("--out", metavar="DIR", help="output directory (default with --resume: DIR)")
    g.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR (options given "
                                                   "again override its settings, e.g. a larger "
                                                   "--max-steps)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument_group(MODEL).add_argument(
        "--arch", choices=list(ARCHITECTURES),
        help="the model's components: tinyllm (the default: GPT-Neo's with rotary positions, "
             "the ladder's winner; no Hugging Face layout holds it), gpt-neo (learned "
             "positions, LayerNorm, GELU MLP, biases; 'tinyllm export' writes a Hugging Face "
             "GPT-Neo) or llama (rotary positions, RMSNorm, SwiGLU MLP, no biases; exported "
             "as a Hugging Face Llama); the other model options apply on top")
    add_config_options(p, TrainConfig())
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from .checkpoint import find_resumable, run_dir, saved_train_config
    from .device import resolve_device
    from .distributed import process_group
    from .train import new_run_dir, train

    if args.resume and args.arch:
        raise TinyLLMError("--arch sets up a new model: leave it out with --resume (the model "
                           "comes from the checkpoint)")
    if args.resume:
        source = find_resumable(args.resume)
        saved = TrainConfig.from_dict(saved_train_config(source))
        cfg = saved.resumed(**config_changes(args, saved))
        out = Path(args.out) if args.out else run_dir(source)
    elif args.out:
        base = TrainConfig(model=ARCHITECTURES[args.arch or "tinyllm"]())
        cfg = replace(base, **config_changes(args, base))
        out = new_run_dir(args.out)
    else:
        raise TinyLLMError("give --out DIR (where the model goes) or --resume DIR")
    with process_group(resolve_device(cfg.device)) as dist:   # torchrun: join the others
        summary = train(cfg, out, resume_from=args.resume, dist=dist, progress=not args.quiet,
                        on_start=_print_start if dist.is_main else None)
        if summary["signal"] is not None:
            if dist.is_main:
                print(f"stopped at step {summary['steps']} "
                      f"({signal.Signals(summary['signal']).name}); checkpoint saved. Continue "
                      f"with: tinyllm train --resume {out}", file=sys.stderr)
            return 128 + summary["signal"]
        if dist.is_main:
            _print_summary(summary, out, cfg)
    return 0


def _print_start(model, splits, cfg, device, dist):
    from .device import training_precision
    c = model.config
    processes = f" × {dist.world_size} processes" if dist.world_size > 1 else ""
    processes += f", {training_precision(cfg.precision, device, dist.world_size)}"
    print(f"training {model.num_parameters() / 1e6:.2f}M parameters ({c.num_layers} layers, "
          f"{c.hidden_size} wide, context {c.context_size}, vocabulary {c.vocab_size}) on "
          f"{len(splits.train):,} tokens of {cfg.data} ({len(splits.validation):,} held out: "
          f"{splits.how}), {device}{processes}; dropout {c.residual_dropout or 0:.2g}, weight decay "
          f"{cfg.weight_decay:.2g}", file=sys.stderr)


def _print_summary(summary, out, cfg):
    if summary["stopped_early"]:
        print(f"stopped early at step {summary['steps']}: no better validation loss in "
              f"{cfg.patience} evaluations since step {summary['best_step']} (--patience)")
    final = summary["final"]
    if final is not None:
        bpb = f", {final['val_bpb']:.3f} bits/byte" if "val_bpb" in final else ""
        print(f"done: {summary['steps']} steps, {summary['tokens']:,} tokens in "
              f"{summary['seconds']:.0f}s; validation loss {final['val_loss']:.4f}{bpb} "
              f"(best {summary['best_val_loss']:.4f})")
    print(f"model (best validation loss): {out}    metrics: {out / 'metrics.jsonl'}    "
          f"loss curve: {out / 'loss.png'}")
    print(f"generate:  tinyllm generate --model {out} \"Once upon a time\"    "
          f"(Python: GPT.from_pretrained('{out}'))")
    print(f"evaluate:  tinyllm eval --model {out}    (on the text it held out)")
    print(f"continue:  tinyllm train --resume {out} --max-steps {summary['steps'] * 2}")


# -- options generated from TrainConfig and Config fields --------------------------------------

def add_config_options(parser, defaults: TrainConfig) -> None:
    """One option per field of ``TrainConfig`` and per model field (``Config``) that has a help
    text, in the field's group, with its default from ``defaults``. Every default is None in
    argparse, so that ``config_changes`` sees which options were given."""
    groups = {a.title: a for a in parser._action_groups}
    for f, default in [(f, getattr(defaults, f.name)) for f in fields(TrainConfig)
                       if f.name != "model"] + \
                      [(f, getattr(defaults.model, f.name)) for f in fields(Config)
                       if f.metadata.get("help")]:
        meta = f.metadata
        title = meta["group"] or MODEL
        group = groups.get(title) or groups.setdefault(title, parser.add_argument_group(title))
        dest = f.name if title != MODEL or f in fields(TrainConfig) else "model." + f.name
        flags = [meta["flag"] or "--" + f.name.replace("_", "-"), *meta["aliases"]]
        help = meta["help"]
        if "default" not in help and default is not None:
            help += f" (default {_show(default)})"
        kind = _value_type(f)
        if kind is bool:
            group.add_argument(*flags, dest=dest, action=argparse.BooleanOptionalAction,
                               default=None, help=help)
        elif kind is tuple:
            group.add_argument(*flags, dest=dest, type=float, nargs=len(default), default=None,
                               metavar="X", help=help)
        else:
            group.add_argument(*flags, dest=dest, type=kind, choices=meta["choices"],
                               default=None, metavar=meta["metavar"], help=help)


def config_changes(args, base: TrainConfig) -> dict:
    """The ``TrainConfig`` fields set on the command line; model options given become
    ``model=base.model.replace(...)`` (the sizes that follow them follow: ``Config.replace``)."""
    given = {k: v for k, v in vars(args).items() if v is not None}
    changes = {f.name: given[f.name] for f in fields(TrainConfig) if f.name in given}
    model = {f.name: given["model." + f.name] for f in fields(Config) if "model." + f.name in given}
    if model:
        changes["model"] = base.model.replace(**model)
    return changes


def _value_type(f):
    args = [a for a in typing.get_args(f.type) if a is not type(None)]
    return args[0] if args else f.type


def _show(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value)


# -- eval -----------------------------------------------------------------------------------

@command
def add_eval(sub):
    p = sub.add_parser(
        "eval", help="held-out loss, perplexity and bits per byte of a model",
        description="Evaluate a model (a 'tinyllm train' directory, a GPT.save_pretrained "
                    "directory or a Hugging Face GPT-Neo) on a text, tokenised with the model's "
                    "own tokenizer: mean loss per token, perplexity, bits per UTF-8 byte. A run "
                    "is scored on the text it held out unless told otherwise.")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory or hub id")
    p.add_argument("--data", metavar="SOURCE",
                   help="the text to score (anything 'tinyllm train --data' takes; its "
                        "validation split where it has one). Default for a run: the text it "
                        "held out. Given the run's own training data, still only its held-out part")
    p.add_argument("--val-fraction", type=float, metavar="F",
                   help="score only the last fraction F of --data's documents (how 'tinyllm "
                        "train' holds text out)")
    p.add_argument("--include-training-text", action="store_true",
                   help="score all of --data even where the run trained on it (the result "
                        "flatters the model, and says so)")
    p.add_argument("--text-field", default="text", metavar="NAME",
                   help="the JSON field or Parquet column holding the text (default text)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-batches", type=int, metavar="N", help="evaluate only the first N batches")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    import json
    from .checkpoint import run_config
    from .device import resolve_device
    from .evaluate import evaluate, text_to_score
    from .data.tokens import token_byte_lengths
    from .model import GPT

    model = GPT.from_pretrained(args.model, device=resolve_device(args.device))
    if model.tokenizer is None:
        raise TinyLLMError(f"{args.model} has no tokenizer to read text with: load a checkpoint "
                           "that includes vocab.json and merges.txt")
    run = run_config(args.model)
    span, text, trained_on = text_to_score(
        model.tokenizer, data=args.data, run=TrainConfig.from_dict(run) if run else None,
        val_fraction=args.val_fraction, everything=args.include_training_text,
        text_field=args.text_field)
    result = evaluate(model, span, token_byte_lengths(model.tokenizer), batch_size=args.batch_size,
                      max_batches=args.max_batches)
    result.update(model=str(args.model), text=text, includes_training_text=trained_on)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"loss {result['loss']:.4f}  perplexity {result['perplexity']:.2f}  "
          f"bits/byte {result['bits_per_byte']:.4f}  ({result['tokens']:,} tokens, "
          f"{result['bytes']:,} bytes: {text})")
    if trained_on:
        print("note: the model trained on this text; held-out text gives the honest figure "
              "(leave out --include-training-text)")
    return 0


# -- data -----------------------------------------------------------------------------------

@command
def add_data(sub):
    p = sub.add_parser(
        "data", help="show what a training run would read from --data",
        description="Read a data source as 'tinyllm train' would — documents, bytes, tokens "
                    "under the tokenizer, the train/validation split, the first document — so "
                    "that 'is my data read correctly?' has an answer before a long run. "
                    "The tokens are prepared and cached, ready for training.")
    for name in ("data", "val_data", "val_fraction", "text_field", "tokenizer"):
        f = next(f for f in fields(TrainConfig) if f.name == name)
        default = getattr(TrainConfig(), name)
        p.add_argument(f.metadata["flag"] or "--" + name.replace("_", "-"), dest=name,
                       default=default, type=_value_type(f), metavar=f.metadata["metavar"],
                       help=f.metadata["help"])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_data)


def cmd_data(args) -> int:
    import json
    from .data.tokens import describe
    from .tokenizer import load_tokenizer

    cfg = replace(TrainConfig(), data=args.data, val_data=args.val_data,
                  val_fraction=args.val_fraction, text_field=args.text_field,
                  tokenizer=args.tokenizer)
    cfg = cfg.resolve(_cpu())
    tokenizer = load_tokenizer(cfg.tokenizer, cfg.data, text_field=cfg.text_field)
    d = describe(cfg.data, tokenizer, val_data=cfg.val_data, val_fraction=cfg.val_fraction,
                 text_field=cfg.text_field)
    if args.json:
        print(json.dumps({**d, "tokenizer": {**d["tokenizer"], "spec": cfg.tokenizer}}))
        return 0
    t, v = d["train"], d["validation"]
    print(f"{d['source']}: {_n(d['documents'], 'document')}, {d['bytes']:,} bytes, "
          f"{d['tokens']:,} tokens with the {cfg.tokenizer} tokenizer ({tokenizer.vocab_size:,} "
          f"tokens, {d['bytes'] / max(d['tokens'], 1):.2f} bytes per token)")
    print(f"  train:      {_n(t['documents'], 'document')}, {t['tokens']:,} tokens, "
          f"{t['bytes']:,} bytes")
    print(f"  validation: {_n(v['documents'], 'document')}, {v['tokens']:,} tokens, "
          f"{v['bytes']:,} bytes: {v['how']}")
    print("first document:\n" + _indent(d["first_document"]))
    return 0


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _cpu():
    import torch
    return torch.device("cpu")


def _indent(text: str) -> str:
    return "\n".join("  | " + line for line in text.splitlines())


# -- explore --------------------------------------------------------------------------------

@command
def add_explore(sub):
    from .explore.command import DESCRIPTION, add_arguments
    p = sub.add_parser("explore", help="a local web page that shows inside a model",
                       description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=cmd_explore)


def cmd_explore(args) -> int:
    from .explore.command import run
    return run(args)


# -- check ----------------------------------------------------------------------------------

@command
def add_check(sub):
    p = sub.add_parser(
        "check", help="check every component against its reference — tinyllm's, or yours",
        description="Run each component and its reference twin (torch.nn, transformers' GPT-Neo, "
                    "the tokenizers library) on the same weights and small random inputs; print "
                    "the largest difference of outputs and gradients per row, and why a row "
                    "fails. Exits 1 if any row fails; the first failing row is the component to "
                    "fix (the rows built from it, Block and GPT, fail with it). With --use, your "
                    "own class goes through the same rows, and --train re-trains the model with "
                    "it beside tinyllm's.")
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
    p.set_defaults(func=cmd_check)


def cmd_check(args) -> int:
    import torch
    from . import components
    from .check import format_table, run_checks

    if args.interface is not None:
        print(components.interface(args.interface) if args.interface else components.kinds())
        return 0
    mine = [components.load(spec) for spec in args.use]
    kinds = [impl.kind for impl in mine]
    twice = next((k for k in kinds if kinds.count(k) > 1), None)
    if twice:
        raise TinyLLMError(f"--use gives {twice} twice: one class per kind")
    parts = components.parts(*mine)
    if args.train is not None:
        from .retrain import check_request
        check_request(parts, args.train)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead
    try:
        rows = run_checks(seed=args.seed, parts=parts, kinds=kinds or None)
    finally:
        torch.set_num_threads(threads)
    for impl in mine:
        print(f"yours: {impl.kind} = {impl.label}")
    print(format_table(rows))
    failed = [r.component for r in rows if r.failed]
    passed = sum(r.status == "pass" for r in rows)
    skipped = sum(r.status == "skipped" for r in rows)
    print(f"\n{passed} passed, {len(failed)} failed, {skipped} skipped"
          + (f": fix {failed[0]} first" if failed else ""))
    if args.train is not None:
        _check_train(parts, args)
    return 1 if failed else 0


def _check_train(parts, args) -> None:
    from .retrain import retrain

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
    for label, run in (("tinyllm", ours), ("yours", yours)):
        print(f"  {label:8} {run['final_loss']:>10.4f} {run['val_loss']:>16.4f}")
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


# -- export ---------------------------------------------------------------------------------

@command
def add_export(sub):
    p = sub.add_parser(
        "export", help="write a model as a Hugging Face GPT-Neo or Llama directory",
        description="Load a model (a tinyllm checkpoint, a Hugging Face directory or hub id) and "
                    "write it in the Hugging Face layout of its architecture — GPT-Neo (learned "
                    "positions, LayerNorm) or Llama (rotary, RMSNorm, SwiGLU, no biases) — as "
                    "config.json, model.safetensors, vocab.json, merges.txt, which "
                    "transformers.AutoModelForCausalLM.from_pretrained loads.")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory or hub id")
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from .model import GPT
    from .pretrained import export, export_format
    model = GPT.from_pretrained(args.model)
    out = export(model, args.out)
    print(f"wrote {out} ({export_format(model.config)}, {model.num_parameters():,} parameters)")
    return 0


# -- generate -------------------------------------------------------------------------------

@command
def add_generate(sub):
    p = sub.add_parser(
        "generate", help="continue prompts with a model, streaming the text",
        description="Continue each prompt with a model (a 'tinyllm train' directory, a "
                    "GPT.save_pretrained directory or a Hugging Face GPT-Neo), printing tokens "
                    "as they are produced. With no prompt at all, starts a story from scratch.")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory or hub id")
    p.add_argument("prompts", nargs="*", metavar="PROMPT", help="text to continue")
    p.add_argument("--prompt-file", metavar="F", help="a file of prompts, one per line")
    p.add_argument("-n", "--num-samples", type=int, default=1, metavar="N",
                   help="continuations per prompt (default 1)")
    p.add_argument("--max-new-tokens", type=int, default=200, metavar="N",
                   help="stop after N tokens if no <|endoftext|> came first (default 200)")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T",
                   help="0: always the most likely token (greedy); higher: more random (default 1)")
    p.add_argument("--top-k", type=int, metavar="K", help="sample only from the K most likely tokens")
    p.add_argument("--top-p", type=float, metavar="P",
                   help="sample only from the most likely tokens that add up to probability P")
    p.add_argument("--seed", type=int, metavar="S", help="random seed: the same S, the same text")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("-i", "--interactive", action="store_true",
                   help="then read prompts from stdin, one per line, until end of file")
    p.set_defaults(func=cmd_generate)


def cmd_generate(args) -> int:
    import torch
    from .device import resolve_device
    from .generate import check_options, stream_text
    from .model import GPT

    check_options(args.max_new_tokens, args.temperature, args.top_k, args.top_p)
    if args.num_samples < 1:
        raise TinyLLMError(f"-n must be 1 or more, not {args.num_samples}")
    prompts = list(args.prompts)
    if args.prompt_file:
        try:
            with open(args.prompt_file, encoding="utf-8") as f:
                prompts += [line.rstrip("\n") for line in f if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise TinyLLMError(f"cannot read the prompt file {args.prompt_file} "
                               f"({type(e).__name__}): give a UTF-8 text file, one prompt per "
                               "line") from None
    if not prompts and not args.interactive:
        prompts = [""]
    device = resolve_device(args.device)
    model = GPT.from_pretrained(args.model, device=device)
    if model.tokenizer is None:
        raise TinyLLMError(f"{args.model} has no tokenizer to write text with: save it with one")
    generator = None  # one generator for every sample: the same seed, the same outputs
    if args.seed is not None:
        generator = torch.Generator(device=device).manual_seed(args.seed)
    options = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                   top_k=args.top_k, top_p=args.top_p, generator=generator)
    out = sys.stdout
    first = True

    def run(prompt):
        nonlocal first
        for _ in range(args.num_samples):
            if not first:
                out.write("---\n")
            first = False
            out.write(prompt)
            out.flush()
            for piece in stream_text(model, prompt, **options):
                out.write(piece)
                out.flush()
            out.write("\n")
            out.flush()

    for prompt in prompts:
        run(prompt)
    if args.interactive:
        tty = sys.stdin.isatty()
        while True:
            if tty:
                print("> ", end="", file=sys.stderr, flush=True)
            line = sys.stdin.readline()
            if not line:            # end of file (Ctrl-D)
                break
            run(line.rstrip("\n"))
    return 0


# -- compare --------------------------------------------------------------------------------

@command
def add_compare(sub):
    p = sub.add_parser(
        "compare", help="compare training runs: bits per byte against tokens and time",
        description="Draw the validation bits per byte of 'tinyllm train' runs against the tokens "
                    "they trained on and against seconds, side by side in one PNG, and print a "
                    "table: best bits per byte (and when), steps, training tokens/s, parameters.")
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="a 'tinyllm train' output directory; LABEL=DIR names it (runs with the "
                        "same label, e.g. seeds of one setting, share a colour)")
    p.add_argument("--out", metavar="FILE.png", help="the PNG to write (default: none, the table "
                                                     "only)")
    p.add_argument("--json", action="store_true", help="print the table as one JSON object")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    import json
    from .compare import COLUMNS, compare, format_table

    table = compare(args.runs, out=args.out)
    if args.json:
        print(json.dumps({"runs": [{key: row[key] for key, _, _ in COLUMNS} | {"path": row["path"]}
                                   for row in table], "png": args.out}))
        return 0
    print(format_table(table))
    if args.out:
        print(f"wrote {args.out}")
    return 0


# -- main ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyllm",
        description="Build, train and run a tiny GPT from scratch.",
        epilog="Run 'tinyllm COMMAND --help' for a command's options.")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of every error (also: TINYLLM_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    order = ["train", "data", "generate", "eval", "explore", "tokenizer", "check", "export"]
    for add in sorted(COMMANDS, key=lambda a: order.index(a.__name__[4:]) if a.__name__[4:] in order else 99):
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("tinyllm: interrupted", file=sys.stderr)
        return 130
    except TinyLLMError as e:   # the user's to fix: one line (the rest is a bug: a traceback)
        if args.debug or os.environ.get("TINYLLM_DEBUG") not in (None, "", "0"):
            traceback.print_exc()
        print(f"tinyllm {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
