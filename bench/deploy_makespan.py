"""How close a deploy gets to its best possible wall time, staged vs pipelined.

Writes a synthetic config repo (2i2c's layout, provider `local`, one ConfigMap chart) and
deploys every release through the real job machinery, `hubtasks.deploying.session.run_jobs`:
scheduler, HelmRunner (argv, digest, per-job log), one subprocess per job via run_helm, ResultsStore
(one fsync'd write per job) and the console reporter (to a buffer). helm is a tiny `sh` stand-in
that sleeps for the `sleep:` value of the job's last values file, so the spawn is included;
each hub's health check (one try) goes to a loopback front door that answers 200 after a
known delay (0.02-0.08 s per hub). Default: 30 clusters x 6 hubs (+ support) = 210 jobs;
support 0.3 s, staging 0.2 s, prod 0.1-0.4 s (deterministic per job). The repo, the stand-in
and the front door live in bench/_makespan_repo.py.

Printed per mode, all measured in this one run:
- ideal: a zero-overhead simulation of the executor's own policy (chains longest first on
  canary workers; prod by most-waiting cluster under --jobs and --per-cluster), same sleeps;
- lower bound (LB) for ANY schedule under the limits, the max of three sound bounds:
  1. per cluster: its canary chain (a sequence) + its prod on at most per_cluster slots
     (>= max(longest prod job, prod work / per_cluster));
  2. prod of a cluster cannot start before its chain's length r_c, and all prod shares --jobs
     slots: for every r, r + (prod work of clusters with r_c >= r) / jobs;
  3. all canary work shares --canary-workers threads, so the last chain ends no earlier than
     canary work / canary_workers, and its cluster then still needs its prod bound (min);
- overhead/job = (measured - ideal) / jobs, the wall time the machinery adds per job once
  amortised over the parallel slots; job ovh = mean(job duration - its sleep), the
  latency each job pays (spawn, argv, digest, log); plus a measured sequential run (one job at
  a time, where every ms of overhead is wall time) and the cost of one results-store write;
- health checks apart from helm: each job's check duration (from the records
  `hubtasks.deploying.health` logs), against the front door's delay, and helm's share (the
  job's duration minus its check); a job's work for LB and ideal is its sleep + its delay.
Then real helm 4 on 2 local clusters (hubtasks.localk8s) x 3 hubs + support, staged vs
pipelined, after an untimed first install, then with vs without Leases (bench/lease_cost.py).
Nothing asserts timings.

usage: python bench/deploy_makespan.py [--clusters 30 --hubs 6 --jobs 8 --per-cluster 2]
       [--canary-workers 8] [--repeat 2] [--seq-clusters 4] [--no-health] [--no-real]
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import io
import statistics
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import lease_cost
from _makespan_repo import (
    KUBECONFIG_DIR,
    DelayedFrontDoor,
    HealthTimes,
    health_delays,
    plan_everything,
    sleeps,
    write_fake_helm,
    write_repo,
)

from hubtasks.config.load import load_config
from hubtasks.config.model import RepoConfig
from hubtasks.deploying.scheduler import Schedule, run_pipelined, run_staged
from hubtasks.deploying.session import run_jobs
from hubtasks.model import HubtasksError, Job, JobKey, JobResult, Plan, Stage
from hubtasks.options import DeployOptions, Limits, RunOptions, environment
from hubtasks.results import ResultsStore

SCHEDULES: dict[str, Schedule] = {"staged": run_staged, "pipelined": run_pipelined}

MODES = ("staged", "pipelined")
CANARY = frozenset({Stage.SUPPORT, Stage.STAGING})
REAL_CLUSTERS = ("bench-a", "bench-b")
REAL_HUBS = 3
Seconds = Mapping[JobKey, float]


@dataclass(frozen=True, kw_only=True)
class Run:
    """One measured deploy."""

    mode: str
    wall: float
    results: tuple[JobResult, ...]
    health: Mapping[str, float] = field(default_factory=dict)  # job name -> check seconds


# ---- running ------------------------------------------------------------------------------

def run_mode(config: RepoConfig, plan: Plan, jobs: Sequence[Job], *, mode: str, limits: Limits,
             helm: Path, workdir: Path, lock: bool = False) -> Run:
    """One deploy through `run_jobs`, own results and logs, console buffered; `lock`: Leases."""
    folder = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=workdir))
    deploy = DeployOptions(timeout=120, retries=0, log_dir=folder / "logs", lock=lock,
                           work_dir=folder / "work", env=environment())
    options = RunOptions(repo=config.root, plan=folder / "plan.json",
                         results=folder / "results.json", deploy=deploy, limits=limits,
                         helm=helm)
    with contextlib.redirect_stderr(io.StringIO()), HealthTimes() as health:
        start = time.perf_counter()
        results = run_jobs(config, plan, jobs, options, SCHEDULES[mode])
        wall = time.perf_counter() - start
    failed = [r for r in results if not r]
    if failed or len(results) != len(jobs):
        raise HubtasksError(f"{mode}: {len(failed)} of {len(results)} jobs failed, e.g. "
                            f"{failed[0].name}: {failed[0].error}" if failed else
                            f"{mode}: {len(results)} results for {len(jobs)} jobs")
    return Run(mode=mode, wall=wall, results=tuple(results), health=dict(health.seconds))


def run_modes(config: RepoConfig, plan: Plan, jobs: Sequence[Job], *, limits: Limits,
              helm: Path, workdir: Path, repeat: int) -> dict[str, list[Run]]:
    """Each mode `repeat` times, interleaved so a noisy neighbour hits both alike."""
    runs: dict[str, list[Run]] = {mode: [] for mode in MODES}
    for _ in range(repeat):
        for mode in MODES:
            runs[mode].append(run_mode(config, plan, jobs, mode=mode, limits=limits,
                                       helm=helm, workdir=workdir))
    return runs


def work_of(config: RepoConfig, jobs: Iterable[Job]) -> dict[JobKey, float]:
    """Each job's known work: its helm sleep, plus its front-door delay when checks are on."""
    jobs = list(jobs)
    delays = health_delays(jobs) if config.settings.health_check else {}
    return {key: sleep + delays.get(key, 0.0) for key, sleep in sleeps(jobs).items()}


