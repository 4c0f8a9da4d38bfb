"""Around each upgrade: hold the release's Lease, repair a stuck release, then upgrade.

The runner calls `guarded` for every job that talks to a cluster; it yields how the release
was repaired ("" when it needed nothing) and keeps the Lease until the upgrade is over.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from hubtasks import proc
from hubtasks.deploying import lease, repair
from hubtasks.deploying.identity import RunIdentity
from hubtasks.helm import HelmInfo, ReleaseSpec
from hubtasks.model import HubtasksError, Job
from hubtasks.options import DeployOptions
from hubtasks.output.logs import JobLog


def lease_seconds(options: DeployOptions) -> int:
    """leaseDurationSeconds: `HUBTASKS_LEASE_SECONDS` from the run's env, else the default."""
    text = options.env.get(lease.DURATION_VARIABLE, "")
    try:
        return max(1, int(text)) if text else lease.DURATION
    except ValueError:
        raise HubtasksError(f"{lease.DURATION_VARIABLE}={text!r} must be whole seconds") from None


@contextlib.contextmanager
def guarded(job: Job, spec: ReleaseSpec, *, helm: HelmInfo, kubectl: Path | None,
            me: RunIdentity, options: DeployOptions, cancel: threading.Event,
            log: JobLog, redact: proc.Redact | None = None) -> Iterator[str]:
    """Hold the Lease (unless --no-lock), repair a pending release (unless --no-repair);
    every call stops when `cancel` is set and hides the job's secrets (`redact`)."""
    where = f"release {job.release} on cluster {job.cluster}"
    with contextlib.ExitStack() as stack:
        if options.lock and kubectl is not None and spec.kubeconfig is not None:
            target = lease.Target(kubectl=kubectl, kubeconfig=spec.kubeconfig,
                                  context=spec.kube_context, cluster=job.cluster,
                                  release=job.release, env=options.env,
                                  duration=lease_seconds(options), redact=redact)
            stack.enter_context(lease.holding(target, me, timeout=options.lock_timeout,
                                              cancel=cancel, note=log.note))
        stuck = repair.find_stuck(helm, spec, options.env, where, redact=redact, cancel=cancel)
        if stuck is None:
            yield ""
            return
        if not options.repair:
            raise HubtasksError(repair.refusal(stuck, where))
        if not options.lock:
            raise HubtasksError(f"{where} is stuck in {stuck.status} and --no-lock is set, so "
                                "a live run may still own it; repair it by hand with: "
                                + " ".join(stuck.argv))
        yield repair.repair(stuck, options.env, log, where, timeout=options.timeout,
                            redact=redact, cancel=cancel)
