"""One ``Config`` for the model: plain values, every field overridable by keyword.

The defaults are the brief's model: 8 GPT-Neo blocks, 64 wide, 16 heads, 64-token context,
local (windowed) attention on every layer.
"""
from dataclasses import asdict, dataclass, field, fields, replace

ATTENTIONS = ("gpt-neo", "scaled")


@dataclass
class Config:
    hidden_size: int = 64
    embedding_size: int | None = None         # None: hidden_size (64 for the brief)
    context_size: int = 64
    num_layers: int = 8
    layer_norm_epsilon: float = 1e-5
    attention_layers: list | None = None      # one of 'global'/'local' per layer; None: all 'local'
    max_position_embeddings: int = 2048
    window_size: int = 64                      # tokens a 'local' layer sees (itself included)
    attention_dropout: float = 0.0
    residual_dropout: float = 0.0
    embedding_dropout: float = 0.0
    num_heads: int = 16
    intermediate_size: int | None = None       # None: 4 × hidden_size
    activation: str = "gelu_new"
    attention: str = "gpt-neo"                 # 'gpt-neo': unscaled scores; 'scaled': 1/√d
    explicit: bool = False                     # written-out softmax/GELU instead of fused kernels
    vocab_size: int | None = None              # None: taken from the tokenizer
    tie_embeddings: bool = False               # the head reuses the token embedding's matrix

    def __post_init__(self):
        if self.embedding_size is None:
            self.embedding_size = self.hidden_size
        if self.attention_layers is None:
            self.attention_layers = ["local"] * self.num_layers
        self.attention_layers = list(self.attention_layers)
        if len(self.attention_layers) != self.num_layers:
            raise ValueError(f"attention_layers has {len(self.attention_layers)} entries but "
                             f"num_layers is {self.num_layers}: give one 'global'/'local' per layer")
        bad = [t for t in self.attention_layers if t not in ("global", "local")]
        if bad:
            raise ValueError(f"attention_layers may hold only 'global' or 'local', not {bad[0]!r}")
        if self.embedding_size != self.hidden_size:
            raise ValueError(f"embedding_size ({self.embedding_size}) must equal hidden_size "
                             f"({self.hidden_size}) in a GPT-Neo-style model")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by "
                             f"num_heads ({self.num_heads})")
        if self.context_size > self.max_position_embeddings:
            raise ValueError(f"context_size ({self.context_size}) exceeds max_position_embeddings "
                             f"({self.max_position_embeddings})")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, not {self.attention!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown Config fields {unknown}: this file was written by another "
                             "tinyllm version or is not a tinyllm config")
        return cls(**d)

    def replace(self, **changes) -> "Config":
        return replace(self, **changes)


__all__ = ["Config", "field"]
