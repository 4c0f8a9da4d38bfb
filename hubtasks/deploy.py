"""Doing one job: resolve a planned release to files, credentials and a helm command, run it.

The executor (execute.py) decides *when* jobs run; this module decides *how* one runs.
Everything a helm subprocess needs is passed to it explicitly (argv and env): nothing
here touches os.environ or the current directory, so jobs run safely in threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import portalocker
import yaml

from .config import CHART_FILE, Cluster, RepoConfig, connection_view, hub_view
from .helm import (
    DEPENDENCY_BUILD_TIMEOUT,
    HelmInfo,
    HelmOptions,
    ReleaseSpec,
    build_dependencies,
    describe_release,
    template_argv,
    upgrade_argv,
)
from .helmrun import redact_argv, run_helm
from .logs import job_log_path
from .model import HubtasksError, Job, JobKey, JobResult, Status, utc_now
from .secrets import decrypted_values, is_secret_path, is_sops_encrypted

logger = logging.getLogger(__name__)
BUILD_ARTIFACTS = ("charts", "Chart.lock")  # written by `helm dependency build`
TIMEOUT_RE = re.compile(r"^\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s?)?\s*$")
# Our own kill timer fires this long after helm's --timeout, so helm can roll back first.
KILL_GRACE = 60.0


def parse_timeout(text: str | float | int) -> float:
    """`10m`, `1h30m`, `90s` or `90` -> seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = TIMEOUT_RE.match(text)
    if not match or not any(match.groups()):
        raise HubtasksError(f"invalid timeout {text!r}: use e.g. 10m, 90s or 1h30m")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def helm_duration(seconds: float) -> str:
    """Seconds as a Go duration for helm's --timeout."""
    return f"{int(seconds)}s"


@dataclass(frozen=True, kw_only=True)
class DeployOptions:
    """How releases are deployed (from task options / invoke config)."""

    timeout: float = 600.0
    atomic: bool = True
    history_max: int = 10
    retries: int = 2
    backoff: float = 5.0
    dry_run: bool = False
    log_dir: Path = Path(".hubtasks/logs")
    work_dir: Path = Path(".hubtasks/work")
    kubeconfig_dir: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------- digests


def _file_digest(path: Path, digest: Any) -> None:
    digest.update(str(path).encode())
    digest.update(b"\0")
    try:
        digest.update(path.read_bytes())
    except OSError:
        digest.update(b"<missing>")
    digest.update(b"\0")


def _folder_files(folder: Path) -> list[Path]:
    """A chart folder's source files, without `helm dependency build` output."""
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).parts
        if path.is_file() and rel[0] not in BUILD_ARTIFACTS:
            out.append(path)
    return out


def release_digest(config: RepoConfig, job: Job) -> str:
    """A digest of every input of a release, recorded in helm's --description."""
    digest = hashlib.sha256()
    cluster = config.cluster(job.cluster)
    entry: Any = connection_view(cluster.doc)
    files: list[str] = list(cluster.credential_files)
    deps: tuple[str, ...] | None = None
    files += config.release_values(job.cluster, job.hub)
    if job.hub is None:
        entry = [entry, cluster.doc.get("support")]
    else:
        hub = cluster.hub(job.hub)
        files += filter(None, [hub.chart_override, hub.domain_override_file])
        entry, deps = [entry, hub_view(hub.entry)], hub.override_deps
    digest.update(json.dumps(entry, sort_keys=True, default=str).encode())
    for rel in files:
        _file_digest(config.root / rel, digest)
    for folder in config.chart_closure(job.chart, deps):
        for path in _folder_files(config.root / folder):
            _file_digest(path, digest)
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------- charts


def _rewrite_file_deps(doc: Any, chart_folder: Path) -> Any:
    """Point an override's `file://` dependencies at the original chart folder."""
    for dep in doc.get("dependencies") or () if isinstance(doc, dict) else ():
        repo = dep.get("repository") if isinstance(dep, dict) else None
        if isinstance(repo, str) and repo.startswith("file://"):
            target = (chart_folder / repo[len("file://"):]).resolve()
            dep["repository"] = f"file://{target}"
    return doc


