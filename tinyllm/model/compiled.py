"""The one-token step compiled ahead of time: one C++ program per model shape, kept on disk.

A decode step of a small model is some fifty small operations, and eager PyTorch pays a few
microseconds to dispatch each, about as much as their arithmetic. ``torch.export`` traces the
model's own step — ``decode`` through a ``StaticKVCache``, whose shapes never change — into one
graph, and AOTInductor compiles that to C++, once:

    $TINYLLM_HOME/compiled/<hash of the model's layers and their code, config, dtype, device,
                            CPU, cache size, torch version>.pt2

The program does not hold the weights: each generation hands it the model's own tensors, so
every model of one shape (each checkpoint of a run, a fine-tune of it) shares one program, and
a later process loads it in milliseconds. The number of rows is a dynamic dimension: one
program serves any batch.

    step = CompiledStep(model, cache)       # after the prefill filled ``cache`` (a KVCache)
    logits = step(token)                    # token (B,) at cache position length -> (B, V);
                                            # written into the cache, which advances by one

The first compile of a shape takes tens of seconds (docs/models.md, "Generation speed"), so
generation compiles only when asked (``compile=True``, ``tinyllm generate --compile``).
"""
import functools
import hashlib
import inspect
import io
import platform
import warnings
import weakref
from pathlib import Path

import torch
from torch import nn

from ..errors import TinyLLMError
from ..files import atomic_write, home
from .nn import StaticKVCache

_LOADED = weakref.WeakKeyDictionary()      # model -> {program path: its loaded runner}


class OneToken(nn.Module):
    """What is compiled: ``generate.decode`` of ``model`` through a ``StaticKVCache`` over
    the buffers ``kvs`` at ``length`` (1,), rows padded by ``pad`` (B,); ``windows``: each
    layer's local window or None, as the model's ``KVCache`` has them."""

    def __init__(self, model, windows: list):
        super().__init__()
        self.model, self.windows = model, windows

    def forward(self, token, length, pad, kvs):      # generate.decode through the static view
        cache = StaticKVCache(kvs, self.windows, length, pad)
        return self.model(token[:, None], cache=cache, last_only=True)[:, -1]


class CompiledStep:
    """``decode(model, token, cache)`` for a filled ``cache`` (a ``KVCache``), by the compiled
    program (made on first use for this shape, see the module docstring): the same keys and
    values written into the cache's buffers, and the cache advanced by one position."""

    def __init__(self, model, cache):
        self.cache, self.runner = cache, _runner(model, cache)
        self.kvs = [layer.kv for layer in cache.layers]
        self.pad = (torch.zeros(len(self.kvs[0]), dtype=torch.long, device=self.kvs[0].device)
                    if cache.pad is None else cache.pad)          # the program always takes one

    def __call__(self, token: torch.Tensor) -> torch.Tensor:
        length = torch.tensor([self.cache.length], device=token.device)
        logits, = self.runner.boxed_run([token, length, self.pad, *self.kvs])   # (B, V)
        self.cache.advance()
        return logits


def program_path(model, size: int):
    """Where the compiled step of ``model``'s shape, for a cache of ``size`` positions, lives:
    named by everything the program depends on, the code of its layers included (a learner's
    edited class, or tinyllm's, compiles anew)."""
    weight = next(model.parameters())
    key = hashlib.sha256("\n".join(map(str, (
        repr(model), repr(model.config), weight.dtype, weight.device.type, platform.machine(),
        torch.backends.cpu.get_cpu_capability(), size, torch.__version__))).encode())
    key.update(_code_digest(_code_files(model)).encode())
    return home() / "compiled" / f"{key.hexdigest()[:20]}.pt2"


def _code_files(model) -> tuple:
    """The source files of the step: those of the model's layers and of tinyllm's model."""
    files = {inspect.getsourcefile(type(m)) for m in model.modules()}
    files.update(map(str, Path(__file__).parent.glob("**/*.py")))
    return tuple(sorted(f for f in files if f is not None))


@functools.cache
def _code_digest(files: tuple) -> str:
    """The files' contents hashed, once per process (the code that runs is the code imported)."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(Path(file).read_bytes())
    return digest.hexdigest()


def _runner(model, cache):
    """The loaded program for ``model`` (compiled first if it is not on disk), its weights
    those of ``model`` now (the runner reads the model's own tensors: nothing is copied).

    The program is loaded by PyTorch's C++ loader itself, not through
    ``torch._inductor.aoti_load_package``: that wrapper imports Inductor (1.5–3 s per process)
    and re-reads the call's layout on every call (~50 µs a token); ``boxed_run`` takes the
    inputs flat, in the order of ``OneToken.forward``'s arguments."""
    path = program_path(model, cache.size)
    loaded = _LOADED.setdefault(model, {})
    if path not in loaded:
        if not path.is_file():
            _compile(model, cache.size, path)
        try:
            loaded[path] = _load(path, model)
        except RuntimeError:              # a damaged file in the cache: compiled again
            path.unlink()
            _compile(model, cache.size, path)
            loaded[path] = _load(path, model)
    runner = loaded[path]
    step = OneToken(model, [layer.window for layer in cache.layers])
    tensors = {**dict(step.named_parameters(remove_duplicate=False)),     # a tied head too
               **dict(step.named_buffers(remove_duplicate=False))}
    runner.load_constants({name: tensors[name] for name in runner.get_constant_fqns()},
                          False, True, True)     # the active set, all of them, the model's own
    return runner


def _load(path, model):
    index = next(model.parameters()).device.index
    return torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1,
                                                 -1 if index is None else index)


def _compile(model, size: int, path) -> None:
    """Trace the step (two example rows: the batch stays a dimension) and compile it to
    ``path``, written atomically."""
    import torch._inductor                   # seconds to import: only when compiling
    from torch._inductor.cpp_builder import get_cpp_compiler
    from torch._inductor.exc import InvalidCxxCompiler
    try:
        get_cpp_compiler()
    except InvalidCxxCompiler:
        raise TinyLLMError("compiling the decode step needs a C++ compiler (g++ or clang++) on "
                           "the PATH: install one, or generate without --compile") from None
    cache, device = model.new_cache(2, size), model.device
    kvs = [layer.kv for layer in cache.layers]
    example = (torch.zeros(2, dtype=torch.long, device=device),
               torch.zeros(1, dtype=torch.long, device=device),
               torch.zeros(2, dtype=torch.long, device=device), kvs)
    rows = torch.export.Dim("rows", min=1, max=1 << 16)
    dims = {"token": {0: rows}, "length": None, "pad": {0: rows}, "kvs": [{0: rows}] * len(kvs)}
    step = OneToken(model, [layer.window for layer in cache.layers]).eval()
    package = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)     # torch's own, about its internals
        graph = torch.export.export(step, example, dynamic_shapes=dims, strict=False)
        torch._inductor.aoti_compile_and_package(
            graph, package_path=package,
            inductor_configs={"aot_inductor.package_constants_in_so": False})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, package.getvalue())


__all__ = ["CompiledStep", "OneToken", "program_path"]
