"""Stuck releases: a release left in pending-install/-upgrade/-rollback is repaired first.

A helm killed mid-upgrade leaves its release `pending-*`, and every later upgrade fails with
"another operation (install/upgrade/rollback) is in progress". Like Flux's helm-controller,
when no live run holds the release (we hold its Lease), we roll back to the last deployed
revision, or uninstall a first install that never finished, then upgrade as usual.

helm's output is redacted with `redact` (the job's secrets: its cluster's decrypted
credentials) and every helm call stops on `cancel` (Ctrl-C, SIGTERM), so an interrupted run
never waits out a rollback until --timeout.
"""

from __future__ import annotations

import json
import shlex
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hubtasks import proc
from hubtasks.helm import PENDING, WORKED, HelmInfo, ReleaseSpec, cluster_args, helm_env
from hubtasks.model import HubtasksError
from hubtasks.output.logs import JobLog

QUERY_TIMEOUT = 60.0


@dataclass(frozen=True, kw_only=True)
class Stuck:
    """A pending release and the command that repairs it."""

    status: str
    revision: int
    argv: tuple[str, ...]
    summary: str  # e.g. "rolled back pending-upgrade revision 3 to revision 2"


def _base(helm: HelmInfo, spec: ReleaseSpec, *args: str) -> list[str]:
    return [str(helm.path), *args, "--namespace", spec.namespace,
            *cluster_args(spec.kubeconfig, spec.kube_context, f"release {spec.release!r}")]


def _query(argv: Sequence[str], env: Mapping[str, str], what: str, *,
           redact: proc.Redact | None = None, cancel: threading.Event | None = None) -> Any:
    outcome = proc.run(argv, env=helm_env(env), timeout=QUERY_TIMEOUT, redact=redact,
                       cancel=cancel, keep_stdout=True)  # JSON apart from stderr's warnings
    if outcome.cancelled:
        raise HubtasksError(f"{what}: cancelled")
    if not outcome:
        if "not found" in outcome.output.lower():
            return None
        last = outcome.output.strip().splitlines()[-1:] or [outcome.describe()]
        raise HubtasksError(f"{what}: {last[0]}")
    try:
        return json.loads(outcome.stdout)
    except json.JSONDecodeError:
        raise HubtasksError(f"{what}: helm printed no JSON") from None


def find_stuck(helm: HelmInfo, spec: ReleaseSpec, env: Mapping[str, str],
               where: str, *, redact: proc.Redact | None = None,
               cancel: threading.Event | None = None) -> Stuck | None:
    """The release's pending state and its repair, or None when it is not pending."""
    history = _query([*_base(helm, spec, "history", spec.release), "-o", "json"],
                     env, f"{where}: helm history", redact=redact, cancel=cancel)
    if not history:
        return None
    entries = sorted(history, key=lambda e: int(e.get("revision", 0)))
    last = entries[-1]
    status, revision = str(last.get("status", "")), int(last.get("revision", 0))
    if status not in PENDING:
        return None
    good = [e for e in entries[:-1] if e.get("status") in WORKED]
    if status == "pending-install" or not good:
        argv = _base(helm, spec, "uninstall", spec.release)
        summary = f"uninstalled {status} revision {revision} (no deployed revision before it)"
    else:
        target = int(good[-1]["revision"])
        argv = _base(helm, spec, "rollback", spec.release, str(target))
        summary = f"rolled back {status} revision {revision} to revision {target}"
    return Stuck(status=status, revision=revision, argv=tuple(argv), summary=summary)


def repair(stuck: Stuck, env: Mapping[str, str], log: JobLog, where: str,
           timeout: float, *, redact: proc.Redact | None = None,
           cancel: threading.Event | None = None) -> str:
    """Run the repair; its summary for the result, or HubtasksError with helm's error."""
    echo = shlex.join(redact(a) for a in stuck.argv) if redact else shlex.join(stuck.argv)
    log.note(f"repair: {where} is {stuck.status} (revision {stuck.revision}); $ {echo}")
    outcome = proc.run(stuck.argv, env=helm_env(env), timeout=timeout, on_output=log.write,
                       redact=redact, cancel=cancel)
    log.note(f"repair {outcome.describe()}")
    if not outcome:
        last = outcome.output.strip().splitlines()[-1:] or [outcome.describe()]
        raise HubtasksError(f"{where}: repair of {stuck.status} release "
                            f"{'cancelled' if outcome.cancelled else 'failed'} "
                            f"(`{echo}`): {last[0]}")
    return stuck.summary


def refusal(stuck: Stuck, where: str) -> str:
    """The --no-repair error: the release's state and the exact command that repairs it."""
    return (f"{where} is stuck in {stuck.status} (revision {stuck.revision}) and --no-repair "
            f"is set; repair it with: {shlex.join(stuck.argv)}")
