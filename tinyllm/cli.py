"""The ``tinyllm`` command line. Each subcommand is a small ``add_*`` (its arguments) plus a
``cmd_*`` (what it does, by calling the library). Errors become one line and exit status 1.
"""
import argparse
import sys

from .errors import TinyLLMError

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
        "train", help="learn a BPE tokenizer from a text file",
        description="Learn a byte-level BPE (256 byte tokens, merges, <|endoftext|> last) and "
                    "write vocab.json + merges.txt, loadable with --tokenizer DIR.")
    t.add_argument("--data", required=True,
                   help="UTF-8 text file (stories separated by <|endoftext|> lines), a "
                        "directory with train.txt, 'sample' (built-in corpus) or 'tinystories'")
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
    from .data.sources import resolve_text

    path = resolve_text(args.data, "train")
    trainer = train_bpe if args.slow else train_bpe_fast
    start = time.perf_counter()
    vocab, merges = trainer(path, args.vocab_size, out=args.out)
    seconds = time.perf_counter() - start
    name = "tinyllm (from scratch)" if args.slow else "tokenizers"
    short = "" if len(vocab) == args.vocab_size else \
        f" (the text ran out of pairs before {args.vocab_size})"
    print(f"trained a byte-level BPE of {len(vocab)} tokens{short}: 256 bytes, {len(merges)} "
          f"merges, <|endoftext|> = {len(vocab) - 1}")
    print(f"on {path} ({path.stat().st_size / 1e6:.2f} MB) in {seconds:.1f} s with {name}")
    print(f"wrote {args.out}/vocab.json and merges.txt; use it with --tokenizer {args.out}")
    return 0


# -- train ----------------------------------------------------------------------------------

TRAIN_DEFAULTS = dict(  # a small model for a CPU budget; argparse defaults are None so that
    layers=4, hidden=128, heads=8, context=128, window=None, dropout=0.1,   # --resume can tell
    attention_dropout=0.0, tie_embeddings=False, optimizer="muon",
    attention="scaled", lr=3e-3, min_lr=None, warmup=20, decay_steps=None,  # given from unset
    weight_decay=2.0, batch_size=16, grad_accum=1, clip=1.0, eval_every=200, eval_batches=20,
    log_every=10, val_fraction=0.05, device="auto", precision="auto", seed=1337)
DEFAULT_STEPS = 1000
DEFAULT_TOKENIZER = "bpe-4096"  # lowest held-out bits per byte after 10 CPU minutes (README)
CUDA_BATCH_SIZE = 128  # default --batch-size on a GPU, which is idle with small batches of a small model


