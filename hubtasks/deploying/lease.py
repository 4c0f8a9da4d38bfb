"""One upgrade of a release at a time: a `coordination.k8s.io/v1` Lease per release.

The Lease `hubtasks-<release>` in namespace `default` of the release's cluster names the run
holding it (see identity.py). It is taken before the upgrade, renewed by a thread while the
job works, and released at the end; a holder that dies stops renewing and the Lease expires
after `leaseDurationSeconds`. Every write goes through kubectl with the object's
`resourceVersion` (`kubectl create` / `kubectl replace`): a conflict means another run won,
and we read again. A job costs 3 kubectl calls: a read and a write to take the Lease, a
write to release it (our last written copy carries the resourceVersion), plus one write per
renewal.

Every kubectl call is redacted with the Target's `redact` (the job's secrets: its cluster's
decrypted credentials) and stops on the Target's `cancel` event, so Ctrl-C never waits out a
hung kubectl; only the release at the end runs on regardless (bounded by its own timeout),
so an interrupted run still hands the Lease back.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hubtasks import proc
from hubtasks.deploying.identity import RunIdentity, holder_gone
from hubtasks.deploying.reach import unreachable_note
from hubtasks.helm import helm_env
from hubtasks.model import HubtasksError

NAMESPACE = "default"
DURATION = 60  # leaseDurationSeconds: how long a dead holder blocks others
DURATION_VARIABLE = "HUBTASKS_LEASE_SECONDS"  # overrides DURATION (tests, slow networks)
KUBECTL_TIMEOUT = 30.0
POLL = 2.0
LOST = ("conflict", "alreadyexists", "already exists", "the object has been modified")
Note = Callable[[str], None]


class LeaseHeld(HubtasksError):
    """Another live run holds the Lease past --lock-timeout."""


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where a Lease lives: kubectl, the cluster's kubeconfig/context, and names for messages."""

    kubectl: Path
    kubeconfig: Path
    context: str | None
    cluster: str
    release: str
    env: Mapping[str, str]
    duration: int = DURATION
    redact: proc.Redact | None = None  # hides the job's secrets in kubectl's output
    cancel: threading.Event | None = None  # stops a kubectl call at once (Ctrl-C)

    @property
    def name(self) -> str:
        return f"hubtasks-{self.release}"

    def argv(self, *args: str) -> list[str]:
        return [str(self.kubectl), "--kubeconfig", str(self.kubeconfig),
                *([f"--context={self.context}"] if self.context else []),
                "--namespace", NAMESPACE, *args]

    def run(self, *args: str, stdin: bytes | None = None) -> proc.Outcome:
        return proc.run(self.argv(*args), env=helm_env(self.env), timeout=KUBECTL_TIMEOUT,
                        stdin=stdin, redact=self.redact, cancel=self.cancel)


def micro_time(moment: datetime | None = None) -> str:
    """A Kubernetes MicroTime: `2026-01-02T03:04:05.123456Z`."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None


def expired(lease: Mapping[str, Any], now: datetime | None = None) -> bool:
    """True when the Lease has no holder or its holder stopped renewing it in time."""
    spec = lease.get("spec") or {}
    if not spec.get("holderIdentity"):
        return True
    renewed = _parse_time(str(spec.get("renewTime") or spec.get("acquireTime") or ""))
    if renewed is None:
        return True
    age = ((now or datetime.now(UTC)) - renewed).total_seconds()
    return age > float(spec.get("leaseDurationSeconds") or DURATION)


def _holder_died(lease: Mapping[str, Any]) -> bool:
    notes = (lease.get("metadata") or {}).get("annotations") or {}
    return holder_gone(notes.get("hubtasks.host"), notes.get("hubtasks.pid"))


def holder_message(target: Target, lease: Mapping[str, Any]) -> str:
    """`cluster C is being deployed by RUN on HOST since T`, from the Lease's annotations."""
    notes = (lease.get("metadata") or {}).get("annotations") or {}
    spec = lease.get("spec") or {}
    run = notes.get("hubtasks.run") or spec.get("holderIdentity") or "another run"
    host = notes.get("hubtasks.host") or "an unknown host"
    since = spec.get("acquireTime") or "an unknown time"
    return (f"cluster {target.cluster} is being deployed by {run} on {host} since {since} "
            f"(Lease {NAMESPACE}/{target.name}, release {target.release})")


