"""The Lease against a real local API server (kube-apiserver 1.20 has coordination.k8s.io/v1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubtasks.deploying import lease
from hubtasks.deploying.identity import run_identity
from hubtasks.dev.localk8s import LocalClusters
from hubtasks.options import environment

pytestmark = pytest.mark.cluster
LIVE, OTHER = os.getpid(), os.getppid()  # holders whose processes exist


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("locks")
    clusters = LocalClusters(["c1"], work / "clusters")
    try:
        clusters.start()
        clusters.write_kubeconfigs(work / "kc")
        yield work / "kc" / "c1.yaml"
    finally:
        clusters.stop()


def _target(kubectl: Path, kubeconfig: Path, release: str, duration: int = 60) -> lease.Target:
    env = environment()
    return lease.Target(kubectl=kubectl, kubeconfig=kubeconfig, context=None, cluster="c1",
                        release=release, env=env, duration=duration)


def test_second_run_fails_naming_the_holder(kubectl: Path, kubeconfig: Path) -> None:
    target, notes = _target(kubectl, kubeconfig, "hub-a"), list[str]()
    first = run_identity({}, pid=LIVE, started="t1")
    second = run_identity({}, pid=OTHER, started="t2")
    held = rf"cluster c1 is being deployed by pid {LIVE} \(started t1\) on .* since 20"
    with lease.holding(target, first, timeout=5, cancel=threading.Event(), note=notes.append), \
            pytest.raises(lease.LeaseHeld, match=held):
        lease.acquire(target, second, timeout=1, cancel=threading.Event(), note=notes.append)
    found = lease.read(target)
    assert found is not None and not found["spec"].get("holderIdentity")  # released
    lease.acquire(target, second, timeout=1, cancel=threading.Event(), note=notes.append)


def test_legs_of_one_ci_run_share_the_lease(kubectl: Path, kubeconfig: Path) -> None:
    target = _target(kubectl, kubeconfig, "hub-b")
    ci = {"GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "1"}
    leg1, leg2 = run_identity(ci, pid=LIVE), run_identity(ci, pid=OTHER)
    assert leg1.holder == leg2.holder
    lease.acquire(target, leg1, timeout=1, cancel=threading.Event(), note=print)
    lease.acquire(target, leg2, timeout=1, cancel=threading.Event(), note=print)


def test_a_dead_holders_lease_expires(kubectl: Path, kubeconfig: Path) -> None:
    target = _target(kubectl, kubeconfig, "hub-c", duration=2)
    dead, alive = run_identity({}, pid=LIVE, started="x"), run_identity({}, pid=OTHER, started="y")
    lease.acquire(target, dead, timeout=1, cancel=threading.Event(), note=print)
    assert lease.try_acquire(target, alive) is not None  # still held
    time.sleep(3)  # the dead holder never renews
    lease.acquire(target, alive, timeout=5, cancel=threading.Event(), note=print)
    found = lease.read(target)
    assert found is not None and found["spec"]["holderIdentity"] == alive.holder
    assert found["spec"]["leaseTransitions"] == 1


def test_renewal_keeps_the_lease(kubectl: Path, kubeconfig: Path) -> None:
    target = _target(kubectl, kubeconfig, "hub-d", duration=3)
    me, other = run_identity({}, pid=LIVE, started="m"), run_identity({}, pid=OTHER, started="o")
    with lease.holding(target, me, timeout=1, cancel=threading.Event(), note=print):
        time.sleep(4)  # longer than the duration: only the renewal thread keeps it ours
        assert lease.try_acquire(target, other) is not None


def test_a_killed_local_holder_is_not_waited_for(kubectl: Path, kubeconfig: Path) -> None:
    """A holder on this host whose process is gone (kill -9) frees its Lease at once."""
    target = _target(kubectl, kubeconfig, "hub-e", duration=600)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = run_identity({}, pid=int(gone.stdout), started="d")
    lease.acquire(target, dead, timeout=1, cancel=threading.Event(), note=print)
    me = run_identity({}, pid=LIVE, started="m")
    lease.acquire(target, me, timeout=1, cancel=threading.Event(), note=print)
    found = lease.read(target)
    assert found is not None and found["spec"]["holderIdentity"] == me.holder


def test_a_job_costs_three_kubectl_calls(kubectl: Path, kubeconfig: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Take = read + write; release = one write on our last written copy (no read)."""
    target, me = _target(kubectl, kubeconfig, "hub-f"), run_identity({}, pid=LIVE, started="f")
    calls: list[str] = []
    real = lease.Target.run

    def counted(self: lease.Target, *args: str, stdin: bytes | None = None) -> object:
        calls.append(args[0])
        return real(self, *args, stdin=stdin)

    monkeypatch.setattr(lease.Target, "run", counted)
    for _ in range(2):  # the first creates the Lease, the second finds it released
        calls.clear()
        with lease.holding(target, me, timeout=1, cancel=threading.Event(), note=print):
            pass
        assert len(calls) == 3, calls
    assert calls == ["get", "replace", "replace"]
    found = lease.read(target)
    assert found is not None and not found["spec"].get("holderIdentity")


def _annotate(kubectl: Path, kubeconfig: Path, target: lease.Target, note: str) -> None:
    subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "--namespace", "default",
                    "annotate", "--overwrite", "lease", target.name, f"test={note}"],
                   check=True, capture_output=True, env=environment())


def test_a_stale_copy_is_decided_on_a_fresh_read(kubectl: Path, kubeconfig: Path) -> None:
    """Someone wrote the Lease while we held it: the release's write conflicts, a read says
    whether it is still ours (release it) or another run's (leave it)."""
    target, me = _target(kubectl, kubeconfig, "hub-g"), run_identity({}, pid=LIVE, started="g")
    notes: list[str] = []
    with lease.holding(target, me, timeout=1, cancel=threading.Event(), note=notes.append):
        _annotate(kubectl, kubeconfig, target, "touched")  # still ours, new resourceVersion
    assert notes[-1] == "lease default/hubtasks-hub-g released"
    found = lease.read(target)
    assert found is not None and not found["spec"].get("holderIdentity")
    other = run_identity({}, pid=OTHER, started="o")
    with lease.holding(target, me, timeout=1, cancel=threading.Event(), note=notes.append):
        taken = lease.read(target)
        assert taken is not None
        taken["spec"]["holderIdentity"] = other.holder  # as if ours had expired
        subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "replace", "-f", "-"],
                       input=json.dumps(taken).encode(), check=True, capture_output=True,
                       env=environment())
    found = lease.read(target)
    assert found is not None and found["spec"]["holderIdentity"] == other.holder
    assert notes[-1] == "lease default/hubtasks-hub-g was no longer ours: left as it is"
