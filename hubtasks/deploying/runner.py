"""Doing one job: resolve a planned release to files, credentials and a helm command, run it.

The scheduler decides *when* jobs run; the runner decides *how* one runs. Everything a helm
process needs is passed to it explicitly (argv and env): nothing here touches os.environ or
the current directory, so jobs run safely in threads.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from hubtasks.binaries import find_kubectl
from hubtasks.config.model import RepoConfig
from hubtasks.deploying.before import BeforeSteps, StepContext
from hubtasks.deploying.credentials import Credentials
from hubtasks.deploying.guard import guarded
from hubtasks.deploying.health import check_for, check_hub, target_of
from hubtasks.deploying.identity import run_identity
from hubtasks.deploying.reach import UNREACHABLE, unreachable_note, webhook_note
from hubtasks.deploying.values import release_digest, release_values
from hubtasks.helm import (
    HelmInfo,
    HelmOptions,
    HelmRun,
    ReleaseSpec,
    describe_release,
    error_excerpt,
    run_helm,
    template_argv,
    upgrade_argv,
)
from hubtasks.model import INTERRUPTED, HubtasksError, Job, JobKey, JobResult, Status, utc_now
from hubtasks.options import DeployOptions
from hubtasks.output.logs import JobLog, job_log_path
from hubtasks.output.scrub import ScrubbedLog
from hubtasks.secrets import NO_SECRETS, Redactor

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class _Outcome:
    """What one job came to, before it is stamped with times into a JobResult."""

    status: Status
    attempts: int = 0
    exit_code: int | None = None
    error: str = ""
    reason: str = ""
    repaired: str = ""


def _outcome_of(run: HelmRun, timeout: float) -> _Outcome:
    if run:
        return _Outcome(status=Status.SUCCEEDED, attempts=run.attempts, exit_code=0)
    if run.cancelled:
        return _Outcome(status=Status.CANCELLED, attempts=run.attempts,
                        exit_code=run.exit_code, reason=INTERRUPTED)
    error = run.error
    # what went wrong first, where tables and the console (which show the first line) see it
    cause = webhook_note(run.outcome.lines) or unreachable_note(run.outcome.lines)
    if cause and not error.startswith((UNREACHABLE, "admission webhook")):
        error = f"{cause}; {error}"
    if run.timed_out:  # one number: the job's limit (helm's own ending time is later)
        error = "; ".join(filter(None, [
            cause, f"timed out after {timeout:.0f}s (helm's --timeout and the grace period)",
            error_excerpt(run.outcome.lines)]))
    return _Outcome(status=Status.FAILED, attempts=run.attempts, exit_code=run.exit_code,
                    error=error)


class _Secrets:
    """What one job must hide, as it becomes known: its values' secrets (and an encrypted
    domain) once decrypted, and its cluster's credentials' once resolved."""

    def __init__(self, credentials: Credentials, cluster: str) -> None:
        self.credentials, self.cluster = credentials, cluster
        self.values = NO_SECRETS
        self._merged: tuple[Redactor, Redactor, Redactor] | None = None  # values, creds, both

    @property
    def redactor(self) -> Redactor:
        """Both, merged once per change of either (a merge compiles a new pattern)."""
        credentials = self.credentials.redactor(self.cluster)
        if not credentials:
            return self.values
        if not self.values:
            return credentials
        if self._merged is None or self._merged[0] is not self.values \
                or self._merged[1] is not credentials:
            self._merged = (self.values, credentials, self.values.merged(credentials))
        return self._merged[2]


class _RedactedLog(JobLog):
    """A JobLog that redacts every line and note before it reaches `inner`: for what
    hubtasks' own kubectl and helm calls (Lease, repair) write to the job's log."""

    def __init__(self, inner: JobLog, redactor: Redactor) -> None:
        super().__init__(None)
        self.inner, self.redactor = inner, redactor

    def write(self, text: str) -> None:
        self.inner.write(self.redactor(text))

    def note(self, text: str) -> None:
        self.inner.note(self.redactor(text))


class HelmRunner:
    """The scheduler's Runner: one job in, one JobResult out. Thread-safe."""

    def __init__(self, config: RepoConfig, *, head: str | None, helm: HelmInfo,
                 options: DeployOptions, charts: Mapping[JobKey, Path],
                 credentials: Credentials, sops: Path | None,
                 chart_errors: Mapping[JobKey, str] | None = None) -> None:
        self.config, self.head, self.helm, self.options = config, head, helm, options
        self.charts, self.credentials, self.sops = charts, credentials, sops
        self.chart_errors = chart_errors or {}  # jobs whose chart failed to prepare
        self.kubectl = find_kubectl(options.env) if options.lock and not options.dry_run \
            else None
        self.identity = run_identity(options.env)
        self.before = BeforeSteps(config.settings.before)
        self.helm_options = HelmOptions(timeout=options.timeout, wait=True,
                                        atomic=options.atomic, history_max=options.history_max)

    def __call__(self, job: Job, cancel: threading.Event) -> JobResult:
        started, clock = utc_now(), time.monotonic()
        path = job_log_path(self.options.log_dir, job)
        digest: str | None = None
        secrets = _Secrets(self.credentials, job.cluster)
        with JobLog(path) as log:
            try:
                digest = release_digest(self.config, job)
                outcome = self._run(job, cancel, log, secrets)
                if outcome.status is Status.SUCCEEDED:
                    outcome = self._check_health(job, cancel, log, outcome, secrets.redactor)
            except HubtasksError as err:  # may carry kubectl's or helm's output: redacted
                error = secrets.redactor(str(err))
                log.note(f"error: {error}")
                # a step the interrupt stopped (a Lease wait, a repair) fails because of it
                outcome = _Outcome(status=Status.CANCELLED, error=error, reason=INTERRUPTED) \
                    if cancel.is_set() else _Outcome(status=Status.FAILED, error=error)
        return JobResult(stage=job.stage, cluster=job.cluster, hub=job.hub, started_at=started,
                         ended_at=utc_now(), duration=round(time.monotonic() - clock, 3),
                         log=str(path), head=self.head, status=outcome.status,
                         attempts=outcome.attempts, exit_code=outcome.exit_code,
                         error=outcome.error, reason=outcome.reason, digest=digest,
                         dry_run=self.options.dry_run,
                         repaired=outcome.repaired)

    def spec(self, job: Job, values: Sequence[Path]) -> ReleaseSpec:
        cluster = self.config.cluster(job.cluster)
        kubeconfig, context = (None, None) if self.options.dry_run else \
            self.credentials.for_cluster(cluster)
        return ReleaseSpec(release=job.release, namespace=job.namespace,
                           chart_dir=self.charts[job.key], values_files=tuple(values),
                           kubeconfig=kubeconfig, kube_context=context)

    def argv(self, job: Job, spec: ReleaseSpec) -> list[str]:
        if self.options.dry_run:
            return template_argv(self.helm, spec)
        description = describe_release(self.head or "worktree", release_digest(self.config, job))
        return upgrade_argv(self.helm, spec, self.helm_options, description=description)

    def _run(self, job: Job, cancel: threading.Event, log: JobLog,
             secrets: _Secrets) -> _Outcome:
        if job.invalid:  # broken inputs: fail at once, without helm (counts for the canary)
            error = "invalid inputs: " + "; ".join(job.invalid)
            log.note(f"error: {error}")
            return _Outcome(status=Status.FAILED, error=error)
        if job.key in self.chart_errors:  # its chart failed to prepare: fails at once too,
            # as any HubtasksError of a job does (logged and recorded, redacted)
            raise HubtasksError(f"chart not prepared: {self.chart_errors[job.key]}")
        with release_values(self.config, job, sops=self.sops,
                            env=self.options.env) as (values, redactor):
            secrets.values = redactor
            spec = self.spec(job, values)  # resolves (decrypts) the cluster's credentials
            redactor = secrets.redactor  # values' and credentials' secrets
            if not self.options.dry_run:  # before-steps (config/before.py), never on dry runs
                ctx = StepContext(kubeconfig=spec.kubeconfig, kube_context=spec.kube_context,
                                  root=self.config.root, env=self.options.env)
                steps = self.before.run(job, ctx, cancel=cancel, log=log, redactor=redactor)
                if not steps.ok:
                    return _Outcome(status=Status.CANCELLED if steps.cancelled else
                                    Status.FAILED, error=steps.error,
                                    reason=INTERRUPTED if steps.cancelled else "")
            argv = self.argv(job, spec)
            with self._guard(job, spec, cancel, _RedactedLog(log, redactor),
                             redactor) as repaired:
                if repaired:
                    logger.info("%s/%s: %s", job.cluster, job.release, repaired)
                logger.info("$ %s", shlex.join(redactor.argv(argv)))
                timeout = self.options.timeout + self.options.kill_grace
                out = ScrubbedLog(log) if self.options.dry_run else log  # no rendered Secret data
                run = run_helm(argv, env=self.options.env, timeout=timeout, log=out,
                               cancel=cancel, retries=self.options.retries,
                               backoff=self.options.backoff, redactor=redactor)
                if isinstance(out, ScrubbedLog):
                    out.flush()
        if not run:
            logger.warning("helm %s after %d attempt(s): %s", run.outcome.describe(),
                           run.attempts, _redacted_first(run.error, redactor))
        return replace(_outcome_of(run, timeout), repaired=repaired)

    def _guard(self, job: Job, spec: ReleaseSpec, cancel: threading.Event,
               log: JobLog, redactor: Redactor) -> contextlib.AbstractContextManager[str]:
        """The Lease and repair around an upgrade; nothing for a dry run."""
        if self.options.dry_run:
            return contextlib.nullcontext("")
        return guarded(job, spec, helm=self.helm, kubectl=self.kubectl, me=self.identity,
                       options=self.options, cancel=cancel, log=log, redact=redactor)


    def _check_health(self, job: Job, cancel: threading.Event, log: JobLog,
                      outcome: _Outcome, redactor: Redactor) -> _Outcome:
        """After a successful upgrade, the hub must answer (see deploying/health.py)."""
        check = check_for(self.config, job, self.options)
        if check is None:
            return outcome
        kubeconfig, context = self.credentials.for_cluster(self.config.cluster(job.cluster))
        verdict = check_hub(check, target_of(self.config, job, kubeconfig, context,
                                             sops=self.sops, env=self.options.env),
                            cancel=cancel, log=log, env=self.options.env, cwd=self.config.root,
                            redactor=redactor)
        if verdict.cancelled:
            return replace(outcome, status=Status.CANCELLED, reason=INTERRUPTED)
        if not verdict.healthy:
            return replace(outcome, status=Status.FAILED, error=f"unhealthy: {verdict.message}")
        return outcome


def _redacted_first(text: str, redactor: Redactor) -> str:
    return redactor(text.splitlines()[0]) if text.strip() else "(no error output)"