def _failed(target: Target, what: str, outcome: proc.Outcome) -> HubtasksError:
    text = outcome.output.strip().splitlines()[-1:] or [outcome.describe()]
    note = unreachable_note(text)
    return HubtasksError(f"cluster {target.cluster}: " + (f"{note}; " if note else "")
                         + f"cannot {what} Lease {NAMESPACE}/{target.name}: {text[0]}")


def _lost_race(outcome: proc.Outcome) -> bool:
    return any(word in outcome.output.lower() for word in LOST)


def _lease_json(text: str) -> dict[str, Any] | None:
    try:
        found = json.loads(text)
    except json.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def read(target: Target) -> dict[str, Any] | None:
    """The Lease object, or None when there is none."""
    outcome = target.run("get", "lease", target.name, "-o", "json", "--ignore-not-found")
    if not outcome:
        raise _failed(target, "read", outcome)
    text = outcome.output.strip()
    if not text:
        return None
    found = _lease_json(text)
    if found is None:
        raise HubtasksError(f"cluster {target.cluster}: kubectl printed no JSON for Lease "
                            f"{NAMESPACE}/{target.name}: {text[:200]}")
    return found


def _write(target: Target, verb: str, body: Mapping[str, Any]
           ) -> tuple[proc.Outcome, dict[str, Any] | None]:
    """`kubectl create|replace` of `body`: the outcome, and the Lease as written (with its new
    resourceVersion, so the next write of ours needs no read; None when not printed)."""
    outcome = target.run(verb, "-f", "-", "-o", "json", stdin=json.dumps(body).encode())
    return outcome, (_lease_json(outcome.output.strip()) if outcome else None)


def _held_by(me: RunIdentity, lease: Mapping[str, Any], transitions: int,
             duration: int) -> dict[str, Any]:
    """`lease` (metadata kept: name, resourceVersion) now held by `me`."""
    now = micro_time()
    metadata = dict(lease.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}),
                               "hubtasks.run": me.run, "hubtasks.host": me.host,
                               "hubtasks.pid": "" if me.pid is None else str(me.pid)}
    spec = {"holderIdentity": me.holder, "leaseDurationSeconds": duration,
            "acquireTime": now, "renewTime": now, "leaseTransitions": transitions}
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
            "spec": spec}


def _take(target: Target, me: RunIdentity) -> tuple[dict[str, Any] | None,
                                                    dict[str, Any] | None]:
    """Take the Lease if free, expired or ours: (the holder's Lease when another run holds
    it, else None; our copy as written, when kubectl printed it)."""
    lease = read(target)
    if lease is None:
        body = _held_by(me, {"metadata": {"name": target.name, "namespace": NAMESPACE}}, 0,
                        target.duration)
        outcome, written = _write(target, "create", body)
    else:
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") != me.holder and not expired(lease) \
                and not _holder_died(lease):
            return lease, None
        body = _held_by(me, lease, int(spec.get("leaseTransitions") or 0) + 1,
                        target.duration)
        if spec.get("holderIdentity") == me.holder:
            body["spec"]["acquireTime"] = spec.get("acquireTime") or body["spec"]["acquireTime"]
        outcome, written = _write(target, "replace", body)
    if outcome:
        return None, written
    if _lost_race(outcome):
        return read(target) or {}, None
    raise _failed(target, "take", outcome)


def try_acquire(target: Target, me: RunIdentity) -> dict[str, Any] | None:
    """Take the Lease if free, expired or ours: None when taken, else the holder's Lease."""
    return _take(target, me)[0]


