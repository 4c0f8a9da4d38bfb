"""Scheduling of planned jobs over an injected runner: canary, gate, prod, or pipelined.

The executor decides only *when* a job runs; the runner does the work (a helm upgrade) and
builds its result. The executor builds results itself only for jobs it never starts: SKIPPED
after a failed prerequisite, CANCELLED ("interrupted") once `cancel` is set, and FAILED when
the runner raised.

Order of work: a cluster's canary jobs run as one chain (support, then staging hubs in plan
order). Prod jobs start when a global slot (`max_jobs`) and a slot of their cluster
(`per_cluster`) are free; among clusters with a free slot the one with the most jobs still
waiting goes first (ties in plan order). A cluster with many hubs needs at least
ceil(hubs / per_cluster) rounds whatever we do, so it is the critical path: starting it first
keeps its slots busy from the start instead of leaving it for last, while small clusters fill
the global slots it cannot use. Canary chains are started longest first for the same reason.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from hubtasks.model import CANARY_STAGES, INTERRUPTED, Job, JobResult, Status, plan_ordered, utc_now
from hubtasks.options import Limits
from hubtasks.output.logs import job_context

Runner = Callable[[Job, threading.Event], JobResult]
OnResult = Callable[[JobResult], None]
OnStart = Callable[[Job], None]


class Schedule(Protocol):
    """A way to run a set of jobs: run_canary, run_prod, run_staged or run_pipelined."""

    def __call__(self, jobs: Iterable[Job], run: Runner, limits: Limits, *,
                 cancel: threading.Event, on_result: OnResult,
                 on_start: OnStart | None = None) -> list[JobResult]: ...


POLL_SECONDS = 0.2  # how often a waiting dispatcher looks at `cancel` (an Event wakes no one)

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # tracebacks go to the combined log or nowhere, never stderr


def not_run(job: Job, status: Status, reason: str) -> JobResult:
    """The record of a job the executor never started."""
    return JobResult(stage=job.stage, cluster=job.cluster, hub=job.hub, status=status,
                     reason=reason)


@contextlib.contextmanager
def _cancel_on_abort(cancel: threading.Event) -> Iterator[None]:
    """On KeyboardInterrupt (a second Ctrl-C) stop the other threads before the pools join."""
    try:
        yield
    except BaseException:
        cancel.set()
        raise


@dataclass(frozen=True)
class _Context:
    """What every scheduler needs to run and record a job."""

    run: Runner
    cancel: threading.Event
    on_result: OnResult
    on_start: OnStart | None

    def record(self, result: JobResult) -> JobResult:
        """Hand `result` to on_result, and return it."""
        self.on_result(result)
        return result

    def attempt(self, job: Job) -> JobResult:
        """Run `job` unless cancelled, and record its result either way."""
        if self.cancel.is_set():
            return self.record(not_run(job, Status.CANCELLED, INTERRUPTED))
        if self.on_start is not None:
            self.on_start(job)
        with job_context(job):
            log.info("started")
            result = _call(self.run, job, self.cancel)
            log.info("%s in %.1fs", result.status.value, result.duration)
        return self.record(result)


def _call(run: Runner, job: Job, cancel: threading.Event) -> JobResult:
    """The runner's result; an exception becomes a FAILED result so the pool lives on."""
    started, start = utc_now(), time.monotonic()
    try:
        return run(job, cancel)
    except Exception as err:  # a broken runner must fail one job, not the whole deploy
        log.exception("runner raised")
        return JobResult(stage=job.stage, cluster=job.cluster, hub=job.hub,
                         status=Status.FAILED, attempts=1, started_at=started, ended_at=utc_now(),
                         duration=time.monotonic() - start,
                         error=f"{type(err).__name__}: {err}")


# ---- canary ---------------------------------------------------------------------------------

def _chains(jobs: Iterable[Job]) -> dict[str, list[Job]]:
    """Canary jobs by cluster, each in plan order (support first), longest chain first."""
    chains: dict[str, list[Job]] = {}
    for job in plan_ordered(jobs):
        if job.stage not in CANARY_STAGES:
            raise ValueError(f"{job.name} is not a canary job")
        chains.setdefault(job.cluster, []).append(job)
    return dict(sorted(chains.items(), key=lambda item: (-len(item[1]), item[0])))


