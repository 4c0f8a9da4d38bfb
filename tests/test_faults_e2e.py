"""Issue 9's fault scenarios through the CLI, on real local clusters with real helm 3 and 4.

Judged on outcomes only: exit codes, `helm history` read from the clusters, the results
file and the logs. Each test leaves every release deployed and unbroken for the next one.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultworld import (
    CANARY,
    FAST,
    OPERATION_IN_PROGRESS,
    PROD,
    World,
    helm_children,
    make_world,
    set_broken,
    touch,
    wait_for,
)
from test_crash_records import alive

from hubtasks.binaries import find_kubectl
from hubtasks.deploying import lease
from hubtasks.deploying.identity import run_identity
from hubtasks.model import Status

pytestmark = pytest.mark.cluster
HELD = re.compile(r"cluster (\S+) is being deployed by (.+) on (\S+) since (\S+)")


@pytest.fixture(scope="module", params=[3, 4], ids=["helm3", "helm4"])
def world(request: pytest.FixtureRequest, helm_bins: dict[int, Path],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp(f"faults-helm{request.param}")
    for found in make_world(work, helm_bins[request.param]):
        first = found.run("deploy-all", "--everything", *FAST)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        yield found


def head(world: World, repo: Path | None = None) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo or world.repo, text=True,
                          capture_output=True, check=True).stdout.strip()


def clean_histories(world: World, since: dict[tuple[str, str], int] | None = None
                    ) -> dict[tuple[str, str], int]:
    """Revisions per release: each ends deployed, none was refused because another operation
    was in progress or the release "already exists", none failed after `since`'s counts."""
    counts = {}
    for cluster, release in world.releases():
        history = world.history(cluster, release)
        assert history and history[-1]["status"] == "deployed", (cluster, release, history)
        for entry in history:
            text = entry.get("description", "")
            assert OPERATION_IN_PROGRESS not in text and "already exists" not in text, history
        start = (since or {}).get((cluster, release), len(history))
        assert all(e["status"] != "failed" for e in history[start:]), (release, history)
        counts[cluster, release] = len(history)
    return counts


def pending(world: World) -> bool:
    """The canary's newest revision is pending-upgrade (helm is at work on it)."""
    return world.statuses(*CANARY)[-1:] == ["pending-upgrade"]


def clone(world: World, target: Path) -> Path:
    """A second checkout of the repo (another machine's), with the same kubeconfigs."""
    subprocess.run(["git", "clone", "-q", str(world.repo), str(target)], check=True)
    shutil.copytree(world.repo / ".hubtasks/kubeconfigs", target / ".hubtasks/kubeconfigs")
    return target


def output(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:]


# ------------------------------------------------------------------------- two runs at once


@pytest.mark.parametrize("where", ["same-folder", "two-clones"])
def test_two_deploy_alls_at_once_never_upgrade_a_release_together(
        world: World, tmp_path: Path, where: str) -> None:
    before = clean_histories(world)
    other = world.repo if where == "same-folder" else clone(world, tmp_path / "laptop")
    runs = [world.start("deploy-all", "--everything", *FAST, "--results", ".hubtasks/a.json",
                        out=tmp_path / "a.out"),
            world.start("deploy-all", "--everything", *FAST, "--results", ".hubtasks/b.json",
                        repo=other, out=tmp_path / "b.out")]
    codes = [run.wait(timeout=600) for run in runs]
    assert codes == [0, 0], output(tmp_path / "a.out") + output(tmp_path / "b.out")
    after = clean_histories(world, since=before)
    assert all(after[key] == before[key] + 2 for key in before), (before, after)
    for repo, name in ((world.repo, ".hubtasks/a.json"), (other, ".hubtasks/b.json")):
        records = world.results(name, repo=repo)
        assert len(records) == 5 and all(r.status is Status.SUCCEEDED for r in records.values())
    merged = world.run("report", "--results", ".hubtasks/a.json", "--results",
                       str(other / ".hubtasks/b.json"))
    assert merged.returncode == 0 and "failed" not in merged.stdout, merged.stdout


def test_a_second_run_on_the_same_results_file_is_refused(world: World, tmp_path: Path) -> None:
    base = head(world)
    set_broken(world.repo, *CANARY, True)  # the first run waits on pods that never get Ready
    try:
        first = world.start("deploy-all", "--base", base, *FAST, out=tmp_path / "first.out")
        wait_for("the first run's upgrade", lambda: helm_children(first.pid))
        second = world.run("deploy-all", "--base", base, *FAST)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "results file" in second.stderr and "is in use by another run (pid " \
            f"{first.pid} on {socket.gethostname()} since" in second.stderr
        assert first.wait(timeout=300) == 1, output(tmp_path / "first.out")
        plan = json.loads((world.repo / ".hubtasks/plan.json").read_text())
        assert world.results()["staging:edu-cloud/sandbox"].plan_id == plan["plan_id"]
        report = world.run("report", "--plan", ".hubtasks/plan.json")  # the first run's plan
        assert report.returncode == 1 and "no result" not in report.stderr, report.stderr
    finally:
        set_broken(world.repo, *CANARY, False)
    fixed = world.run("deploy-all", "--base", base, *FAST)
    assert fixed.returncode == 0, fixed.stdout[-3000:]
    clean_histories(world)


