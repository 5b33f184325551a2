"""``tinyllm generate``: continue prompts with a model, streaming the text."""
import sys

from ..errors import TinyLLMError
from .options import add_device, add_model, add_threads, cpu_threads

HELP = "continue prompts with a model, streaming the text"


def add(sub):
    p = sub.add_parser(
        "generate", help=HELP,
        description="Continue each prompt with a model (a 'tinyllm train' directory, a "
                    "GPT.save_pretrained directory or a Hugging Face GPT-Neo or Llama), printing "
                    "tokens as they are produced. With no prompt at all, starts a story from "
                    "scratch.")
    add_model(p)
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
    add_device(p)
    add_threads(p)
    p.add_argument("-i", "--interactive", action="store_true",
                   help="then read prompts from stdin, one per line, until end of file")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch
    from ..model import GPT
    from ..model.generate import check_options, stream_text
    from ..train.device import resolve_device

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
    cpu_threads(args)
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

    def continue_(prompt):
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
        continue_(prompt)
    if args.interactive:
        tty = sys.stdin.isatty()
        while True:
            if tty:
                print("> ", end="", file=sys.stderr, flush=True)
            line = sys.stdin.readline()
            if not line:            # end of file (Ctrl-D)
                break
            continue_(line.rstrip("\n"))
    return 0