def acquire(target: Target, me: RunIdentity, *, timeout: float, cancel: threading.Event,
            note: Note) -> dict[str, Any] | None:
    """Wait up to `timeout` seconds for the Lease; LeaseHeld naming the holder after that.
    Returns our copy as written (None when unknown), for `renew` and `release`."""
    deadline = time.monotonic() + timeout
    told = False
    while True:
        holder, ours = _take(target, me)
        if holder is None:
            note(f"lease {NAMESPACE}/{target.name} taken by {me.holder}")
            return ours
        message = holder_message(target, holder)
        if time.monotonic() >= deadline or cancel.is_set():
            raise LeaseHeld(f"{message}; waited {timeout:.0f}s (--lock-timeout)")
        if not told:
            note(f"waiting up to {timeout:.0f}s: {message}")
            told = True
        if cancel.wait(min(POLL, max(0.0, deadline - time.monotonic()))):
            raise LeaseHeld(f"{message}; cancelled while waiting")


def _ours(target: Target, me: RunIdentity,
          known: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A fresh copy of the Lease to write when it is ours (`known`: our last written copy,
    which saves a read), else None."""
    lease = copy.deepcopy(dict(known)) if known is not None else read(target)
    if lease is None or (lease.get("spec") or {}).get("holderIdentity") != me.holder:
        return None
    return lease


def renew(target: Target, me: RunIdentity, known: Mapping[str, Any] | None = None
          ) -> tuple[bool, dict[str, Any] | None]:
    """Move renewTime on: (False when the Lease is no longer ours, our copy as written).
    A conflict on `known` (someone wrote since) is decided on a fresh read."""
    lease = _ours(target, me, known)
    if lease is None:
        return False, None
    lease["spec"]["renewTime"] = micro_time()
    outcome, written = _write(target, "replace", lease)
    if not outcome and known is not None and _lost_race(outcome):
        return renew(target, me)
    return bool(outcome), written


def release(target: Target, me: RunIdentity, known: Mapping[str, Any] | None = None) -> bool:
    """Give the Lease up (holder cleared) if it is still ours: True when we cleared it. A
    conflict means it is not ours (on `known`, our last written copy, it is decided on a
    fresh read)."""
    lease = _ours(target, me, known)
    if lease is None:
        return False
    lease["spec"].pop("holderIdentity", None)
    lease["spec"]["renewTime"] = micro_time()
    outcome, _ = _write(target, "replace", lease)
    if outcome:
        return True
    if not _lost_race(outcome):
        raise _failed(target, "release", outcome)
    return release(target, me) if known is not None else False


def _renewing(target: Target, me: RunIdentity, stop: threading.Event, note: Note,
              latest: list[dict[str, Any] | None]) -> None:
    cancelled = target.cancel.is_set if target.cancel is not None else (lambda: False)
    while not stop.wait(target.duration / 3):
        try:
            renewed, latest[0] = renew(target, me, latest[0])
        except HubtasksError as err:
            latest[0], renewed = None, False
            if not cancelled():
                note(f"warning: {err}")
                continue
        if cancelled():
            return  # the job is being cancelled: the release follows at once
        if not renewed:
            note(f"warning: lease {NAMESPACE}/{target.name} could not be renewed")


@contextlib.contextmanager
def holding(target: Target, me: RunIdentity, *, timeout: float, cancel: threading.Event,
            note: Note) -> Iterator[None]:
    """Hold the Lease for the `with` body: take it, renew it in a thread, release it.

    Our last written copy of the Lease rides along (`latest`): its resourceVersion lets a
    renewal and the release write without reading first (3 kubectl calls a job, not 4).
    """
    active = target if target.cancel is not None else replace(target, cancel=cancel)
    latest = [acquire(active, me, timeout=timeout, cancel=cancel, note=note)]
    stop = threading.Event()
    thread = threading.Thread(target=_renewing, args=(active, me, stop, note, latest),
                              name=f"lease-{target.release}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=3 * KUBECTL_TIMEOUT + 5)  # a renewal: up to a write, read, write
        final = replace(target, cancel=None)  # hand the Lease back even when cancelled
        try:
            if release(final, me, None if thread.is_alive() else latest[0]):
                note(f"lease {NAMESPACE}/{target.name} released")
            else:
                note(f"lease {NAMESPACE}/{target.name} was no longer ours: left as it is")
        except HubtasksError as err:
            note(f"warning: {err} (it expires after {target.duration}s)")