def prepare_charts(config: RepoConfig, jobs: Iterable[Job], helm: HelmInfo,
                   options: DeployOptions) -> dict[JobKey, Path]:
    """Build each needed chart's dependencies once, before any parallel deploy.

    Plain charts are built in place, in dependency order, each folder once. A hub
    with a chart_override gets a private copy of its chart folder with the override
    as Chart.yaml (2i2c's semantics), built after the shared charts.
    """
    jobs = list(jobs)
    plain: list[Path] = []
    overrides: dict[JobKey, tuple[str, str]] = {}
    for job in jobs:
        hub = config.cluster(job.cluster).hub(job.hub) if job.hub else None
        if hub is not None and hub.chart_override:
            overrides[job.key] = (hub.chart, hub.chart_override)
            folders = config.chart_closure(hub.chart, hub.override_deps)[1:]
        else:
            folders = config.chart_closure(job.chart)
        plain += [config.root / f for f in folders if config.root / f not in plain]
    charts = {j.key: config.root / config.settings.chart_folder(j.chart) for j in jobs}
    # helm rewrites charts/ in place: a lock keeps two local runs (say validate and
    # deploy-all) from building the same folder at once.
    lock = config.root / ".hubtasks" / "chart-build.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with portalocker.Lock(str(lock), timeout=DEPENDENCY_BUILD_TIMEOUT):
        build_dependencies(helm, plain, env=options.env)
        for key, (chart, override) in sorted(overrides.items()):
            charts[key] = _override_copy(config, key, chart, override, options.work_dir)
            build_dependencies(helm, [charts[key]], env=options.env)
    return charts


def _override_copy(config: RepoConfig, key: JobKey, chart: str, override: str,
                   work_dir: Path) -> Path:
    source = config.root / config.settings.chart_folder(chart)
    target = (config.root / work_dir / "charts" / f"{key.cluster}--{key.release}" / chart)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*BUILD_ARTIFACTS))
    doc = yaml.safe_load((config.root / override).read_text(encoding="utf-8"))
    (target / CHART_FILE).write_text(yaml.safe_dump(_rewrite_file_deps(doc, source)))
    return target


# ---------------------------------------------------------------------------- credentials


class Credentials:
    """Per-cluster kubeconfig paths; decrypts sops-encrypted ones into a private folder."""

    def __init__(self, config: RepoConfig, options: DeployOptions, sops: Path | None) -> None:
        self.config, self.options, self.sops = config, options, sops
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[Path, str | None]] = {}
        self._private: Path | None = None

    def kubeconfig_dir(self) -> Path:
        folder = self.options.kubeconfig_dir or Path(self.config.settings.kubeconfig_dir)
        return folder if folder.is_absolute() else self.config.root / folder

    def for_cluster(self, cluster: Cluster) -> tuple[Path, str | None]:
        """(kubeconfig, context) of a cluster; raises HubtasksError naming the cluster."""
        with self._lock:
            if cluster.name not in self._cache:
                self._cache[cluster.name] = self._resolve(cluster)
            return self._cache[cluster.name]

    def _resolve(self, cluster: Cluster) -> tuple[Path, str | None]:
        if cluster.provider == "kubeconfig" and cluster.credential_files:
            path = self.config.root / cluster.credential_files[0]
            if is_secret_path(path) or is_sops_encrypted(path):
                path = self._decrypt(path)
            return path, cluster.kube_context
        path = self.kubeconfig_dir() / f"{cluster.name}.yaml"
        if not path.is_file():
            raise HubtasksError(
                f"cluster {cluster.name!r} ({cluster.provider}): no kubeconfig at {path}; "
                "write it in your credentials step (see README, 'Cluster credentials'), or "
                "pass --kubeconfig-dir")
        return path, None

    def _decrypt(self, path: Path) -> Path:
        if self.sops is None:
            raise HubtasksError(f"{path}: sops-encrypted kubeconfig but sops is not installed "
                                "(run `invoke install-tools`)")
        if self._private is None:
            self._private = Path(tempfile.mkdtemp(prefix="hubtasks-kube-"))
        with decrypted_values([path], sops=self.sops, env=self.options.env) as (plain,):
            target = self._private / f"{len(self._cache)}-{path.name}"
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Path(plain).read_bytes())
        return target

    def close(self) -> None:
        """Remove decrypted kubeconfigs."""
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None


# ---------------------------------------------------------------------------- values files


