"""A learner's code inside tinyllm's checks: their module imported from a file or a dotted path,
and their exceptions told apart from tinyllm's — an exception raised in their file becomes one
``LearnerError`` line naming their file and line; one raised in tinyllm is a tinyllm bug."""
import importlib
import importlib.util
import sys
import sysconfig
import traceback
from pathlib import Path

import torch

from ..errors import TinyLLMError


def import_learner_module(path: str, spec: str):
    """The module at ``path`` (a file, or a dotted name importable from the current directory);
    the file's directory goes on sys.path (last: it shadows nothing), so that it may import its
    neighbours."""
    file = Path(path).expanduser()
    if path.endswith(".py") or file.exists():
        if not file.is_file():
            raise TinyLLMError(f"--use {spec}: {path} does not exist")
        file = file.resolve()
        folder = str(file.parent)
        if folder not in sys.path:
            sys.path.append(folder)
        for module in list(sys.modules.values()):      # imported already (by a neighbour)
            if getattr(module, "__file__", None) and Path(module.__file__).resolve() == file:
                return module
        name = file.stem if file.stem not in sys.modules else f"_tinyllm_learner_{file.stem}"
        loader_spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        try:
            with learner_errors(f"importing {path}"):
                loader_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    if "." not in sys.path and "" not in sys.path:
        sys.path.append("")          # a dotted path is looked up from the current directory too
    try:
        with learner_errors(f"importing {path}"):
            return importlib.import_module(path)
    except ModuleNotFoundError as e:
        if e.name and path.startswith(e.name):
            raise TinyLLMError(f"--use {spec}: no module or file {path!r} (give a .py file or "
                               "a module importable from here)") from None
        raise


# -- a learner's exceptions -----------------------------------------------------------------------

class LearnerError(TinyLLMError):
    """An exception raised in a learner's code (their file and line), not in tinyllm's."""


_HARNESS = Path(__file__).resolve().parent            # tinyllm/check: the checking harness
_TINYLLM = _HARNESS.parent
_LIBRARIES = tuple({str(Path(p).resolve()) for p in (
    sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
    sysconfig.get_paths()["platlib"], Path(torch.__file__).parent.parent)})


def blame(exc: BaseException, learner_only: bool = False):
    """The innermost frame of ``exc``'s traceback in the code under test: not a library's (the
    standard library, torch, site-packages) nor the checking harness's; with ``learner_only``,
    not tinyllm's either. None when there is none."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = str(Path(frame.filename).resolve()) if not frame.filename.startswith("<") else ""
        if not path or path.startswith(str(_HARNESS) + "/"):
            continue
        if path.startswith(str(_TINYLLM) + "/"):       # tinyllm's code (wherever it is installed)
            return None if learner_only else frame      # learner_only: then a tinyllm bug
        if not path.startswith(_LIBRARIES):
            return frame
    return None


def describe(exc: BaseException, frame=None) -> str:
    """One line: the exception and where it was raised (file:line in function: the code)."""
    frame = frame if frame is not None else blame(exc)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" + (f" ({where(frame)})" if frame else "")


def where(frame) -> str:
    """'at file:line in function: code' for a traceback frame."""
    code = f": {frame.line.strip()}" if frame.line else ""
    return f"at {_short(Path(frame.filename))}:{frame.lineno} in {frame.name}{code}"


class learner_errors:
    """Within this block an exception raised in a learner's code becomes a ``LearnerError``
    naming their file and line (``what``: what tinyllm was doing); anything else goes on as
    it is (a TinyLLMError is the user's to fix, the rest a tinyllm bug)."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if not isinstance(exc, Exception) or isinstance(exc, TinyLLMError):
            return False
        if isinstance(exc, SyntaxError) and exc.filename and not exc.filename.startswith("<"):
            raise LearnerError(f"{self.what}: SyntaxError: {exc.msg} (at "
                               f"{_short(Path(exc.filename))}:{exc.lineno})") from exc
        frame = blame(exc, learner_only=True)
        if frame is None:
            return False
        raise LearnerError(f"{self.what}: your code raised {describe(exc, frame)}") from exc


def _short(path: Path) -> str:
    """``path`` relative to the current directory when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


__all__ = ["import_learner_module", "LearnerError", "learner_errors", "blame", "describe", "where"]
