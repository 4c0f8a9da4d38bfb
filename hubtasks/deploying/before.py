"""Before-steps: the `before:` commands of a chart, run in the job's worker before helm.

A step runs via proc.run with cwd = the repo root and the run's env plus the release's
context (KUBECONFIG, HUBTASKS_KUBE_CONTEXT, HUBTASKS_CLUSTER, HUBTASKS_HUB, HUBTASKS_NAMESPACE,
HUBTASKS_RELEASE); its output goes to the job's log, redacted. A `once: cluster` step runs for
the first release of its chart on a cluster in the run; the others wait for it and share its
result, so its failure fails every such release of that cluster.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hubtasks import proc
from hubtasks.config.before import BeforeStep
from hubtasks.helm import step_command_env
from hubtasks.model import Job
from hubtasks.output.logs import JobLog
from hubtasks.secrets import Redactor

_POLL = 0.2  # how often a waiting job looks at its cancel Event


@dataclass(frozen=True, kw_only=True)
class StepsOutcome:
    """What a job's before-steps came to: ok, cancelled, or failed with `error`."""

    ok: bool = True
    cancelled: bool = False
    error: str = ""


@dataclass(frozen=True, kw_only=True)
class StepContext:
    """Where a job's steps run: its cluster's credentials, the repo root, the run's env."""

    kubeconfig: Path | None
    kube_context: str | None
    root: Path
    env: Mapping[str, str]


def step_env(env: Mapping[str, str], job: Job, ctx: StepContext) -> dict[str, str]:
    """The step's environment: the run's, plus the release's names and kubeconfig."""
    names = {"HUBTASKS_CLUSTER": job.cluster, "HUBTASKS_HUB": job.hub or "",
             "HUBTASKS_NAMESPACE": job.namespace, "HUBTASKS_RELEASE": job.release}
    return step_command_env(env, names=names, kubeconfig=ctx.kubeconfig,
                            kube_context=ctx.kube_context)


def run_step(step: BeforeStep, job: Job, ctx: StepContext, *, cancel: threading.Event,
             log: JobLog, redactor: Redactor) -> StepsOutcome:
    """Run one step now; its output is appended to `log`, redacted."""
    log.note(f"before-step {step.name!r}: $ {' '.join(redactor.argv(list(step.command)))}")
    outcome = proc.run(step.command, env=step_env(ctx.env, job, ctx), timeout=step.timeout,
                       cancel=cancel, cwd=ctx.root, redact=redactor,
                       on_output=lambda line: log.write(line + "\n"))
    log.note(f"before-step {step.name!r}: {outcome.describe()}")
    if outcome:
        return StepsOutcome()
    if outcome.cancelled:
        return StepsOutcome(ok=False, cancelled=True)
    tail = "; ".join(line.strip() for line in outcome.lines[-3:] if line.strip())
    return StepsOutcome(ok=False, error=f"before-step {step.name!r} failed "
                        f"({outcome.describe()})" + (f": {tail[:300]}" if tail else ""))


class _Once:
    """A `once: cluster` step's single run: the first caller runs it, the others wait."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result = StepsOutcome(ok=False, error="before-step did not finish")
        self.by = ""


class BeforeSteps:
    """The before-steps of one run. Thread-safe: one instance is shared by every job."""

    def __init__(self, steps: Mapping[str, tuple[BeforeStep, ...]]) -> None:
        self.steps = steps
        self._lock = threading.Lock()
        self._once: dict[tuple[str, str, int], _Once] = {}

    def run(self, job: Job, ctx: StepContext, *, cancel: threading.Event, log: JobLog,
            redactor: Redactor) -> StepsOutcome:
        """Run the steps of the job's chart in order; the first failure stops them."""
        for index, step in enumerate(self.steps.get(job.chart, ())):
            if step.once == "cluster":
                result = self._cluster_once(index, step, job, ctx, cancel=cancel, log=log,
                                            redactor=redactor)
            else:
                result = run_step(step, job, ctx, cancel=cancel, log=log, redactor=redactor)
            if not result.ok:
                return result
        return StepsOutcome()

    def _cluster_once(self, index: int, step: BeforeStep, job: Job, ctx: StepContext, *,
                      cancel: threading.Event, log: JobLog,
                      redactor: Redactor) -> StepsOutcome:
        with self._lock:
            key = (job.cluster, job.chart, index)
            entry = self._once.get(key)
            mine = entry is None
            if entry is None:
                entry = self._once[key] = _Once()
                entry.by = job.release
        if mine:
            try:
                entry.result = run_step(step, job, ctx, cancel=cancel, log=log,
                                        redactor=redactor)
            finally:
                entry.done.set()
            return entry.result
        log.note(f"before-step {step.name!r}: once per cluster, run by {entry.by}")
        while not entry.done.wait(_POLL):
            if cancel.is_set():
                return StepsOutcome(ok=False, cancelled=True)
        result = entry.result
        if result.ok or result.cancelled:
            log.note(f"before-step {step.name!r}: {'ok' if result.ok else 'cancelled'} "
                     f"(run by {entry.by})")
            return result
        return StepsOutcome(ok=False, error=f"{result.error} (once per cluster, run by "
                            f"{entry.by})")
