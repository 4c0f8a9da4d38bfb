"""The console during a deploy: one line per job start and end, and a live progress line."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from typing import TextIO

from hubtasks.model import Job, JobResult, Status

DETAIL_WIDTH = 120


def first_line(text: str, width: int = DETAIL_WIDTH) -> str:
    """The first non-blank line of `text`, cut to `width` characters."""
    line = next((s.strip() for s in text.splitlines() if s.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


def detail(result: JobResult) -> str:
    """Why a job did not succeed: its reason or the first line of its error."""
    return first_line(result.reason or result.error)


class ConsoleReporter:
    """One console line per job start and end, plus a progress line on terminals."""

    def __init__(self, total: int, stream: TextIO | None = None, *, tty: bool | None = None):
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.symbols = _symbols(self.stream)
        self.running: set[str] = set()
        self.counts: Counter[Status] = Counter()
        # Reentrant: a signal handler (main thread) may call note() while it holds the lock.
        self._lock = threading.RLock()
        self._gone = False  # the stream failed (a closed pipe, a hung-up terminal)

    def on_start(self, job: Job) -> None:
        """Print `▶ <job>`; the executor calls it from any thread."""
        with self._lock:
            self.running.add(job.name)
            self._line(f"{self.symbols[0]} {job.name}")

    def on_result(self, result: JobResult) -> None:
        """Print the job's outcome; the executor calls it once per job from any thread."""
        with self._lock:
            self.running.discard(result.name)
            self.counts[result.status] += 1
            self._line(self._outcome(result))

    def note(self, message: str) -> None:
        """Print a free-form line (e.g. "interrupted") without garbling the progress line."""
        with self._lock:
            self._line(message)

    def close(self) -> None:
        """Clear the progress line; call once the run is over."""
        with self._lock:
            if self.tty:
                self._write("\r\x1b[K")

    def progress(self) -> str:
        """`3/12 done, 2 running, 1 failed`, with skipped/cancelled counts when non-zero."""
        done = sum(self.counts.values())
        parts = [f"{done}/{self.total} done", f"{len(self.running)} running",
                 f"{self.counts[Status.FAILED]} failed"]
        parts += [f"{self.counts[s]} {s.value}" for s in (Status.SKIPPED, Status.CANCELLED)
                  if self.counts[s]]
        return ", ".join(parts)

    def _outcome(self, result: JobResult) -> str:
        mark = {Status.SUCCEEDED: self.symbols[1], Status.FAILED: self.symbols[2]}.get(
            result.status, "-")
        text = f"{mark} {result.name} {result.status.value}"
        if result.exit_code not in (None, 0):
            text += f" (exit {result.exit_code})"
        if result.started_at is not None or result.duration:
            text += f" in {result.duration:.1f}s"
        return text + (f": {detail(result)}" if not result and detail(result) else "")

    def _line(self, text: str) -> None:
        # On a terminal the progress line is redrawn in place; CI logs get plain lines only.
        self._write(f"\r\x1b[K{text}\n{self.progress()}" if self.tty else text + "\n")

    def _write(self, text: str) -> None:
        """Write and flush; a stream that fails is given up, never the run: the console is a
        view of the run (the results file and the logs keep everything)."""
        if self._gone:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # ValueError: the stream was closed
            self._gone = True


def _symbols(stream: TextIO) -> tuple[str, str, str]:
    """▶ ✔ ✘ when the stream can encode them, else ASCII."""
    try:
        # In-memory streams (StringIO) have no encoding and take any text.
        "▶✔✘".encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return (">", "+", "x")
    return ("▶", "✔", "✘")
