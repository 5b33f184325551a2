"""``tinyllm compare``: training runs side by side."""
from .options import add_json

HELP = "compare training runs: bits per byte against tokens and time"


def add(sub):
    p = sub.add_parser(
        "compare", help=HELP,
        description="Draw the validation bits per byte of 'tinyllm train' runs against the tokens "
                    "they trained on and against seconds, side by side in one PNG, and print a "
                    "table: best bits per byte (and when), steps, training tokens/s, parameters.")
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="a 'tinyllm train' output directory; LABEL=DIR names it (runs with the "
                        "same label, e.g. seeds of one setting, share a colour)")
    p.add_argument("--out", metavar="FILE.png", help="the PNG to write (default: none, the table "
                                                     "only)")
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from ..train.compare import COLUMNS, compare, format_table

    table = compare(args.runs, out=args.out)
    if args.json:
        print(json.dumps({"runs": [{key: row[key] for key, _, _ in COLUMNS} | {"path": row["path"]}
                                   for row in table], "png": args.out}))
        return 0
    print(format_table(table))
    if args.out:
        print(f"wrote {args.out}")
    return 0
