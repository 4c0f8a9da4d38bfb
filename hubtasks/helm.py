"""helm commands for helm 3 and helm 4: pure argv builders, chart build order, dependency builds.

Builders return argv lists and never run anything; `run_helm` (helmrun.py) is the one place a
helm process starts. Every command names its kubeconfig and context explicitly, so jobs for
different clusters can run in parallel threads of one process.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .helmrun import (
    TRANSIENT_PATTERNS,
    HelmRun,
    helm_env,
    is_transient,
    redact,
    redact_argv,
    run_helm,
)
from .model import HubtasksError

__all__ = [
    "TRANSIENT_PATTERNS",
    "HelmInfo",
    "HelmOptions",
    "HelmRun",
    "ReleaseDescription",
    "ReleaseSpec",
    "build_dependencies",
    "chart_build_order",
    "dependency_build_argv",
    "describe_release",
    "detect_helm",
    "helm_env",
    "is_transient",
    "lint_argv",
    "parse_description",
    "redact",
    "redact_argv",
    "run_helm",
    "template_argv",
    "upgrade_argv",
]

SUPPORTED_MAJORS = (3, 4)
CHART_FILE = "Chart.yaml"
FILE_SCHEME = "file://"
GO_DURATION_RE = re.compile(r"^(?:\d+(?:\.\d+)?(?:h|m|s|ms))+$")
VERSION_RE = re.compile(r"^\s*v?(\d+)\.(\d+)\.(\d+)\S*")
DESCRIPTION_RE = re.compile(r"\bhubtasks head=(?P<head>\S+) digest=(?P<digest>\S+)")
TOKEN_RE = re.compile(r"^[A-Za-z0-9._/-]+$")
DEPENDENCY_BUILD_TIMEOUT = 600.0


@dataclass(frozen=True, kw_only=True)
class HelmInfo:
    """A helm binary and the version it reported."""

    path: Path
    major: int
    version: str


@dataclass(frozen=True, kw_only=True)
class ReleaseSpec:
    """What one release is: name, namespace, chart folder, values files and cluster access."""

    release: str
    namespace: str
    chart_dir: Path
    values_files: tuple[Path, ...] = ()
    kubeconfig: Path | None = None
    kube_context: str | None = None


@dataclass(frozen=True, kw_only=True)
class HelmOptions:
    """How `helm upgrade` runs; `timeout` is a Go duration ("10m") or seconds."""

    timeout: str | float = "10m"
    wait: bool = True
    atomic: bool = False
    force: bool = False
    history_max: int = 10
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        helm_timeout(self.timeout)  # fail when the options are built, not mid-deploy
        if self.history_max < 0:
            raise HubtasksError(f"history_max must be >= 0 (0 = no limit), not {self.history_max}")


@dataclass(frozen=True, kw_only=True)
class ReleaseDescription:
    """What hubtasks recorded in a release revision's description."""

    head: str
    digest: str


# ---------------------------------------------------------------------------- helm version

_detected: dict[str, HelmInfo] = {}
_detect_lock = threading.Lock()


def detect_helm(path: Path, *, env: Mapping[str, str] | None = None) -> HelmInfo:
    """Run `helm version --short` once per path (thread-safe) and return what it reports."""
    key = str(path)
    with _detect_lock:
        if key not in _detected:
            _detected[key] = _probe_helm(path, env)
        return _detected[key]


def _probe_helm(path: Path, env: Mapping[str, str] | None) -> HelmInfo:
    argv = [str(path), "version", "--short"]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60,
                             env=None if env is None else dict(env), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as err:
        raise HubtasksError(f"{path}: cannot run `helm version --short`: {err}; "
                            "check the path or run `invoke install-tools`") from err
    return parse_version(path, out.stdout)


