"""The health check of a hub after its upgrade: a canary passes only when its hub answers.

A check is `attempts` tries, `interval` apart; a try passes when the URL answers 2xx within
`timeout` and then, when configured, `command` exits 0 within `timeout`. Waits are on the
run's cancel Event, so Ctrl-C stops a check at once. It runs in the job's worker thread, so
it counts against the same limits as the upgrade.

Everything a check writes (its log notes, the command's output, the verdict's message, which
becomes the job's error on the console and in the results file) passes through the release's
redactor, plus the hub's domain when it came from an encrypted `domain_override_file`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hubtasks import proc
from hubtasks.config.domains import hub_domain
from hubtasks.config.health import HealthCheck
from hubtasks.config.model import RepoConfig
from hubtasks.deploying.probe import get
from hubtasks.helm import step_command_env
from hubtasks.model import Job
from hubtasks.options import DeployOptions
from hubtasks.output.logs import JobLog
from hubtasks.secrets import NO_SECRETS, Redactor, needs_decrypting

logger = logging.getLogger(__name__)



@dataclass(frozen=True, kw_only=True)
class Target:
    """The hub a check is about, and how its command reaches the cluster."""

    cluster: str
    hub: str
    domain: str
    namespace: str
    kubeconfig: Path | None = None
    kube_context: str | None = None
    domain_secret: bool = False  # read from an encrypted domain_override_file: redacted

    def redactor(self, base: Redactor = NO_SECRETS) -> Redactor:
        """`base`, also hiding the domain when it is secret."""
        return base.merged(Redactor([self.domain])) if self.domain_secret else base

    def url(self, template: str) -> str:
        return template.format(cluster=self.cluster, hub=self.hub, domain=self.domain,
                               namespace=self.namespace)


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """What a check came to; `message` is the last answer (`GET ... -> 503 after 3 tries`)."""

    healthy: bool
    message: str
    tries: int
    duration: float
    cancelled: bool = False


def check_for(config: RepoConfig, job: Job, options: DeployOptions) -> HealthCheck | None:
    """The check a job gets after its upgrade: None on dry runs, support jobs, or when off."""
    check = config.settings.health_check
    if options.dry_run or not options.health_check or job.hub is None or check is None:
        return None
    return check


def target_of(config: RepoConfig, job: Job, kubeconfig: Path | None, context: str | None, *,
              sops: Path | None, env: Mapping[str, str]) -> Target:
    """The Target of a hub job; its domain is the one after `domain_override_file`."""
    assert job.hub is not None
    hub = config.cluster(job.cluster).hub(job.hub)
    domain = hub_domain(config, hub, sops=sops, env=env)
    override = hub.domain_override_file
    secret = bool(override) and needs_decrypting(config.root / str(override))
    return Target(cluster=job.cluster, hub=job.hub, domain=domain,
                  namespace=job.namespace, kubeconfig=kubeconfig, kube_context=context,
                  domain_secret=secret)


def command_env(env: Mapping[str, str], target: Target) -> dict[str, str]:
    """The check command's environment: the run's, plus the hub's names and kubeconfig."""
    names = {"HUBTASKS_CLUSTER": target.cluster, "HUBTASKS_HUB": target.hub,
             "HUBTASKS_DOMAIN": target.domain, "HUBTASKS_NAMESPACE": target.namespace}
    return step_command_env(env, names=names, kubeconfig=target.kubeconfig,
                            kube_context=target.kube_context)


class _Try:
    """One try of a check: the URL, then the command; records the last answer."""

    def __init__(self, check: HealthCheck, target: Target, *, cancel: threading.Event,
                 log: JobLog, env: Mapping[str, str], cwd: Path | None,
                 redactor: Redactor) -> None:
        self.check, self.target, self.cancel, self.log = check, target, cancel, log
        self.env, self.cwd, self.redactor = env, cwd, redactor
        self.last = ""
        self.cancelled = False

    def __call__(self) -> bool:
        answer = get(self.target.url(self.check.url), timeout=self.check.timeout,
                     cancel=self.cancel, env=self.env, insecure=self.check.insecure)
        self.last, self.cancelled = self.redactor(answer.describe()), answer.cancelled
        self.log.note(f"health check: {self.last}")
        if not answer or self.check.command is None:
            return bool(answer)
        return self._command(self.check.command)

    def _command(self, argv: tuple[str, ...]) -> bool:
        self.log.note(f"health check: $ {' '.join(self.redactor.argv(argv))}")
        outcome = proc.run(argv, env=command_env(self.env, self.target),
                           timeout=self.check.timeout, cancel=self.cancel, cwd=self.cwd,
                           redact=self.redactor,
                           on_output=lambda line: self.log.write(line + "\n"))
        self.last = self.redactor(f"command {argv[0]} {outcome.describe()}")
        self.cancelled = outcome.cancelled
        self.log.note(f"health check: {self.last}")
        return bool(outcome)


def check_hub(check: HealthCheck, target: Target, *, cancel: threading.Event, log: JobLog,
              env: Mapping[str, str], cwd: Path | None = None,
              redactor: Redactor = NO_SECRETS) -> Verdict:
    """Run `check` against `target`: up to `attempts` tries, `interval` apart. Whatever it
    writes or returns is redacted (`redactor`: the release's, see the module's doc)."""
    clock = time.monotonic()
    if check.skips(target.cluster, target.hub):
        log.note("health check: skipped (matches health_check.skip)")
        return Verdict(healthy=True, message="skipped", tries=0, duration=0.0)
    attempt = _Try(check, target, cancel=cancel, log=log, env=env, cwd=cwd,
                   redactor=target.redactor(redactor))
    tries = 0
    while tries < check.attempts and not cancel.is_set():
        tries += 1
        if attempt():
            return _verdict(True, f"{attempt.last} after {_tries(tries)}", tries, clock)
        if attempt.cancelled or (tries < check.attempts and cancel.wait(check.interval)):
            break
    if cancel.is_set():
        return Verdict(healthy=False, cancelled=True, message="interrupted", tries=tries,
                       duration=round(time.monotonic() - clock, 3))
    return _verdict(False, f"{attempt.last} after {_tries(tries)}", tries, clock)


def _tries(n: int) -> str:
    return "1 try" if n == 1 else f"{n} tries"


def _verdict(healthy: bool, message: str, tries: int, clock: float) -> Verdict:
    duration = round(time.monotonic() - clock, 3)
    (logger.info if healthy else logger.warning)(
        "health check %s in %.3fs: %s", "passed" if healthy else "failed", duration, message)
    return Verdict(healthy=healthy, message=message, tries=tries, duration=duration)
