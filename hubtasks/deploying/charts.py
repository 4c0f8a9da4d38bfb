"""Chart preparation: every chart a run needs, with its dependencies built, before any deploy.

Plain charts are built in place, dependencies first, each folder once, under a lock; then
each chart a job deploys is copied, built, into the run's own folder, and helm reads only
that copy: another run's build (which rewrites `charts/` in place, and moves it aside while
it does) never changes a chart under this run's helm. A hub with a `chart_override` gets
private copies (deploying/overrides.py): its chart folder with the override as
`Chart.yaml`, or, when the override replaces a dependency such as basehub, the top chart
pointed at an overridden copy of it; built after the shared charts.

A chart that fails to prepare fails only the jobs that need it (`PreparedCharts.errors`):
one broken chart never stops the releases of other charts.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hubtasks.config.charts import build_order
from hubtasks.config.model import Hub, RepoConfig
from hubtasks.deploying.overrides import override_copies
from hubtasks.files import FileLock
from hubtasks.helm import HelmInfo, dependency_build_argv, run_helm
from hubtasks.model import INTERRUPTED, HubtasksError, Job, JobKey
from hubtasks.runrecords import remove_dead_private_folders
from hubtasks.secrets import private_prefix

LOCK_FILE = ".hubtasks/chart-build.lock"
DEPENDENCY_BUILD_TIMEOUT = 600.0


def _build_error(helm: HelmInfo, chart_dir: Path, all_local: bool, *,
                 env: Mapping[str, str], timeout: float, fix: str | None = None,
                 cancel: threading.Event | None = None) -> str | None:
    """`helm dependency build` of one chart folder: None, or what went wrong (and `fix`).
    `cancel` (the run's Ctrl-C) stops it, and any build after it."""
    if cancel is not None and cancel.is_set():
        return f"chart {chart_dir}: not built: {INTERRUPTED}"
    argv = dependency_build_argv(helm, chart_dir, skip_refresh=all_local)
    run = run_helm(argv, env=env, timeout=timeout, retries=0, cancel=cancel)
    if run:
        return None
    if run.outcome.cancelled:
        return f"chart {chart_dir}: not built: {INTERRUPTED}"
    said = (run.error or run.output).strip().splitlines() or ["(no output)"]
    fix = fix or (f"If Chart.lock is out of date, run `helm dependency update {chart_dir}` "
                  "and commit Chart.lock.")
    # helm's own first line stays on the first line: tables and the console show only it
    return "\n".join([f"chart {chart_dir}: `helm dependency build` failed "
                      f"({run.outcome.describe()}): {said[0]}", *said[1:], fix])


def first_build_error(helm: HelmInfo, ordered: Sequence[tuple[Path, bool]], *,
                       env: Mapping[str, str], timeout: float = DEPENDENCY_BUILD_TIMEOUT,
                       fix: str | None = None,
                       cancel: threading.Event | None = None) -> str | None:
    """`helm dependency build` each of `ordered`'s (folder, all its dependencies are local)
    pairs, dependencies first, one at a time; None, or the first failure's message."""
    for chart_dir, all_local in ordered:
        error = _build_error(helm, chart_dir, all_local, env=env, timeout=timeout, fix=fix,
                             cancel=cancel)
        if error is not None:
            return error
    return None


@dataclass(frozen=True)
class PreparedCharts:
    """What chart preparation came to: each job's chart folder, or why it has none.

    A job is in exactly one of the two: `charts` (built, ready to deploy) or `errors` (its
    chart closure, or its override copy, failed to prepare; the job fails with that error)."""

    charts: dict[JobKey, Path] = field(default_factory=dict)
    errors: dict[JobKey, str] = field(default_factory=dict)


def _build_shared(config: RepoConfig, folders: Sequence[str], helm: HelmInfo, *,
                  env: Mapping[str, str], cancel: threading.Event | None) -> dict[str, str]:
    """Build `folders` in order (dependencies first); the error of each folder that failed,
    or whose local dependency failed (not built then: it would package a broken chart)."""
    failed: dict[str, str] = {}
    for folder in folders:
        chart = config.charts.get(folder)
        broken = next((failed[dep] for dep in chart.file_deps if dep in failed), None) \
            if chart is not None else None
        if broken is not None:
            failed[folder] = broken
        elif chart is not None and chart.has_deps:
            error = _build_error(helm, config.root / folder, chart.all_local, env=env,
                                 timeout=DEPENDENCY_BUILD_TIMEOUT, cancel=cancel)
            if error is not None:
                failed[folder] = error
    return failed


def prepare_job_charts(config: RepoConfig, jobs: Iterable[Job], helm: HelmInfo, *,
                       work_dir: Path, env: Mapping[str, str],
                       cancel: threading.Event | None = None) -> PreparedCharts:
    """The chart folder of each job, every one built and ready for parallel deploys.

    A failure to prepare a chart (its `helm dependency build`, or a chart_override's copy)
    is not raised: it fails only the jobs whose chart closure holds that chart, or the hub
    of that override, and the others are prepared as usual."""
    jobs_by_key = {job.key: job for job in jobs}
    closures: dict[JobKey, list[str]] = {}  # the shared (repo) folders each job builds from
    overrides: dict[JobKey, Hub] = {}
    for job in jobs_by_key.values():
        hub = config.cluster(job.cluster).hub(job.hub) if job.hub else None
        if hub is not None and hub.chart_override:
            overrides[job.key] = hub
            closures[job.key] = config.chart_closure(hub.chart, hub.override_deps,
                                                     hub.override_chart)[1:]
        else:
            closures[job.key] = config.chart_closure(job.chart)
    order = build_order(config.charts, [f for closure in closures.values() for f in closure])
    prepared = PreparedCharts()
    snapshots = _Snapshots(config.root, work_dir / SNAPSHOTS_DIR)
    # helm rewrites charts/ in place: a lock keeps two local runs (say validate and
    # deploy-all) from building the same folder at once.
    with FileLock(config.root / LOCK_FILE, timeout=DEPENDENCY_BUILD_TIMEOUT,
                  what="the chart build lock"):
        failed = _build_shared(config, order, helm, env=env, cancel=cancel)
        for key, closure in closures.items():
            # dependencies first: the first failed folder of a closure is the root cause
            error = next((failed[f] for f in build_order(config.charts, closure)
                          if f in failed), None)
            if error is None and key in overrides:
                error = _override_error(config, key, overrides[key], helm, prepared,
                                        work_dir=work_dir, env=env, cancel=cancel)
            elif error is None:
                error = snapshots.take(config.settings.chart_folder(jobs_by_key[key].chart),
                                       prepared, key)
            if error is not None:
                prepared.errors[key] = error
    return prepared


SNAPSHOTS_DIR = "shared"  # under the run's folder: the built repo charts its helm reads


class _Snapshots:
    """Copies of built repo chart folders, one per folder, at the same relative path."""

    def __init__(self, root: Path, into: Path) -> None:
        self.root, self.into = root, into
        self._taken: dict[str, Path | str] = {}  # folder -> its copy, or why there is none

    def take(self, folder: str, prepared: PreparedCharts, key: JobKey) -> str | None:
        """Record the copy of `folder` as `key`'s chart; None, or why it could not be made.

        Called under the build lock: no build rewrites the folder while it is copied."""
        if folder not in self._taken:
            target = self.into / folder
            try:
                # symlinks followed (2i2c's daskhub/values.jsonnet is one), as helm does; a
                # dangling one fails the copy, as helm refuses such a chart ("error
                # evaluating symlink"), rather than deploying the chart without that file
                shutil.copytree(self.root / folder, target)
                self._taken[folder] = target
            except shutil.Error as err:  # one (source, target, why) per file that failed
                why = err.args[0][0][2] if err.args and err.args[0] else str(err)
                self._taken[folder] = f"chart {self.root / folder}: cannot copy it: {why}"
            except OSError as err:
                self._taken[folder] = f"chart {self.root / folder}: cannot copy it: {err}"
        taken = self._taken[folder]
        if isinstance(taken, str):
            return taken
        prepared.charts[key] = taken
        return None


def _override_error(config: RepoConfig, key: JobKey, hub: Hub, helm: HelmInfo,
                    prepared: PreparedCharts, *, work_dir: Path,
                    env: Mapping[str, str], cancel: threading.Event | None) -> str | None:
    """Copy and build a hub's override chart into `prepared`; None, or what went wrong."""
    try:
        copies = override_copies(config, key, hub, work_dir)
    except (HubtasksError, OSError) as err:
        return str(err)
    fix = f"The chart is {hub.chart_override} (the hub's chart_override): check its dependencies."
    error = first_build_error(helm, [(path, record.all_local) for path, record in copies
                                      if record.has_deps], env=env, fix=fix, cancel=cancel)
    if error is None:
        prepared.charts[key] = copies[-1][0]
    return error


RUNS_DIR = "runs"  # under the work folder: one private folder per live run


@contextlib.contextmanager
def run_folder(work_dir: Path) -> Iterator[Path]:
    """This run's own folder under `<work_dir>/runs` (chart_override copies: another run,
    even one refused, never replaces the copies this run's helm reads), removed at the end;
    those of runs that died are removed first."""
    runs = work_dir / RUNS_DIR
    runs.mkdir(parents=True, exist_ok=True)
    remove_dead_private_folders(runs)
    own = Path(tempfile.mkdtemp(prefix=private_prefix(), dir=runs))
    try:
        yield own
    finally:
        shutil.rmtree(own, ignore_errors=True)
