"""The deploy stages as the tasks run them: find the tools, run a schedule, record, return.

`canary`, `filter`, `prod`, `deploy-all` and the manual `deploy-hub` / `deploy-support` all
go through `run_jobs`, so a local run and a CI leg use the same code and write the same
results file. Library code: it returns results; the tasks print them.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType

from hubtasks.binaries import find_helm, find_sops
from hubtasks.config.load import load_config
from hubtasks.config.model import RepoConfig
from hubtasks.deploying.charts import prepare_job_charts, run_folder
from hubtasks.deploying.credentials import Credentials
from hubtasks.deploying.runner import HelmRunner
from hubtasks.deploying.scheduler import Schedule, gate_prod
from hubtasks.deploying.values import needs_sops, release_digest
from hubtasks.helm import HelmInfo
from hubtasks.model import CANARY_STAGES, HubtasksError, Job, JobResult, Plan, Stage
from hubtasks.options import RunOptions
from hubtasks.output.console import ConsoleReporter
from hubtasks.output.logs import close_logging, setup_logging
from hubtasks.results import ResultsStore, load_results
from hubtasks.runrecords import (
    DigestOf,
    holding_run,
    plan_records,
    run_identity,
    settle_for_report,
    start_record,
)


def select_jobs(plan: Plan, *, stages: Iterable[Stage], clusters: Sequence[str] = (),
                ids: Sequence[str] = ()) -> list[Job]:
    """Jobs of `stages`, limited to exact cluster names and `cluster/hub` ids when given."""
    wanted = set(stages)
    jobs = [j for j in plan.jobs if j.stage in wanted]
    if clusters:
        unknown = sorted(set(clusters) - {j.cluster for j in plan.jobs})
        if unknown:
            raise HubtasksError(f"cluster(s) not in the plan: {', '.join(unknown)}")
        jobs = [j for j in jobs if j.cluster in set(clusters)]
    if ids:
        known = {str(j.key) for j in jobs}
        unknown = sorted(set(ids) - known)
        if unknown:
            raise HubtasksError(f"job(s) not in the plan for these stages: {', '.join(unknown)}")
        jobs = [j for j in jobs if str(j.key) in set(ids)]
    return jobs


def load_for(repo: Path, clusters: Iterable[str]) -> RepoConfig:
    """Load only the clusters a stage needs (a CI leg's cluster.yaml is all it reads)."""
    return load_config(repo, clusters=sorted(set(clusters)), tolerant=True)


def find_tools(config: RepoConfig, jobs: Sequence[Job],
               options: RunOptions) -> tuple[HelmInfo, Path | None]:
    """helm, and sops when a job needs it; a missing one fails now, before any deploy."""
    helm = find_helm(options.env, explicit=options.helm)
    sops = find_sops(options.env) if needs_sops(config, jobs, credentials=True) else None
    return helm, sops


@contextlib.contextmanager
def helm_session(config: RepoConfig, plan: Plan, jobs: Sequence[Job],
                 options: RunOptions, cancel: threading.Event | None = None
                 ) -> Iterator[HelmRunner]:
    """Find the tools, build charts once, resolve credentials; clean up afterwards.

    A chart that fails to prepare fails only the jobs that need it, each at once (as an
    invalid job does); an invalid job never reaches helm, so its chart is not prepared."""
    helm, sops = find_tools(config, jobs, options)
    deploy = options.deploy
    with run_folder(config.root / deploy.work_dir) as own:
        charts = prepare_job_charts(config, [j for j in jobs if not j.invalid], helm,
                                    work_dir=own, env=deploy.env, cancel=cancel)
        credentials = Credentials(config, kubeconfig_dir=deploy.kubeconfig_dir, sops=sops,
                                  env=deploy.env)
        try:
            yield HelmRunner(config, head=plan.head, helm=helm, options=deploy,
                             charts=charts.charts, chart_errors=charts.errors,
                             credentials=credentials, sops=sops)
        finally:
            credentials.close()


def install_signal_handlers(cancel: threading.Event,
                            on_signal: Callable[[str], None]) -> Callable[[], None]:
    """Make SIGINT/SIGTERM set `cancel`, and a second one raise KeyboardInterrupt.

    Call from the main thread only; returns a function restoring the previous handlers.
    `on_signal` gets the signal's name, inside the handler (main thread).
    """
    hits = 0

    def handle(signum: int, frame: FrameType | None) -> None:
        nonlocal hits
        hits += 1
        if hits > 1:
            raise KeyboardInterrupt
        cancel.set()
        on_signal(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    return restore


def interrupt_note(name: str) -> str:
    return (f"{name}: stopping: no new job starts and running helm processes are being "
            "terminated; unfinished jobs are recorded as cancelled (again to abort at once)")


@contextlib.contextmanager
def recording(options: RunOptions, total: int) -> Iterator[tuple[ConsoleReporter, ResultsStore,
                                                                   threading.Event]]:
    """Logging, the results store, a console reporter and Ctrl-C handling for one run."""
    setup_logging(options.deploy.log_dir, verbose=options.verbose)
    store = ResultsStore(options.results)
    reporter = ConsoleReporter(total)
    cancel = threading.Event()
    restore = install_signal_handlers(cancel, lambda name: reporter.note(interrupt_note(name)))
    try:
        with holding_run(store):
            yield reporter, store, cancel
    finally:
        restore()
        reporter.close()
        close_logging()


def _recorder(store: ResultsStore, reporter: ConsoleReporter, plan: Plan,
              dry_run: bool) -> Callable[[JobResult], None]:
    """Record first (the file is the source of truth), then print; stamp the plan's head and
    identity, the dry-run mark and this run."""
    def on_result(result: JobResult) -> None:
        result = replace(result, head=result.head or plan.head, plan_id=plan.plan_id,
                         dry_run=dry_run, run=run_identity())
        store.record(result)
        reporter.on_result(result)
    return on_result


def _starter(store: ResultsStore, reporter: ConsoleReporter, plan: Plan,
             dry_run: bool) -> Callable[[Job], None]:
    """Record a job's start before helm runs (a crash leaves evidence), then print it."""
    def on_start(job: Job) -> None:
        store.record(start_record(job, plan=plan, dry_run=dry_run))
        reporter.on_start(job)
    return on_start


def run_jobs(config: RepoConfig, plan: Plan, jobs: Sequence[Job], options: RunOptions,
             schedule: Schedule, *, on_held: Callable[[], None] | None = None
             ) -> list[JobResult]:
    """Run `jobs` of `plan` with `schedule`, recording every outcome; plan order.

    `on_held` runs once this run holds the results file: a run refused because another holds
    it must leave that run's files (e.g. deploy-all's plan file) alone."""
    # the results file first: a run refused because another holds it touches nothing
    with recording(options, len(jobs)) as (reporter, store, cancel), \
            helm_session(config, plan, jobs, options, cancel) as runner:
        if on_held is not None:
            on_held()
        dry_run = options.deploy.dry_run
        return schedule(jobs, runner, options.limits, cancel=cancel,
                        on_result=_recorder(store, reporter, plan, dry_run),
                        on_start=_starter(store, reporter, plan, dry_run))


def filter_prod(plan: Plan, results_paths: Sequence[Path], *, record_to: Path | None,
                digest_of: DigestOf = lambda job: None) -> tuple[list[Job], list[JobResult]]:
    """Keep prod jobs of clusters whose canary succeeded in this plan (or is proven up to
    date); record the dropped ones."""
    missing = [p for p in results_paths if not p.exists()]
    if missing:
        raise HubtasksError(f"results not found: {', '.join(map(str, missing))}")
    canary = [j for j in plan.jobs if j.stage in CANARY_STAGES]
    # a canary whose run died is settled first: dropped as interrupted, not as `running`
    counted, _ = plan_records(settle_for_report(load_results(results_paths)),
                              replace(plan, jobs=tuple(canary)), digest_of)
    kept, dropped = gate_prod(plan.stage_jobs(Stage.PROD), canary, counted)
    dropped = [replace(r, head=plan.head, plan_id=plan.plan_id) for r in dropped]
    if record_to is not None and dropped:
        ResultsStore(record_to).record_many(dropped)
    return kept, dropped


def digest_lookup(repo: Path) -> DigestOf:
    """A job's input digest at this checkout (its cluster loaded on first use); None when the
    config can't be read, so an earlier plan's record then proves nothing."""
    configs: dict[str, RepoConfig | None] = {}

    def digest_of(job: Job) -> str | None:
        if job.cluster not in configs:
            try:
                configs[job.cluster] = load_for(repo, [job.cluster])
            except HubtasksError:
                configs[job.cluster] = None
        config = configs[job.cluster]
        try:
            return None if config is None else release_digest(config, job)
        except (HubtasksError, KeyError, OSError):
            return None
    return digest_of
