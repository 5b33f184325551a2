"""``tinyllm tokenizer train``: learn a byte-level BPE tokenizer from text."""
from .options import add_text_field

HELP = "train a byte-level BPE tokenizer"


def add(sub):
    p = sub.add_parser("tokenizer", help=HELP,
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
    add_text_field(t)
    t.add_argument("--vocab-size", type=int, required=True, metavar="N",
                   help="tokens in all, <|endoftext|> included (at least 257)")
    t.add_argument("--out", required=True, metavar="DIR", help="directory to write")
    t.add_argument("--slow", action="store_true",
                   help="use tinyllm's from-scratch Python trainer (same result, slower) instead "
                        "of the tokenizers library's")
    t.set_defaults(func=run)


def run(args) -> int:
    import time
    from ..data.documents import open_source
    from ..tokenizer.bpe_train import train_bpe, train_bpe_fast

    source = open_source(args.data, split="train", text_field=args.text_field)
    trainer = train_bpe if args.slow else train_bpe_fast
    start = time.perf_counter()
    vocab, merges = trainer((piece for piece, _ in source.pieces()), args.vocab_size, out=args.out)
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
