"""`validate`: config checks, then `helm lint` and `helm template` of every release.

The config is loaded first (a ConfigError lists every problem and stops there: helm checks
need a valid config). Then every release's chart is prepared once, and each release is
linted and rendered with its values files in order, secrets decrypted into a private temp
folder, in a thread pool. Nothing contacts a cluster.
"""

from __future__ import annotations

import contextlib
import enum
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hubtasks.binaries import find_helm, find_sops
from hubtasks.config.load import load_config
from hubtasks.config.model import RepoConfig
from hubtasks.deploying.charts import prepare_job_charts, run_folder
from hubtasks.deploying.schemas import SchemaCopies, needs_json_schema
from hubtasks.deploying.values import needs_sops, release_values
from hubtasks.helm import HelmInfo, HelmRun, ReleaseSpec, lint_argv, run_helm, template_argv
from hubtasks.model import HubtasksError, Job, JobKey
from hubtasks.options import DEFAULTS
from hubtasks.planning.planner import PlanRequest, build_plan
from hubtasks.secrets import Redactor, private_folder

HELM_TIMEOUT = 300.0  # seconds per lint or template; neither contacts a cluster
MESSAGE_LINES = 6
# The line where helm starts saying what went wrong (lint's `[ERROR]`, helm's `Error:`).
START_RE = re.compile(r"^\s*(?:\[ERROR\]|Error\b|error\b)")
# Lines that never help: helm's hints and lint's summary.
NOISE_RE = re.compile(r"^Use --debug|chart\(s\) linted|^==> Linting")


class Check(enum.StrEnum):
    """What was run on a release."""

    LINT = "lint"
    TEMPLATE = "template"


@dataclass(frozen=True, kw_only=True)
class ValidationResult:
    """The outcome of one check of one release; truthy when it passed."""

    cluster: str
    hub: str | None
    check: Check
    ok: bool
    message: str = ""

    def __bool__(self) -> bool:
        return self.ok

    @property
    def key(self) -> JobKey:
        return JobKey(cluster=self.cluster, hub=self.hub)


# ---------------------------------------------------------------------------- releases


def release_jobs(config: RepoConfig, clusters: Sequence[str] = ()) -> list[Job]:
    """Every release (support, then hubs) of the chosen clusters, by cluster and hub."""
    unknown = sorted(set(clusters) - set(config.clusters))
    if unknown:
        raise HubtasksError(f"unknown cluster(s): {', '.join(unknown)}")
    jobs = build_plan(config, PlanRequest(everything=True)).jobs
    chosen = [j for j in jobs if not clusters or j.cluster in clusters]
    return sorted(chosen, key=lambda j: (j.cluster, j.hub is not None, j.hub or ""))


# ---------------------------------------------------------------------------- charts


def prepare(config: RepoConfig, jobs: Sequence[Job], helm: HelmInfo, *, work_dir: Path,
            env: Mapping[str, str]) -> tuple[dict[JobKey, Path], dict[JobKey, str]]:
    """Charts of every release, built once; the error of each release whose chart failed
    to prepare (the others are prepared as usual)."""
    prepared = prepare_job_charts(config, jobs, helm, work_dir=work_dir, env=env)
    return prepared.charts, {key: f"chart not prepared: {error}"
                             for key, error in prepared.errors.items()}


# ---------------------------------------------------------------------------- one release


def failure_message(run: HelmRun) -> str:
    """The first lines of what helm said went wrong."""
    lines = [line.rstrip() for line in run.output.splitlines()
             if line.strip() and not NOISE_RE.search(line)]
    start = next((i for i, line in enumerate(lines) if START_RE.match(line)), 0)
    text = "\n".join(lines[start:start + MESSAGE_LINES]) or f"helm exited {run.exit_code}"
    if run.timed_out:
        return f"timed out after {HELM_TIMEOUT:.0f}s\n{text}"
    return "cancelled" if run.cancelled else text


class _Checker:
    """Lints and renders one release at a time; thread-safe."""

    def __init__(self, config: RepoConfig, *, helm: HelmInfo, sops: Path | None,
                 env: Mapping[str, str], charts: Mapping[JobKey, Path],
                 cancel: threading.Event) -> None:
        self.config, self.helm, self.sops, self.env = config, helm, sops, env
        self.charts, self.cancel = charts, cancel

    def __call__(self, job: Job) -> list[ValidationResult]:
        try:
            return self._check(job)
        except HubtasksError as err:  # e.g. a secret that cannot be decrypted
            return [_result(job, check, ok=False, message=str(err)) for check in Check]

    def _check(self, job: Job) -> list[ValidationResult]:
        with release_values(self.config, job, sops=self.sops,
                            env=self.env) as (values, redactor):
            spec = ReleaseSpec(release=job.release, namespace=job.namespace,
                               chart_dir=self.charts[job.key], values_files=values)
            argvs = {Check.LINT: lint_argv(self.helm, spec),
                     Check.TEMPLATE: template_argv(self.helm, spec)}
            return [self._run(job, check, argv, redactor) for check, argv in argvs.items()]

    def _run(self, job: Job, check: Check, argv: list[str],
             redactor: Redactor) -> ValidationResult:
        run = run_helm(argv, env=self.env, timeout=HELM_TIMEOUT, cancel=self.cancel,
                       retries=0, redactor=redactor)
        return _result(job, check, ok=bool(run), message="" if run else failure_message(run))