def parse_version(path: Path, text: str) -> HelmInfo:
    """A HelmInfo from `helm version --short` output such as `v3.17.3+ge4da497`."""
    match = VERSION_RE.match(text)
    if not match:
        raise HubtasksError(f"{path}: cannot read a version from `helm version --short`: {text!r}")
    major = int(match.group(1))
    if major not in SUPPORTED_MAJORS:
        raise HubtasksError(f"{path} is helm {major}; hubtasks supports helm 3 and helm 4")
    return HelmInfo(path=path, major=major, version=match.group(0).strip())


def helm_timeout(timeout: str | float) -> str:
    """A timeout as helm's Go duration: seconds become `600s`, `10m` stays `10m`."""
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        if timeout <= 0:
            raise HubtasksError(f"timeout must be positive, not {timeout}")
        return f"{int(timeout)}s" if float(timeout).is_integer() else f"{timeout}s"
    if isinstance(timeout, str) and GO_DURATION_RE.match(timeout):
        return timeout
    raise HubtasksError(f"invalid helm timeout {timeout!r}: use e.g. 10m, 90s, 1h30m or seconds")


# ---------------------------------------------------------------------------- descriptions


def describe_release(head: str, digest: str) -> str:
    """The `--description` of a revision: `hubtasks head=<sha> digest=<hex>`."""
    for name, value in (("head", head), ("digest", digest)):
        if not TOKEN_RE.match(value):
            raise ValueError(f"{name} {value!r} must be one token of [A-Za-z0-9._/-]")
    return f"hubtasks head={head} digest={digest}"


def parse_description(text: str) -> ReleaseDescription | None:
    """The head and digest recorded by `describe_release`, or None for other descriptions."""
    match = DESCRIPTION_RE.search(text or "")
    if not match:
        return None
    return ReleaseDescription(head=match["head"], digest=match["digest"])


# ---------------------------------------------------------------------------- argv builders


def _cluster_args(spec: ReleaseSpec) -> list[str]:
    if spec.kubeconfig is None:
        raise HubtasksError(f"release {spec.release!r}: no kubeconfig; every helm call against a "
                            "cluster must name its kubeconfig (see README, 'Cluster credentials')")
    context = ["--kube-context", spec.kube_context] if spec.kube_context else []
    return ["--kubeconfig", str(spec.kubeconfig), *context]


def _values_args(spec: ReleaseSpec) -> list[str]:
    """`-f FILE` per values file, in order: later files override earlier ones."""
    return [arg for path in spec.values_files for arg in ("-f", str(path))]


def _version_flags(helm: HelmInfo, opts: HelmOptions) -> list[str]:
    """Flags renamed in helm 4: --atomic/--rollback-on-failure, --force/--force-replace."""
    v4 = helm.major >= 4
    flags = []
    if opts.wait:
        flags.append("--wait=watcher" if v4 else "--wait")
    if opts.atomic:
        flags.append("--rollback-on-failure" if v4 else "--atomic")
    if opts.force:
        flags.append("--force-replace" if v4 else "--force")
    return flags


def upgrade_argv(helm: HelmInfo, spec: ReleaseSpec, opts: HelmOptions, *,
                 description: str) -> list[str]:
    """`helm upgrade --install` of one release, with its cluster named explicitly."""
    return [
        str(helm.path), "upgrade", "--install", spec.release, str(spec.chart_dir),
        "--namespace", spec.namespace, "--create-namespace", *_cluster_args(spec),
        *_values_args(spec), *_version_flags(helm, opts),
        "--timeout", helm_timeout(opts.timeout), "--history-max", str(opts.history_max),
        "--description", description, *opts.extra_args,
    ]


def template_argv(helm: HelmInfo, spec: ReleaseSpec, opts: HelmOptions | None = None) -> list[str]:
    """`helm template` with the release's chart and values; never contacts a cluster."""
    # opts is accepted for symmetry with upgrade_argv; its flags are upgrade-only.
    return [str(helm.path), "template", spec.release, str(spec.chart_dir),
            "--namespace", spec.namespace, *_values_args(spec)]


def lint_argv(helm: HelmInfo, spec: ReleaseSpec, *, strict: bool = False) -> list[str]:
    """`helm lint` of the release's chart with its values."""
    return [str(helm.path), "lint", str(spec.chart_dir), "--namespace", spec.namespace,
            *_values_args(spec), *(["--strict"] if strict else [])]


