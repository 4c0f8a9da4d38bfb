"""helm 3 and helm 4: the one version probe, pure argv builders, and running helm with retries.

Builders return argv lists and never run anything; `run_helm` runs one command through the
process seam (`proc.run`), retrying transient failures. Every command names its kubeconfig
and context explicitly, so jobs for different clusters run in parallel threads of one process.
"""

from __future__ import annotations

import re
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from hubtasks import proc
from hubtasks.duration import go_duration
from hubtasks.model import HubtasksError
from hubtasks.output.logs import JobLog
from hubtasks.secrets import NO_SECRETS, Redactor

SUPPORTED_MAJORS = (3, 4)
VERSION_RE = re.compile(r"^\s*v?(\d+)\.(\d+)\.(\d+)\S*")
DESCRIPTION_RE = re.compile(r"\bhubtasks head=(?P<head>\S+) digest=(?P<digest>\S+)")
TOKEN_RE = re.compile(r"^[A-Za-z0-9._/-]+$")
PROBE_TIMEOUT = 60.0
# Failures worth another try: the API server or network blinked. Everything else fails at once.
# Not "another operation ... is in progress": that is a stuck release (see deploying/repair.py).
TRANSIENT_PATTERNS: tuple[str, ...] = (
    r"connection refused",
    r"connection reset(?: by peer)?",
    r"TLS handshake timeout",
    r"i/o timeout",
    r"http2: client connection lost",
    r"Client\.Timeout exceeded while awaiting headers",
    r"the server is currently unable to handle the request",
    r"etcdserver: (?:request timed out|leader changed)",
    r"unexpected EOF",
)
TRANSIENT_RE = re.compile("|".join(f"(?:{p})" for p in TRANSIENT_PATTERNS), re.IGNORECASE)
# Lines that say what went wrong: helm's `Error: ...`, klog errors, FAILED summaries.
ERROR_LINE_RE = re.compile(r"^\s*(?:Error\b|ERROR\b|error:|E\d{4} )|\bFAILED\b|\bfatal\b")
# An admission webhook the API server could not call (its own "connection refused"): the
# API server answered, so neither unreachable nor worth an upgrade-and-rollback retry.
WEBHOOK_RE = re.compile(r'failed calling webhook "([^"]+)"')
# helm's release statuses (pkg/release/status.go), read from `helm list`/`helm history`
DEPLOYED, SUPERSEDED, FAILED = "deployed", "superseded", "failed"
UNINSTALLED, UNINSTALLING = "uninstalled", "uninstalling"
PENDING = ("pending-install", "pending-upgrade", "pending-rollback")  # an operation in flight
WORKED = (DEPLOYED, SUPERSEDED)  # a revision that once deployed: a rollback target
# Variables that would silently point every job at one cluster or namespace; each helm call
# names its cluster with flags instead.
AMBIENT_CLUSTER_VARS = re.compile(r"^(?:KUBECONFIG|HELM_KUBE\w*|HELM_NAMESPACE)$")
EXCERPT_LINES = 20
EXCERPT_CHARS = 4_000
LINE_CHARS = 1_000

Sleep = Callable[[float], object]


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
    """How `helm upgrade` runs; `timeout` in seconds."""

    timeout: float = 600.0
    wait: bool = True
    atomic: bool = False
    force: bool = False
    history_max: int = 10
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise HubtasksError(f"timeout must be positive, not {self.timeout}")
        if self.history_max < 0:
            raise HubtasksError(f"history_max must be >= 0 (0 = no limit), not {self.history_max}")


@dataclass(frozen=True, kw_only=True)
class ReleaseDescription:
    """What hubtasks recorded in a release revision's description."""

    head: str
    digest: str


@dataclass(frozen=True, kw_only=True)
class HelmRun:
    """The outcome of `run_helm`: the last attempt, and how many there were."""

    outcome: proc.Outcome
    attempts: int
    error: str = ""

    def __bool__(self) -> bool:
        return bool(self.outcome)

    @property
    def exit_code(self) -> int | None:
        return self.outcome.exit_code

    @property
    def output(self) -> str:
        return self.outcome.output

    @property
    def stdout(self) -> str:
        """stdout, whole (with `keep_stdout`; else empty)."""
        return self.outcome.stdout.decode("utf-8", "replace")

    @property
    def timed_out(self) -> bool:
        return self.outcome.timed_out

    @property
    def cancelled(self) -> bool:
        return self.outcome.cancelled


# ---------------------------------------------------------------------------- the version

_probed: dict[str, HelmInfo] = {}
_probe_lock = threading.Lock()


def probe(path: Path, *, env: Mapping[str, str]) -> HelmInfo:
    """What `helm version --short` says, once per binary (thread-safe): the one probe."""
    with _probe_lock:
        if str(path) not in _probed:
            outcome = proc.run([str(path), "version", "--short"], env=env,
                               timeout=PROBE_TIMEOUT)
            if not outcome:
                raise HubtasksError(f"{path}: `helm version --short` {outcome.describe()}; "
                                    "check the path or run `hubtasks install-tools`")
            _probed[str(path)] = parse_version(path, outcome.output)
        return _probed[str(path)]


def parse_version(path: Path, text: str) -> HelmInfo:
    """A HelmInfo from `helm version --short` output such as `v3.17.3+ge4da497`."""
    match = VERSION_RE.match(text)
    if not match:
        raise HubtasksError(f"{path}: cannot read a version from `helm version --short`: {text!r}")
    major = int(match.group(1))
    if major not in SUPPORTED_MAJORS:
        raise HubtasksError(f"{path} is helm {major}; hubtasks supports helm 3 and helm 4")
    return HelmInfo(path=path, major=major, version=match.group(0).strip())


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