def test_a_held_release_waits_then_fails_naming_the_holder(world: World,
                                                           tmp_path: Path) -> None:
    """One run holds edu-cloud's canary (it waits on a pod); another, from a second clone,
    gives up after --lock-timeout on that cluster while bio-cloud goes on."""
    base = head(world)
    set_broken(world.repo, *CANARY, True)
    touch(world.repo, *PROD)
    touch(world.repo, "bio-cloud", "neuro")
    laptop = clone(world, tmp_path / "laptop")
    try:
        first = world.start("deploy-all", "--base", base, *FAST, out=tmp_path / "ci.out")
        wait_for("the canary's upgrade", lambda: pending(world))
        second = world.run("deploy-all", "--base", base, *FAST, "--lock-timeout", "3s",
                           repo=laptop)
        assert second.returncode == 1, second.stdout[-3000:] + second.stderr[-3000:]
        records = world.results(repo=laptop)
        canary = records["staging:edu-cloud/sandbox"]
        assert canary.status is Status.FAILED
        held = HELD.search(canary.error)
        assert held, canary.error
        assert held[1] == "edu-cloud" and held[3] == socket.gethostname()
        assert f"pid {first.pid} " in held[2] and "waited 3s (--lock-timeout)" in canary.error
        assert records["prod:bio-cloud/neuro"].status is Status.SUCCEEDED
        assert records["prod:edu-cloud/workshop"].status is Status.SKIPPED
        assert first.wait(timeout=300) == 1, output(tmp_path / "ci.out")
        failed = world.results()["staging:edu-cloud/sandbox"]
        assert failed.status is Status.FAILED and "being deployed by" not in failed.error
    finally:
        set_broken(world.repo, *CANARY, False)
    fixed = world.run("deploy-all", "--base", base, *FAST)
    assert fixed.returncode == 0, fixed.stdout[-3000:]
    clean_histories(world)


def _foreign_lease(world: World, cluster: str, release: str) -> lease.Target:
    """The release's Lease, held by another live process (so neither dead nor expiring)."""
    target = lease.Target(kubectl=find_kubectl(world.env), kubeconfig=world.kubeconfig(cluster),
                          context=None, cluster=cluster, release=release, env=world.env,
                          duration=600)
    holder = run_identity({}, pid=os.getppid(), started="then")
    lease.acquire(target, holder, timeout=5, cancel=threading.Event(), note=print)
    return target


def test_lock_timeout_and_no_lock_from_the_cli(world: World) -> None:
    base = head(world)
    touch(world.repo, *PROD)
    touch(world.repo, "bio-cloud", "neuro")
    target = _foreign_lease(world, *PROD)
    try:
        held = world.run("deploy-all", "--base", base, *FAST, "--lock-timeout", "2s")
        assert held.returncode == 1, held.stdout[-3000:]
        records = world.results()
        error = records["prod:edu-cloud/workshop"].error
        assert HELD.search(error) and f"pid {os.getppid()} (started then)" in error, error
        assert records["prod:bio-cloud/neuro"].status is Status.SUCCEEDED
        free = world.run("deploy-all", "--base", base, *FAST, "--no-lock")
        assert free.returncode == 0, free.stdout[-3000:]
        assert world.results()["prod:edu-cloud/workshop"].status is Status.SUCCEEDED
        found = lease.read(target)  # --no-lock never touched it
        assert found and found["spec"]["holderIdentity"].endswith("-then")
    finally:
        target.run("delete", "lease", target.name)
    clean_histories(world)


# ------------------------------------------------------------------ a cluster dying mid-stage


