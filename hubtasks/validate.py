"""`validate`: config checks, then `helm lint` and `helm template` of every release.

The config is loaded first (a ConfigError lists every problem and stops there: helm checks
need a valid config). Then every release's chart is prepared once, and each release is
linted and rendered with its values files in order, secrets decrypted into a private temp
folder, in a thread pool. Nothing contacts a cluster.
"""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from .config import RepoConfig, load_config
from .deploy import DeployOptions, needs_sops, prepare_charts, release_values
from .helm import HelmInfo, ReleaseSpec, detect_helm, lint_argv, template_argv
from .helmrun import HelmRun, run_helm
from .model import HubtasksError, Job, JobKey
from .plan import PlanRequest, build_plan
from .tools import helm_path, sops_path

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


def _chart_group(config: RepoConfig, job: Job) -> str:
    """Releases sharing a chart folder share a group; a chart_override gets its own."""
    hub = config.cluster(job.cluster).hub(job.hub) if job.hub else None
    return str(job.key) if hub is not None and hub.chart_override else job.chart


def prepare(config: RepoConfig, jobs: Sequence[Job], helm: HelmInfo,
            options: DeployOptions) -> tuple[dict[JobKey, Path], dict[JobKey, str]]:
    """Charts of every release, built once; on a failure, the error of each affected release."""
    try:
        return prepare_charts(config, jobs, helm, options), {}
    except HubtasksError:
        pass  # find out which charts fail, so each release reports its own problem
    charts: dict[JobKey, Path] = {}
    errors: dict[JobKey, str] = {}
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(_chart_group(config, job), []).append(job)
    for group in groups.values():
        try:
            charts.update(prepare_charts(config, group, helm, options))
        except HubtasksError as err:
            errors.update({j.key: f"chart not prepared: {err}" for j in group})
    return charts, errors


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
                            env=self.env) as (values, secrets):
            spec = ReleaseSpec(release=job.release, namespace=job.release,
                               chart_dir=self.charts[job.key], values_files=values)
            argvs = {Check.LINT: lint_argv(self.helm, spec),
                     Check.TEMPLATE: template_argv(self.helm, spec)}
            return [self._run(job, check, argv, secrets) for check, argv in argvs.items()]

    def _run(self, job: Job, check: Check, argv: list[str],
             secrets: Sequence[str]) -> ValidationResult:
        run = run_helm(argv, env=self.env, timeout=HELM_TIMEOUT, cancel=self.cancel,
                       retries=0, secrets=secrets)
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
    charts, errors = prepare(config, releases, helm, DeployOptions(work_dir=work_dir, env=env))
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


def validate_command(repo: Path, *, clusters: Sequence[str] = (), jobs: int = 8,
                     helm: Path | None = None, env: Mapping[str, str]) -> list[ValidationResult]:
    """`validate`: load the config (ConfigError stops here), then run every helm check."""
    config = load_config(repo, clusters=list(clusters) or None)
    hubs = sum(len(c.hubs) for c in config.clusters.values())
    helm_info = detect_helm(helm or helm_path(env=env), env=env)
    releases = release_jobs(config, clusters)
    sops = sops_path(env=env) if needs_sops(config, releases) else None
    print(f"config OK: {_count(len(config.clusters), 'cluster')}, {_count(hubs, 'hub')}; "
          f"helm {helm_info.version}: lint + template of {_count(len(releases), 'release')}",
          flush=True)
    return validate_repo(config, helm=helm_info, sops=sops, env=env, jobs=jobs,
                         work_dir=repo / ".hubtasks" / "work" / "validate", clusters=clusters)


# ---------------------------------------------------------------------------- output


def render_validation(results: Sequence[ValidationResult]) -> str:
    """One row per release (lint, template), then each failure with helm's message."""
    by_release: dict[JobKey, dict[Check, ValidationResult]] = {}
    for result in results:
        by_release.setdefault(result.key, {})[result.check] = result
    rows = [[key.cluster, key.hub or "(support)",
             *(_mark(checks.get(check)) for check in Check)]
            for key, checks in by_release.items()]
    parts = [tabulate(rows, headers=["cluster", "release", *Check])]
    failed = [r for r in results if not r]
    if failed:
        parts.append(f"Failures ({len(failed)})")
        parts += [f"{r.key} {r.check}:\n{_indent(r.message)}" for r in failed]
    parts.append(f"{_count(len(by_release), 'release')}, {_count(len(results), 'check')}: "
                 f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return "\n\n".join(parts) + "\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _mark(result: ValidationResult | None) -> str:
    return "" if result is None else "ok" if result else "FAILED"


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


def exit_code(results: Iterable[ValidationResult]) -> int:
    """0 when every check passed, else 1."""
    return 0 if all(results) else 1
