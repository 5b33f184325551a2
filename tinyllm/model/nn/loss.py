"""Linear head + cross-entropy, fused and chunked: the loss of a language model without ever
holding all of its logits.

For hidden states h (N, C), head weight W (V, C) and targets y (N,):

    z_i = W h_i                                     logits of row i            (V,)
    z_i = c · tanh(z_i / c)                         with a logit soft-cap c only (Gemma 2)
    ℓ_i = logsumexp(z_i) - z_i[y_i]                 cross-entropy of row i
    L   = (1/n) Σ_i ℓ_i                             n = rows whose target is not ignore_index

logsumexp comes out of the softmax itself: with m_i = max_j z_ij, the largest probability is
max_j p_ij = exp(m_i - logsumexp(z_i)), so logsumexp(z_i) = m_i - log max_j p_ij (never below
1/V, so the log is safe), and one fused softmax pass serves both the loss and its gradient.

and its gradients, with p_i = softmax(z_i) and e_y the one-hot vector of y_i:

    ∂L/∂z_i = (p_i - e_y) / n                       (V,)
              · (1 - (z_i / c)²)                    through the soft-cap: d(c tanh(u/c))/du
    ∂L/∂h_i = Wᵀ ∂L/∂z_i                            (C,)
    ∂L/∂W   = Σ_i ∂L/∂z_i h_iᵀ                      (V, C)

At GPT-2's vocabulary the head is most of a small model's work, and the plain
``F.cross_entropy(h @ W.T, y)`` materialises the (N, V) logits several times over (logits,
log-softmax, their gradient): at batch 32 × context 64 that is 2048 × 50257 floats, 412 MB each.
Here the rows are processed a chunk at a time: the forward pass computes each chunk's logits,
its loss *and* its gradients (the softmax is turned into ∂L/∂z in place), adds them up and drops
the chunk. Backward only scales the saved gradients by the incoming gradient. Peak memory is
one (chunk, V) block, which stays in cache, and the work is the same three matrix products.
"""
import torch


def softcap(z: torch.Tensor, cap: float) -> torch.Tensor:
    """c · tanh(z / c): about z for |z| ≪ c, never beyond ±c (smooth, unlike clipping)."""
    return cap * torch.tanh(z / cap)


class LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, targets, ignore_index: int, chunk_size: int, reduction: str,
                cap: float | None = None):
        # h: (N, C)   weight: (V, C)   targets: (N,) int64
        valid = targets != ignore_index                             # (N,)
        safe = torch.where(valid, targets, 0)                       # any in-range id for ignored rows
        count = valid.sum()
        scale = 1.0 / count.clamp(min=1) if reduction == "mean" else torch.ones((), device=h.device)
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.zeros_like(h) if need_h else None
        grad_w = torch.zeros_like(weight) if need_w else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for s in range(0, h.shape[0], chunk_size):
            hc, yc, vc = h[s:s + chunk_size], safe[s:s + chunk_size], valid[s:s + chunk_size]
            z = hc @ weight.t()                                     # (n, V), autocast may pick bf16
            mm_dtype = z.dtype
            z = z.float()
            if cap is not None:
                z = z.div_(cap).tanh_().mul_(cap)                   # c tanh(z / c)
                dcap = 1 - (z / cap).square_()                      # its derivative, (n, V)
            m = z.amax(dim=-1)                                      # (n,)   max_j z_ij
            z_y = z.gather(1, yc[:, None]).squeeze(1)               # (n,)   z_i[y_i]
            p = _softmax_(z)                                        # (n, V) p_i, over z on a CPU
            lse = m - p.amax(dim=-1).log()                          # max p = exp(m - lse) ≥ 1/V
            loss = lse - z_y                                        # (n,)   ℓ_i
            total += (loss * vc).sum()
            if need_h or need_w:
                g = p.scatter_add_(1, yc[:, None], torch.full_like(lse[:, None], -1.0))  # p_i - e_y
                g.mul_((vc * scale)[:, None])                       # ignored rows: 0; mean: / n
                if cap is not None:
                    g.mul_(dcap)                                    # back through the cap
                g = g.to(mm_dtype)                                  # (n, V)   ∂L/∂z
                if need_h:
                    grad_h[s:s + chunk_size] = g @ weight           # (n, C)
                if need_w:
                    if grad_w.dtype == mm_dtype == hc.dtype:
                        grad_w.addmm_(g.t(), hc)                    # (V, C), no temporary
                    else:
                        grad_w += g.t() @ hc
        ctx.save_for_backward(grad_h, grad_w)
        return total * scale

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        grad_h = grad_h * grad_out.to(grad_h.dtype) if grad_h is not None else None
        grad_w = grad_w * grad_out.to(grad_w.dtype) if grad_w is not None else None
        return grad_h, grad_w, None, None, None, None, None


def _softmax_(z: torch.Tensor) -> torch.Tensor:
    """softmax over the last dimension, written over z on a CPU: a fresh (n, V) block per chunk
    costs page faults there, about a tenth of the chunk's time at GPT-2's vocabulary."""
    if z.device.type == "cpu":
        return torch.ops.aten._softmax.out(z, -1, False, out=z)
    return torch.softmax(z, dim=-1)


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         ignore_index: int = -100, chunk_size: int | None = None,
                         reduction: str = "mean",
                         logit_softcap: float | None = None) -> torch.Tensor:
    """``F.cross_entropy(h @ weight.T, targets)`` for h (N, C), weight (V, C), targets (N,),
    without holding the (N, V) logits; ``reduction`` is 'mean' (over non-ignored rows) or 'sum';
    ``logit_softcap`` c: the logits are c · tanh(h @ weight.T / c)."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")
    if h.dim() != 2 or weight.dim() != 2 or targets.shape != h.shape[:1]:
        raise ValueError(f"expected h (N, C), weight (V, C), targets (N,); got {tuple(h.shape)}, "
                         f"{tuple(weight.shape)}, {tuple(targets.shape)}")
    if chunk_size is None:
        chunk_size = default_chunk_size(weight.shape[0], h.device)
    if not torch.is_grad_enabled():  # evaluation: the same sums, no gradients computed
        h, weight = h.detach(), weight.detach()
    return LinearCrossEntropy.apply(h, weight, targets, ignore_index, chunk_size, reduction,
                                    logit_softcap)


def default_chunk_size(vocab_size: int, device=None) -> int:
    """Rows per chunk: on a CPU a (rows, V) fp32 block of about 16 MB, at least 16 rows (83 at
    GPT-2's vocabulary): fewer, larger chunks amortise the read-modify-write of ∂L/∂W (V, C) per
    chunk, smaller ones keep the block in cache (on one CPU core 64-128 rows was fastest at
    V = 50257). On a GPU, where each chunk's dozen kernels cost launch time rather than cache,
    a block of about 1 GB (5,341 rows at V = 50257; not yet measured on a GPU)."""
    budget = (1 << 28) if getattr(device, "type", "cpu") == "cuda" else (1 << 22)
    return max(16, budget // vocab_size)


__all__ = ["LinearCrossEntropy", "linear_cross_entropy", "default_chunk_size", "softcap"]
