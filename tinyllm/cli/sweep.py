"""``tinyllm sweep``: train a few settings × seeds as ordinary runs under one directory, and say
which setting is best (``tinyllm.train.sweep``)."""
import json
import math
import sys

from .options import add_json

HELP = "train a grid or list of settings × seeds and compare them"


def add(sub):
    p = sub.add_parser(
        "sweep", help=HELP,
        description="Train every combination of the --vary values and/or every --setting, each "
                    "with --seeds seeds, as ordinary 'tinyllm train' runs under DIR "
                    "(DIR/SETTING/seed-N), one after another or --parallel N at a time; then "
                    "print one row per setting — best held-out bits per byte, mean ± sd over "
                    "the seeds, and the difference from the baseline with a verdict (better / "
                    "worse / within noise: the paired differences' mean more than two standard "
                    "errors from 0, or not) — and draw every run into DIR/compare.png. Run the "
                    "same command again to continue a sweep that was stopped: finished runs are "
                    "not redone, a stopped one continues from its checkpoint. Options given "
                    "here override those of the --config file.",
        epilog="examples: tinyllm sweep --out sweeps/lr --vary lr=1e-3,3e-3,1e-2 --seeds 3 -- "
               "--data sample --max-time 120;  tinyllm sweep --config sweep.toml --parallel 2")
    p.add_argument("--config", metavar="FILE.toml",
                   help="a sweep file: out, seeds, seed, baseline, parallel, train, [vary], "
                        "[settings] (see docs/training.md)")
    p.add_argument("--out", metavar="DIR", help="the sweep's directory")
    p.add_argument("--vary", action="append", default=[], metavar="NAME=V1,V2",
                   help="an option of 'tinyllm train' (without its dashes) and the values it "
                        "takes; repeat for a grid of every combination")
    p.add_argument("--setting", action="append", default=[], metavar="NAME=OPTIONS",
                   help="a named set of 'tinyllm train' options, e.g. 'rotary=--position "
                        "rotary' ('default=': none); repeat for a list")
    p.add_argument("--seeds", type=int, metavar="N", help="seeds per setting (default 1)")
    p.add_argument("--seed", type=int, metavar="S", help="the first seed (default 1337)")
    p.add_argument("--baseline", metavar="SETTING",
                   help="the setting the others are measured against, as its directory is "
                        "named, e.g. lr=1e-3 (default: the first)")
    p.add_argument("--parallel", type=int, metavar="N",
                   help="runs at a time, each a process with 1/N of the cores (default 1)")
    p.add_argument("--table", action="store_true",
                   help="train nothing: print the table (and draw the picture) of the runs "
                        "finished so far")
    add_json(p)
    p.add_argument("train_options", nargs="*", metavar="-- TRAIN OPTIONS",
                   help="after --: the options every run is trained with (see 'tinyllm train "
                        "--help'), after the file's")
    p.set_defaults(func=run)


def build(args):
    """The sweep and the runs at a time that ``args`` give: the --config file's, with the
    command line's values over them (--vary and --setting replace the file's of the same name,
    the options after -- go after the file's train options)."""
    from ..errors import TinyLLMError
    from ..train.sweep import FIRST_SEED, Sweep, parse_setting, parse_vary, read_config, seed_range

    config = read_config(args.config) if args.config else {}
    parallel = args.parallel or config.pop("parallel", 1)
    config.pop("parallel", None)
    if args.out:
        config["out"] = args.out
    if "out" not in config:
        raise TinyLLMError("give --out DIR, the sweep's directory (or out = \"DIR\" in the "
                           "sweep file)")
    if args.seeds is not None or args.seed is not None:
        file_seeds = config.get("seeds") or [FIRST_SEED]
        config["seeds"] = seed_range(len(file_seeds) if args.seeds is None else args.seeds,
                                     file_seeds[0] if args.seed is None else args.seed)
    if args.baseline:
        config["baseline"] = args.baseline
    config["vary"] = config.get("vary", {}) | dict(parse_vary(v) for v in args.vary)
    config["settings"] = config.get("settings", {}) | dict(parse_setting(s) for s in args.setting)
    config["train"] = [*config.get("train", []), *args.train_options]
    return Sweep(**config), parallel


def run(args) -> int:
    sweep, parallel = build(args)
    total, done = len(sweep.runs()), len(sweep.finished())
    if args.table:
        print(f"the sweep in {sweep.out}: {done} of {total} runs finished", file=sys.stderr)
        return _report(sweep, [], args.json)
    if done:
        print(f"continuing the sweep in {sweep.out}: {done} of {total} runs finished",
              file=sys.stderr)
    finished = [done]

    def say(event, r):
        if event == "done":
            finished[0] += 1
            best = sweep.finished()[r.key]["best_bpb"]
            best = "no bits per byte" if best is None else f"best {best:.4f} bits/byte"
            print(f"sweep: {r.key} done, {best} ({finished[0]} of {total} finished)",
                  file=sys.stderr)
        else:
            print(f"sweep: {r.key} {'started' if event == 'start' else event}"
                  + (f" (output: {r.log})" if event == "start" and parallel > 1 else ""),
                  file=sys.stderr)
    try:
        failed = sweep.run(parallel, on_event=say)
    except KeyboardInterrupt:
        print(f"the sweep stopped with {finished[0]} of {total} runs finished (the others saved "
              "where they were): run the same command to continue it", file=sys.stderr)
        return 130
    return _report(sweep, failed, args.json)


def _report(sweep, failed, as_json: bool) -> int:
    """The table of the finished runs (and DIR/compare.png), then the runs that failed."""
    from ..train.sweep import PICTURE, format_table
    picture = None
    if sweep.compare_specs():
        from ..train.compare import compare
        picture = sweep.out / PICTURE
        compare(sweep.compare_specs(), out=picture)
    rows = sweep.table()
    if as_json:
        print(json.dumps({"settings": [{k: None if isinstance(v, float) and math.isnan(v) else v
                                        for k, v in row.items()} for row in rows],
                          "png": str(picture) if picture else None,
                          "failed": {r.key: why for r, why in failed}}))
    else:
        print(format_table(rows))
        if picture:
            print(f"wrote {picture}")
    for r, why in failed:
        print(f"tinyllm sweep: run {r.key} {why}", file=sys.stderr)
    if failed:
        print("fix what failed and run the same command to retry those runs", file=sys.stderr)
    return 1 if failed else 0
