"""How much arithmetic a model does: the FLOPs of training on one token, the one formula that
training runs, their summaries and the benchmarks use.

    FLOPs per token ≈ 6 N + 12 C Σ_l S_l

N is the number of weights in matrix products (the blocks' and the vocabulary head; not the
embedding lookups, not the norms): each is a multiply-add (2 FLOPs) in the forward pass and two
in the backward pass, 6 in all. The attention scores q·k and the mix of the values cost
2 · 2 · S · C per layer forward (S the keys a query sees: the context, or a local layer's window
when it is shorter), three times that with the backward pass. (The PaLM paper's accounting, as
nanoGPT's MFU uses; causal masking's halving is not counted.)
"""


def matmul_weights(config) -> int:
    """N: the weights of the blocks' matrix products and the vocabulary head."""
    C = config.hidden_size
    ffn = (3 if config.mlp == "gated" else 2) * C * config.mlp_size
    return config.num_layers * (4 * C * C + ffn) + (config.vocab_size or 0) * C  # None: not yet


def training_flops_per_token(config) -> float:
    """6 N + 12 C Σ_l S_l (see the module docstring)."""
    T, W = config.context_size, config.window_size
    keys = sum(min(T, W) if kind == "local" and W is not None else T
               for kind in config.attention_layers)
    return 6 * matmul_weights(config) + 12 * config.hidden_size * keys


def numbers_held(config) -> tuple[int, int]:
    """(parameters, all numbers): the model's parameters from its config alone — N, the token
    and position tables, the norms' and biases' vectors (about: each C or 2C) — and with them
    the rotary tables (two P × d buffers per layer), the numbers a built model holds."""
    C, L, V = config.hidden_size, config.num_layers, config.vocab_size or 0
    tables = (0 if config.tie_embeddings else V * C) + \
        (config.max_position_embeddings * C if config.position == "learned" else 0)
    vectors = L * (4 * C + 3 * C + config.mlp_size) + 2 * C     # norms, biases: about
    parameters = matmul_weights(config) + tables + vectors
    rotary = 2 * L * config.max_position_embeddings * config.rotary_dim \
        if config.position == "rotary" else 0
    return parameters, parameters + rotary


__all__ = ["matmul_weights", "training_flops_per_token", "numbers_held"]
