"""Long-running local processes (etcd, kube-apiserver, ...): start, wait ready, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from hubtasks import proc
from hubtasks.dev.apiserver import is_ready
from hubtasks.model import HubtasksError


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held together so they differ)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Component:
    """One control-plane process in its own session, logging to a file."""

    def __init__(self, label: str, argv: Sequence[str], log: Path) -> None:
        self.label, self.argv, self.log = label, list(argv), log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, cwd: Path, *, die_with_parent: bool = True) -> None:
        """Start the process in its own group, detached from our terminal's signals."""
        self.proc = proc.spawn(self.argv, env={"PATH": os.defpath, "HOME": str(cwd)},
                               log=self.log, cwd=cwd, die_with_parent=die_with_parent)

    def check_alive(self) -> None:
        """Raise with the log's tail if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise HubtasksError(
                f"{self.label} exited with {self.proc.returncode}; log {self.log}:\n"
                + log_tail(self.log)
            )

    def signal(self, sig: int) -> None:
        """Send `sig` to the process group, ignoring one that is already gone."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> bool:
        """Wait for exit; whether it exited in time."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False


def stop_components(components: Sequence[Component], grace: float = 10.0) -> None:
    """SIGTERM every group, then SIGKILL what is left after `grace` seconds, and reap."""
    for comp in components:
        comp.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for comp in components:
        if not comp.wait(max(0.0, deadline - time.monotonic())):
            comp.signal(signal.SIGKILL)
            comp.wait(30.0)


def wait_ready(comp: Component, url: str, token: str | None, timeout: float) -> None:
    """Poll `url` until ready; raise with the log's tail if the process dies or times out."""
    deadline = time.monotonic() + timeout
    while not is_ready(url, token):
        comp.check_alive()
        if time.monotonic() > deadline:
            raise HubtasksError(
                f"{comp.label} not ready at {url} after {timeout:.0f}s; log {comp.log}:\n"
                + log_tail(comp.log)
            )
        time.sleep(0.3)
