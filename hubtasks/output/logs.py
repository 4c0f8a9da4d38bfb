"""Log files: one per job, and one combined log of every job's story.

Each job's full helm output goes to its own file (`job_log_path`); every line of the combined
log (`setup_logging`) names its job, so `grep -F '[prod:leap/prod]'` tells one job's story even
when many ran at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from concurrent_log_handler import ConcurrentRotatingFileHandler

from hubtasks.model import HubtasksError, Job

LOGGER_NAME = "hubtasks"
COMBINED_LOG = "hubtasks.log"
HANDLER_NAME = "hubtasks-combined"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
LOG_FOLDER_MODE, LOG_FILE_MODE = 0o700, 0o600  # logs are for this user only
NO_JOB = "-"

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


def private_log_folder(folder: Path) -> None:
    """Create `folder` for this user only (0700); an existing one keeps its mode (`--log-dir
    .` must not lock others out of the current folder): the files in it are 0600 anyway."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=LOG_FOLDER_MODE)


def _new_handler(path: Path) -> logging.Handler:
    private_log_folder(path.parent)
    # Rotates under a lock file, so parallel hubtasks processes can share one log; each file
    # it creates is made 0600 (empty still: nothing is readable before).
    handler = ConcurrentRotatingFileHandler(str(path), maxBytes=MAX_BYTES, backupCount=BACKUPS,
                                            encoding="utf-8", chmod=LOG_FILE_MODE)
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


class JobLog:
    """A job's log file, appended to by every attempt; lines arrive redacted."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._handle: IO[str] | None = None

    def __enter__(self) -> JobLog:
        if self.path is not None:
            private_log_folder(self.path.parent)
            # 0600 from the start, whatever the folder's mode; never through a link
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
                         LOG_FILE_MODE)
            os.fchmod(fd, LOG_FILE_MODE)  # an older log, made with the umask
            self._handle = os.fdopen(fd, "a", encoding="utf-8", errors="replace")
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    def write(self, text: str) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.write(text)
                self._handle.flush()

    def note(self, text: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        self.write(f"# hubtasks {stamp} {text}\n")