def needs_sops(config: RepoConfig, jobs: Iterable[Job], *, credentials: bool = False) -> bool:
    """Whether any values file (or, with `credentials`, credentials file) must be decrypted."""
    for job in jobs:
        files = list(config.release_values(job.cluster, job.hub))
        if credentials:
            files += config.cluster(job.cluster).credential_files
        if any(is_secret_path(f) or is_sops_encrypted(config.root / f) for f in files):
            return True
    return False


@contextlib.contextmanager
def release_values(config: RepoConfig, job: Job, *, sops: Path | None,
                   env: Mapping[str, str]) -> Iterator[tuple[tuple[Path, ...], list[str]]]:
    """A release's values files for helm (secrets decrypted), and the strings to redact."""
    files = [config.root / rel for rel in config.release_values(job.cluster, job.hub)]
    with decrypted_values(files, sops=sops or Path("sops"), env=env) as values:
        yield values, secret_strings(p for p, o in zip(values, files, strict=True) if p != o)


# ---------------------------------------------------------------------------- the runner


def secret_strings(decrypted: Iterable[Path]) -> list[str]:
    """Every scalar value of decrypted values files, to redact from helm's output.

    Charts may echo values in NOTES.txt or error messages; those must never reach a log.
    """
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif node is not None and not isinstance(node, bool):
            found.add(str(node))

    for path in decrypted:
        try:
            walk(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError):
            continue
    return sorted(found, key=len, reverse=True)


class HelmRunner:
    """The executor's Runner: one job in, one JobResult out. Thread-safe."""

    def __init__(self, config: RepoConfig, *, head: str | None, helm: HelmInfo,
                 options: DeployOptions, charts: Mapping[JobKey, Path],
                 credentials: Credentials, sops: Path | None) -> None:
        self.config, self.head, self.helm, self.options = config, head, helm, options
        self.charts, self.credentials, self.sops = charts, credentials, sops
        self.helm_options = HelmOptions(timeout=helm_duration(options.timeout), wait=True,
                                        atomic=options.atomic, history_max=options.history_max)

    def __call__(self, job: Job, cancel: threading.Event) -> JobResult:
        started, clock = utc_now(), time.monotonic()
        log = self.config.root / job_log_path(self.options.log_dir, job)
        try:
            outcome = self._run(job, cancel, log)
        except HubtasksError as err:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a", encoding="utf-8") as handle:
                handle.write(f"hubtasks: {err}\n")
            outcome = {"status": Status.FAILED, "error": str(err)}
        return JobResult(stage=job.stage, cluster=job.cluster, hub=job.hub, started_at=started,
                         ended_at=utc_now(), duration=round(time.monotonic() - clock, 3),
                         log=str(log), head=self.head, **outcome)

    def spec(self, job: Job, values: Sequence[Path]) -> ReleaseSpec:
        cluster = self.config.cluster(job.cluster)
        kubeconfig, context = (None, None) if self.options.dry_run else \
            self.credentials.for_cluster(cluster)
        return ReleaseSpec(release=job.release, namespace=job.release,
                           chart_dir=self.charts[job.key], values_files=tuple(values),
                           kubeconfig=kubeconfig, kube_context=context)

    def _run(self, job: Job, cancel: threading.Event, log: Path) -> dict[str, Any]:
        with release_values(self.config, job, sops=self.sops,
                            env=self.options.env) as (values, secrets):
            spec = self.spec(job, values)
            if self.options.dry_run:
                argv = template_argv(self.helm, spec, self.helm_options)
            else:
                description = describe_release(self.head or "worktree",
                                               release_digest(self.config, job))
                argv = upgrade_argv(self.helm, spec, self.helm_options, description=description)
            logger.info("$ %s", shlex.join(redact_argv(argv, secrets)))
            run = run_helm(argv, env=self.options.env, timeout=self.options.timeout + KILL_GRACE,
                           log_path=log, cancel=cancel, retries=self.options.retries,
                           backoff=self.options.backoff, secrets=secrets)
        if not run:
            logger.warning("helm exit %s after %d attempt(s): %s", run.exit_code, run.attempts,
                           run.error or "(no error output)")
        status = Status.SUCCEEDED if run else Status.CANCELLED if run.cancelled else \
            Status.FAILED
        error = run.error if status is not Status.SUCCEEDED else ""
        if run.timed_out:
            error = f"timed out after {self.options.timeout + KILL_GRACE:.0f}s; {error}"
        return {"status": status, "attempts": run.attempts, "exit_code": run.exit_code,
                "error": error, "reason": "interrupted" if run.cancelled else ""}
