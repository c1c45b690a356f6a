"""Writing files so that nothing the user has is lost: atomic replacement with the mode an ordinary ``open()``
would give, leftovers of interrupted writes that can be found and removed, write probes, and process locks.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import threading
from pathlib import Path

from waveunet_tf.errors import UserError

# Every temporary file or folder this package writes carries this marker in its name, so that the leftovers of
# a write interrupted by kill -9 or a full disk can be told apart from the user's files and removed.
PARTIAL = ".partial"

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask (read by setting and restoring it: there is no other portable way)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def partial_name(path: Path, suffix: str = "") -> str:
    """A hidden temporary name beside ``path``: ``.<name>.<random><PARTIAL><suffix>``."""
    return f".{path.name}.{os.urandom(4).hex()}{PARTIAL}{suffix}"


def is_partial(path) -> bool:
    """Whether ``path`` is a leftover of one of our interrupted writes."""
    name = Path(path).name
    return name.startswith(".") and PARTIAL in name


def remove_partials(folder, recursive: bool = True) -> int:
    """Remove the leftovers of interrupted writes under ``folder`` (files and folders); returns how many.
    Call it only while no other process writes there (e.g. holding the folder's :func:`process_lock`)."""
    import shutil
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    found = [p for p in (folder.rglob(".*") if recursive else folder.glob(".*")) if is_partial(p)]
    removed = 0
    for p in sorted(found, key=lambda q: len(q.parts)):
        if not p.exists() and not p.is_symlink():
            continue  # inside a folder removed just before
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        removed += 1
    return removed


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; on success it is renamed over ``path`` (never half-written), with
    the permissions ``open()`` would give a new file under the current umask. On failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / partial_name(path, suffix or path.suffix or ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
        os.close(fd)
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def check_writable(folder, what: str = "the output folder") -> Path:
    """Create ``folder`` if needed and make sure a file can be written there; else one line saying so."""
    folder = Path(folder)
    probe = folder / partial_name(Path("write-test"))  # a name of its own: no user's file, no other probe
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
            probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to {what} {folder}: {e.strerror or e}") from e
    return folder


class Locked(UserError):
    """Another process holds the lock."""


@contextlib.contextmanager
def process_lock(lock_file, what: str):
    """Hold an exclusive lock on ``lock_file`` for the ``with`` block, or fail at once with one line saying that
    another process (its pid) is using ``what``. The kernel releases the lock when the holder exits, even by
    kill -9, so a stale lock never blocks anyone. The lock file itself stays (removing it would race)."""
    import fcntl
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise Locked(f"{what} is in use by another process (pid {holder}); wait for it to finish or stop "
                         "it first") from e
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def temporary_dir_beside(path) -> Path:
    """A new hidden folder beside ``path`` named as a partial write (removed by :func:`remove_partials`), with
    the mode ``mkdir`` gives under the umask (``mkdtemp`` alone makes it 0700, unreadable to a server running
    as another user once renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=PARTIAL, dir=path.parent))
    folder.chmod(0o777 & ~current_umask())
    return folder
