"""Log paths, the combined log, the console reporter and the summary table."""

from __future__ import annotations

import io
import logging
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubtasks.model import HubtasksError, Job, JobResult, Stage, Status
from hubtasks.output.console import ConsoleReporter
from hubtasks.output.logs import (
    COMBINED_LOG,
    LOGGER_NAME,
    JobLog,
    close_logging,
    job_context,
    job_log_path,
    setup_logging,
)
from hubtasks.output.tables import exit_code, render_summary


def job(stage: str, cluster: str, hub: str | None = None) -> Job:
    return Job(stage=Stage(stage), cluster=cluster, hub=hub, chart="basehub")


def result(stage: str, cluster: str, hub: str | None, status: Status, **extra: object
           ) -> JobResult:
    return JobResult(stage=Stage(stage), cluster=cluster, hub=hub, status=status,
                     **extra)  # type: ignore[arg-type]


@pytest.fixture
def combined(tmp_path: Path) -> Iterator[Path]:
    """The combined log in a fresh directory, closed after the test."""
    yield tmp_path / "logs"
    close_logging()


@pytest.mark.parametrize(("stage", "hub", "expected"), [
    ("support", None, "support/leap/support.log"),
    ("staging", "staging", "staging/leap/staging.log"),
    ("prod", "prod", "prod/leap/prod.log"),
], ids=["support", "staging", "prod"])
def test_job_log_path(stage: str, hub: str | None, expected: str) -> None:
    assert job_log_path(Path("/logs"), job(stage, "leap", hub)) == Path("/logs") / expected


@pytest.mark.parametrize("hub", ["../x", "a/b", ".."])
def test_job_log_path_rejects_names_that_leave_the_log_dir(hub: str) -> None:
    with pytest.raises(HubtasksError, match="log file name"):
        job_log_path(Path("/logs"), job("prod", "leap", hub))


def test_setup_logging_is_idempotent(combined: Path, tmp_path: Path) -> None:
    logger = setup_logging(combined, verbose=False)
    assert setup_logging(combined, verbose=False) is logger
    ours = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]  # not caplog's
    assert len(ours) == 1
    setup_logging(tmp_path / "elsewhere", verbose=True)
    ours = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
    assert len(ours) == 1 and logger.level == logging.DEBUG
    assert Path(ours[0].baseFilename).parent == tmp_path / "elsewhere"


