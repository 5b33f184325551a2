"""``tinyllm export``: write a model as the Hugging Face directory of its architecture, or as a
GGUF file llama.cpp runs."""
from .options import add_model

HELP = "write a model as a Hugging Face directory or a GGUF file for llama.cpp"


def add(sub):
    p = sub.add_parser(
        "export", help=HELP,
        description="Load a model (a tinyllm checkpoint, a Hugging Face directory or hub id) and "
                    "write it. --format hf (the default): the Hugging Face layout of its "
                    "architecture — GPT-Neo (learned positions), GPT-NeoX (rotary, LayerNorm: "
                    "tinyllm train's default) or Llama (rotary, RMSNorm, SwiGLU, no biases) — as "
                    "config.json, model.safetensors, vocab.json, merges.txt, which "
                    "transformers.AutoModelForCausalLM.from_pretrained loads. --format gguf: one "
                    "GGUF file with the tokenizer inside, which llama.cpp (llama-cli -m, "
                    "llama-cpp-python, ollama) runs.")
    add_model(p)
    p.add_argument("--out", required=True, metavar="PATH",
                   help="directory to write (hf), or the .gguf file (gguf)")
    p.add_argument("--format", default="hf", choices=("hf", "gguf"),
                   help="hf: a Hugging Face directory; gguf: a GGUF file for llama.cpp")
    p.add_argument("--dtype", default="f32",     # export_gguf checks it (formats.gguf_file.DTYPES)
                   help="GGUF weights: f32, f16, or q8_0 (8-bit, about a quarter of f32's size; "
                        "a matrix whose rows are not a multiple of 32 long stays f16)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import TinyLLMError
    from ..formats import export, export_format, export_gguf
    from ..model import GPT
    if args.format == "hf" and args.dtype != "f32":
        raise TinyLLMError("--dtype is for --format gguf: a Hugging Face directory is written "
                           "in float32")
    model = GPT.from_pretrained(args.model)
    if args.format == "gguf":
        written = export_gguf(model, args.out, args.dtype)
        size = written.path.stat().st_size / 2**20
        print(f"wrote {written.path} (llama.cpp {written.architecture}, {args.dtype}, "
              f"{model.num_parameters():,} parameters, {size:.1f} MiB)")
        if written.unquantized:
            print(f"{len(written.unquantized)} matrices whose rows are not a multiple of 32 long "
                  f"stay f16 ({', '.join(written.unquantized[:3])}"
                  f"{', …' if len(written.unquantized) > 3 else ''})")
        return 0
    out = export(model, args.out)
    print(f"wrote {out} ({export_format(model.config)}, {model.num_parameters():,} parameters)")
    return 0
