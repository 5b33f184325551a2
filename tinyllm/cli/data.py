"""``tinyllm data``: what a training run would read from --data."""
from dataclasses import replace

from ..train.config import TrainConfig
from .options import add_fields, add_json

HELP = "show what a training run would read from --data"


def add(sub):
    p = sub.add_parser(
        "data", help=HELP,
        description="Read a data source as 'tinyllm train' would — documents, bytes, tokens "
                    "under the tokenizer, the train/validation split, the first document — so "
                    "that 'is my data read correctly?' has an answer before a long run. "
                    "The tokens are prepared and cached, ready for training.")
    add_fields(p, ("data", "val_data", "val_fraction", "val_by", "text_field", "tokenizer"))
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from ..data.tokenizer import load_tokenizer
    from ..data.tokens import describe

    cfg = replace(TrainConfig(), data=args.data, val_data=args.val_data,
                  val_fraction=args.val_fraction, val_by=args.val_by,
                  text_field=args.text_field, tokenizer=args.tokenizer)
    tokenizer = load_tokenizer(cfg.tokenizer_spec, cfg.data, text_field=cfg.text_field)
    d = describe(cfg.data, tokenizer, val_data=cfg.val_data, val_fraction=cfg.val_fraction,
                 val_by=cfg.val_by, text_field=cfg.text_field)
    if args.json:
        print(json.dumps({**d, "tokenizer": {**d["tokenizer"], "spec": cfg.tokenizer_spec}}))
        return 0
    t, v = d["train"], d["validation"]
    print(f"{d['source']}: {_n(d['documents'], 'document')}, {d['bytes']:,} bytes, "
          f"{d['tokens']:,} tokens with the {cfg.tokenizer_spec} tokenizer "
          f"({tokenizer.vocab_size:,} tokens, {d['bytes'] / max(d['tokens'], 1):.2f} bytes per "
          "token)")
    print(f"  train:      {_n(t['documents'], 'document')}, {t['tokens']:,} tokens, "
          f"{t['bytes']:,} bytes")
    print(f"  validation: {_n(v['documents'], 'document')}, {v['tokens']:,} tokens, "
          f"{v['bytes']:,} bytes: {v['how']}")
    print("first document:\n" + "\n".join("  | " + line
                                           for line in d["first_document"].splitlines()))
    return 0


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