def _run_chain(ctx: _Context, chain: Sequence[Job]) -> list[JobResult]:
    """Run one cluster's canary in order; once a job fails the rest are skipped."""
    results: list[JobResult] = []
    blocker: JobResult | None = None
    for job in chain:
        if blocker is not None and not ctx.cancel.is_set():
            reason = f"canary {blocker.name} {blocker.status.value}"
            result = ctx.record(not_run(job, Status.SKIPPED, reason))
        else:
            result = ctx.attempt(job)
        if blocker is None and not result:
            blocker = result
        results.append(result)
    return results


def run_canary(jobs: Iterable[Job], run: Runner, limits: Limits, *, cancel: threading.Event,
               on_result: OnResult, on_start: OnStart | None = None) -> list[JobResult]:
    """Run each cluster's canary chain, clusters in parallel; results in plan order."""
    ctx = _Context(run, cancel, on_result, on_start)
    chains = _chains(jobs)
    # Cancel before the pool joins its threads, so a hard abort does not wait for all chains.
    with ThreadPoolExecutor(limits.canary_workers, "canary") as pool, _cancel_on_abort(cancel):
        futures = [pool.submit(_run_chain, ctx, chain) for chain in chains.values()]
        return plan_ordered(r for f in futures for r in f.result())


# ---- gate -----------------------------------------------------------------------------------

def gate_prod(prod_jobs: Iterable[Job], canary_jobs: Iterable[Job],
              canary_results: Iterable[JobResult]) -> tuple[list[Job], list[JobResult]]:
    """Split prod jobs into those whose cluster's planned canary all succeeded, and the rest.

    Clusters are matched by exact name. When a canary job has several results, the last wins.
    Dropped jobs come back as not-run results the caller must record: CANCELLED
    ("interrupted") when the canary was only interrupted, else SKIPPED naming the canary jobs
    that failed or have no result.
    """
    latest = {(r.stage, r.key): r for r in canary_results}
    problems: dict[str, list[tuple[Job, JobResult | None]]] = {}
    for job in canary_jobs:
        result = latest.get((job.stage, job.key))
        if not result:
            problems.setdefault(job.cluster, []).append((job, result))
    kept: list[Job] = []
    dropped: list[JobResult] = []
    for job in plan_ordered(prod_jobs):
        if job.cluster in problems:
            dropped.append(not_run(job, *_gate_verdict(problems[job.cluster])))
        else:
            kept.append(job)
    return kept, dropped


def _gate_verdict(problems: list[tuple[Job, JobResult | None]]) -> tuple[Status, str]:
    # Skipped canary jobs only echo an earlier failure, so name the failure itself.
    causes = [(j, r) for j, r in problems if r is None or r.status is not Status.SKIPPED]
    causes = causes or problems
    if all(r is not None and r.status is Status.CANCELLED for _, r in causes):
        return Status.CANCELLED, INTERRUPTED
    words = [f"canary {j.name} " + ("has no result" if r is None else r.status.value)
             for j, r in causes]
    return Status.SKIPPED, "; ".join(words)


# ---- prod -----------------------------------------------------------------------------------

class _Dispatcher:
    """Starts prod jobs only when a global and a per-cluster slot are both free.

    Worker threads never wait for a slot: the dispatching thread submits a job only once it
    can run, so no pool thread sits idle behind a busy cluster. `producers` counts canary
    chains that may still add jobs (pipelined mode).
    """

    def __init__(self, ctx: _Context, limits: Limits, *, producers: int = 0):
        self.ctx, self.max_jobs, self.per_cluster = ctx, limits.jobs, limits.per_cluster
        self._cond = threading.Condition()
        self._pending: dict[str, deque[Job]] = {}
        self._running: Counter[str] = Counter()
        self._active = 0
        self._producers = producers
        self._futures: list[Future[JobResult]] = []
        self._cancelled: list[JobResult] = []

    def add(self, jobs: Iterable[Job]) -> None:
        """Queue jobs; callable from any thread."""
        with self._cond:
            for job in plan_ordered(jobs):
                self._pending.setdefault(job.cluster, deque()).append(job)
            self._cond.notify()

    def producer_done(self) -> None:
        """One canary chain has added all the jobs it ever will."""
        with self._cond:
            self._producers -= 1
            self._cond.notify()

    def run(self) -> list[JobResult]:
        """Dispatch until nothing is queued, running or still to come; results in plan order."""
        with ThreadPoolExecutor(self.max_jobs, "prod") as pool, _cancel_on_abort(self.ctx.cancel):
            while self._step(pool):
                pass
        return plan_ordered([f.result() for f in self._futures] + self._cancelled)

    def _step(self, pool: ThreadPoolExecutor) -> bool:
        """Start what can start, or drop everything queued once cancelled; False when done."""
        with self._cond:
            cancelled = self.ctx.cancel.is_set()
            dropped = self._drain() if cancelled else []
            if not cancelled:
                self._submit(pool)
            more = bool(self._pending or self._active or self._producers)
            if more and not dropped:
                self._cond.wait(POLL_SECONDS)
        # Recorded outside the lock: on_result may be slow (a file write under a file lock).
        self._cancelled += [self.ctx.record(not_run(job, Status.CANCELLED, INTERRUPTED))
                            for job in dropped]
        return more

    def _submit(self, pool: ThreadPoolExecutor) -> None:
        while self._active < self.max_jobs and (job := self._pick()) is not None:
            self._running[job.cluster] += 1
            self._active += 1
            self._futures.append(pool.submit(self._work, job))

    def _pick(self) -> Job | None:
        """The next job of the free cluster with the most jobs waiting (ties: plan order)."""
        free = [c for c in self._pending if self._running[c] < self.per_cluster]
        if not free:
            return None
        cluster = min(free, key=lambda c: (-len(self._pending[c]), c))
        job = self._pending[cluster].popleft()
        if not self._pending[cluster]:
            del self._pending[cluster]
        return job

    def _drain(self) -> list[Job]:
        jobs = [job for queue in self._pending.values() for job in queue]
        self._pending.clear()
        return jobs

    def _work(self, job: Job) -> JobResult:
        try:
            return self.ctx.attempt(job)
        finally:
            with self._cond:
                self._running[job.cluster] -= 1
                self._active -= 1
                self._cond.notify()


