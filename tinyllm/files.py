"""Files on disk: the names tinyllm gives them, writes that are atomic, and metrics rows.

A write is atomic when a reader (or a later run) sees either the old file or the new one, never
half of one, whatever kills the writer: the new content goes to a temporary name beside the
target, then one ``os.replace`` renames it into place.

    model directory         config.json, model.safetensors, vocab.json + merges.txt
    run directory           the best model (as above), last/ (a training checkpoint),
                            metrics.jsonl (one JSON object per line), loss.png
"""
import errno
import fcntl
import json
import os
import re
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from safetensors import SafetensorError

from .errors import TinyLLMError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TOKENIZER_FILES = ("vocab.json", "merges.txt")
METRICS = "metrics.jsonl"


# -- writes that fail cleanly -----------------------------------------------------------------

class WriteError(TinyLLMError):
    """A file could not be written for a reason the user can fix: no space left, a read-only
    file system, no permission. Whatever was there before is intact."""


_USER_FIXABLE = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                 errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                 errno.EPERM: "operation not permitted"}


@contextmanager
def writing(path):
    """Turn a failed write under ``path`` into one ``WriteError`` when the user can fix it (see
    ``_USER_FIXABLE``; safetensors reports the same failures as "os error N")."""
    try:
        yield
    except (OSError, SafetensorError) as e:
        code = e.errno if isinstance(e, OSError) else \
            int(m.group(1)) if (m := re.search(r"os error (\d+)", str(e))) else None
        if code not in _USER_FIXABLE:
            raise
        raise WriteError(f"cannot write {path}: {_USER_FIXABLE[code]}: free some space or give a "
                         "writable directory") from None


# -- atomic writes ----------------------------------------------------------------------------

@contextmanager
def atomic_open(path, mode: str = "wb"):
    """A file to write (``mode`` 'wb', or 'w' for UTF-8 text) that replaces ``path`` when the
    block succeeds, and vanishes when it fails: a reader never sees half of it."""
    path = Path(path)
    with writing(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
        try:
            make_readable(tmp)                   # mkstemp's 0600 would hide it from others
            with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
                yield f
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def make_readable(path) -> None:
    """Give a file written through a temporary name the permissions a plain write would have
    (temporary files are created private, 0600)."""
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` atomically (text as UTF-8)."""
    with atomic_open(path, "w" if isinstance(data, str) else "wb") as f:
        f.write(data)
    return Path(path)


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
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())         # mkdtemp's 0700 would hide it from others
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


def remove_temporaries(directory) -> list[str]:
    """Delete what interrupted atomic writes left in ``directory`` (``.NAME.tmp-*`` files and
    directories); never trusted, they are only ever renamed into place when complete. Call it
    only while no other process writes there (``lock``). Returns the names removed."""
    removed = []
    for p in Path(directory).glob(".*.tmp-*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        removed.append(p.name)
    return removed


# -- one writer per directory -----------------------------------------------------------------

LOCK = ".lock"


@contextmanager
def lock(directory, what: str = "run"):
    """Hold ``directory``'s lock for the block: a second process that asks for it gets one
    ``TinyLLMError`` naming the holder. The lock is the operating system's (``flock``), so a
    process killed with -9 releases it with its last breath; nothing stale is left to clear."""
    directory = Path(directory)
    path = directory / LOCK
    with writing(directory):
        directory.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 1000).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise TinyLLMError(f"{directory} is in use by another {what} ({holder}): wait for "
                                   f"it to finish, or choose another directory") from None
            if os.path.exists(path) and os.stat(path).st_ino == os.fstat(fd).st_ino:
                break                       # the file we locked is still the lock file
            os.close(fd)                    # its holder removed it as we opened it: again
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
    try:
        yield
    finally:
        os.unlink(path)                     # while still holding it: the next one starts clean
        os.close(fd)


# -- metrics.jsonl ----------------------------------------------------------------------------

def append_metrics(path, row: dict) -> None:
    """Add one row to a metrics file (a line of JSON; a crash can only lose the last line).
    Rows are strict JSON: a NaN or infinity in one is a bug, refused here."""
    line = json.dumps(row, allow_nan=False) + "\n"
    with writing(path), open(path, "a", encoding="utf-8") as f:
        f.write(line)


def write_metrics(path, rows: list[dict]) -> None:
    """Replace a metrics file with ``rows``, atomically."""
    atomic_write(path, "".join(json.dumps(row, allow_nan=False) + "\n" for row in rows))


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
