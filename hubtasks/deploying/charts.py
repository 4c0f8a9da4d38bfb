"""Chart preparation: every chart a run needs, with its dependencies built, before any deploy.

Plain charts are built in place, dependencies first, each folder once. A hub with a
`chart_override` gets private copies (deploying/overrides.py): its chart folder with the
override as `Chart.yaml`, or, when the override replaces a dependency such as basehub, the
top chart pointed at an overridden copy of it; built after the shared charts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from hubtasks.config.charts import build_order
from hubtasks.config.model import Hub, RepoConfig
from hubtasks.deploying.overrides import override_copies
from hubtasks.files import FileLock
from hubtasks.helm import HelmInfo, dependency_build_argv, run_helm
from hubtasks.model import HubtasksError, Job, JobKey

LOCK_FILE = ".hubtasks/chart-build.lock"
DEPENDENCY_BUILD_TIMEOUT = 600.0


def _needs_build(config: RepoConfig, folders: Iterable[str]) -> list[tuple[Path, bool]]:
    """(folder, all dependencies local) for each folder that has dependencies, in order."""
    out = []
    for folder in folders:
        chart = config.charts.get(folder)
        if chart is not None and chart.has_deps:
            out.append((config.root / folder, chart.all_local))
    return out


def build_dependencies(helm: HelmInfo, ordered: Sequence[tuple[Path, bool]], *,
                       env: Mapping[str, str],
                       timeout: float = DEPENDENCY_BUILD_TIMEOUT) -> None:
    """`helm dependency build` each chart folder in order, one at a time.

    `ordered` holds (folder, all its dependencies are local) pairs, dependencies first. Run
    this before any parallel deploy: helm rewrites `charts/` in place, so two builds of one
    folder at once would corrupt it.
    """
    for chart_dir, all_local in ordered:
        argv = dependency_build_argv(helm, chart_dir, skip_refresh=all_local)
        run = run_helm(argv, env=env, timeout=timeout, retries=0)
        if not run:
            raise HubtasksError(
                f"chart {chart_dir}: `helm dependency build` failed ({run.outcome.describe()}):"
                f"\n{run.error or run.output}\nIf Chart.lock is out of date, run "
                f"`helm dependency update {chart_dir}` and commit Chart.lock.")


def prepare_charts(config: RepoConfig, jobs: Iterable[Job], helm: HelmInfo, *,
                   work_dir: Path, env: Mapping[str, str]) -> dict[JobKey, Path]:
    """The chart folder of each job, every one built and ready for parallel deploys."""
    jobs = list(jobs)
    plain: list[str] = []
    overrides: dict[JobKey, Hub] = {}
    for job in jobs:
        hub = config.cluster(job.cluster).hub(job.hub) if job.hub else None
        if hub is not None and hub.chart_override:
            overrides[job.key] = hub
            plain += config.chart_closure(hub.chart, hub.override_deps,
                                          hub.override_chart)[1:]
        else:
            plain += config.chart_closure(job.chart)
    charts = {j.key: config.root / config.settings.chart_folder(j.chart) for j in jobs}
    # helm rewrites charts/ in place: a lock keeps two local runs (say validate and
    # deploy-all) from building the same folder at once.
    with FileLock(config.root / LOCK_FILE, timeout=DEPENDENCY_BUILD_TIMEOUT,
                  what="the chart build lock"):
        build_dependencies(helm, _needs_build(config, build_order(config.charts, plain)),
                           env=env)
        for key, hub in sorted(overrides.items()):
            copies = override_copies(config, key, hub, work_dir)
            build_dependencies(helm, [(path, record.all_local) for path, record in copies
                                      if record.has_deps], env=env)
            charts[key] = copies[-1][0]
    return charts