@command
def add_train(sub):
    d = TRAIN_DEFAULTS
    p = sub.add_parser(
        "train", help="train a model (or continue a run) on stories",
        description="Train a tiny GPT on a text corpus. DIR (--out) ends up holding the model with "
                    "the best validation loss (load it with GPT.from_pretrained(DIR) or "
                    "'tinyllm eval --model DIR'), DIR/last/ the full state to --resume from, "
                    "DIR/metrics.jsonl and DIR/loss.png. Ctrl-C or SIGTERM saves before exiting. "
                    "Under torchrun (torchrun --nproc_per_node N -m tinyllm train ...) each "
                    "process trains on its shard of the data, with DistributedDataParallel.")
    g = p.add_argument_group("data and output")
    g.add_argument("--data", help="'sample' (the built-in corpus; default), 'tinystories' (its train "
                                  "and validation splits), a text file (stories separated by "
                                  "<|endoftext|> lines) or a directory with train.txt "
                                  "[and validation.txt]")
    g.add_argument("--out", metavar="DIR", help="output directory (default with --resume: DIR)")
    g.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR (flags given "
                                                   "again override its settings, e.g. a larger --max-steps)")
    g.add_argument("--tokenizer", metavar="SPEC",
                   help="gpt2, builtin, bpe-N (trained on --data) or a directory with vocab.json "
                        "and merges.txt (default: builtin for sample, else bpe-4096)")
    g.add_argument("--val-fraction", type=float, metavar="F",
                   help=f"last fraction of the stories held out for validation when --data has no "
                        f"validation split (default {d['val_fraction']})")
    g = p.add_argument_group("budget (the first reached stops; default --max-steps "
                             f"{DEFAULT_STEPS})")
    g.add_argument("--max-steps", type=int, metavar="N", help="optimizer steps")
    g.add_argument("--max-time", type=float, metavar="SECONDS", help="wall-clock seconds")
    g.add_argument("--epochs", type=float, metavar="N", help="passes over the training tokens")
    g.add_argument("--max-tokens", type=int, metavar="N", help="training tokens")
    g = p.add_argument_group("model (new runs only)")
    g.add_argument("--layers", type=int, help=f"transformer blocks (default {d['layers']})")
    g.add_argument("--hidden", type=int, help=f"width (default {d['hidden']})")
    g.add_argument("--heads", type=int, help=f"attention heads (default {d['heads']})")
    g.add_argument("--context", type=int, help=f"context length in tokens (default {d['context']})")
    g.add_argument("--window", type=int, help="local attention window: every other layer attends to "
                                              "only this many tokens, GPT-Neo style (default: none, "
                                              "all layers global)")
    g.add_argument("--dropout", type=float, help=f"dropout on the embeddings and the residual "
                                                 f"branches (default {d['dropout']})")
    g.add_argument("--attention-dropout", type=float, help=f"dropout on the attention weights "
                                                           f"(default {d['attention_dropout']}: on a "
                                                           "CPU it costs more time than it gives)")
    g.add_argument("--tie-embeddings", action=argparse.BooleanOptionalAction,
                   help="the output head reuses the token embedding matrix (default: "
                        f"{'tied' if d['tie_embeddings'] else 'separate'})")
    g.add_argument("--attention", choices=["gpt-neo", "scaled"],
                   help="gpt-neo: unscaled scores as in GPT-Neo; scaled: 1/sqrt(d) (default)")
    g = p.add_argument_group("optimization")
    g.add_argument("--optimizer", choices=["adamw", "muon"],
                   help="muon: Muon for the blocks' weight matrices, AdamW for the rest "
                        f"(default {d['optimizer']})")
    g.add_argument("--lr", type=float, help=f"peak learning rate (default {d['lr']})")
    g.add_argument("--min-lr", type=float, help="learning rate at the end of the cosine (default lr/10)")
    g.add_argument("--warmup", type=int, metavar="STEPS", help=f"linear warmup (default {d['warmup']})")
    g.add_argument("--decay-steps", type=int, metavar="N",
                   help="length of warmup + cosine decay (default: the step budget)")
    g.add_argument("--weight-decay", type=float, help=f"decay of the weight matrices (default "
                                                      f"{d['weight_decay']})")
    g.add_argument("--batch-size", type=int, help=f"sequences per micro-batch, per process (default "
                                                  f"{d['batch_size']}; {CUDA_BATCH_SIZE} on CUDA)")
    g.add_argument("--grad-accum", type=int, metavar="K", help="micro-batches per optimizer step (default 1)")
    g.add_argument("--clip", type=float, help=f"max gradient norm, 0: off (default {d['clip']})")
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    g = p.add_argument_group("evaluation and hardware")
    g.add_argument("--eval-every", type=int, metavar="N",
                   help=f"steps between validation runs, 0: only at the end (default {d['eval_every']})")
    g.add_argument("--eval-batches", "--eval-steps", dest="eval_batches", type=int, metavar="N",
                   help=f"validation batches per evaluation, 0: all (default {d['eval_batches']})")
    g.add_argument("--log-every", type=int, metavar="N", help=f"steps between metrics rows (default "
                                                             f"{d['log_every']})")
    g.add_argument("--device", help="auto (cuda if available), cpu, cuda, cuda:N or mps (default auto)")
    g.add_argument("--precision", choices=["auto", "bf16", "fp32"],
                   help="auto: bf16 autocast on CUDA, fp32 elsewhere")
    g.add_argument("--seed", type=int, help=f"random seed (default {d['seed']})")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from .distributed import process_group
    from .train import resolve_device
    with process_group(resolve_device(_train_device(args))) as dist:   # torchrun: join the others
        return _train(args, dist)


