"""The executor over a fake runner: orderings, limits, gating, cancellation, never timings."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

import pytest

from hubtasks.deploying.scheduler import gate_prod, run_canary, run_pipelined, run_prod, run_staged
from hubtasks.deploying.session import install_signal_handlers
from hubtasks.model import INTERRUPTED, HubtasksError, Job, JobResult, Stage, Status
from hubtasks.options import Limits

WAIT = 10.0  # a safety net for broken schedulers, never an assertion


def job(stage: str, cluster: str, hub: str | None = None) -> Job:
    return Job(stage=Stage(stage), cluster=cluster, hub=hub, chart="basehub")


def sup(cluster: str) -> Job:
    return job("support", cluster)


def stg(cluster: str, hub: str = "staging") -> Job:
    return job("staging", cluster, hub)


def prod(cluster: str, hub: str = "prod") -> Job:
    return job("prod", cluster, hub)


def hubs(cluster: str, count: int) -> list[Job]:
    return [prod(cluster, f"hub{i:02}") for i in range(count)]


class FakeRunner:
    """Records starts and ends under a lock; fails, raises or holds chosen jobs."""

    def __init__(self, *, fail: Iterable[str] = (), raises: Iterable[str] = (),
                 hold: float = 0.005) -> None:
        self.fail, self.raises, self.hold = set(fail), set(raises), hold
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []
        self.running: Counter[str] = Counter()
        self.max_cluster: Counter[str] = Counter()
        self.max_global = 0
        self.gates: dict[str, threading.Event] = {}  # job name -> wait for it before ending
        self.hooks: dict[str, Callable[[], object]] = {}  # job name -> call when it starts
        self._started: dict[str, threading.Event] = {}

    def started(self, name: str) -> threading.Event:
        with self.lock:
            return self._started.setdefault(name, threading.Event())

    def __call__(self, job: Job, cancel: threading.Event) -> JobResult:
        self._enter(job)
        try:
            self.hooks.get(job.name, lambda: None)()
            self._wait(job, cancel)
            return self._result(job, cancel)
        finally:
            self._leave(job)

    def _enter(self, job: Job) -> None:
        with self.lock:
            self.events.append(("start", job.name))
            self.running[job.cluster] += 1
            self.max_cluster[job.cluster] = max(self.max_cluster[job.cluster],
                                                self.running[job.cluster])
            self.max_global = max(self.max_global, sum(self.running.values()))
        self.started(job.name).set()

    def _leave(self, job: Job) -> None:
        with self.lock:
            self.running[job.cluster] -= 1
            self.events.append(("end", job.name))

    def _wait(self, job: Job, cancel: threading.Event) -> None:
        gate = self.gates.get(job.name)
        if gate is None:
            cancel.wait(self.hold)
            return
        deadline = time.monotonic() + WAIT
        while not gate.wait(0.01) and not cancel.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{job.name}: gate never opened")

    def _result(self, job: Job, cancel: threading.Event) -> JobResult:
        if job.name in self.raises:
            raise RuntimeError("boom")
        status = (Status.CANCELLED if cancel.is_set() else
                  Status.FAILED if job.name in self.fail else Status.SUCCEEDED)
        return JobResult(stage=job.stage, cluster=job.cluster, hub=job.hub, status=status,
                         attempts=1, started_at="t0", ended_at="t1", duration=0.1,
                         exit_code=1 if status is Status.FAILED else 0,
                         error="Error: UPGRADE FAILED" if status is Status.FAILED else "")

    def starts(self) -> list[str]:
        return [name for kind, name in self.events if kind == "start"]


class Records:
    """An on_result callback that keeps every result it was given."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.results: list[JobResult] = []

    def __call__(self, result: JobResult) -> None:
        with self.lock:
            self.results.append(result)

    def by_name(self) -> dict[str, JobResult]:
        names = [r.name for r in self.results]
        assert len(names) == len(set(names)), f"recorded twice: {names}"
        return {r.name: r for r in self.results}


