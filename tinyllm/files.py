"""Files on disk: the names tinyllm gives them, writes that are atomic, and metrics rows.

A write is atomic when a reader (or a later run) sees either the old file or the new one, never
half of one, whatever kills the writer: the new content goes to a temporary name beside the
target, then one ``os.replace`` renames it into place.

    model directory         config.json, model.safetensors, vocab.json + merges.txt
    run directory           the best model (as above), last/ (a training checkpoint),
                            metrics.jsonl (one JSON object per line), loss.png
"""
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import TinyLLMError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TOKENIZER_FILES = ("vocab.json", "merges.txt")
METRICS = "metrics.jsonl"


# -- atomic writes ----------------------------------------------------------------------------

def atomic_write(path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` atomically (text as UTF-8)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path, obj) -> Path:
    """``obj`` as indented JSON, atomically."""
    return atomic_write(path, json.dumps(obj, indent=2) + "\n")


@contextmanager
def atomic_dir(path):
    """Yield a fresh temporary directory beside ``path``; when the block succeeds it replaces
    ``path`` (and is removed when it fails).

    The swap is two renames (old -> .NAME.old, new -> NAME); a process killed between them
    leaves .NAME.old, which readers that know it (``checkpoint.find_resumable``) still find."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


# -- metrics.jsonl ----------------------------------------------------------------------------

def append_metrics(path, row: dict) -> None:
    """Add one row to a metrics file (a line of JSON; a crash can only lose the last line)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def write_metrics(path, rows: list[dict]) -> None:
    """Replace a metrics file with ``rows``, atomically."""
    atomic_write(path, "".join(json.dumps(row) + "\n" for row in rows))


def read_metrics(path) -> list[dict]:
    """The rows of a metrics file (a torn last line, from a killed writer, is dropped)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines):
                break
            raise TinyLLMError(f"{path}:{n} is not a JSON metrics row: is this a tinyllm "
                               "metrics.jsonl?") from None
    return rows


# -- reading ----------------------------------------------------------------------------------

def read_json(path, what: str = "JSON file") -> dict:
    """A JSON object from ``path``; a missing or malformed file is one clear error."""
    try:
        obj = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise TinyLLMError(f"{path} does not exist: expected a {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TinyLLMError(f"{path} is not a valid {what} ({e})") from None
    if not isinstance(obj, dict):
        raise TinyLLMError(f"{path} is not a valid {what} (a JSON object was expected)")
    return obj


def read_safetensors(file) -> dict:
    """The tensors of a safetensors file; anything else (a pickle, say) is refused, unread."""
    from safetensors.torch import load_file
    try:
        return load_file(str(file))
    except Exception as e:  # safetensors' own error type, OSError, ...: not a weights file
        raise TinyLLMError(f"{file} is not a readable safetensors file ({type(e).__name__}): "
                           "tinyllm only loads safetensors, never pickles") from None


def check_state_fits(state: dict, own: dict, source, config: str = "this model's config") -> None:
    """Raise a clear error unless ``state`` has exactly the names and shapes of ``own`` (a
    model's state dict): weights written for another configuration are refused, not mixed in."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
             for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise TinyLLMError(f"the weights in {source} do not fit {config} (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}, wrong shape {wrong[:3]}): were they "
                           "written for another configuration?")