def cluster_args(kubeconfig: Path | None, context: str | None, what: str) -> list[str]:
    """`--kubeconfig FILE [--kube-context CTX]`: every call against a cluster names both."""
    if kubeconfig is None:
        raise HubtasksError(f"{what}: no kubeconfig; every helm call against a cluster must "
                            "name its kubeconfig (see README, 'Cluster credentials')")
    return ["--kubeconfig", str(kubeconfig), *(["--kube-context", context] if context else [])]


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
        "--namespace", spec.namespace, "--create-namespace",
        *cluster_args(spec.kubeconfig, spec.kube_context, f"release {spec.release!r}"),
        *_values_args(spec), *_version_flags(helm, opts),
        "--timeout", go_duration(opts.timeout), "--history-max", str(opts.history_max),
        "--description", description, *opts.extra_args,
    ]


def template_argv(helm: HelmInfo, spec: ReleaseSpec) -> list[str]:
    """`helm template` with the release's chart and values; never contacts a cluster."""
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


# ---------------------------------------------------------------------------- running helm


def helm_env(base_env: Mapping[str, str], *,
             extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A subprocess env: `base_env` without ambient cluster selectors, plus `extra`."""
    env = {k: v for k, v in base_env.items() if not AMBIENT_CLUSTER_VARS.match(k)}
    env.update(extra or {})
    return env


def step_command_env(base_env: Mapping[str, str], *, names: Mapping[str, str],
                     kubeconfig: Path | None, kube_context: str | None) -> dict[str, str]:
    """The env of a user's command about one release (a before-step, a health check): no
    ambient cluster selector (`KUBECONFIG`, `HELM_KUBE*`, `HELM_NAMESPACE`: an inherited
    `HELM_KUBETOKEN` would point its helm at another cluster), the release's `HUBTASKS_*`
    `names`, its kubeconfig as `KUBECONFIG` and its context as `HUBTASKS_KUBE_CONTEXT`."""
    env = helm_env(base_env, extra=names)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    if kube_context:
        env["HUBTASKS_KUBE_CONTEXT"] = kube_context
    return env


def is_transient(lines: Iterable[str]) -> bool:
    """True when helm's error says a retry may succeed (see TRANSIENT_PATTERNS), and no
    admission webhook failed (its dial error reads like a lost API server)."""
    lines = list(lines)
    return any(TRANSIENT_RE.search(line) for line in lines) and \
        not any(WEBHOOK_RE.search(line) for line in lines)


def error_excerpt(lines: Sequence[str]) -> str:
    """The last lines that say what went wrong (else the last lines), capped in size."""
    errors = [line for line in lines if ERROR_LINE_RE.search(line)]
    chosen = (errors or [line for line in lines if line.strip()])[-EXCERPT_LINES:]
    return "\n".join(line.rstrip()[:LINE_CHARS] for line in chosen)[-EXCERPT_CHARS:]


def failure_text(outcome: proc.Outcome) -> str:
    """What went wrong: the error excerpt, and how the process ended when that says more."""
    excerpt = error_excerpt(outcome.lines)
    how = outcome.describe()
    if outcome.exit_code not in (None, 0) and excerpt:
        return excerpt
    return f"helm {how}" + (f"; {excerpt}" if excerpt else "")


def _retryable(outcome: proc.Outcome) -> bool:
    failed = outcome.exit_code not in (0, None)
    return failed and not (outcome.timed_out or outcome.cancelled) and \
        is_transient(error_excerpt(outcome.lines).splitlines())


def _pause(delay: float, cancel: threading.Event, sleep: Sleep | None) -> bool:
    """Sleep before a retry; True when cancelled meanwhile (the default sleep wakes at once)."""
    if sleep is None:
        return cancel.wait(delay)
    sleep(delay)
    return cancel.is_set()


def run_helm(argv: Sequence[str], *, env: Mapping[str, str], timeout: float,
             log: JobLog | None = None, cancel: threading.Event | None = None,
             retries: int = 2, backoff: float = 2.0, sleep: Sleep | None = None,
             redactor: Redactor = NO_SECRETS, grace: float = proc.TERM_GRACE,
             keep_stdout: bool = False) -> HelmRun:
    """Run helm, retrying transient failures with exponential backoff.

    `timeout` bounds each attempt; the env passes through `helm_env`. Each attempt's
    command, output and ending go to `log`, all redacted. `keep_stdout`: stdout is kept
    whole and apart (`HelmRun.stdout`, for JSON to parse: the output is stderr and stdout
    together, and only its tail), and only stderr is logged.
    """
    cancel = threading.Event() if cancel is None else cancel
    log = log or JobLog(None)
    env = helm_env(env)
    if cancel.is_set():
        return HelmRun(outcome=proc.Outcome(argv=tuple(redactor.argv(argv)), cancelled=True),
                       attempts=0, error="cancelled before it started")
    count = 0
    while True:
        count += 1
        log.note(f"attempt {count}: $ {shlex.join(redactor.argv(argv))}")
        clock = time.monotonic()
        outcome = proc.run(argv, env=env, timeout=timeout, cancel=cancel, redact=redactor,
                           on_output=log.write, grace=grace, keep_stdout=keep_stdout)
        log.note(f"{outcome.describe()} after {time.monotonic() - clock:.1f}s")
        if outcome or outcome.cancelled or count > retries or not _retryable(outcome):
            break
        delay = backoff * 2 ** (count - 1)
        log.note(f"transient error; retrying in {delay:g}s")
        if _pause(delay, cancel, sleep):
            log.note("cancelled; no further attempt")
            outcome = replace(outcome, cancelled=True)
            break
    run = HelmRun(outcome=outcome, attempts=count)
    return run if run else replace(run, error=failure_text(outcome))