def statuses(results: Iterable[JobResult]) -> dict[str, Status]:
    return {r.name: r.status for r in results}


def plan_sorted(jobs: Iterable[Job]) -> list[str]:
    return [j.name for j in sorted(jobs, key=Job.sort_key)]


def test_canary_runs_support_then_staging_in_order_one_at_a_time() -> None:
    jobs = [stg("alpha", "s2"), prod("alpha"), stg("beta"), stg("alpha", "s1"), sup("alpha")]
    canary = [j for j in jobs if j.stage is not Stage.PROD]
    runner, records = FakeRunner(), Records()
    results = run_canary(canary, runner, Limits(canary_workers=2), cancel=threading.Event(),
                         on_result=records)
    alpha = [e for e in runner.events if e[1].split(":")[1].startswith("alpha/")]
    assert alpha == [("start", "support:alpha/support"), ("end", "support:alpha/support"),
                     ("start", "staging:alpha/s1"), ("end", "staging:alpha/s1"),
                     ("start", "staging:alpha/s2"), ("end", "staging:alpha/s2")]
    assert [r.name for r in results] == plan_sorted(canary)
    assert all(results) and set(records.by_name()) == set(plan_sorted(canary))


def test_canary_rejects_prod_jobs() -> None:
    with pytest.raises(ValueError, match="not a canary job"):
        run_canary([prod("a")], FakeRunner(), Limits(canary_workers=1), cancel=threading.Event(),
                   on_result=Records())


@pytest.mark.parametrize("failing", ["leap", "leap-staging"])
def test_staging_failure_skips_rest_of_its_canary_and_only_its_prod(failing: str) -> None:
    other = "leap-staging" if failing == "leap" else "leap"
    canary = [sup(failing), stg(failing, "a"), stg(failing, "b"), sup(other), stg(other, "a")]
    prods = [prod(failing), prod(other)]
    runner, records = FakeRunner(fail={f"staging:{failing}/a"}), Records()
    results = run_canary(canary, runner, Limits(canary_workers=2), cancel=threading.Event(),
                         on_result=records)
    assert statuses(results)[f"staging:{failing}/b"] is Status.SKIPPED
    assert records.by_name()[f"staging:{failing}/b"].reason == f"canary staging:{failing}/a failed"
    assert f"staging:{failing}/b" not in runner.starts()
    kept, dropped = gate_prod(prods, canary, results)
    assert kept == [prod(other)]
    assert [(r.name, r.status, r.reason) for r in dropped] == [
        (f"prod:{failing}/prod", Status.SKIPPED, f"canary staging:{failing}/a failed")]


def test_gate_keeps_clusters_without_canary_and_drops_missing_results() -> None:
    canary = [sup("a"), stg("a"), stg("b")]
    ok = JobResult(stage=Stage.SUPPORT, cluster="a", hub=None, status=Status.SUCCEEDED)
    kept, dropped = gate_prod([prod("a"), prod("b"), prod("c")], canary, [ok])
    assert kept == [prod("c")]
    assert [(r.name, r.reason) for r in dropped] == [
        ("prod:a/prod", "canary staging:a/staging has no result"),
        ("prod:b/prod", "canary staging:b/staging has no result")]
    assert all(r.status is Status.SKIPPED and r.attempts == 0 for r in dropped)


def test_gate_uses_the_last_result_of_a_canary_job() -> None:
    first = JobResult(stage=Stage.STAGING, cluster="a", hub="staging", status=Status.FAILED)
    retry = JobResult(stage=Stage.STAGING, cluster="a", hub="staging", status=Status.SUCCEEDED)
    assert gate_prod([prod("a")], [stg("a")], [first, retry]) == ([prod("a")], [])


def test_gate_marks_prod_of_an_interrupted_canary_cancelled() -> None:
    cancelled = JobResult(stage=Stage.STAGING, cluster="a", hub="staging",
                          status=Status.CANCELLED)
    _, dropped = gate_prod([prod("a")], [stg("a")], [cancelled])
    assert [(r.status, r.reason) for r in dropped] == [(Status.CANCELLED, INTERRUPTED)]


