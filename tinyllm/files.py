"""Files on disk: where tinyllm's cache is, writes that are atomic, one writer per directory, and
the rows of a metrics file. Every layer that writes goes through here.

A write is atomic when a reader (or a later run) sees either the old file or the new one, never
half of one, whatever kills the writer: the new content goes to a temporary name beside the
target, ``.NAME.tmp-PID-HOST-XXXXXXXX``, then one ``os.replace`` renames it into place. The name
says which process wrote it, so that the leftovers of a writer that was killed can be told from
the work of one still running (``remove_temporaries``).

    $TINYLLM_HOME            the cache (default ~/.cache/tinyllm): GPT-2's tokenizer, TinyStories,
                             trained tokenizers, prepared tokens, GGUF files and compiled
                             decode steps for generation (``home``)

A directory that is later trusted carries a checksum manifest (``write_manifest``,
``check_manifest``).
"""
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from safetensors import SafetensorError

from .errors import TinyLLMError


def home() -> Path:
    """The cache directory: ``$TINYLLM_HOME`` or ``~/.cache/tinyllm``."""
    return Path(os.environ.get("TINYLLM_HOME", "~/.cache/tinyllm")).expanduser()


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

def temporary_path(path) -> Path:
    """A fresh name beside ``path`` for its content while it is written."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{_host()}-{secrets.token_hex(4)}")


@contextmanager
def atomic_file(path):
    """Yield a temporary path beside ``path`` for any writer to fill (``safetensors.save_file``,
    say); when the block succeeds it replaces ``path``, when it fails it vanishes."""
    path = Path(path)
    tmp = temporary_path(path)
    with writing(path):
        try:
            yield tmp
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


@contextmanager
def atomic_open(path, mode: str = "wb"):
    """A file to write (``mode`` 'wb', or 'w' for UTF-8 text) that replaces ``path`` when the
    block succeeds, and vanishes when it fails: a reader never sees half of it."""
    with atomic_file(path) as tmp:
        with open(tmp, mode.replace("w", "x"), **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f


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
        tmp = temporary_path(path)
        tmp.mkdir()
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


# -- checksums --------------------------------------------------------------------------------
# A directory tinyllm writes and later trusts (a model directory, a run's last/) holds MANIFEST:
# the SHA-256 and size of each of its files, written after them. Before such a directory is
# used, ``check_manifest`` hashes its files again: a flipped bit anywhere is found before any of
# it is used. A directory without a manifest (older tinyllm, Hugging Face) is read unchecked.

MANIFEST = "checksums.json"


class DamagedFile(TinyLLMError):
    """A file is not what tinyllm wrote (its checksum differs, it is missing, or its values are
    not finite): it is never used."""


def file_digest(path) -> str:
    """The SHA-256 of the file ``path``, in hex."""
    import hashlib
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_manifest(directory, names) -> Path:
    """Record the checksum and size of each file ``names`` of ``directory`` in its MANIFEST,
    atomically (call it after the files are written)."""
    directory = Path(directory)
    files = {name: {"sha256": file_digest(directory / name),
                    "bytes": (directory / name).stat().st_size} for name in names}
    return write_json(directory / MANIFEST, {"files": files})


def forget_manifest(directory) -> None:
    """Remove ``directory``'s MANIFEST before its files are replaced one by one: a process killed
    before the new one is written leaves a directory that is read unchecked, never one refused."""
    (Path(directory) / MANIFEST).unlink(missing_ok=True)


_verified: dict = {}    # (path, inode, size, mtime) of files verified by this process


def check_manifest(directory) -> bool:
    """Check every file ``directory``'s MANIFEST lists against its checksum; False when there is
    no manifest. A file that differs or is missing is a ``DamagedFile`` naming it. A file this
    process verified already, unchanged since (same inode, size and modification time), is not
    hashed again."""
    directory = Path(directory)
    if not (directory / MANIFEST).is_file():
        return False
    manifest = read_json(directory / MANIFEST, "tinyllm checksum manifest")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in files.values()):
        raise DamagedFile(f"{directory / MANIFEST} is damaged (not a tinyllm checksum manifest)")
    for name, expected in files.items():
        path = directory / name
        try:
            st = path.stat()
        except FileNotFoundError:
            raise DamagedFile(f"{path} is missing ({MANIFEST} lists it)") from None
        key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
        if _verified.get(key) == expected["sha256"]:
            continue
        if st.st_size != expected.get("bytes") or file_digest(path) != expected["sha256"]:
            raise DamagedFile(f"{path} is damaged (its checksum is not the one {MANIFEST} "
                              "recorded when it was written)")
        _verified[key] = expected["sha256"]
    return True


# -- what killed writers leave ----------------------------------------------------------------

_TEMPORARY = re.compile(r"^\..+\.tmp-(?:(\d+)-(?:([A-Za-z0-9]+)-)?)?[0-9A-Za-z_]{8}$")
STALE_SECONDS = 24 * 3600       # a temporary this old is a leftover whoever wrote it


def remove_temporaries(directory, holding_lock: bool = False) -> list[str]:
    """Delete what interrupted atomic writes left in ``directory`` and return the names removed:
    with ``holding_lock`` (no other process writes there: ``lock``) every temporary; otherwise
    only those of processes of this machine that are no longer alive, and any older than a day
    (another process, here or on a machine sharing the directory, may be writing the rest).
    A temporary is only ever renamed into place once complete: it is never trusted."""
    removed = []
    for entry in Path(directory).iterdir():
        match = _TEMPORARY.match(entry.name)
        if match is None:
            continue
        if not holding_lock:
            try:
                age = time.time() - entry.stat().st_mtime
            except FileNotFoundError:
                continue
            pid, host = match[1], match[2]
            dead = pid is not None and host in (None, _host()) and int(pid) != os.getpid() \
                and not _alive(int(pid))
            if not dead and age <= STALE_SECONDS:
                continue
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        removed.append(entry.name)
    return removed


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", socket.gethostname())[:32] or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # alive, another user's
        return True
    return True


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


# -- JSON and metrics rows --------------------------------------------------------------------

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