def test_an_api_server_killed_mid_canary_then_restarted(world: World, tmp_path: Path) -> None:
    base = head(world)
    set_broken(world.repo, *CANARY, True)
    touch(world.repo, *PROD)
    touch(world.repo, "bio-cloud", "neuro")
    run = world.start("deploy-all", "--base", base, *FAST, out=tmp_path / "run.out")
    wait_for("the canary's upgrade", lambda: pending(world))
    world.kill_apiserver("edu-cloud")
    try:
        assert run.wait(timeout=300) == 1, output(tmp_path / "run.out")
        while_down = world.run("deploy-hub", "--cluster", "edu-cloud", "--hub", "workshop",
                               *FAST, "--results", ".hubtasks/down.json")
        assert while_down.returncode == 1, while_down.stdout[-3000:] + while_down.stderr
        [down] = world.results(".hubtasks/down.json").values()
        assert "edu-cloud" in down.error and "unreachable" in down.error, down.error
    finally:
        world.restart_apiserver("edu-cloud")
    records = world.results()
    canary = records["staging:edu-cloud/sandbox"]
    assert canary.status is Status.FAILED and canary.cluster == "edu-cloud"
    said = canary.error.lower()  # the outage comes first, before any "not ready" of helm's
    assert "unreachable" in said.splitlines()[0], canary.error
    assert "not ready" not in said or said.index("unreachable") < said.index("not ready")
    assert records["prod:bio-cloud/neuro"].status is Status.SUCCEEDED
    assert records["prod:edu-cloud/workshop"].status is Status.SKIPPED
    assert world.statuses(*CANARY)[-1] == "pending-upgrade"  # left stuck by the outage
    set_broken(world.repo, *CANARY, False)
    touch(world.repo, *CANARY)
    again = world.run("deploy-all", "--base", base, *FAST)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    repaired = world.results()["staging:edu-cloud/sandbox"]
    assert repaired.status is Status.SUCCEEDED
    assert re.fullmatch(r"rolled back pending-upgrade revision \d+ to revision \d+",
                        repaired.repaired), repaired.repaired
    assert world.results()["prod:edu-cloud/workshop"].status is Status.SUCCEEDED
    history = world.history(*CANARY)
    assert "Rollback to" in history[-2]["description"], history
    assert history[-1]["status"] == "deployed"


# --------------------------------------------------------------------------- helm killed


def test_kill_9_of_helm_then_no_repair_then_repair(world: World, tmp_path: Path) -> None:
    base = head(world)
    set_broken(world.repo, *CANARY, True)
    run = world.start("deploy-all", "--base", base, *FAST, out=tmp_path / "run.out")
    wait_for("the canary's upgrade", lambda: pending(world)
             and helm_children(run.pid))
    for pid in helm_children(run.pid):
        os.kill(pid, signal.SIGKILL)
    assert run.wait(timeout=300) == 1, output(tmp_path / "run.out")
    killed = world.results()["staging:edu-cloud/sandbox"]
    assert killed.status is Status.FAILED and "killed by signal 9" in killed.error, killed
    assert world.statuses(*CANARY)[-1] == "pending-upgrade"
    set_broken(world.repo, *CANARY, False)
    touch(world.repo, *CANARY)
    refused = world.run("deploy-all", "--base", base, *FAST, "--no-repair")
    assert refused.returncode == 1, refused.stdout[-3000:]
    error = world.results()["staging:edu-cloud/sandbox"].error
    assert "is stuck in pending-upgrade" in error and "--no-repair" in error, error
    command = shlex.split(error.split("repair it with: ", 1)[1].splitlines()[0])
    assert command[:3] == [str(world.helm), "rollback", "sandbox"], command
    assert command[-2:] == ["--kubeconfig", str(world.kubeconfig("edu-cloud"))], command
    assert world.statuses(*CANARY)[-1] == "pending-upgrade"  # --no-repair changed nothing
    again = world.run("deploy-all", "--base", base, *FAST)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    record = world.results()["staging:edu-cloud/sandbox"]
    assert record.status is Status.SUCCEEDED and record.repaired.startswith(
        "rolled back pending-upgrade revision"), record
    assert "repair:" in Path(record.log or "").read_text()
    assert world.statuses(*CANARY)[-1] == "deployed"


def test_kill_9_of_hubtasks_then_an_immediate_rerun_repairs(world: World,
                                                            tmp_path: Path) -> None:
    """helm dies with hubtasks; the rerun takes the dead run's Lease at once (it would
    otherwise hold for 600 s) and repairs the release helm left pending."""
    base = head(world)
    set_broken(world.repo, *CANARY, True)
    run = world.start("deploy-all", "--base", base, *FAST, out=tmp_path / "run.out",
                      extra={"HUBTASKS_LEASE_SECONDS": "600"})
    wait_for("the canary's upgrade", lambda: pending(world) and helm_children(run.pid))
    helms = helm_children(run.pid)
    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    wait_for("helm to die with hubtasks", lambda: not any(alive(pid) for pid in helms), 30)
    assert world.statuses(*CANARY)[-1] == "pending-upgrade"
    set_broken(world.repo, *CANARY, False)
    touch(world.repo, *CANARY)
    again = world.run("deploy-all", "--base", base, *FAST, "--lock-timeout", "30s")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    record = world.results()["staging:edu-cloud/sandbox"]
    assert record.status is Status.SUCCEEDED and record.repaired.startswith(
        "rolled back pending-upgrade revision"), record
    assert OPERATION_IN_PROGRESS not in Path(record.log or "").read_text()
    assert world.statuses(*CANARY)[-1] == "deployed"
