"""Writing files safely: the one atomic writer and the one kind of file lock.

Every file hubtasks writes for later readers (plans, results, kubeconfigs, decrypted values)
goes through `write_atomic` or `write_private`, and every cross-process lock is a `FileLock`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from hubtasks.model import HubtasksError

TEMP_SUFFIX = ".hubtasks-tmp"
LOCK_POLL = 0.05
PRIVATE = 0o600


def write_atomic(path: Path, data: str | bytes, *, mode: int = PRIVATE,
                 durable: bool = False) -> None:
    """Replace `path` with `data` in one step: a temp file beside it, then a rename.

    A reader sees the old file or the new one, never half of one. The file has `mode` from
    the moment it exists (default 0600). `durable` fsyncs the file and its folder, so the
    new content survives a power loss, not only a crash of this process. A symlink is
    followed (its target is replaced, as a plain write would change it), never replaced.
    """
    if path.is_symlink():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if durable:
        fsync_dir(path.parent)


def write_private(path: Path, data: str | bytes) -> None:
    """Create a new file only its owner can read (0600 from the start); never follow links."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_temp_files(folder: Path, name: str) -> None:
    """Delete temp files that crashed `write_atomic` calls of `folder/name` left behind."""
    # mkstemp's random part has no dots: `.r.json.x.abc.hubtasks-tmp` belongs to `r.json.x`.
    pattern = re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]+{re.escape(TEMP_SUFFIX)}")
    for entry in folder.iterdir() if folder.is_dir() else ():
        if pattern.fullmatch(entry.name):
            with contextlib.suppress(OSError):
                entry.unlink()


@contextlib.contextmanager
def FileLock(path: Path, *, timeout: float | None = None,
             what: str = "") -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if missing; left in place).

    An flock belongs to one open file, so threads of one process exclude each other too.
    With `timeout`, give up after that many seconds with an error naming `what`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        _acquire(handle.fileno(), timeout, what or str(path))
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _acquire(fd: int, timeout: float | None, what: str) -> None:
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise HubtasksError(f"{what} is locked by another process; gave up after "
                                    f"{timeout:g}s") from None
            time.sleep(LOCK_POLL)
