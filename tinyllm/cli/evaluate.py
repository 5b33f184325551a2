"""``tinyllm eval``: held-out loss, perplexity and bits per byte of a model."""
from ..errors import TinyLLMError
from ..train.config import TrainConfig
from .options import add_device, add_json, add_model, add_text_field, add_threads, cpu_threads

HELP = "held-out loss, perplexity and bits per byte of a model"


def add(sub):
    p = sub.add_parser(
        "eval", help=HELP,
        description="Evaluate a model (a 'tinyllm train' directory, a GPT.save_pretrained "
                    "directory or a Hugging Face GPT-Neo or Llama) on a text, tokenised with the "
                    "model's own tokenizer: mean loss per token, perplexity, bits per UTF-8 byte. "
                    "A run is scored on the text it held out unless told otherwise.")
    add_model(p)
    p.add_argument("--data", metavar="SOURCE",
                   help="the text to score (anything 'tinyllm train --data' takes; its "
                        "validation split where it has one). Default for a run: the text it "
                        "held out. Given the run's own training data, still only its held-out part")
    p.add_argument("--val-fraction", type=float, metavar="F",
                   help="score only the part of --data that 'tinyllm train' holds out with this "
                        "--val-fraction")
    p.add_argument("--include-training-text", action="store_true",
                   help="score all of --data even where the run trained on it (the result "
                        "flatters the model, and says so)")
    add_text_field(p)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-batches", type=int, metavar="N", help="evaluate only the first N batches")
    add_device(p)
    add_threads(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from ..data.tokens import token_byte_lengths
    from ..model import GPT
    from ..train.checkpoint import run_config
    from ..train.device import resolve_device
    from ..train.evaluate import evaluate, text_to_score

    device = resolve_device(args.device)
    cpu_threads(args)
    model = GPT.from_pretrained(args.model, device=device)
    if model.tokenizer is None:
        raise TinyLLMError(f"{args.model} has no tokenizer to read text with: load a checkpoint "
                           "that includes vocab.json and merges.txt")
    run = run_config(args.model)
    span, text, trained_on = text_to_score(
        model.tokenizer, data=args.data, run=TrainConfig.from_dict(run) if run else None,
        val_fraction=args.val_fraction, everything=args.include_training_text,
        text_field=args.text_field, context_size=model.config.context_size)
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
