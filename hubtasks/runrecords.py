"""Records that belong to a run: plan identity, start records, runs that died, what counts.

A plan has an identity (`plan_id`, saved in the plan file) and every record carries it, with
the release's input digest. For a plan, a job's record counts when it is of this plan, or when
it proves the same inputs are deployed already (same release and digest, succeeded, real):
"up to date since <time>". Dry-run records never count. A job's start is recorded as
`running` before helm runs; a run holds `<results>.run.lock` while it works, so a `running`
record found by the next run on that file was left by a run that died.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from hubtasks.files import FileLock
from hubtasks.model import HubtasksError, Job, JobResult, Plan, Status, plan_ordered, utc_now
from hubtasks.results import ResultsStore, latest_by_key
from hubtasks.secrets import PRIVATE_PREFIX

DigestOf = Callable[[Job], str | None]


def run_identity() -> str:
    """This process as recorded in start records and lock files: `pid@host`."""
    return f"{os.getpid()}@{socket.gethostname()}"


def start_record(job: Job, *, plan: Plan, dry_run: bool) -> JobResult:
    """The evidence a job started, written before helm runs."""
    return JobResult(stage=job.stage, cluster=job.cluster, hub=job.hub, status=Status.RUNNING,
                     started_at=utc_now(), head=plan.head, plan_id=plan.plan_id,
                     dry_run=dry_run, run=run_identity())


def dead_run_reason(result: JobResult) -> str:
    return f"interrupted: the run that started it died ({result.run or 'unknown run'})"


def settled(result: JobResult) -> JobResult:
    """A `running` record of a dead run as what it is: cancelled, interrupted by that run."""
    return replace(result, status=Status.CANCELLED, ended_at=utc_now(),
                   reason=dead_run_reason(result))


def _pid_alive(run: str | None) -> bool:
    """Whether the process of a `pid@host` run may still live (other hosts: assume it may)."""
    pid, _, host = (run or "").partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return bool(host) and host != socket.gethostname()  # another machine: can't tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def settle_for_report(results: Iterable[JobResult]) -> list[JobResult]:
    """`running` records whose process is gone shown as interrupted by a dead run."""
    return [settled(r) if r.status is Status.RUNNING and not _pid_alive(r.run) else r
            for r in results]


@contextlib.contextmanager
def holding_run(store: ResultsStore) -> Iterator[None]:
    """Hold the results file for one run; refuse clearly while another live run holds it.

    On entry, records a dead run left `running` are settled as interrupted, and private
    temporary folders of dead runs are removed.
    """
    lock = store.path.with_name(store.path.name + ".run.lock")
    holder = _read(lock)
    what = (f"results file {store.path} is in use by another run ({holder or 'unknown'}); "
            "wait for it to end or choose another --results")
    try:
        with FileLock(lock, timeout=0, what=what):
            lock.write_text(f"pid {os.getpid()} on {socket.gethostname()} since {utc_now()}\n")
            left = [settled(r) for r in store.load() if r.status is Status.RUNNING]
            store.record_many(left)
            remove_dead_private_folders()
            yield
    except HubtasksError as err:
        if str(err).startswith(what):
            raise HubtasksError(what) from None
        raise


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def remove_dead_private_folders(folder: Path | None = None) -> list[Path]:
    """Remove this user's `hubtasks-values-<pid>-*` folders whose process is gone."""
    removed = []
    base = Path(folder or tempfile.gettempdir())
    for entry in base.glob(f"{PRIVATE_PREFIX}*"):
        pid = entry.name[len(PRIVATE_PREFIX):].split("-", 1)[0]
        with contextlib.suppress(OSError):
            if (pid.isdigit() and entry.is_dir() and entry.stat().st_uid == os.getuid()
                    and not _pid_alive(f"{pid}@{socket.gethostname()}")):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def plan_records(results: Iterable[JobResult], plan: Plan,
                 digest_of: DigestOf) -> tuple[list[JobResult], list[Job]]:
    """The records that count for `plan`'s jobs, and the planned jobs with none ("no result").

    A record of an earlier plan counts only as proof the same inputs are deployed; it then
    says so in its reason ("up to date since <time>").
    """
    real = latest_by_key(r for r in results if not r.dry_run)
    found: list[JobResult] = []
    missing: list[Job] = []
    for job in plan.jobs:
        record = real.get((job.stage, job.key, False))
        if record is not None and plan.plan_id is not None and record.plan_id == plan.plan_id:
            found.append(record)
        elif record is not None and _proves_deployed(record, job, digest_of):
            since = record.ended_at or record.started_at
            found.append(replace(record, reason=f"up to date since {since}"))
        else:
            missing.append(job)
    return plan_ordered(found), missing


def _proves_deployed(record: JobResult, job: Job, digest_of: DigestOf) -> bool:
    return (record.status is Status.SUCCEEDED and record.digest is not None
            and record.digest == digest_of(job))
