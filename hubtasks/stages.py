"""The deploy stages as the tasks run them: set up a session, run, record, summarise.

`canary`, `filter`, `prod`, `deploy-all` and the manual `deploy-hub` / `deploy-support`
all go through here, so a local run and a CI leg use the same code and write the same
results file.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .config import RepoConfig, load_config
from .deploy import Credentials, DeployOptions, HelmRunner, needs_sops, prepare_charts
from .execute import (
    gate_prod,
    install_signal_handlers,
    run_canary,
    run_pipelined,
    run_prod,
    run_staged,
)
from .helm import detect_helm
from .logs import ConsoleReporter, close_logging, exit_code, render_summary, setup_logging
from .model import HubtasksError, Job, JobResult, Plan, Stage
from .results import ResultsStore, load_results
from .tools import helm_path, sops_path


@dataclass(frozen=True, kw_only=True)
class StageOptions:
    """Concurrency, files and helm settings shared by every deploy task."""

    results: Path
    deploy: DeployOptions
    jobs: int = 8
    per_cluster: int = 4
    canary_workers: int = 8
    helm: Path | None = None
    helm_major: int | None = None
    verbose: bool = False
    env: dict[str, str] = field(default_factory=dict)


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


@contextlib.contextmanager
def helm_session(config: RepoConfig, plan: Plan, jobs: Sequence[Job],
                 options: StageOptions) -> Iterator[HelmRunner]:
    """Detect helm, build charts once, resolve credentials; clean up afterwards."""
    helm = detect_helm(options.helm or helm_path(options.helm_major, env=options.env))
    sops = sops_path(env=options.env) if needs_sops(config, jobs, credentials=True) else None
    deploy = replace(options.deploy, env=options.env)
    charts = prepare_charts(config, jobs, helm, deploy)
    credentials = Credentials(config, deploy, sops)
    try:
        yield HelmRunner(config, head=plan.head, helm=helm, options=deploy, charts=charts,
                         credentials=credentials, sops=sops)
    finally:
        credentials.close()


@contextlib.contextmanager
def recording(options: StageOptions, total: int) -> Iterator[tuple[ConsoleReporter,
                                                                   ResultsStore,
                                                                   threading.Event]]:
    """Logging, the results store, a console reporter and Ctrl-C handling for one run."""
    setup_logging(options.deploy.log_dir, verbose=options.verbose)
    store = ResultsStore(options.results)
    reporter = ConsoleReporter(total)
    cancel = threading.Event()
    restore = install_signal_handlers(cancel, on_signal=lambda name: reporter.note(
        f"{name}: stopping; no new job starts, running helm processes are terminated "
        "(press Ctrl-C again to abort at once)"))
    try:
        yield reporter, store, cancel
    finally:
        restore()
        reporter.close()
        close_logging()


def _recorder(store: ResultsStore, reporter: ConsoleReporter,
              head: str | None) -> Callable[[JobResult], None]:
    """Record first (the file is the source of truth), then print; stamp the plan's head."""
    def on_result(result: JobResult) -> None:
        if result.head is None:
            result = replace(result, head=head)
        store.record(result)
        reporter.on_result(result)
    return on_result


def finish(results: Sequence[JobResult], *, title: str) -> int:
    """Print the summary table; the exit code is 0 only when every job succeeded."""
    if results:
        print(f"\n{title}\n{render_summary(results)}")
    else:
        print(f"\n{title}: nothing to do")
    return exit_code(results)


def run_jobs(config: RepoConfig, plan: Plan, jobs: Sequence[Job], options: StageOptions, *,
             mode: str) -> list[JobResult]:
    """Run jobs with the executor in one of: canary, prod, staged, pipelined."""
    with recording(options, len(jobs)) as (reporter, store, cancel), \
            helm_session(config, plan, jobs, options) as runner:
        on_result = _recorder(store, reporter, plan.head)
        if mode == "canary":
            return run_canary(jobs, runner, max_workers=options.canary_workers, cancel=cancel,
                              on_result=on_result, on_start=reporter.on_start)
        if mode == "prod":
            return run_prod(jobs, runner, max_jobs=options.jobs, per_cluster=options.per_cluster,
                            cancel=cancel, on_result=on_result, on_start=reporter.on_start)
        run_all = run_pipelined if mode == "pipelined" else run_staged
        return run_all(jobs, runner, max_jobs=options.jobs, per_cluster=options.per_cluster,
                       canary_workers=options.canary_workers, cancel=cancel,
                       on_result=on_result, on_start=reporter.on_start)


def filter_prod(plan: Plan, results_paths: Sequence[Path], *,
                record_to: Path | None) -> tuple[list[Job], list[JobResult]]:
    """Keep prod jobs of clusters whose canary succeeded; record the dropped ones."""
    missing = [p for p in results_paths if not p.exists()]
    if missing:
        raise HubtasksError(f"results not found: {', '.join(map(str, missing))}")
    canary = [j for j in plan.jobs if j.stage is not Stage.PROD]
    kept, dropped = gate_prod(plan.stage_jobs(Stage.PROD), canary, load_results(results_paths))
    dropped = [replace(r, head=plan.head) for r in dropped]
    if record_to is not None and dropped:
        ResultsStore(record_to).record_many(dropped)
    return kept, dropped


def base_env() -> dict[str, str]:
    """A snapshot of the environment, taken once in the main thread for subprocesses."""
    return dict(os.environ)


def load_for(repo: Path, clusters: Iterable[str]) -> RepoConfig:
    """Load only the clusters a stage needs (a CI leg's cluster.yaml is all it reads)."""
    return load_config(repo, clusters=sorted(set(clusters)))