def test_per_cluster_limit_reached_and_never_exceeded() -> None:
    runner, barrier = FakeRunner(), threading.Barrier(2, timeout=WAIT)
    first = hubs("big", 6)[:2]
    for j in first:  # both first jobs must run at once or the barrier breaks
        runner.hooks[j.name] = barrier.wait
    results = run_prod(hubs("big", 6), runner, Limits(jobs=8, per_cluster=2),
                       cancel=threading.Event(), on_result=Records())
    assert all(results)
    assert runner.max_cluster["big"] == 2


def test_global_limit_reached_and_never_exceeded_across_clusters() -> None:
    jobs = hubs("a", 4) + hubs("b", 4) + hubs("c", 4) + hubs("d", 1)
    runner, barrier = FakeRunner(), threading.Barrier(3, timeout=WAIT)
    for j in (jobs[0], jobs[4], jobs[8]):  # one per cluster: a, b, c start first (4 waiting)
        runner.hooks[j.name] = barrier.wait
    results = run_prod(jobs, runner, Limits(jobs=3, per_cluster=2), cancel=threading.Event(),
                       on_result=Records())
    assert all(results) and [r.name for r in results] == plan_sorted(jobs)
    assert runner.max_global == 3
    assert max(runner.max_cluster.values()) <= 2


def test_prod_starts_the_cluster_with_most_waiting_jobs_first() -> None:
    jobs = [prod("a", "only"), *hubs("z", 3)]
    runner = FakeRunner()
    run_prod(jobs, runner, Limits(jobs=1, per_cluster=1), cancel=threading.Event(),
             on_result=Records())
    assert runner.starts() == ["prod:z/hub00", "prod:z/hub01", "prod:a/only", "prod:z/hub02"]


def test_pipelined_starts_a_clusters_prod_while_another_canary_runs() -> None:
    jobs = [stg("a"), prod("a"), stg("b"), prod("b")]
    runner, records = FakeRunner(), Records()
    # b's canary can only finish once a's prod started: a barrier across clusters deadlocks.
    runner.gates["staging:b/staging"] = runner.started("prod:a/prod")
    results = run_pipelined(jobs, runner, Limits(jobs=2, per_cluster=1, canary_workers=2),
                            cancel=threading.Event(), on_result=records)
    assert all(results), statuses(results)
    assert runner.events.index(("start", "prod:a/prod")) < runner.events.index(
        ("end", "staging:b/staging"))
    assert set(records.by_name()) == set(plan_sorted(jobs))


def test_pipelined_and_staged_record_the_same_outcomes() -> None:
    jobs = [sup("a"), stg("a"), *hubs("a", 3), stg("b", "x"), stg("b", "y"), *hubs("b", 2),
            *hubs("c", 2), sup("leap"), prod("leap"), sup("leap-staging"), prod("leap-staging")]
    fail = {"staging:b/x", "support:leap/support"}
    outcomes = []
    for run in (run_staged, run_pipelined):
        records = Records()
        results = run(jobs, FakeRunner(fail=fail), Limits(jobs=3, per_cluster=2,
                      canary_workers=2), cancel=threading.Event(), on_result=records)
        assert [r.name for r in results] == plan_sorted(jobs)
        assert sorted(records.results, key=lambda r: r.name) == sorted(results,
                                                                       key=lambda r: r.name)
        outcomes.append({(r.name, r.status, r.reason) for r in results})
    assert outcomes[0] == outcomes[1]
    assert ("prod:leap/prod", Status.SKIPPED, "canary support:leap/support failed") in outcomes[0]
    assert ("prod:leap-staging/prod", Status.SUCCEEDED, "") in outcomes[0]


