"""Where job output goes: per-job log files, one combined log, the console and a summary.

Each job's full helm output goes to its own file (`job_log_path`); every line of the combined
log (`setup_logging`) names its job, so `grep -F '[prod:leap/prod]'` tells one job's story even
when many ran at once; the console shows one line per start and end (`ConsoleReporter`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TextIO

from concurrent_log_handler import ConcurrentRotatingFileHandler
from tabulate import tabulate

from .model import HubtasksError, Job, JobResult, Status

LOGGER_NAME = "hubtasks"
COMBINED_LOG = "hubtasks.log"
HANDLER_NAME = "hubtasks-combined"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
NO_JOB = "-"
DETAIL_WIDTH = 120

# Set by the executor around each runner call, so lines logged by the runner (and anything it
# calls on the same thread) carry the job name without passing an adapter around.
_current_job: ContextVar[str] = ContextVar("hubtasks_job", default=NO_JOB)


def job_log_path(log_dir: Path, job: Job) -> Path:
    """`<log_dir>/<stage>/<cluster>/<release>.log`, the file for one job's full helm output."""
    for part in (job.cluster, job.release):
        if part in ("", ".", "..") or any(c in part for c in "/\\\0"):
            raise HubtasksError(f"{job.name}: {part!r} cannot be used as a log file name")
    return log_dir / job.stage.value / job.cluster / f"{job.release}.log"


@contextlib.contextmanager
def job_context(job: Job) -> Iterator[None]:
    """Tag every log record made on this thread inside the block with `job`'s name."""
    token = _current_job.set(job.name)
    try:
        yield
    finally:
        _current_job.reset(token)


def job_logger(job: Job) -> logging.LoggerAdapter[logging.Logger]:
    """A logger whose records name `job`, for threads the executor did not tag."""
    return logging.LoggerAdapter(logging.getLogger(LOGGER_NAME), {"job": job.name})


class JobFilter(logging.Filter):
    """Gives every record a `job` attribute: its own, the thread's current job, or `-`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job"):
            record.job = _current_job.get()
        return True


class JobFormatter(logging.Formatter):
    """Prefixes every line, tracebacks included, with `[job]` so grep finds whole records."""

    converter = staticmethod(time.gmtime)  # UTC, like the results' timestamps

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(process)d %(levelname)s %(message)s",
                         datefmt="%Y-%m-%dT%H:%M:%SZ")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"[{getattr(record, 'job', NO_JOB)}] "
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def setup_logging(log_dir: Path, *, verbose: bool = False) -> logging.Logger:
    """The `hubtasks` logger writing to `<log_dir>/hubtasks.log`; safe to call again."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    # The combined log is the place for tracebacks; the console belongs to the reporter.
    logger.propagate = False
    path = (log_dir / COMBINED_LOG).resolve()
    handler = _combined_handler(logger)
    if handler is not None and Path(handler.baseFilename) == path:
        return logger
    close_logging()
    logger.addHandler(_new_handler(path))
    return logger


def _combined_handler(logger: logging.Logger) -> logging.FileHandler | None:
    for handler in logger.handlers:
        if handler.get_name() == HANDLER_NAME and isinstance(handler, logging.FileHandler):
            return handler
    return None


def _new_handler(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Rotates under a lock file, so parallel hubtasks processes can share one log.
    handler = ConcurrentRotatingFileHandler(str(path), maxBytes=MAX_BYTES, backupCount=BACKUPS,
                                            encoding="utf-8")
    handler.set_name(HANDLER_NAME)
    handler.addFilter(JobFilter())
    handler.setFormatter(JobFormatter())
    return handler


def close_logging() -> None:
    """Detach and close the combined log handler that `setup_logging` added, if any."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in [h for h in logger.handlers if h.get_name() == HANDLER_NAME]:
        logger.removeHandler(handler)
        handler.close()


def first_line(text: str, width: int = DETAIL_WIDTH) -> str:
    """The first non-blank line of `text`, cut to `width` characters."""
    line = next((s.strip() for s in text.splitlines() if s.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


def detail(result: JobResult) -> str:
    """Why a job did not succeed: its reason or the first line of its error."""
    return first_line(result.reason or result.error)


def plan_ordered(results: Iterable[JobResult]) -> list[JobResult]:
    """Results sorted like `Job.sort_key`: stage, cluster, hub."""
    return sorted(results, key=lambda r: (r.stage.rank, r.cluster, r.hub or ""))


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
                self.stream.write("\r\x1b[K")
                self.stream.flush()

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
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}\n{self.progress()}")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _symbols(stream: TextIO) -> tuple[str, str, str]:
    """▶ ✔ ✘ when the stream can encode them, else ASCII."""
    try:
        # In-memory streams (StringIO) have no encoding and take any text.
        "▶✔✘".encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return (">", "+", "x")
    return ("▶", "✔", "✘")


def render_summary(results: Iterable[JobResult], *, fmt: str = "simple") -> str:
    """A table of every job in plan order, then a count per status."""
    ordered = plan_ordered(results)
    rows = [[r.stage.value, r.cluster, r.hub or "", r.status.value, r.attempts,
             f"{r.duration:.1f}s" if r.started_at is not None or r.duration else "", detail(r)]
            for r in ordered]
    table = tabulate(rows, headers=["stage", "cluster", "hub", "status", "attempts", "duration",
                                    "reason / error"], tablefmt=fmt)
    counts = Counter(r.status for r in ordered)
    totals = ", ".join(f"{counts[s]} {s.value}" for s in Status if counts[s])
    return f"{table}\n\n{len(ordered)} jobs: {totals or 'none'}\n"


def exit_code(results: Iterable[JobResult]) -> int:
    """0 when every job succeeded (or there were none), else 1."""
    return 0 if all(results) else 1
