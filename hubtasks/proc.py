"""The one way hubtasks starts a process: argv, env, timeout, cancellation and redaction.

Every external program (helm, git, sops, kubectl, openssl, pip, apt-get) runs through `run`,
which returns an `Outcome` value and never raises for the program's own failures.

- **Its own process group**, so a timeout or a cancel stops the program together with what
  it started (credential plugins, post-renderers): SIGTERM, then SIGKILL after `grace`.
- **It dies with hubtasks.** The child gets a parent-death signal, so a `kill -9` of hubtasks
  never leaves a helm running unwatched; and what it started (a wrapper's helm, plugins)
  goes too: a small reaper process (`_Reaper`) kills every group still running when
  hubtasks's end of its pipe closes. SIGKILL, not SIGTERM: helm 4 answers SIGTERM by
  rolling back and waiting for that, for up to its whole `--timeout`, with nobody watching;
  a release it leaves `pending-*` is repaired by the next run (deploying/repair.py).
- **Its output goes to an unlinked temp file, not a pipe.** A program whose reader died would
  be killed by SIGPIPE on its next write (helm then dies between "upgrade failed" and its
  rollback); a file never breaks. A thread follows the file, redacts each line and hands it
  to `on_output`; the last lines are kept in the Outcome. The file has no name, so it
  vanishes with the last process that holds it, whatever kills whom.
- `keep_stdout` captures stdout as bytes instead (git's output, sops' plaintext): it is never
  logged, only returned.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hubtasks.model import HubtasksError

Redact = Callable[[str], str]
OnOutput = Callable[[str], None]

TERM_GRACE = 5.0
TAIL_LINES = 200
OUTPUT_CHARS = 16_000
READ_CHUNK = 64 * 1024
POLL = 0.05
PR_SET_PDEATHSIG = 1


def _no_redaction(text: str) -> str:
    return text


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What became of one process; truthy when it exited 0 in time and uncancelled."""

    argv: tuple[str, ...]
    exit_code: int | None = None
    signal: int | None = None
    output: str = ""
    stdout: bytes = field(default=b"", repr=False)
    timed_out: bool = False
    cancelled: bool = False
    start_error: str = ""
    duration: float = 0.0

    def __bool__(self) -> bool:
        return self.exit_code == 0 and not (self.timed_out or self.cancelled)

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()

    def describe(self) -> str:
        """How it ended, for a log or an error: `exited 1`, `killed by signal 9 (SIGKILL)`."""
        if self.start_error:
            return f"could not start: {self.start_error}"
        if self.cancelled:
            return "cancelled"
        if self.timed_out:
            return f"timed out after {self.duration:.0f}s"
        if self.signal is not None:
            return f"killed by signal {self.signal} ({_signal_name(self.signal)})"
        return f"exited {self.exit_code}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"


# ---------------------------------------------------------------------------- the child