def test_cancel_during_prod_starts_nothing_new() -> None:
    jobs = hubs("a", 6)
    runner, records, cancel = FakeRunner(), Records(), threading.Event()
    runner.hooks["prod:a/hub00"] = cancel.set
    results = run_prod(jobs, runner, Limits(jobs=2, per_cluster=2), cancel=cancel,
                       on_result=records)
    started = set(runner.starts())
    assert "prod:a/hub00" in started and len(started) <= 2
    assert all(r.status is Status.CANCELLED for r in results)
    never = [r for r in results if r.name not in started]
    assert len(never) >= 4
    assert all(r.reason == INTERRUPTED and r.attempts == 0 for r in never)
    assert set(records.by_name()) == set(plan_sorted(jobs))


@pytest.mark.parametrize("run", [run_staged, run_pipelined], ids=["staged", "pipelined"])
def test_cancel_during_canary_cancels_everything_not_started(
        run: Callable[..., list[JobResult]]) -> None:
    jobs = [sup("a"), stg("a", "s1"), stg("a", "s2"), *hubs("a", 2), stg("b"), prod("b")]
    runner, records, cancel = FakeRunner(), Records(), threading.Event()
    runner.hooks["staging:a/s1"] = cancel.set
    runner.gates["staging:b/staging"] = runner.started("staging:a/s1")  # b still running then
    results = run(jobs, runner, Limits(jobs=4, per_cluster=2, canary_workers=2), cancel=cancel,
                  on_result=records)
    got = statuses(results)
    assert got["support:a/support"] is Status.SUCCEEDED
    assert got["staging:a/s1"] is Status.CANCELLED and got["staging:b/staging"] is Status.CANCELLED
    not_started = {"staging:a/s2", "prod:a/hub00", "prod:a/hub01", "prod:b/prod"}
    assert not_started.isdisjoint(runner.starts())
    assert {r.name: (r.status, r.reason) for r in results if r.name in not_started} == {
        name: (Status.CANCELLED, INTERRUPTED) for name in not_started}
    assert set(records.by_name()) == set(plan_sorted(jobs))


def test_runner_exception_fails_one_job_and_the_pool_goes_on() -> None:
    jobs = [*hubs("a", 3), stg("b"), sup("b")]
    runner, records = FakeRunner(raises={"prod:a/hub01", "support:b/support"}), Records()
    results = run_staged(jobs, runner, Limits(jobs=2, per_cluster=1, canary_workers=1),
                         cancel=threading.Event(), on_result=records)
    got = {r.name: r for r in results}
    assert got["prod:a/hub01"].status is Status.FAILED
    assert got["prod:a/hub01"].error == "RuntimeError: boom"
    assert got["prod:a/hub00"] and got["prod:a/hub02"]
    assert got["staging:b/staging"].reason == "canary support:b/support failed"
    assert set(records.by_name()) == set(plan_sorted(jobs))


def test_on_start_is_called_for_started_jobs_only() -> None:
    jobs = [sup("a"), stg("a"), prod("a")]
    seen: list[str] = []
    run_staged(jobs, FakeRunner(fail={"support:a/support"}), Limits(jobs=1, per_cluster=1,
               canary_workers=1), cancel=threading.Event(), on_result=Records(),
               on_start=lambda j: seen.append(j.name))
    assert seen == ["support:a/support"]


@pytest.mark.parametrize("limits", [(0, 1), (1, 0)], ids=["jobs", "per-cluster"])
def test_limits_below_one_are_user_errors(limits: tuple[int, int]) -> None:
    with pytest.raises(HubtasksError, match="at least 1"):
        run_prod([prod("a")], FakeRunner(), Limits(jobs=limits[0], per_cluster=limits[1]),
                 cancel=threading.Event(), on_result=Records())


def test_signal_sets_cancel_then_aborts_and_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    cancel, notes = threading.Event(), list[str]()
    restore = install_signal_handlers(cancel, notes.append)
    try:
        signal.raise_signal(signal.SIGTERM)
        assert cancel.is_set() and notes and notes[0].startswith("SIGTERM")
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    finally:
        restore()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
