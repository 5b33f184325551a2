"""``tinyllm train``: train a model (or continue a run) on any text."""
import signal
import sys
from dataclasses import replace
from pathlib import Path

from ..errors import TinyLLMError
from ..model.presets import ARCHITECTURES
from ..train.config import DATA, MODEL, TrainConfig
from .options import add_config_options, config_changes

HELP = "train a model (or continue a run) on stories"


def add(sub):
    p = sub.add_parser(
        "train", help=HELP,
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
    g.add_argument("--resume-if-exists", action="store_true",
                   help="with --out DIR: continue the run DIR holds, if any, as --resume DIR does "
                        "(it must be the same run: data, model, tokenizer, optimizer), else start "
                        "it; for schedulers that rerun a job. A group torchrun restarts does this "
                        "by itself")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument_group(MODEL).add_argument(
        "--arch", choices=list(ARCHITECTURES),
        help="the model's components: tinyllm (the default: GPT-Neo's with rotary positions, "
             "which trained best of the components tried; no Hugging Face layout holds it), "
             "gpt-neo (learned "
             "positions, LayerNorm, GELU MLP, biases; 'tinyllm export' writes a Hugging Face "
             "GPT-Neo) or llama (rotary positions, RMSNorm, SwiGLU MLP, no biases; exported "
             "as a Hugging Face Llama); the other model options apply on top")
    add_config_options(p, TrainConfig())
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.instructions import Examples
    from ..train.checkpoint import find_resumable, run_dir, saved_train_config
    from ..train.device import resolve_device
    from ..train.distributed import peer_failed, process_group
    from ..train.start import existing_run, new_run_dir, restarted_by_torchrun, same_run, train
    from ..train.trackers import parse as parse_trackers

    if args.resume and args.arch:
        raise TinyLLMError("--arch sets up a new model: leave it out with --resume (the model "
                           "comes from the checkpoint)")
    if not (args.out or args.resume):
        raise TinyLLMError("give --out DIR (where the model goes) or --resume DIR")
    source, fresh = find_resumable(args.resume) if args.resume else None, None
    if not args.resume:
        if args.init_from and args.arch:
            raise TinyLLMError("--arch sets up a new model: leave it out with --init-from (the "
                               "architecture comes from the model it starts from)")
        # fine-tuning (--init-from) has its own defaults: TrainConfig fills them in
        base = TrainConfig(model=_pretrained_config(args.init_from) if args.init_from else
                           ARCHITECTURES[args.arch or "tinyllm"](), init_from=args.init_from)
        fresh = cfg = replace(base, **config_changes(args, base))
        # a rerun (--resume-if-exists) or torchrun's restart of the group continues the run
        if args.resume_if_exists or restarted_by_torchrun():
            source = existing_run(args.out)
        if source is None:
            new_run_dir(args.out)
    if source is not None:
        saved = TrainConfig.from_dict(saved_train_config(source))
        if fresh is not None and (differs := same_run(fresh, saved)) is not None:
            raise TinyLLMError(f"{args.out} holds another run ({differs} differs): continue it "
                               "with --resume, or choose another --out")
        cfg = saved.resumed(**config_changes(args, saved))
    parse_trackers(cfg.report_to)          # a tracker not installed: said before the data is read
    out = Path(args.out) if args.out else run_dir(source)
    resume_from = args.resume or (args.out if source is not None else None)
    answers = []                           # whether the run learns answers: _print_start says

    def started(model, splits, plan, dist, resumed):
        answers.append(isinstance(splits.train, Examples))
        _print_start(model, splits, plan, dist, resumed)
    with process_group(resolve_device(cfg.device)) as dist:   # torchrun: join the others
        try:
            summary = train(cfg, out, resume_from=resume_from, dist=dist,
                            progress=not args.quiet, on_start=started if dist.is_main else None)
        except RuntimeError as e:
            if not peer_failed(e, dist):
                raise
            signal.signal(signal.SIGTERM, signal.SIG_IGN)   # torchrun's, which follows: say why
            raise TinyLLMError(f"{dist.failed_rank()} of this run stopped (its connection to rank "
                               f"{dist.rank} failed), so rank {dist.rank} stops too; "
                               f"{_intact_checkpoint(out)}") from None
        if summary["signal"] is not None:
            if dist.is_main:
                print(f"stopped at step {summary['steps']} "
                      f"({signal.Signals(summary['signal']).name}); checkpoint saved. Continue "
                      f"with: tinyllm train --resume {out}", file=sys.stderr)
            return 128 + summary["signal"]
        if dist.is_main:
            _print_summary(summary, out, cfg, of_answers=any(answers))
    return 0


def _intact_checkpoint(out: Path) -> str:
    from ..train.checkpoint import LAST, saved_step
    try:
        step = saved_step(out / LAST)
    except TinyLLMError:
        return f"no checkpoint of this run was saved yet in {out}"
    return (f"{out / LAST} (step {step}) is intact: torchrun --max-restarts continues from it by "
            f"itself, or run again with --resume {out}")


def _pretrained_config(name):
    """The config of the model --init-from names: the options given change it."""
    from ..formats import read_model
    from ..model.config import Config
    return Config.from_dict(read_model(name).config)


def _print_start(model, splits, plan, dist, resumed):
    from ..data.instructions import Examples
    c, cfg = model.config, plan.cfg
    processes = f" × {dist.world_size} processes" if dist.world_size > 1 else ""
    doing = "training" if resumed is None else f"continuing from step {resumed:,}:"
    if resumed is None and cfg.init_from is not None:
        doing = f"fine-tuning {cfg.init_from} (lr {cfg.lr:.3g}, {cfg.optimizer}):"
    data = f"{len(splits.train):,} tokens of {cfg.data} ({len(splits.validation):,} held out: "
    if isinstance(splits.train, Examples):     # instruction examples
        cut = f"; {splits.train.cut:,} cut to the context" if splits.train.cut else ""
        data = (f"{len(splits.train.ids):,} examples of {cfg.data}, learning "
                f"{'every token' if cfg.train_on_prompt else 'the answers'}{cut} ("
                f"{len(splits.validation.ids):,} held out: ")
    print(f"{doing} {model.num_parameters() / 1e6:.2f}M parameters ({c.num_layers} layers, "
          f"{c.hidden_size} wide, context {c.context_size}, vocabulary {c.vocab_size}) on "
          f"{data}{splits.how}), {plan.device}{processes}, {plan.precision}; dropout "
          f"{c.residual_dropout or 0:.2g}, weight decay {cfg.weight_decay:.2g}"
          f"{' (for now: the speed of the first steps sets them)' if plan.by_speed else ''}",
          file=sys.stderr)


def _print_summary(summary, out, cfg, of_answers: bool = False):
    if summary["stopped_early"]:
        print(f"stopped early at step {summary['steps']}: no better validation loss in "
              f"{cfg.patience} evaluations since step {summary['best_step']} (--patience)")
    final = summary["final"]
    if final is not None:
        answers = " of the answers" if of_answers else ""
        bpb = f", {final['val_bpb']:.3f} bits/byte{answers}" if "val_bpb" in final else ""
        print(f"done: {summary['steps']} steps, {summary['tokens']:,} tokens in "
              f"{summary['seconds']:.0f}s; validation loss {final['val_loss']:.4f}{bpb} "
              f"(best {summary['best_val_loss']:.4f})")
    if summary["tokens_per_s"]:
        print(_speed_line(summary))
    print(f"model (best validation loss): {out}    metrics: {out / 'metrics.jsonl'}    "
          f"loss curve: {out / 'loss.png'}")
    from ..train.trackers import parse, viewer
    for name in parse(cfg.report_to):
        print(f"{name + ':':11} {viewer(name, out)}")
    print(f"generate:  tinyllm generate --model {out} \"Once upon a time\"    "
          f"(Python: GPT.from_pretrained('{out}'))")
    print(f"evaluate:  tinyllm eval --model {out}    (on the text it held out)")
    print(f"continue:  tinyllm train --resume {out} --max-steps {summary['steps'] * 2}")


def _speed_line(summary) -> str:
    """'speed: 9,870 tokens/s, 85.9 GFLOP/s of training, MFU 38.1% of 226 GFLOP/s (measured
    ...)': the training steps after the warm-up ones, against the device's peak."""
    from ..train.peak import flops_text
    line = (f"speed: {summary['tokens_per_s']:,} tokens/s, "
            f"{flops_text(summary['flops_per_s'])} of training")
    peak = summary["peak"]
    if peak is None:
        return line + " (no peak known for this device: no MFU)"
    return (f"{line}, MFU {summary['mfu']:.1%} of {flops_text(peak['flops_per_s'])} "
            f"({peak['source']})")