def test_combined_log_prefixes_every_line_with_its_job(combined: Path) -> None:
    logger = setup_logging(combined, verbose=False)
    jobs = [job("prod", f"c{i}", "prod") for i in range(6)]

    def work(j: Job) -> None:
        with job_context(j):
            for n in range(20):
                logging.getLogger(f"{LOGGER_NAME}.helm").info("line %d of %s", n, j.name)

    threads = [threading.Thread(target=work, args=(j,)) for j in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    logger.warning("from an adapter", extra={"job": jobs[0].name})
    logger.debug("hidden unless verbose")
    lines = (combined / COMBINED_LOG).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6 * 20 + 1
    for line in lines:
        name = re.match(r"\[(\S+)\] ", line)
        assert (name is not None and line.endswith(name.group(1))) or "adapter" in line
    assert lines[-1].startswith("[prod:c0/prod] ") and "WARNING" in lines[-1]


def test_tracebacks_are_prefixed_too(combined: Path) -> None:
    logger = setup_logging(combined, verbose=True)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        with job_context(job("staging", "a", "staging")):
            logger.exception("runner raised")
    logger.info("outside any job")
    lines = (combined / COMBINED_LOG).read_text(encoding="utf-8").splitlines()
    assert len(lines) > 3
    assert all(line.startswith("[staging:a/staging] ") for line in lines[:-1])
    assert lines[-2].endswith("RuntimeError: boom")
    assert lines[-1].startswith("[-] ")


def test_reporter_writes_plain_lines_when_not_a_tty() -> None:
    stream = io.StringIO()
    reporter = ConsoleReporter(3, stream, tty=False)
    reporter.on_start(job("staging", "alpha", "staging"))
    reporter.on_result(result("staging", "alpha", "staging", Status.SUCCEEDED,
                              started_at="t", duration=12.34))
    reporter.on_result(result("prod", "alpha", "x", Status.FAILED, started_at="t",
                              duration=30.0, exit_code=1, error="\nError: UPGRADE FAILED\nmore"))
    reporter.on_result(result("prod", "beta", "y", Status.SKIPPED,
                              reason="canary staging:beta/staging failed"))
    reporter.close()
    assert stream.getvalue().splitlines() == [
        "▶ staging:alpha/staging",
        "✔ staging:alpha/staging succeeded in 12.3s",
        "✘ prod:alpha/x failed (exit 1) in 30.0s: Error: UPGRADE FAILED",
        "- prod:beta/y skipped: canary staging:beta/staging failed",
    ]
    assert "\x1b" not in stream.getvalue() and "\r" not in stream.getvalue()


def test_reporter_redraws_a_progress_line_on_a_tty() -> None:
    stream = io.StringIO()
    reporter = ConsoleReporter(12, stream, tty=True)
    reporter.on_start(job("prod", "a", "x"))
    reporter.on_start(job("prod", "a", "y"))
    reporter.on_result(result("prod", "a", "x", Status.FAILED, started_at="t"))
    assert stream.getvalue().endswith("\r\x1b[K✘ prod:a/x failed in 0.0s\n"
                                      "1/12 done, 1 running, 1 failed")
    reporter.close()
    assert stream.getvalue().endswith("\r\x1b[K")


class GoneStream(io.StringIO):
    """A console whose reader went away after `lines` writes (a closed pipe)."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.lines = lines

    def write(self, text: str) -> int:
        if self.lines == 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.lines -= 1
        return super().write(text)


def test_a_console_that_went_away_never_stops_the_run() -> None:
    stream = GoneStream(lines=1)
    reporter = ConsoleReporter(2, stream, tty=False)
    reporter.on_start(job("prod", "a", "x"))
    reporter.on_start(job("prod", "a", "y"))  # the pipe breaks here: no exception
    reporter.on_result(result("prod", "a", "x", Status.SUCCEEDED, started_at="t"))
    reporter.note("interrupted")
    reporter.close()
    assert stream.getvalue() == "▶ prod:a/x\n"
    assert reporter.progress() == "1/2 done, 1 running, 0 failed"  # it still counts


def test_reporter_falls_back_to_ascii() -> None:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    reporter = ConsoleReporter(1, stream, tty=False)
    reporter.on_start(job("prod", "a", "x"))
    stream.seek(0)
    assert stream.read() == "> prod:a/x\n"


def test_reporter_lines_stay_whole_across_threads() -> None:
    stream = io.StringIO()
    reporter = ConsoleReporter(400, stream, tty=False)

    def work(cluster: str) -> None:
        for n in range(50):
            reporter.on_start(job("prod", cluster, f"h{n}"))
            reporter.on_result(result("prod", cluster, f"h{n}", Status.SUCCEEDED,
                                      started_at="t", duration=1.0))

    threads = [threading.Thread(target=work, args=(f"c{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 800
    assert all(re.fullmatch(r"(▶ prod:c\d/h\d+|✔ prod:c\d/h\d+ succeeded in 1\.0s)", line)
               for line in lines)
    assert reporter.progress() == "400/400 done, 0 running, 0 failed"


def test_summary_lists_every_job_in_plan_order() -> None:
    results = [
        result("prod", "b", "prod", Status.SKIPPED, reason="canary staging:b/staging failed"),
        result("staging", "b", "staging", Status.FAILED, attempts=3, started_at="t",
               duration=30.0, error="Error: UPGRADE FAILED\ndetails"),
        result("support", "a", None, Status.SUCCEEDED, attempts=1, started_at="t",
               duration=2.5),
    ]
    lines = render_summary(results).splitlines()
    assert lines[0].split() == ["stage", "cluster", "hub", "status", "attempts", "duration",
                                "reason", "/", "error"]
    assert lines[2].split() == ["support", "a", "succeeded", "1", "2.5s"]
    assert lines[3].split() == ["staging", "b", "staging", "failed", "3", "30.0s", "Error:",
                                "UPGRADE", "FAILED"]
    assert lines[4].split()[:5] == ["prod", "b", "prod", "skipped", "0"]
    assert lines[4].endswith("canary staging:b/staging failed")
    assert lines[-1] == "3 jobs: 1 succeeded, 1 failed, 1 skipped"


@pytest.mark.parametrize(("statuses", "code"), [
    ((), 0),
    ((Status.SUCCEEDED, Status.SUCCEEDED), 0),
    ((Status.SUCCEEDED, Status.FAILED), 1),
    ((Status.SKIPPED,), 1),
    ((Status.CANCELLED,), 1),
], ids=["empty", "all-ok", "failed", "skipped", "cancelled"])
def test_exit_code(statuses: tuple[Status, ...], code: int) -> None:
    assert exit_code(result("prod", "a", f"h{i}", s) for i, s in enumerate(statuses)) == code


@pytest.mark.parametrize("document", [
    "---\n# Source: c/templates/s.yaml\napiVersion: v1\nkind: Secret # a comment\n"
    "metadata:\n  name: s\ndata:\n  token: c2VjcmV0LXRva2Vu\n",
    '{"apiVersion": "v1", "kind": "Secret", "data": {"token": "c2VjcmV0LXRva2Vu"}}\n',
    "---\napiVersion: v1\nkind: List\nitems:\n- kind: ConfigMap\n  data: {a: b}\n"
    "- apiVersion: v1\n  kind: Secret\n  stringData:\n    token: c2VjcmV0LXRva2Vu\n",
    "---\nstringData:\n  token: c2VjcmV0LXRva2Vu\nkind: 'Secret'\n",
    "---\nkind: Secret\ndata: {token: c2VjcmV0LXRva2Vu\n",  # not YAML: not logged at all
], ids=["comment", "json", "list", "keys-first", "unreadable"])
def test_dry_run_logs_never_hold_a_secrets_data(document: str) -> None:
    from hubtasks.output.scrub import scrub_secret_data

    out = "".join(scrub_secret_data(document.splitlines(keepends=True)))
    assert "c2VjcmV0LXRva2Vu" not in out
    assert out.startswith("---") == document.startswith("---")


def test_a_document_that_only_mentions_a_secret_is_logged_as_it_is() -> None:
    from hubtasks.output.scrub import scrub_secret_data

    lines = "---\nkind: ConfigMap\ndata:\n  note: names the Secret s  # kept\n".splitlines(
        keepends=True)
    assert scrub_secret_data(lines) == lines


def test_logs_are_private_and_a_given_folder_keeps_its_mode(tmp_path: Path) -> None:
    """`--log-dir .` must not chmod the current folder; the log files are 0600 anyway."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with JobLog(shared / "job.log") as log:
        log.write("line\n")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert stat.S_IMODE((shared / "job.log").stat().st_mode) == 0o600
    setup_logging(shared)
    try:
        logging.getLogger(LOGGER_NAME).warning("hello")
    finally:
        close_logging()
    assert stat.S_IMODE((shared / COMBINED_LOG).stat().st_mode) == 0o600
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    with JobLog(tmp_path / "new" / "job.log"):
        pass
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