def run_prod(jobs: Iterable[Job], run: Runner, limits: Limits, *, cancel: threading.Event,
             on_result: OnResult, on_start: OnStart | None = None) -> list[JobResult]:
    """Run jobs at most `limits.jobs` at once and `limits.per_cluster` per cluster."""
    dispatcher = _Dispatcher(_Context(run, cancel, on_result, on_start), limits)
    dispatcher.add(jobs)
    return dispatcher.run()


# ---- whole deploys --------------------------------------------------------------------------

def _split(plan_jobs: Iterable[Job]) -> tuple[list[Job], list[Job]]:
    jobs = plan_ordered(plan_jobs)
    return ([j for j in jobs if j.stage in CANARY_STAGES],
            [j for j in jobs if j.stage not in CANARY_STAGES])


def run_staged(jobs: Iterable[Job], run: Runner, limits: Limits, *,
               cancel: threading.Event, on_result: OnResult,
               on_start: OnStart | None = None) -> list[JobResult]:
    """Canary on every cluster, then gate, then prod; every job recorded, plan order."""
    canary, prod = _split(jobs)
    canary_results = run_canary(canary, run, limits, cancel=cancel, on_result=on_result,
                                on_start=on_start)
    kept, dropped = gate_prod(prod, canary, canary_results)
    for result in dropped:
        on_result(result)
    prod_results = run_prod(kept, run, limits, cancel=cancel, on_result=on_result,
                            on_start=on_start)
    return plan_ordered(canary_results + dropped + prod_results)


def _chain_then_prod(ctx: _Context, dispatcher: _Dispatcher, chain: Sequence[Job],
                     prod: Sequence[Job]) -> list[JobResult]:
    """One cluster's canary, then hand its gated prod jobs to the dispatcher."""
    try:
        results = _run_chain(ctx, chain)
        kept, dropped = gate_prod(prod, chain, results)
        dispatcher.add(kept)
        return results + [ctx.record(r) for r in dropped]
    finally:
        dispatcher.producer_done()


def run_pipelined(jobs: Iterable[Job], run: Runner, limits: Limits, *,
                  cancel: threading.Event, on_result: OnResult,
                  on_start: OnStart | None = None) -> list[JobResult]:
    """Like run_staged, but a cluster's prod starts as soon as its own canary succeeded."""
    ctx = _Context(run, cancel, on_result, on_start)
    canary, prod = _split(jobs)
    chains = _chains(canary)
    dispatcher = _Dispatcher(ctx, limits, producers=len(chains))
    dispatcher.add(j for j in prod if j.cluster not in chains)
    with ThreadPoolExecutor(limits.canary_workers, "canary") as pool, _cancel_on_abort(cancel):
        futures = [pool.submit(_chain_then_prod, ctx, dispatcher, chain,
                               [j for j in prod if j.cluster == cluster])
                   for cluster, chain in chains.items()]
        prod_results = dispatcher.run()
        return plan_ordered([r for f in futures for r in f.result()] + prod_results)