def _result(job: Job, check: Check, *, ok: bool, message: str) -> ValidationResult:
    return ValidationResult(cluster=job.cluster, hub=job.hub, check=check, ok=ok,
                            message=message)


# ---------------------------------------------------------------------------- the repo


def validate_repo(config: RepoConfig, *, helm: HelmInfo, sops: Path | None,
                  env: Mapping[str, str], jobs: int, work_dir: Path,
                  clusters: Sequence[str] = ()) -> list[ValidationResult]:
    """Lint and render every release of `clusters` (default all); results by cluster and hub."""
    if jobs < 1:
        raise HubtasksError(f"--jobs must be at least 1, not {jobs}")
    releases = release_jobs(config, clusters)
    with contextlib.ExitStack() as stack:
        own = stack.enter_context(run_folder(config.root / work_dir))  # override copies
        charts, errors = prepare(config, releases, helm, work_dir=own, env=env)
        if any(map(needs_json_schema, set(charts.values()))):  # else no folder at all
            with_schemas(config, charts, errors, SchemaCopies(stack.enter_context(
                private_folder())))
        return _check_all(config, releases, helm=helm, sops=sops, env=env, jobs=jobs,
                          charts=charts, errors=errors)


def with_schemas(config: RepoConfig, charts: dict[JobKey, Path], errors: dict[JobKey, str],
                 copies: SchemaCopies) -> None:
    """Swap each chart for its copy with `values.schema.json` when it ships only the YAML."""
    for key, chart_dir in list(charts.items()):
        try:
            shown = _chart_shown(config, key, chart_dir)
            charts[key] = copies.chart(chart_dir, shown=shown)
        except HubtasksError as err:
            errors[key] = f"chart not prepared: {err}"


def _chart_shown(config: RepoConfig, key: JobKey, chart_dir: Path) -> str:
    """How errors name a job's chart: its repo folder (the run deploys a built copy of it),
    or, for a chart_override's private copy, the copy's path."""
    hub = config.cluster(key.cluster).hub(key.hub) if key.hub else None
    if hub is None or not hub.chart_override:
        return config.settings.chart_folder(config.release_chart(key.cluster, key.hub))
    return chart_dir.relative_to(config.root).as_posix() \
        if chart_dir.is_relative_to(config.root) else str(chart_dir)


def _check_all(config: RepoConfig, releases: Sequence[Job], *, helm: HelmInfo,
               sops: Path | None, env: Mapping[str, str], jobs: int,
               charts: Mapping[JobKey, Path],
               errors: Mapping[JobKey, str]) -> list[ValidationResult]:
    cancel = threading.Event()
    checker = _Checker(config, helm=helm, sops=sops, env=env, charts=charts, cancel=cancel)
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="validate")
    try:
        futures = {j.key: pool.submit(checker, j) for j in releases if j.key not in errors}
        return [r for j in releases for r in _outcomes(j, futures, errors)]
    except BaseException:  # Ctrl-C: stop running helm processes, start no more
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _outcomes(job: Job, futures: Mapping[JobKey, Future[list[ValidationResult]]],
              errors: Mapping[JobKey, str]) -> list[ValidationResult]:
    if job.key in errors:
        return [_result(job, check, ok=False, message=errors[job.key]) for check in Check]
    return futures[job.key].result()


@dataclass(frozen=True, kw_only=True)
class Validation:
    """What `validate` checked and found."""

    clusters: int
    hubs: int
    helm: HelmInfo
    results: list[ValidationResult]


def validate_command(repo: Path, *, clusters: Sequence[str] = (), jobs: int = 8,
                     helm: Path | None = None, env: Mapping[str, str],
                     work_dir: Path | None = None,
                     on_start: Callable[[str], None] | None = None) -> Validation:
    """`validate`: load the config (ConfigError stops here), then run every helm check.

    `work_dir` is the deploys' work folder (default `<repo>/.hubtasks/work`); `on_start`
    hears one line saying what is about to be checked.
    """
    work_dir = repo / DEFAULTS["work_dir"] if work_dir is None else work_dir
    config = load_config(repo, clusters=list(clusters) or None)
    hubs = sum(len(c.hubs) for c in config.clusters.values())
    helm_info = find_helm(env, explicit=helm)
    releases = release_jobs(config, clusters)
    sops = find_sops(env) if needs_sops(config, releases) else None
    if on_start is not None:
        on_start(f"config OK: {count(len(config.clusters), 'cluster')}, {count(hubs, 'hub')}; "
                 f"helm {helm_info.version}: lint + template of "
                 f"{count(len(releases), 'release')}")
    results = validate_repo(config, helm=helm_info, sops=sops, env=env, jobs=jobs,
                            work_dir=work_dir / "validate", clusters=clusters)
    return Validation(clusters=len(config.clusters), hubs=hubs, helm=helm_info, results=results)


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def exit_code(results: Iterable[ValidationResult]) -> int:
    """0 when every check passed, else 1."""
    return 0 if all(results) else 1
