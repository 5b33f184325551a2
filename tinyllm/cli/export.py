"""``tinyllm export``: write a model as a Hugging Face GPT-Neo or Llama directory."""
from .options import add_model

HELP = "write a model as a Hugging Face GPT-Neo or Llama directory"


def add(sub):
    p = sub.add_parser(
        "export", help=HELP,
        description="Load a model (a tinyllm checkpoint, a Hugging Face directory or hub id) and "
                    "write it in the Hugging Face layout of its architecture — GPT-Neo (learned "
                    "positions, LayerNorm) or Llama (rotary, RMSNorm, SwiGLU, no biases) — as "
                    "config.json, model.safetensors, vocab.json, merges.txt, which "
                    "transformers.AutoModelForCausalLM.from_pretrained loads.")
    add_model(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..formats import export, export_format
    from ..model import GPT
    model = GPT.from_pretrained(args.model)
    out = export(model, args.out)
    print(f"wrote {out} ({export_format(model.config)}, {model.num_parameters():,} parameters)")
    return 0
