"""How a command ends on a user's error or a SIGTERM: one rule for the invoke tasks
(tasks.user_errors) and the fast `plan` path (fastcli)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds a command like Ctrl-C (its `finally` blocks remove decrypted copies
    and temporary trees), instead of ending the process where it stands. Deploys install
    their own handlers inside."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def file_error(err: OSError) -> str | None:
    """The message of a file hubtasks was told to read or write and could not (a read-only
    or full disk, a path under a file); None for an OSError naming no file (a bug)."""
    if err.filename is None:
        return None
    return f"{err.filename}: {err.strerror or err}"