def median_run(runs: Sequence[Run]) -> Run:
    """The run of median wall time (the lower one for an even count)."""
    ordered = sorted(runs, key=lambda r: r.wall)
    return ordered[(len(ordered) - 1) // 2]


# ---- ideal schedule and lower bound -------------------------------------------------------

def chains(jobs: Iterable[Job]) -> dict[str, list[Job]]:
    """Canary chains per cluster in plan order, longest first (as the executor orders them)."""
    found: dict[str, list[Job]] = {}
    for job in sorted(jobs, key=Job.sort_key):
        if job.stage in CANARY:
            found.setdefault(job.cluster, []).append(job)
    return dict(sorted(found.items(), key=lambda item: (-len(item[1]), item[0])))


def chain_ends(jobs: Iterable[Job], seconds: Seconds, workers: int) -> dict[str, float]:
    """When each cluster's canary ends when chains are list-scheduled on `workers` threads."""
    free = [0.0] * workers
    ends: dict[str, float] = {}
    for cluster, chain in chains(jobs).items():
        start = heapq.heappop(free)
        ends[cluster] = start + sum(seconds[j.key] for j in chain)
        heapq.heappush(free, ends[cluster])
    return ends


def ideal(jobs: Sequence[Job], seconds: Seconds, limits: Limits, *, pipelined: bool) -> float:
    """Makespan of the executor's policy with zero overhead (a discrete-event simulation)."""
    ends = chain_ends(jobs, seconds, limits.canary_workers)
    barrier = max(ends.values(), default=0.0)
    prod = [j for j in sorted(jobs, key=Job.sort_key) if j.stage not in CANARY]
    release = {j.cluster: (ends.get(j.cluster, 0.0) if pipelined else barrier) for j in prod}
    return max(barrier, simulate_prod(prod, seconds, release, limits))


def simulate_prod(prod: Sequence[Job], seconds: Seconds, release: Mapping[str, float],
                  limits: Limits) -> float:
    """Prod dispatch: most-waiting free cluster first, under both slot limits."""
    pending: dict[str, deque[Job]] = {}
    for job in prod:
        pending.setdefault(job.cluster, deque()).append(job)
    running: list[tuple[float, str]] = []
    busy: Counter[str] = Counter()
    now = end = 0.0
    while pending or running:
        ready = [c for c in pending if release[c] <= now and busy[c] < limits.per_cluster]
        while ready and len(running) < limits.jobs:
            cluster = min(ready, key=lambda c: (-len(pending[c]), c))
            job = pending[cluster].popleft()
            heapq.heappush(running, (now + seconds[job.key], cluster))
            busy[cluster] += 1
            if not pending[cluster]:
                del pending[cluster]
            ready = [c for c in pending if release[c] <= now and busy[c] < limits.per_cluster]
        later = [release[c] for c in pending if release[c] > now]
        now = min([*later, *(t for t, _ in running[:1])])
        while running and running[0][0] <= now:
            end, cluster = heapq.heappop(running)
            busy[cluster] -= 1
    return end


def prod_bound(times: Sequence[float], slots: int) -> float:
    """No schedule of `times` on `slots` slots beats its longest job or its work / slots."""
    return max([*times, sum(times) / slots], default=0.0)


def lower_bound(jobs: Sequence[Job], seconds: Seconds, limits: Limits) -> float:
    """The max of the three sound bounds of the module docstring."""
    chain: dict[str, float] = {}
    prod: dict[str, list[float]] = {}
    for job in jobs:
        chain.setdefault(job.cluster, 0.0)
        prod.setdefault(job.cluster, [])
        if job.stage in CANARY:
            chain[job.cluster] += seconds[job.key]
        else:
            prod[job.cluster].append(seconds[job.key])
    after = {c: prod_bound(times, limits.per_cluster) for c, times in prod.items()}
    per_cluster = max(chain[c] + after[c] for c in chain)
    shared = max(r + sum(sum(prod[c]) for c in chain if chain[c] >= r) / limits.jobs
                 for r in set(chain.values()))
    canary = sum(chain.values()) / limits.canary_workers + min(after.values())
    return max(per_cluster, shared, canary)


# ---- measures of a run ----------------------------------------------------------------------

def peak_concurrency(results: Iterable[JobResult]) -> int:
    """Most jobs running at once, from the recorded start and end times."""
    events = sorted((datetime.fromisoformat(t), step) for r in results
                    for t, step in ((r.started_at, 1), (r.ended_at, -1)) if t)
    peak = level = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def runner_overhead(results: Iterable[JobResult], seconds: Seconds) -> float:
    """Mean job duration beyond its sleep, in seconds."""
    return statistics.mean(r.duration - seconds[r.key] for r in results)


def measured_seconds(results: Iterable[JobResult]) -> dict[JobKey, float]:
    """Each job's own recorded duration: the work of a real helm run."""
    return {r.key: r.duration for r in results}


def store_write_ms(results: Sequence[JobResult], workdir: Path) -> float:
    """Mean ms of one ResultsStore.record into a file filling up to len(results) records."""
    store = ResultsStore(Path(tempfile.mkdtemp(prefix="store-", dir=workdir)) / "r.json")
    start = time.perf_counter()
    for result in results:
        store.record(result)
    return 1000 * (time.perf_counter() - start) / len(results)


# ---- report ---------------------------------------------------------------------------------

def print_modes(runs: Mapping[str, Sequence[Run]], jobs: Sequence[Job], limits: Limits, *,
                sleep: Seconds | None) -> dict[str, float]:
    """One row per mode (its median run); returns each mode's median wall time.

    With `sleep` (the stand-in) a job's work is its sleep and the rest of its duration is
    runner overhead; without (real helm) a job's work is its whole recorded duration.
    """
    print(f"{'mode':<10} {'LB':>6} {'ideal':>7} {'measured':>9} {'runs':>11} {'/LB':>6} "
          f"{'/ideal':>7} {'ovh/job':>8} {'job ovh' if sleep else 'work/job':>9} {'peak':>5}")
    walls = {}
    for mode, mode_runs in runs.items():
        run = median_run(mode_runs)
        work = sleep or measured_seconds(run.results)
        bound = lower_bound(jobs, work, limits)
        best = ideal(jobs, work, limits, pipelined=mode == "pipelined")
        per_job = runner_overhead(run.results, sleep or {j.key: 0.0 for j in jobs})
        print(f"{mode:<10} {bound:>5.2f}s {best:>6.2f}s {run.wall:>8.2f}s "
              f"{'/'.join(f'{r.wall:.2f}' for r in mode_runs):>11} {run.wall / bound:>6.3f} "
              f"{run.wall / best:>7.3f} {1000 * (run.wall - best) / len(jobs):>6.1f}ms "
              f"{1000 * per_job:>7.1f}ms {peak_concurrency(run.results):>5}")
        walls[mode] = run.wall
    print(f"pipelined is {walls['staged'] / walls['pipelined']:.2f}x as fast as staged")
    return walls


def print_health(runs: Mapping[str, Sequence[Run]], jobs: Sequence[Job]) -> None:
    """Per mode (its median run): the health checks' time apart from helm's."""
    delays = health_delays(jobs)
    for mode, mode_runs in runs.items():
        run = median_run(mode_runs)
        checks = [run.health.get(r.name, 0.0) for r in run.results if r.hub is not None]
        if not run.health:
            print(f"{mode}: no health checks")
            continue
        helm = [r.duration - run.health.get(r.name, 0.0) for r in run.results]
        delay = statistics.mean(delays[r.key] for r in run.results if r.hub is not None)
        print(f"{mode}: health checks {len(checks)}, {sum(checks):.2f}s in all, "
              f"{1000 * statistics.mean(checks):.1f}ms each (front door's delay "
              f"{1000 * delay:.1f}ms); helm {sum(helm):.2f}s in all, "
              f"{1000 * statistics.mean(helm):.1f}ms/job; checks are "
              f"{100 * sum(checks) / (sum(checks) + sum(helm)):.0f}% of job time")


def fake_case(args: argparse.Namespace, limits: Limits, workdir: Path) -> None:
    """The large case with the sleeping helm stand-in (and the delayed front door)."""
    with contextlib.ExitStack() as stack:
        url = None if args.no_health else stack.enter_context(DelayedFrontDoor()).url
        names = [f"cluster-{c:03d}" for c in range(args.clusters)]
        root = workdir / "fake-repo"
        write_repo(root, names, args.hubs, health_url=url)
        helm = write_fake_helm(workdir, names, root)
        config = load_config(root)
        plan = plan_everything(config)
        jobs, seconds = plan.jobs, work_of(config, plan.jobs)
        total, helm_total = sum(seconds.values()), sum(sleeps(jobs).values())
        canary = sum(seconds[j.key] for j in jobs if j.stage in CANARY)
        print(f"fake helm (sh + sleep): {args.clusters} clusters x {args.hubs} hubs + support = "
              f"{len(jobs)} jobs; --jobs {limits.jobs} --per-cluster {limits.per_cluster} "
              f"--canary-workers {limits.canary_workers}; median of {args.repeat} runs each")
        print(f"work: {total:.1f}s in all (canary {canary:.1f}s, prod {total - canary:.1f}s): "
              f"helm sleeps {helm_total:.1f}s, health checks {total - helm_total:.1f}s\n")
        runs = run_modes(config, plan, jobs, limits=limits, helm=helm, workdir=workdir,
                         repeat=args.repeat)
        walls = print_modes(runs, jobs, limits, sleep=seconds)
        for mode, wall in walls.items():
            print(f"{mode}: x{total / wall:.1f} faster than sequential ({total:.1f}s of work)")
        print_health(runs, jobs)
        sequential_case(args, config, plan, helm, workdir)
    per_write = store_write_ms(median_run(runs["pipelined"]).results, workdir)
    print(f"results store: {per_write:.1f}ms per record (fsync'd, {len(jobs)} records)")


def sequential_case(args: argparse.Namespace, config: RepoConfig, plan: Plan, helm: Path,
                    workdir: Path) -> None:
    """The first --seq-clusters clusters one job at a time: overhead shows up whole."""
    chosen = set(sorted(config.clusters)[:args.seq_clusters])
    jobs = [j for j in plan.jobs if j.cluster in chosen]
    total = sum(work_of(config, jobs).values())
    run = run_mode(config, plan, jobs, mode="staged", limits=Limits(jobs=1, per_cluster=1,
                   canary_workers=1), helm=helm, workdir=workdir)
    print(f"\nsequential ({len(chosen)} clusters, {len(jobs)} jobs, one at a time): work "
          f"{total:.2f}s, measured {run.wall:.2f}s = x{run.wall / total:.3f}, "
          f"{1000 * (run.wall - total) / len(jobs):.1f}ms overhead per job")


def real_case(args: argparse.Namespace, limits: Limits, workdir: Path) -> None:
    """Real helm 4 on local clusters: staged vs pipelined, and the real per-job helm time."""
    from hubtasks.dev.install import install_helm
    from hubtasks.dev.localk8s import LocalClusters

    helm = install_helm(4, environment())
    root = workdir / "real-repo"
    with contextlib.ExitStack() as stack:
        url = None if args.no_health else stack.enter_context(DelayedFrontDoor()).url
        write_repo(root, REAL_CLUSTERS, REAL_HUBS, health_url=url)
        clusters = stack.enter_context(LocalClusters(list(REAL_CLUSTERS), workdir / "clusters"))
        clusters.write_kubeconfigs(root / KUBECONFIG_DIR)
        config = load_config(root)
        plan = plan_everything(config)
        first = run_mode(config, plan, plan.jobs, mode="staged", limits=limits, helm=helm,
                         workdir=workdir)  # installs; the timed runs are upgrades, as in CI
        runs = run_modes(config, plan, plan.jobs, limits=limits, helm=helm, workdir=workdir,
                         repeat=args.repeat)
        lease = lease_cost.compare(lambda lock: _walls(run_mode(config, plan, plan.jobs, lock=lock,
                           mode="pipelined", limits=limits, helm=helm, workdir=workdir)),
                           plan.jobs, repeat=args.repeat)
    durations = [r.duration for rs in runs.values() for run in rs for r in run.results]
    print(f"\nreal helm 4 (--wait) on {len(REAL_CLUSTERS)} local clusters x {REAL_HUBS} hubs + "
          f"support = {len(plan.jobs)} jobs, ConfigMap-only chart; first install "
          f"{first.wall:.2f}s (untimed)")
    print(f"per-job upgrade + check: median {statistics.median(durations):.2f}s, "
          f"range {min(durations):.2f}-{max(durations):.2f}s\n")
    print_modes(runs, plan.jobs, limits, sleep=None)
    print_health(runs, plan.jobs)
    print(f"\n{lease}")


def _walls(run: Run) -> tuple[float, list[float]]:  # for lease_cost.compare
    return run.wall, [r.duration for r in run.results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=30)
    parser.add_argument("--hubs", type=int, default=6, help="staging + prod hubs per cluster")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--per-cluster", type=int, default=2)
    parser.add_argument("--canary-workers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seq-clusters", type=int, default=4)
    parser.add_argument("--no-health", action="store_true",
                        help="no health checks (hubtasks.yaml health_check: false)")
    parser.add_argument("--no-real", action="store_true", help="skip real helm on local clusters")
    args = parser.parse_args()
    limits = Limits(jobs=args.jobs, per_cluster=args.per_cluster,
                    canary_workers=args.canary_workers)
    with tempfile.TemporaryDirectory(prefix="hubtasks-makespan-") as tmp:
        fake_case(args, limits, Path(tmp))
        if args.no_real:
            print("\nreal helm on local clusters: skipped (--no-real)")
            return
        try:
            real_case(args, limits, Path(tmp))
        except (HubtasksError, OSError) as err:
            print(f"\nreal helm on local clusters: skipped ({err})")


if __name__ == "__main__":
    main()
