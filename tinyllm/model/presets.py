"""The shapes ``tinyllm train`` builds (``--arch NAME``): its default, and the same size with
GPT-Neo's or Llama's components. Each is a ``Config``; the options given with ``--arch`` apply on
top (``tinyllm train --arch llama --layers 6``).

Their dropout is None: the training run chooses it from its planned passes over the data
(``tinyllm.train.config.regularization``). Why these sizes and components: docs/training.md.
"""
from .config import Config


def gpt_neo_model() -> Config:
    """4 blocks, 128 wide, 8 heads, a 128-token context (the lowest held-out bits per byte of
    the shapes tried in 10 CPU minutes) with GPT-Neo's components: learned positions, LayerNorm,
    a GELU MLP, biases (``--arch gpt-neo``; ``tinyllm export`` writes a Hugging Face
    ``GPTNeoForCausalLM``)."""
    return Config(hidden_size=128, num_layers=4, num_heads=8, context_size=128,
                  max_position_embeddings=128, attention_layers=["global", "local"] * 2,
                  window_size=None, attention="scaled", residual_dropout=None,
                  embedding_dropout=None)


def default_model() -> Config:
    """The model ``tinyllm train`` builds (``--arch tinyllm``): ``gpt_neo_model`` with rotary
    positions, the one change that won beyond the noise in both regimes of the ladder
    (benchmarks/ladder.py, docs/ladder.md). ``tinyllm export`` writes it as a Hugging Face
    ``GPTNeoXForCausalLM`` (every layer's window is the whole context: a global layer)."""
    return gpt_neo_model().replace(position="rotary")


def llama_model() -> Config:
    """``gpt_neo_model``'s shape with Llama's components (``--arch llama``): rotary positions,
    RMSNorm, a SwiGLU MLP, no biases, every layer global. ``tinyllm export`` writes it as a
    Hugging Face ``LlamaForCausalLM``."""
    c = gpt_neo_model()
    return c.replace(position="rotary", norm="rmsnorm", mlp="gated", activation="silu",
                     bias=False, attention_layers=["global"] * c.num_layers, window_size=None)


ARCHITECTURES = {"tinyllm": default_model, "gpt-neo": gpt_neo_model, "llama": llama_model}


__all__ = ["ARCHITECTURES", "default_model", "gpt_neo_model", "llama_model"]