def _libc_prctl() -> Callable[[int, int], int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()


def _in_child() -> None:
    """Runs in the child between fork and exec: die (SIGKILL) when the forking thread dies.

    Only a call into libc: safe in a child forked from a threaded parent.
    """
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


# ---------------------------------------------------------------------------- the reaper

# Reads `add PGID` / `del PGID` lines; at end of input (hubtasks exited or was killed, even
# by SIGKILL: the kernel closes the pipe) it kills every group still listed. Its own
# session, and it ignores the terminal's signals: it must outlive hubtasks by that moment.
REAPER_SCRIPT = """trap '' INT TERM HUP QUIT
groups=' '
while read -r verb id; do
  case $verb in
    add) groups="$groups$id " ;;
    del) case $groups in *" $id "*) groups="${groups%% $id *} ${groups#* $id }" ;; esac ;;
  esac
done
for id in $groups; do kill -9 -$id 2>/dev/null; done
"""


class _Reaper:
    """Kills what a program started when hubtasks dies without cleaning up (`kill -9`).

    The parent-death signal reaches only the child itself; a wrapper's helm, a post-renderer
    or a credential plugin would live on. Every program runs in its own process group, which
    is listed here while it runs: one `sh` per hubtasks process, started on first use, kills
    the listed groups once its input closes. A group is unlisted before its leader is reaped,
    so its id is never reused while listed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pipe: IO[bytes] | None = None
        self._failed = False

    def add(self, pgid: int) -> None:
        self._send(f"add {pgid}\n")

    def remove(self, pgid: int) -> None:
        self._send(f"del {pgid}\n")

    def _send(self, line: str) -> None:
        with self._lock:
            if self._pipe is None and not self._failed:
                self._start()
            if self._pipe is None:
                return
            try:
                self._pipe.write(line.encode())
                self._pipe.flush()
            except (OSError, ValueError):  # it was killed: the parent-death signal remains
                self._pipe, self._failed = None, True

    def _start(self) -> None:
        try:
            reaper = subprocess.Popen(["/bin/sh", "-c", REAPER_SCRIPT], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True, env={"PATH": "/usr/bin:/bin"})
        except OSError:
            self._failed = True
            return
        self._pipe = reaper.stdin
        # not waited for: it ends when our end of the pipe closes, reparented to init
        reaper.returncode = 0  # keeps Popen.__del__ from warning about a running child


_REAPER = _Reaper()


# ---------------------------------------------------------------------------- waiting


def _exited(pid: int) -> bool:
    """Has the process exited? Does not reap it, so its group id stays reserved."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the whole group, SIGKILL it after `grace` seconds, then reap the leader."""
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while not _exited(proc.pid) and time.monotonic() < deadline:
        time.sleep(POLL)
    _signal_group(proc.pid, signal.SIGKILL)
    _reap(proc)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Unlist the group (the reaper must not kill a reused id), then reap its leader."""
    _REAPER.remove(proc.pid)
    proc.wait()


@contextlib.contextmanager
def _exit_waiter(pid: int, cancel: threading.Event) -> Iterator[Callable[[float], object]]:
    """A sleep that ends as soon as `pid` exits (a pidfd, Linux >= 5.3), else on cancel.

    The pidfd does not reap the process, so its group id stays reserved until the group
    has been killed.
    """
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        yield cancel.wait
        return
    try:
        yield lambda seconds: select.select([fd], [], [], seconds)
    finally:
        os.close(fd)


def _wait(proc: subprocess.Popen[bytes], timeout: float, cancel: threading.Event,
          grace: float) -> tuple[bool, bool]:
    """Wait for the process; (timed_out, cancelled). Its group never outlives this call."""
    deadline = time.monotonic() + timeout
    with _exit_waiter(proc.pid, cancel) as pause:
        while not _exited(proc.pid):
            if cancel.is_set() or time.monotonic() >= deadline:
                cancelled = cancel.is_set()
                _stop_group(proc, grace)
                return not cancelled, cancelled
            pause(POLL)
    _signal_group(proc.pid, signal.SIGKILL)  # stragglers of a finished program
    _reap(proc)
    return False, False


# ---------------------------------------------------------------------------- output


class _Follower(threading.Thread):
    """Follows the output file while the process runs: redacts lines, keeps the tail."""

    def __init__(self, handle: IO[bytes], redact: Redact, on_output: OnOutput | None) -> None:
        super().__init__(name="proc-output", daemon=True)
        self.handle, self.redact, self.on_output = handle, redact, on_output
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.done = threading.Event()
        self._pos, self._partial = 0, b""

    def run(self) -> None:
        while not self.done.wait(POLL):
            self._drain()
        self._drain()
        if self._partial:
            self._emit(self._partial + b"\n")

    def _drain(self) -> None:
        while chunk := os.pread(self.handle.fileno(), READ_CHUNK, self._pos):
            self._pos += len(chunk)
            *lines, self._partial = (self._partial + chunk).split(b"\n")
            for line in lines:
                self._emit(line + b"\n")

    def _emit(self, raw: bytes) -> None:
        text = self.redact(raw.decode("utf-8", "replace"))
        self.tail.append(text)
        if self.on_output is not None:
            self.on_output(text)

    def finish(self) -> str:
        self.done.set()
        self.join()
        return "".join(self.tail)[-OUTPUT_CHARS:]


def _feed(proc: subprocess.Popen[bytes], data: bytes | None) -> threading.Thread | None:
    if data is None or proc.stdin is None:
        return None

    def write() -> None:
        with contextlib.suppress(OSError), proc.stdin as stdin:  # type: ignore[union-attr]
            stdin.write(data)

    thread = threading.Thread(target=write, name="proc-stdin", daemon=True)
    thread.start()
    return thread


def _collect(stream: IO[bytes] | None, into: list[bytes]) -> threading.Thread | None:
    if stream is None:
        return None

    def read() -> None:
        with stream:
            into.append(stream.read())

    thread = threading.Thread(target=read, name="proc-stdout", daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------------------- run


def run(argv: Sequence[str], *, env: Mapping[str, str], timeout: float,
        cancel: threading.Event | None = None, redact: Redact | None = None,
        on_output: OnOutput | None = None, cwd: Path | None = None,
        stdin: bytes | None = None, keep_stdout: bool = False,
        grace: float = TERM_GRACE) -> Outcome:
    """Run one program to completion, a timeout or a cancel; never raises for its failures.

    `env` is the whole environment of the child (nothing is inherited implicitly). Output
    lines pass through `redact` before they are kept or handed to `on_output`.
    """
    cancel = threading.Event() if cancel is None else cancel
    redact = redact or _no_redaction
    echo = tuple(redact(a) for a in argv)
    started = time.monotonic()
    if cancel.is_set():
        return Outcome(argv=echo, cancelled=True)
    with tempfile.TemporaryFile(prefix="hubtasks-out-") as out:
        try:
            proc = subprocess.Popen(
                list(argv), env=dict(env), cwd=cwd, start_new_session=True,
                preexec_fn=_in_child, stdout=subprocess.PIPE if keep_stdout else out,
                stderr=out, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE)
        except OSError as err:
            return Outcome(argv=echo, start_error=f"{argv[0]}: {err.strerror or err}")
        _REAPER.add(proc.pid)  # its group id: the leader is not reaped before it is unlisted
        follower = _Follower(out, redact, on_output)
        follower.start()
        captured: list[bytes] = []
        helpers = [t for t in (_feed(proc, stdin), _collect(proc.stdout, captured)) if t]
        try:
            timed_out, cancelled = _wait(proc, timeout, cancel, grace)
        except BaseException:  # Ctrl-C in the main thread: the child's session never sees it
            _stop_group(proc, grace)
            raise
        finally:
            for helper in helpers:
                helper.join(grace)
            output = follower.finish()
    code = proc.returncode
    return Outcome(argv=echo, exit_code=code if code >= 0 else None,
                   signal=-code if code < 0 else None, output=output,
                   stdout=b"".join(captured), timed_out=timed_out, cancelled=cancelled,
                   duration=round(time.monotonic() - started, 3))


def checked(outcome: Outcome, what: str) -> Outcome:
    """`outcome` when it succeeded; otherwise a HubtasksError naming `what` and its output."""
    if outcome:
        return outcome
    tail = "\n".join(outcome.lines[-15:])
    raise HubtasksError(f"{what} failed ({outcome.describe()})" + (f":\n{tail}" if tail else ""))


def spawn(argv: Sequence[str], *, env: Mapping[str, str], log: Path, cwd: Path | None = None,
          die_with_parent: bool = True) -> subprocess.Popen[bytes]:
    """Start a long-running program (a local control plane) in its own group, logging to `log`.

    Unlike `run`, this returns at once; the caller stops it (signal its group, then wait).
    `die_with_parent=False` lets it outlive hubtasks (`demo --keep`).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_in_child if die_with_parent else None)
