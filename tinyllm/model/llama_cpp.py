"""llama.cpp as a generation backend: the model exported to GGUF, run by llama-cpp-python.

    file:    export_gguf(model, $TINYLLM_HOME/gguf/<hash of config, tokenizer, weights>.gguf)
             written once per set of weights, then reused (f32: the model's own numbers)
    prefill: llama.eval(last context_size prompt tokens)
    decode:  token = sampler(logits); llama.eval([token])        until max_new_tokens or eos
    past the context: llama.reset(); llama.eval(last context_size tokens), as tinyllm does

Sampling takes tinyllm's options: temperature 0 is greedy (argmax, the same tokens as tinyllm's
own decoder), else llama.cpp's top-k → top-p → temperature → a draw seeded with ``seed``. The
draws are llama.cpp's, not torch's: a seed repeats its own text, not tinyllm's.
"""
import atexit
import hashlib
import weakref
from typing import Iterator

from ..errors import TinyLLMError
from ..files import home

_LOADED: dict = {}      # (GGUF path, threads) -> llama_cpp.Llama, loaded once per process
_HASHED = weakref.WeakKeyDictionary()    # model -> (its tensors' identity, their hash)


@atexit.register
def _close() -> None:
    """Free llama.cpp's models before the interpreter tears its modules down (a Llama freed
    later fails in its __del__)."""
    while _LOADED:
        _LOADED.popitem()[1].close()


def gguf_for(model, dtype: str = "f32") -> str:
    """The GGUF file of ``model``'s current weights in ``dtype`` (f32: its own numbers; q8_0:
    8-bit blocks), exported on first use (atomically: ``export_gguf``), then cached. The
    weights are hashed once while they stay unchanged (the same tensors, none written since)."""
    from ..formats import export_gguf
    state = model.state_dict()
    unchanged = tuple((t.data_ptr(), t._version) for t in state.values())  # bumped by writes
    known = _HASHED.get(model)
    if known is None or known[0] != unchanged:
        digest = hashlib.sha256(repr(model.config).encode())
        digest.update(model.tokenizer.fingerprint.encode())
        for name, t in state.items():
            digest.update(name.encode())
            digest.update(t.detach().float().cpu().contiguous().numpy().tobytes())
        known = _HASHED[model] = (unchanged, digest.hexdigest()[:20])
    path = home() / "gguf" / f"{known[1]}-{dtype}.gguf"
    if not path.is_file():
        export_gguf(model, path, dtype)
    return str(path)


def load(model, dtype: str = "f32"):
    """A ``llama_cpp.Llama`` on ``model``'s GGUF file, one thread per torch thread."""
    try:
        import llama_cpp
    except ImportError:
        raise TinyLLMError('the llama.cpp backend needs llama-cpp-python: pip install '
                           '"tinyllm[llama-cpp]"') from None
    import torch
    path, n = gguf_for(model, dtype), torch.get_num_threads()
    if (path, n) not in _LOADED:
        from llama_cpp._utils import suppress_stdout_stderr
        # quiet: llama.cpp warns on stderr that it rounds a context below 256 up to 256
        with suppress_stdout_stderr(disable=False):
            # a float32 key/value cache: llama.cpp's default, f16, rounds the keys
            _LOADED[path, n] = llama_cpp.Llama(
                model_path=path, n_ctx=model.config.context_size, n_threads=n,
                n_threads_batch=n, verbose=False, type_k=llama_cpp.GGML_TYPE_F32,
                type_v=llama_cpp.GGML_TYPE_F32)
    return _LOADED[path, n]


def stream_tokens(model, ids: list, max_new_tokens: int = 100, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                  eos_token_id=None, gguf_dtype: str = "f32") -> Iterator[int]:
    """Yield the new token ids after ``ids`` one at a time, from llama.cpp (see the module
    docstring); stops after ``max_new_tokens`` or at ``eos_token_id`` (which it yields)."""
    return run(load(model, gguf_dtype), model.config.context_size, ids, max_new_tokens,
               temperature, top_k, top_p, seed, eos_token_id)


def run(llm, context: int, ids: list, max_new_tokens: int, temperature: float, top_k, top_p,
        seed, eos_token_id) -> Iterator[int]:
    """``stream_tokens`` on a loaded ``llama_cpp.Llama`` of a ``context``-token model."""
    if seed is not None:
        llm.set_seed(seed)
    # one sampler for the whole sequence, so that its random draws go on from step to step
    sampler = llm._init_sampler(top_k=top_k or 0, top_p=1.0 if top_p is None else top_p,
                                min_p=0.0, typical_p=1.0, temp=float(temperature),
                                repeat_penalty=1.0)
    window = list(ids)[-context:]
    llm.reset()
    llm.eval(window)
    for step in range(max_new_tokens):
        token = sampler.sample(llm._ctx, -1)
        yield token
        if token == eos_token_id or step == max_new_tokens - 1:
            return
        window.append(token)
        if llm.n_tokens < context:
            llm.eval([token])
        else:                                  # full: the last context_size tokens again
            window = window[-context:]
            llm.reset()
            llm.eval(window)


__all__ = ["gguf_for", "load", "stream_tokens", "run"]
