"""``tinyllm generate``: continue prompts with a model, streaming the text."""
import sys

from ..errors import TinyLLMError
from .options import add_device, add_dtype, add_model, add_threads, cpu_threads

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
    add_dtype(p)
    p.add_argument("--backend", default="tinyllm", choices=("tinyllm", "llama.cpp"),
                   help="tinyllm's own decoder (default), or llama.cpp on the model exported to "
                        "GGUF (needs pip install \"tinyllm[llama-cpp]\")")
    p.add_argument("--compile", action="store_true",
                   help="decode with a compiled step: faster per token, but the first call "
                        "compiles for seconds to half a minute; pays for thousands of tokens "
                        "(docs/models.md)")
    add_device(p)
    add_threads(p)
    p.add_argument("-i", "--interactive", action="store_true",
                   help="then read prompts from stdin, one per line, until end of file")
    p.add_argument("--raw", action="store_true",
                   help="a model tuned on requests (it has a chat template): continue each "
                        "prompt as it is, not as a request")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch
    from ..model import GPT
    from ..model.dtypes import convert
    from ..model.generate import check_backend, check_options, continuations, stream_text
    from ..train.device import resolve_device

    check_options(args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.num_samples)
    check_backend(args.backend, args.dtype, args.compile)
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
    if args.backend == "llama.cpp":
        from ..model.llama_cpp import load
        load(model)                          # a missing llama-cpp-python says so before any text
    model = convert(model, args.dtype)
    if args.compile:
        from ..model.compiled import program_path
        if not program_path(model, model.config.context_size).is_file():
            print("compiling the decode step for this model shape, once (about half a minute on "
                  "a laptop CPU; kept for next time)", file=sys.stderr, flush=True)
    generator = None  # one generator for every sample: the same seed, the same outputs
    if args.seed is not None:
        generator = torch.Generator(device=device).manual_seed(args.seed)
    options = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                   top_k=args.top_k, top_p=args.top_p, generator=generator, seed=args.seed,
                   compile=args.compile)
    out = sys.stdout
    first = True

    def write(text):
        nonlocal first
        if not first:
            out.write("---\n")
        first = False
        out.write(text)
        out.flush()

    def asked(prompt):                   # a tuned model's template around a request
        return prompt if args.raw or not prompt else model.as_request(prompt)

    def shown(prompt):                   # the request, then its answer on the next line
        return prompt + "\n" if asked(prompt) != prompt else prompt

    def continue_(prompt):               # one prompt, one sample: printed as it is generated
        write(shown(prompt))
        for piece in stream_text(model, asked(prompt), args.backend, **options):
            out.write(piece)
            out.flush()
        out.write("\n")
        out.flush()

    def continue_all(prompts):
        if len(prompts) == 1 and args.num_samples == 1:
            return continue_(prompts[0])
        # several: generated as batches, then printed in order
        texts = continuations(model, [asked(p) for p in prompts], args.num_samples,
                              args.backend, **options)
        for prompt, samples in zip(prompts, texts):
            for text in samples:
                write(shown(prompt) + text + "\n")

    if prompts:
        continue_all(prompts)
    if args.interactive:
        tty = sys.stdin.isatty()
        while True:
            if tty:
                print("> ", end="", file=sys.stderr, flush=True)
            line = sys.stdin.readline()
            if not line:            # end of file (Ctrl-D)
                break
            continue_all([line.rstrip("\n")])
    return 0
