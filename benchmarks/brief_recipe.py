"""The brief's recipe, rebuilt from transformers itself: the baseline every benchmark compares to.

The brief's series (part 2) builds its GPT from transformers' ``GPTNeoBlock``: nn.Embedding for
tokens and positions, 8 GPT-Neo blocks, a final nn.LayerNorm and a bias-free head; its forward
keeps the *first* ``context_size`` tokens. Part 3 trains it with plain Adam (lr 1e-3), a fixed
learning rate, cross-entropy over full logits, one eos-padded story per sample, batches of 32.
"""
import torch
from torch import nn
from transformers import GPTNeoConfig
from transformers.models.gpt_neo.modeling_gpt_neo import GPTNeoBlock


class GPTNeoBlockModel(nn.Module):
    def __init__(self, vocab_size=50257, hidden_size=64, context_size=64, num_layers=8,
                 num_heads=16, window_size=64, attention_layers=None, max_position_embeddings=2048):
        super().__init__()
        attention_layers = attention_layers or ["local"] * num_layers
        self.context_size = context_size
        cfg = GPTNeoConfig(vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers,
                           num_heads=num_heads, window_size=window_size,
                           max_position_embeddings=max_position_embeddings,
                           attention_types=[[[t], 1] for t in attention_layers],
                           attention_dropout=0.0, resid_dropout=0.0, embed_dropout=0.0,
                           activation_function="gelu_new", layer_norm_epsilon=1e-5)
        cfg._attn_implementation = "eager"
        self.wte = nn.Embedding(vocab_size, hidden_size)
        self.wpe = nn.Embedding(max_position_embeddings, hidden_size)
        self.blocks = nn.ModuleList(GPTNeoBlock(cfg, layer_id=i) for i in range(num_layers))
        self.ln_f = nn.LayerNorm(hidden_size, eps=1e-5)
        self.lm_head = nn.Linear(hidden_size, vocab_size, bias=False)

    @property
    def device(self):
        return self.wte.weight.device

    def forward(self, X):
        X = X[:, :self.context_size]                      # the brief keeps the first tokens
        pos = torch.arange(X.shape[1], device=X.device)
        h = self.wte(X) + self.wpe(pos)
        for block in self.blocks:
            h = block(h)[0]
        return self.lm_head(self.ln_f(h))

    @torch.no_grad()
    def next_token(self, tokenizer, prompt):
        """The brief's next_token: re-encode the whole text, run the whole model, argmax."""
        ids = torch.tensor([tokenizer.encode(prompt)], device=self.device)
        return tokenizer.decode([int(self(ids)[0, -1].argmax())])


def brief_step(model, optimizer, batch, loss_fn=nn.CrossEntropyLoss()):
    """One step of the brief's Trainer: X/Y shift, full-logit cross-entropy, Adam."""
    X, Y = batch[:, :-1], batch[:, 1:]
    loss = loss_fn(model(X).transpose(1, 2), Y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()
