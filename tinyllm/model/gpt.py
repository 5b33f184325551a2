"""The GPT: token + position embeddings, a stack of blocks, a final norm and a bias-free linear
head to the vocabulary.

    h₀ = E_tok[ids] + E_pos[p..p+T-1]                    (B, T, C)   p = 0, or the cache's length
    h_l = Block_l(h_{l-1})                               l = 1..L
    logits = Norm_f(h_L) W_headᵀ                         (B, T, V)
    logits = c · tanh(logits / c)                        with a logit soft-cap c only

With rotary positions (``Config.position``) there is no E_pos: each attention layer rotates its
queries and keys by their positions. The default config is GPT-Neo (learned positions, LayerNorm,
GELU MLP, biases); the Llama shape is rotary + RMSNorm + SwiGLU + no biases
(``tinyllm.model.presets``). The model is assembled from its parts (``tinyllm.model.parts``):
tinyllm's own, or a learner's.

One forward serves training, evaluation and generation: given a ``KVCache`` (``new_cache``), the
ids continue the cached sequence, so a new token costs one position (``tinyllm.model.generate``).
The model does no I/O: ``from_pretrained``/``save_pretrained`` hand the files over to
``tinyllm.formats``, which reads and writes them, and build the model from what it reads.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import TinyLLMError
from .config import Config
from .generate import generate
from .nn import KVCache, dropout, linear_cross_entropy, softcap, written_out
from .parts import Parts, takes_cache


class GPT(nn.Module):
    def __init__(self, tokenizer=None, config: Config | None = None, parts: Parts | None = None):
        super().__init__()
        config = config if config is not None else Config()
        if config.vocab_size is None:
            if tokenizer is None:
                raise TinyLLMError("GPT needs a tokenizer or a Config with vocab_size set")
            config = config.replace(vocab_size=tokenizer.vocab_size)
        elif tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
            raise TinyLLMError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only "
                               f"{config.vocab_size}: use a Config with vocab_size=None")
        self.tokenizer = tokenizer
        self.config = config
        self.parts = parts = parts or Parts()
        C = config.hidden_size
        self.wte = parts.embedding(config.vocab_size, C)                     # token embedding
        self.wpe = (parts.embedding(config.max_position_embeddings, C)      # learned positions
                    if config.position == "learned" else None)              # (rotary: in attention)
        self.blocks = nn.ModuleList(parts.make_block(config, kind) for kind in config.attention_layers)
        self.ln_f = parts.make_norm(config)
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        if config.tie_embeddings:  # logits_i = wte · h_i: one (V, C) matrix in and out (GPT-2)
            if not isinstance(getattr(self.wte, "weight", None), nn.Parameter):
                raise TinyLLMError(f"{type(self.wte).__name__} keeps no .weight parameter: the "
                                   "output head shares the token table (tie_embeddings)")
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        if config.zero_init:       # each block's branches add 0 at first: the block is identity
            for block in self.blocks:
                nn.init.zeros_(block.attn.out_proj.weight)
                nn.init.zeros_(block.mlp.c_proj.weight)
        # generation's one-token step needs it in every block and attention (a learner's may lack it)
        self._steps = all(hasattr(b, "step") and hasattr(getattr(b, "attn", None), "step")
                          for b in self.blocks)

    @staticmethod
    def _init_weights(module):
        # GPT-Neo's initialisation: N(0, 0.02) for matrices, zero biases (norms: γ=1, β=0)
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device    # (an int8 head's weight is packed, not a tensor)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def set_dropout(self, residual: float | None = None, embedding: float | None = None) -> None:
        """Change the residual (each branch's output) and embedding dropout of a built model: its
        config and the layers that apply them (a training run planned again from its speed)."""
        c = self.config
        self.config = c.replace(
            residual_dropout=c.residual_dropout if residual is None else residual,
            embedding_dropout=c.embedding_dropout if embedding is None else embedding)
        if residual is not None:
            for module in self.modules():
                if hasattr(module, "resid_dropout"):
                    module.resid_dropout = residual

    def new_cache(self, batch_size: int, size: int | None = None) -> KVCache:
        """An empty key/value cache for ``batch_size`` sequences of up to ``size`` positions
        (default: the context)."""
        for block in self.blocks:
            for part in (block, getattr(block, "attn", None)):
                if part is not None and not takes_cache(part):
                    raise TinyLLMError(
                        f"{type(part).__name__}.forward takes no 'cache' (a key/value cache: "
                        "generation uses one): add it to forward (see tinyllm check --interface "
                        "attention)")
        c, weight = self.config, next(self.parameters())      # the embedding's dtype and device
        windows = [c.window_size if kind == "local" else None for kind in c.attention_layers]
        return KVCache(batch_size, c.num_heads, c.head_dim, size or c.context_size, windows,
                       dtype=weight.dtype, device=weight.device)

    def hidden_states(self, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """The final-normalised hidden states (B, T, C) for ids (B, T); with a ``cache``, the ids
        sit at positions cache.length.. and their keys/values are added to it."""
        B, T = ids.shape
        pos = cache.length if cache is not None else 0     # a (1,) tensor for a StaticKVCache
        if isinstance(pos, int) and pos + T > self.config.max_position_embeddings:
            raise TinyLLMError(f"sequence of {pos + T} tokens exceeds max_position_embeddings "
                               f"({self.config.max_position_embeddings})")
        x = self.wte(ids)                                                       # (B, T, C)
        if self.wpe is not None:
            positions = pos + torch.arange(T, device=ids.device)                    # (T,)
            if cache is not None and cache.pad is not None:   # right-aligned rows: their own
                positions = positions - cache.pad[:, None]                          # (B, T)
            x = x + self.wpe(positions)
        x = dropout(x, self.config.embedding_dropout, self.training)
        if cache is not None and T == 1 and self._steps and not self.training and not written_out():
            x = x[:, 0]                       # one new token: the blocks' one-position step
            for block, layer in zip(self.blocks, cache.layers):
                x = block.step(x, layer)
            x = x[:, None]
        else:
            if cache is not None and cache.pad is not None:
                raise TinyLLMError("a cache of right-aligned rows takes one token per row at a "
                                   "time, through the blocks' step (in evaluation mode)")
            for i, block in enumerate(self.blocks):
                x = block(x) if cache is None else block(x, cache.layers[i])
        return self.ln_f(x)

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None,
                last_only: bool = False) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids (B, T) — or (B, 1, vocab), the last position only,
        with ``last_only`` (what generation needs: the head is most of a small model's work)."""
        h = self.hidden_states(ids, cache)
        return self.head(h[:, -1:] if last_only else h)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Logits (..., vocab) for final-normalised hidden states h (..., C): h W_headᵀ, soft-capped
        when the config says so."""
        logits = self.lm_head(h)
        cap = self.config.logit_softcap
        return logits if cap is None else softcap(logits, cap)

    def unembed(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (..., vocab) for residual-stream vectors x (..., C): Norm_f, then the head (what
        the model applies after its last block; the logit lens applies it after every block)."""
        return self.head(self.ln_f(x))

    def loss(self, ids: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100,
             reduction: str = "mean") -> torch.Tensor:
        """Next-token cross-entropy of ``targets`` (B, T) given ``ids`` (B, T), averaged (or
        summed) over the targets that are not ``ignore_index``.

        The head and the loss are fused and chunked (``tinyllm.model.nn.loss``): the (B·T, vocab)
        logits are never held at once. Inside ``kernels.formulas()``: the plain path instead,
        logits = forward(ids), then ``F.cross_entropy``. A learner's loss (``Parts.loss``) gets
        the hidden states, the head's weight and the targets, and returns the mean."""
        if self.parts.loss is not None:
            h, y = self.hidden_states(ids).flatten(0, 1), targets.flatten()   # (B·T, C), (B·T,)
            mean = self.parts.loss(h, self.lm_head.weight, y, ignore_index=ignore_index)
            return mean if reduction == "mean" else mean * (y != ignore_index).sum()
        if written_out():
            logits = self(ids)                                            # (B, T, V)
            return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(),
                                   ignore_index=ignore_index, reduction=reduction)
        h = self.hidden_states(ids)                                       # (B, T, C)
        return linear_cross_entropy(h.flatten(0, 1), self.lm_head.weight, targets.flatten(),
                                    ignore_index=ignore_index, reduction=reduction,
                                    logit_softcap=self.config.logit_softcap)

    def next_token(self, prompt: str) -> str:
        """The most likely next token after ``prompt``, decoded (greedy).

        Conditions on the *last* ``context_size`` tokens of a longer prompt."""
        if self.tokenizer is None:
            raise TinyLLMError("this model has no tokenizer; build it as GPT(tokenizer, config)")
        ids = self.tokenizer.encode(prompt) or [self.tokenizer.eos_token_id]
        new = self.generate(torch.tensor(ids), max_new_tokens=1, temperature=0)[len(ids):]
        return self.tokenizer.decode(new.tolist())

    def generate(self, prompt, max_new_tokens: int = 100, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 raw: bool = False, **options):
        """Continue ``prompt`` with a key/value cache, stopping at eos: a string gives the text
        (prompt + continuation), a list of strings a list of texts, a LongTensor of ids (T,) or
        (B, T) gives the ids. ``temperature=0`` is greedy; ``options`` include ``num_samples``,
        ``dtype`` ('fp32', 'bf16', 'int8'), ``backend`` ('tinyllm', 'llama.cpp') and
        ``compile`` (a compiled decode step: faster per token, slow to start); see
        ``tinyllm.model.generate``. A model tuned on requests (its tokenizer has a chat
        template) reads each string as a request in that template, and its text is the
        conversation so far; ``raw=True`` continues the string as it is."""
        if not raw:
            prompt = self.as_request(prompt)
        return generate(self, prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                        top_k=top_k, top_p=top_p, seed=seed, **options)

    def as_request(self, prompt):
        """``prompt`` (a string or a list of them) as the text that asks this model: the chat
        template's request when its tokenizer has one (``Tokenizer.chat_prompt``), else as it is."""
        tok = self.tokenizer
        if tok is None or getattr(tok, "chat_template", None) is None:
            return prompt
        if isinstance(prompt, str):
            return tok.chat_prompt(prompt)
        if isinstance(prompt, list):
            return [tok.chat_prompt(p) if isinstance(p, str) else p for p in prompt]
        return prompt

    # -- files: the formats layer reads and writes them (imported here when first needed, so
    # -- that importing the model loads no file format) --------------------------------------
    def save_pretrained(self, path) -> None:
        """Write the model, its config and its tokenizer to directory ``path`` (safetensors)."""
        from ..formats import save_model
        save_model(self, path)

    @classmethod
    def from_pretrained(cls, name_or_path, device=None) -> "GPT":
        """Load a model saved by ``save_pretrained``/``tinyllm train``, a Hugging Face GPT-Neo or
        Llama directory, or a hub id such as ``roneneldan/TinyStories-33M``; in evaluation mode,
        as transformers loads its models (``.train()`` turns dropout back on)."""
        from ..formats import read_model
        files = read_model(name_or_path)            # its config's fields; tokenizer, weights
        try:
            config = Config.from_dict(files.config)
        except (TinyLLMError, TypeError) as e:      # wrong types, unknown fields, bad values
            raise TinyLLMError(f"the config.json in {files.where} does not describe a valid "
                               f"model ({e})") from None
        state = files.weights()
        model = cls(files.tokenizer(), config)
        files.load_into(model, state)
        model.eval()
        return model.to(device) if device is not None else model


__all__ = ["GPT", "Config"]