def _train_device(args) -> str:
    """The device a run will use: --device, else the resumed run's, else auto."""
    if args.device is None and args.resume:
        import json
        from .checkpoint import find_resumable
        saved = json.loads((find_resumable(args.resume) / "train_config.json").read_text("utf-8"))
        return saved.get("device") or "auto"
    return args.device or "auto"


def _train(args, dist) -> int:
    import json
    import signal
    from pathlib import Path
    import torch
    from .checkpoint import find_resumable, is_training_checkpoint, load_model
    from .config import Config
    from .data.tokens import token_byte_lengths
    from .model import GPT
    from .train import TrainConfig, fit, resolve_device

    given = {k: v for k, v in vars(args).items() if v is not None}
    opt = {**TRAIN_DEFAULTS, **given}
    overrides = {  # TrainConfig field <- flag, for the flags given on this command line
        "max_steps": "max_steps", "max_time": "max_time", "epochs": "epochs",
        "max_tokens": "max_tokens", "optimizer": "optimizer", "lr": "lr", "min_lr": "min_lr",
        "warmup_steps": "warmup", "decay_steps": "decay_steps", "weight_decay": "weight_decay",
        "batch_size": "batch_size", "grad_accum": "grad_accum", "clip": "clip", "compile": "compile",
        "eval_every": "eval_every", "eval_batches": "eval_batches", "log_every": "log_every",
        "device": "device", "precision": "precision", "seed": "seed", "data": "data",
        "val_fraction": "val_fraction"}
    if args.resume:
        fixed = [f for f in ("layers", "hidden", "heads", "context", "window", "dropout",
                             "attention_dropout", "tie_embeddings", "attention", "tokenizer",
                             "optimizer") if f in given]
        if fixed:
            flag = "--" + fixed[0].replace("_", "-")
            raise TinyLLMError(f"{flag} cannot change when resuming: the model, tokenizer and "
                               "optimizer come from the checkpoint (start a new --out to change "
                               "them)")
        source = find_resumable(args.resume)
        saved = json.loads((source / "train_config.json").read_text("utf-8"))
        changes = {f: given[flag] for f, flag in overrides.items() if flag in given}
        if any(k in changes for k in ("max_steps", "max_time", "epochs", "max_tokens")):
            saved.update(max_steps=None, max_time=None, epochs=None, max_tokens=None)
        cfg = TrainConfig.from_dict({**saved, **changes})
        out = Path(args.out) if args.out else \
            source.parent if source.name in ("last", ".last.old") else source
        model = load_model(source)
        tokenizer = model.tokenizer
    else:
        if not args.out:
            raise TinyLLMError("give --out DIR (where the model goes) or --resume DIR")
        out = Path(args.out)
        if is_training_checkpoint(out / "last"):
            raise TinyLLMError(f"{out} already holds a training run: continue it with --resume "
                               f"{out}, or choose another --out")
        if out.exists() and not out.is_dir():
            raise TinyLLMError(f"--out {out} is a file: give a directory")
        data = opt.get("data", "sample")
        if "batch_size" not in given and resolve_device(opt["device"]).type == "cuda":
            opt["batch_size"] = CUDA_BATCH_SIZE
        cfg = TrainConfig.from_dict({f: opt[flag] for f, flag in overrides.items() if flag in opt}
                                    | {"data": data})
        if all(getattr(cfg, b) is None for b in ("max_steps", "max_time", "epochs", "max_tokens")):
            cfg.max_steps = DEFAULT_STEPS
        with dist.local_main_first():               # one process trains a bpe-N, the others read it
            tokenizer = _train_tokenizer(opt.get("tokenizer"), data)
        window = opt["window"]
        layers = (["global"] * opt["layers"] if window is None else   # GPT-Neo: alternate
                  ["global" if i % 2 == 0 else "local" for i in range(opt["layers"])])
        config = Config(hidden_size=opt["hidden"], embedding_size=opt["hidden"],
                        num_layers=opt["layers"], num_heads=opt["heads"],
                        context_size=opt["context"], window_size=window or opt["context"],
                        attention_layers=layers, attention=opt["attention"],
                        attention_dropout=opt["attention_dropout"], residual_dropout=opt["dropout"],
                        embedding_dropout=opt["dropout"],
                        max_position_embeddings=opt["context"],
                        tie_embeddings=opt["tie_embeddings"])
        torch.manual_seed(cfg.seed)                 # the model's initial weights
        model = GPT(tokenizer, config)
    if cfg.eval_batches == 0:
        cfg.eval_batches = None
    with dist.local_main_first():                   # one process writes the token cache
        train_tokens, val_tokens = _train_data(cfg.data, tokenizer, cfg.val_fraction)

    device = dist.device_for(resolve_device(cfg.device))
    n = model.num_parameters()
    processes = f" × {dist.world_size} processes" if dist.world_size > 1 else ""
    if dist.is_main:                                # rank 0 reports for all
        print(f"training {n / 1e6:.2f}M parameters ({model.config.num_layers} layers, "
              f"{model.config.hidden_size} wide, context {model.config.context_size}, vocabulary "
              f"{model.config.vocab_size}) on {len(train_tokens):,} tokens of {cfg.data} "
              f"({len(val_tokens):,} held out), {device}{processes}", file=sys.stderr)
    summary = fit(model, train_tokens, val_tokens, cfg, byte_lengths=token_byte_lengths(tokenizer),
                  out_dir=out, resume_from=args.resume, progress=not args.quiet, dist=dist)
    if summary["signal"] is not None:
        if dist.is_main:
            print(f"stopped at step {summary['steps']} ({signal.Signals(summary['signal']).name}); "
                  f"checkpoint saved. Continue with: tinyllm train --resume {out}", file=sys.stderr)
        return 128 + summary["signal"]
    if not dist.is_main:
        return 0
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
    print(f"evaluate:  tinyllm eval --model {out} --data {cfg.data}")
    print(f"continue:  tinyllm train --resume {out} --max-steps {summary['steps'] * 2}")
    return 0


