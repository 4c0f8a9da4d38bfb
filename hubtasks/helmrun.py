"""Run one helm command: stream its output to a log, time it out, cancel it, retry blips.

Each attempt starts helm in its own session (process group), so a timeout or a cancel can
stop helm together with anything it started (credential plugins, post-renderers). Output is
read by a thread into the job's log file, so a chatty helm never blocks on a full pipe.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import select
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

# Failures worth another try: the API server or network blinked, or another helm (often a
# previous CI run) still holds the release lock. Everything else fails at once.
TRANSIENT_PATTERNS: tuple[str, ...] = (
    r"connection refused",
    r"connection reset(?: by peer)?",
    r"another operation \(install/upgrade/rollback\) is in progress",
    r"TLS handshake timeout",
    r"i/o timeout",
    r"http2: client connection lost",
    r"Client\.Timeout exceeded while awaiting headers",
    r"the server is currently unable to handle the request",
    r"etcdserver: (?:request timed out|leader changed)",
    r"unexpected EOF",
)
TRANSIENT_RE = re.compile("|".join(f"(?:{p})" for p in TRANSIENT_PATTERNS), re.IGNORECASE)
# Lines that say what went wrong: helm's `Error: ...`, klog errors, FAILED summaries.
ERROR_LINE_RE = re.compile(r"^\s*(?:Error\b|ERROR\b|error:|E\d{4} )|\bFAILED\b|\bfatal\b")
# Variables that would silently point every job at one cluster or namespace; each helm call
# names its cluster with flags instead.
AMBIENT_CLUSTER_VARS = re.compile(r"^(?:KUBECONFIG|HELM_KUBE\w*|HELM_NAMESPACE)$")
SECRET_FLAGS = frozenset({"--kube-token", "--password", "--set", "--set-string", "--set-json",
                          "--set-literal"})
REDACTED = "***"
MIN_SECRET_LEN = 4  # shorter "secrets" (true, 80, ...) would blank out ordinary text
TAIL_LINES = 200
OUTPUT_CHARS = 16_000
EXCERPT_LINES = 20
EXCERPT_CHARS = 4_000
LINE_CHARS = 1_000
READ_CHUNK = 64 * 1024
POLL = 0.05
TERM_GRACE = 5.0
READER_JOIN = 5.0

Sleep = Callable[[float], object]


@dataclass(frozen=True, kw_only=True)
class HelmRun:
    """The outcome of `run_helm`; truthy when the last attempt succeeded."""

    exit_code: int | None
    attempts: int
    output: str = ""
    error: str = ""
    timed_out: bool = False
    cancelled: bool = False
    duration: float = 0.0

    def __bool__(self) -> bool:
        return self.exit_code == 0 and not (self.timed_out or self.cancelled)


@dataclass(frozen=True, kw_only=True)
class _Attempt:
    exit_code: int | None
    lines: tuple[str, ...]
    timed_out: bool = False
    cancelled: bool = False


# ---------------------------------------------------------------------------- text helpers


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every known secret value (of at least 4 characters) replaced by ***."""
    for value in sorted({s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def redact_argv(argv: Sequence[str], secrets: Iterable[str] = ()) -> list[str]:
    """argv for echoing: values of secret-carrying flags and known secrets hidden."""
    out: list[str] = []
    for arg in argv:
        flag, eq, _ = arg.partition("=")
        if out and out[-1] in SECRET_FLAGS:
            arg = REDACTED
        elif eq and flag in SECRET_FLAGS:
            arg = f"{flag}={REDACTED}"
        out.append(redact(arg, secrets))
    return out


def is_transient(lines: Iterable[str]) -> bool:
    """True when helm's error says a retry may succeed (see TRANSIENT_PATTERNS)."""
    return any(TRANSIENT_RE.search(line) for line in lines)


def error_excerpt(lines: Sequence[str]) -> str:
    """The last lines that say what went wrong (else the last lines), capped in size."""
    errors = [line for line in lines if ERROR_LINE_RE.search(line)]
    chosen = (errors or [line for line in lines if line.strip()])[-EXCERPT_LINES:]
    return "\n".join(line.rstrip()[:LINE_CHARS] for line in chosen)[-EXCERPT_CHARS:]


def helm_env(base_env: Mapping[str, str], *,
             extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A subprocess env: `base_env` without ambient cluster selectors, plus `extra`."""
    env = {k: v for k, v in base_env.items() if not AMBIENT_CLUSTER_VARS.match(k)}
    env.update(extra or {})
    return env


# ---------------------------------------------------------------------------- log file


class _Log:
    """The job's log file (append), shared by the reader thread and the runner."""

    def __init__(self, handle: IO[str] | None, secrets: Sequence[str]) -> None:
        self.handle, self.secrets = handle, secrets
        self.lock = threading.Lock()

    def write(self, text: str, tail: collections.deque[str] | None = None) -> None:
        with self.lock:
            if tail is not None:
                tail.append(text)
            if self.handle is not None:
                self.handle.write(text)
                self.handle.flush()

    def lines(self, tail: collections.deque[str]) -> tuple[str, ...]:
        with self.lock:  # a reader that outlived its join may still append
            return tuple(tail)

    def close(self) -> None:
        with self.lock:
            self.handle = None

    def note(self, text: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        self.write(f"# hubtasks {stamp} {text}\n")


@contextlib.contextmanager
def _open_log(path: Path | None, secrets: Sequence[str]) -> Iterator[_Log]:
    if path is None:
        yield _Log(None, secrets)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8", errors="replace") as handle:
        log = _Log(handle, secrets)
        try:
            yield log
        finally:
            log.close()


def _pump(stream: IO[bytes], log: _Log, tail: collections.deque[str]) -> None:
    """Copy helm's output into the log and the tail until EOF (runs in a thread)."""
    with stream:  # closed here: the runner may have stopped waiting for this thread
        for chunk in iter(lambda: stream.readline(READ_CHUNK), b""):
            log.write(redact(chunk.decode("utf-8", "replace"), log.secrets), tail)


# ---------------------------------------------------------------------------- processes


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
    proc.wait()


@contextlib.contextmanager
def _exit_waiter(pid: int, cancel: threading.Event) -> Iterator[Callable[[float], object]]:
    """A sleep that ends as soon as `pid` exits (a pidfd, Linux >= 5.3), else on cancel.

    Waking on exit instead of polling saves ~25 ms per job on average; the pidfd does
    not reap the process, so its group id stays reserved until we have killed the group.
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
    """Wait for helm; (timed_out, cancelled). The group never outlives this call."""
    deadline = time.monotonic() + timeout
    with _exit_waiter(proc.pid, cancel) as pause:
        while not _exited(proc.pid):
            if cancel.is_set() or time.monotonic() >= deadline:
                cancelled = cancel.is_set()
                _stop_group(proc, grace)
                return not cancelled, cancelled
            pause(POLL)
    _signal_group(proc.pid, signal.SIGKILL)  # stragglers of a finished helm hold the pipe
    proc.wait()
    return False, False


def _run_once(argv: Sequence[str], env: Mapping[str, str], timeout: float, log: _Log,
              cancel: threading.Event, grace: float) -> _Attempt:
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=dict(env), start_new_session=True)
    except OSError as err:
        message = f"Error: cannot run {argv[0]}: {err.strerror or err}"
        log.write(message + "\n")
        return _Attempt(exit_code=None, lines=(message,))
    assert proc.stdout is not None
    reader = threading.Thread(target=_pump, args=(proc.stdout, log, tail), daemon=True)
    reader.start()
    try:
        timed_out, cancelled = _wait(proc, timeout, cancel, grace)
    except BaseException:  # Ctrl-C in the main thread: helm's own session never sees it
        _stop_group(proc, grace)
        raise
    reader.join(READER_JOIN)  # longer only if a detached grandchild still holds the pipe
    return _Attempt(exit_code=proc.returncode, lines=log.lines(tail), timed_out=timed_out,
                    cancelled=cancelled)


# ---------------------------------------------------------------------------- the runner


def _retryable(attempt: _Attempt) -> bool:
    failed = attempt.exit_code not in (0, None)
    return failed and not (attempt.timed_out or attempt.cancelled) and \
        is_transient(error_excerpt(attempt.lines).splitlines())


def _pause(delay: float, cancel: threading.Event, sleep: Sleep | None) -> bool:
    """Sleep before a retry; True when cancelled meanwhile (the default sleep wakes at once)."""
    if sleep is None:
        return cancel.wait(delay)
    sleep(delay)
    return cancel.is_set()


def _describe(attempt: _Attempt, seconds: float) -> str:
    how = "timed out" if attempt.timed_out else "cancelled" if attempt.cancelled else "exited"
    return f"{how} (exit {attempt.exit_code}) after {seconds:.1f}s"


def run_helm(argv: Sequence[str], *, env: Mapping[str, str], timeout: float,
             log_path: Path | None = None, cancel: threading.Event | None = None,
             retries: int = 2, backoff: float = 2.0, sleep: Sleep | None = None,
             secrets: Sequence[str] = (), grace: float = TERM_GRACE) -> HelmRun:
    """Run helm, retrying transient failures with exponential backoff.

    `timeout` bounds each attempt; on timeout or `cancel` the process group gets SIGTERM,
    then SIGKILL after `grace` seconds. The env passes through `helm_env`.
    """
    cancel = threading.Event() if cancel is None else cancel
    started, env = time.monotonic(), helm_env(env)
    attempt = _Attempt(exit_code=None, lines=())
    count, cancelled = 0, cancel.is_set()
    with _open_log(log_path, secrets) as log:
        while not cancelled:
            count += 1
            log.note(f"attempt {count}: $ {shlex.join(redact_argv(argv, secrets))}")
            clock = time.monotonic()
            attempt = _run_once(argv, env, timeout, log, cancel, grace)
            log.note(_describe(attempt, time.monotonic() - clock))
            cancelled = attempt.cancelled
            if cancelled or count > retries or not _retryable(attempt):
                break
            delay = backoff * 2 ** (count - 1)
            log.note(f"transient error; retrying in {delay:g}s")
            cancelled = _pause(delay, cancel, sleep)
        if cancelled and not attempt.cancelled:
            log.note("cancelled; no further attempt")
    run = HelmRun(exit_code=attempt.exit_code, attempts=count,
                  output="".join(attempt.lines)[-OUTPUT_CHARS:], timed_out=attempt.timed_out,
                  cancelled=cancelled, duration=round(time.monotonic() - started, 3))
    return run if run else replace(run, error=error_excerpt(attempt.lines))