def dependency_build_argv(helm: HelmInfo, chart_dir: Path, *,
                          skip_refresh: bool = False) -> list[str]:
    """`helm dependency build` of one chart folder."""
    return [str(helm.path), "dependency", "build", str(chart_dir),
            *(["--skip-refresh"] if skip_refresh else [])]


# ---------------------------------------------------------------------------- local charts


def read_chart(chart_dir: Path) -> dict[str, Any]:
    """A chart folder's Chart.yaml as a mapping."""
    path = chart_dir / CHART_FILE
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise HubtasksError(f"{path}: cannot read the chart: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise HubtasksError(f"{path}: invalid YAML: {err}") from err
    if not isinstance(doc, dict):
        raise HubtasksError(f"{path}: Chart.yaml must be a mapping")
    return doc


def chart_dependencies(chart_dir: Path) -> list[dict[str, Any]]:
    """The `dependencies` entries of a chart's Chart.yaml."""
    deps = read_chart(chart_dir).get("dependencies") or []
    if not isinstance(deps, list) or not all(isinstance(d, dict) for d in deps):
        raise HubtasksError(f"{chart_dir / CHART_FILE}: `dependencies` must be a list of mappings")
    return deps


def local_dependencies(chart_dir: Path) -> list[Path]:
    """Folders of a chart's `file://` dependencies; each must hold a Chart.yaml."""
    out = []
    for dep in chart_dependencies(chart_dir):
        repo = dep.get("repository")
        if isinstance(repo, str) and repo.startswith(FILE_SCHEME):
            target = (chart_dir / repo[len(FILE_SCHEME):]).resolve()
            if not (target / CHART_FILE).is_file():
                raise HubtasksError(
                    f"{chart_dir / CHART_FILE}: dependency {dep.get('name')!r} points at "
                    f"{repo}, but {target / CHART_FILE} does not exist; fix the path")
            out.append(target)
    return out


def chart_build_order(chart_dirs: Iterable[Path]) -> list[Path]:
    """Local charts and their `file://` dependencies, dependencies first, each folder once."""
    order: list[Path] = []
    for chart_dir in chart_dirs:
        _visit(Path(chart_dir).resolve(), order, [])
    return order


def _visit(chart_dir: Path, order: list[Path], stack: list[Path]) -> None:
    """Depth-first post-order walk; `stack` is the current path, to report cycles."""
    if chart_dir in order:
        return
    if chart_dir in stack:
        cycle = " -> ".join(p.name for p in [*stack[stack.index(chart_dir):], chart_dir])
        raise HubtasksError(f"chart dependency cycle: {cycle}; remove one file:// dependency")
    stack.append(chart_dir)
    for dep in local_dependencies(chart_dir):
        _visit(dep, order, stack)
    stack.pop()
    order.append(chart_dir)


def build_dependencies(helm: HelmInfo, chart_dirs: Sequence[Path], *, env: Mapping[str, str],
                       timeout: float = DEPENDENCY_BUILD_TIMEOUT) -> None:
    """`helm dependency build` each chart that has dependencies, in order, one at a time.

    Run this before any parallel deploy: helm rewrites `charts/` in place, so two builds of
    one folder at once would corrupt it.
    """
    for chart_dir in chart_build_order(chart_dirs):
        deps = chart_dependencies(chart_dir)
        if not deps:
            continue
        all_local = all(str(d.get("repository", "")).startswith(FILE_SCHEME) for d in deps)
        argv = dependency_build_argv(helm, chart_dir, skip_refresh=all_local)
        run = run_helm(argv, env=env, timeout=timeout, log_path=None, cancel=None)
        if not run:
            raise HubtasksError(
                f"chart {chart_dir}: `helm dependency build` failed (exit {run.exit_code}):\n"
                f"{run.error or run.output}\nIf Chart.lock is out of date, run "
                f"`helm dependency update {chart_dir}` and commit Chart.lock.")