def _train_tokenizer(spec, data):
    from .tokenizer import load_tokenizer
    if spec is None:  # measured best (README, 'Choosing the vocabulary'); the built-in corpus ships its own
        spec = "builtin" if data == "sample" else DEFAULT_TOKENIZER
    return load_tokenizer(spec, data)


def _train_data(data, tokenizer, val_fraction):
    """(train, validation) token spans of a --data source."""
    from pathlib import Path
    from .data.sources import resolve_text, tinystories_path
    from .data.tokens import prepare
    if data == "tinystories":
        return (prepare(tinystories_path("train"), tokenizer).span(),
                prepare(tinystories_path("validation"), tokenizer).span())
    path = Path(data).expanduser() if data != "sample" else None
    if path is not None and path.is_dir() and (path / "validation.txt").is_file():
        return (prepare(resolve_text(data, "train"), tokenizer).span(),
                prepare(path / "validation.txt", tokenizer).span())
    token_file = prepare(resolve_text(data, "train"), tokenizer)
    if token_file.num_stories < 2:
        raise TinyLLMError(f"{data} holds a single story: training needs at least two, one of them "
                           "held out for validation (separate stories with <|endoftext|> lines)")
    return token_file.split(val_fraction)


# -- eval -----------------------------------------------------------------------------------

@command
def add_eval(sub):
    p = sub.add_parser(
        "eval", help="held-out loss, perplexity and bits per byte of a model",
        description="Evaluate a model (a 'tinyllm train' directory, a GPT.save_pretrained "
                    "directory or a Hugging Face GPT-Neo) on a text, tokenised with the model's "
                    "own tokenizer: mean loss per token, perplexity, bits per UTF-8 byte.")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory or hub id")
    p.add_argument("--data", required=True, help="a text file (stories separated by "
                                                 "<|endoftext|> lines), 'sample' or 'tinystories' "
                                                 "(its validation split)")
    p.add_argument("--val-fraction", type=float, metavar="F",
                   help="only the last fraction F of the stories (the part 'tinyllm train' held "
                        "out with the same --val-fraction)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-batches", type=int, metavar="N", help="evaluate only the first N batches")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    import json
    from .data.sources import resolve_text
    from .evaluate import evaluate_file
    from .model import GPT
    from .train import resolve_device

    device = resolve_device(args.device)
    path = resolve_text(args.data, "validation")
    model = GPT.from_pretrained(args.model, device=device)
    result = evaluate_file(model, path, val_fraction=args.val_fraction,
                           batch_size=args.batch_size, max_batches=args.max_batches)
    result.update(model=str(args.model), data=str(path))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"loss {result['loss']:.4f}  perplexity {result['perplexity']:.2f}  "
              f"bits/byte {result['bits_per_byte']:.4f}  ({result['tokens']:,} tokens, "
              f"{result['bytes']:,} bytes of {path})")
    return 0


# -- check ----------------------------------------------------------------------------------

@command
def add_check(sub):
    p = sub.add_parser(
        "check", help="check every from-scratch component against its reference",
        description="Run each from-scratch component and its reference twin (torch.nn, "
                    "transformers' GPT-Neo, the tokenizers library) on the same weights and "
                    "small random inputs; print the largest difference per component. Exits 1 "
                    "if any row fails; the first failing row is the component to fix (the rows "
                    "built from it, Block and GPT, fail with it).")
    p.add_argument("--seed", type=int, default=0, help="random seed for weights and inputs")
    p.set_defaults(func=cmd_check)


def cmd_check(args) -> int:
    import torch
    from .check import format_table, run_checks
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead
    rows = run_checks(seed=args.seed)
    print(format_table(rows))
    failed = [r.component for r in rows if r.failed]
    passed = sum(r.status == "pass" for r in rows)
    skipped = sum(r.status == "skipped" for r in rows)
    print(f"\n{passed} passed, {len(failed)} failed, {skipped} skipped"
          + (f": fix {failed[0]} first" if failed else ""))
    return 1 if failed else 0


# -- export ---------------------------------------------------------------------------------

@command
def add_export(sub):
    p = sub.add_parser(
        "export", help="write a model as a Hugging Face GPT-Neo directory",
        description="Load a model (a tinyllm checkpoint, a Hugging Face GPT-Neo directory or hub "
                    "id) and write it in the Hugging Face GPT-Neo layout (config.json, "
                    "model.safetensors, vocab.json, merges.txt), which "
                    "transformers.AutoModelForCausalLM.from_pretrained loads.")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory or hub id")
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from .hf import export
    from .model import GPT
    model = GPT.from_pretrained(args.model)
    out = export(model, args.out)
    print(f"wrote {out} (GPT-Neo, {model.num_parameters():,} parameters)")
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
    from .generate import check_options, stream_text
    from .model import GPT
    from .train import resolve_device

    check_options(args.max_new_tokens, args.temperature, args.top_k, args.top_p)
    if args.num_samples < 1:
        raise TinyLLMError(f"-n must be 1 or more, not {args.num_samples}")
    prompts = list(args.prompts)
    if args.prompt_file:
        with open(args.prompt_file, encoding="utf-8") as f:
            prompts += [line.rstrip("\n") for line in f if line.strip()]
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


# -- main ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyllm",
        description="Build, train and run a tiny GPT from scratch.",
        epilog="Run 'tinyllm COMMAND --help' for a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    order = ["train", "generate", "eval", "tokenizer", "check", "export"]  # as a user meets them
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
    except (TinyLLMError, ValueError, OSError) as e:
        print(f"tinyllm {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
