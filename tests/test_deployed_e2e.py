"""Deployed state against real local clusters, with real helm v3 and v4.

After a first deploy of the example, drift is made by hand with helm itself (a manual
upgrade, a rollback, an uninstall, a failed upgrade, a stuck pending upgrade, stray
releases) plus a repo change and an unreachable cluster; `status` must give each release
the right state, `plan --against deployed` exactly the drifted and changed releases (with
their canaries), and `deploy-all --against deployed --prune` must converge.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubtasks.dev.demo import broken_values, copy_example
from hubtasks.dev.localk8s import LocalClusters

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]
FAST = ["--timeout", "20s", "--retries", "0"]
CLUSTERS = ["bio-cloud", "edu-cloud", "geo-cloud"]
STATE_KEYS = {"cluster", "hub", "release", "namespace", "state", "revision", "deployed_head",
              "deployed_digest", "repo_digest", "helm_status", "updated"}


@dataclass
class World:
    repo: Path
    helm: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "SOPS_AGE_KEY_FILE": str(self.repo / "config/demo-age-key.txt"),
                "HUBTASKS_HELM": str(self.helm)}

    def run(self, *args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*HUBTASKS, *args], cwd=self.repo, env=self.env(),
                              capture_output=True, text=True, check=False, timeout=600)
        if check is not None:
            assert proc.returncode == check, proc.stdout[-4000:] + proc.stderr[-4000:]
        return proc

    def kube(self, cluster: str) -> list[str]:
        return ["--kubeconfig", str(self.repo / f".hubtasks/kubeconfigs/{cluster}.yaml")]

    def helm_cmd(self, cluster: str, *args: str) -> list[str]:
        return [str(self.helm), *args, *self.kube(cluster)]

    def helm_run(self, cluster: str, *args: str, check: bool = True) -> str:
        proc = subprocess.run(self.helm_cmd(cluster, *args), capture_output=True, text=True,
                              check=False, timeout=120)
        assert proc.returncode == 0 or not check, proc.stderr
        return proc.stdout

    def git(self, *args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       cwd=self.repo, check=True, capture_output=True, timeout=60)

    def states(self) -> dict[str, dict[str, Any]]:
        proc = self.run("status", "--format", "json", check=None)
        rows = json.loads(proc.stdout)
        assert all(set(row) == STATE_KEYS for row in rows), rows
        lost = sorted({r["cluster"] for r in rows if r["state"] == "unreachable"})
        assert proc.returncode == (1 if lost else 0), proc.stderr  # a lost cluster fails it
        assert not lost or f"unreachable, state unknown: {', '.join(lost)}" in proc.stderr
        return {f"{r['cluster']}/{r['release']}": r for r in rows}

    def plan(self) -> dict[str, Any]:
        return dict(json.loads(self.run("plan", "--against", "deployed", "--format",
                                        "json").stdout))


@pytest.fixture(scope="module", params=[3, 4], ids=["helm3", "helm4"])
def world(request: pytest.FixtureRequest, helm_bins: dict[int, Path],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp(f"deployed-helm{request.param}")
    repo = copy_example(ROOT, work / "repo")
    clusters = LocalClusters(CLUSTERS, work / "clusters")
    try:
        clusters.start()
        clusters.write_kubeconfigs(repo / ".hubtasks/kubeconfigs")
        found = World(repo=repo, helm=helm_bins[request.param])
        found.run("deploy-all", "--everything", *FAST)
        yield found
    finally:
        clusters.stop()


def _chart(world: World, name: str = "basehub") -> str:
    return str(world.repo / "helm-charts" / name)


def _stuck_upgrade(world: World, cluster: str, hub: str, broken: Path) -> None:
    """Start an upgrade that waits for pods that never get Ready, and kill helm mid-wait."""
    proc = subprocess.Popen(world.helm_cmd(cluster, "upgrade", hub, _chart(world), "-n", hub,
                                           "--reuse-values", "-f", str(broken), "--wait",
                                           "--timeout", "5m"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = world.helm_run(cluster, "status", hub, "-n", hub, "-o", "json", check=False)
            if out and json.loads(out)["info"]["status"] == "pending-upgrade":
                break
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


def test_everything_up_to_date_after_a_deploy(world: World) -> None:
    states = world.states()
    assert {r["state"] for r in states.values()} == {"up-to-date"}, states
    assert all(r["deployed_digest"] == r["repo_digest"] for r in states.values())
    assert world.plan()["jobs"] == []


def test_drift_gets_the_right_states_and_plan(world: World) -> None:
    chart, broken = _chart(world), world.repo / "broken.values.yaml"
    broken.write_text(yaml.safe_dump(broken_values("basehub")))
    # edu-cloud: a manual upgrade and a stuck pending upgrade
    world.helm_run("edu-cloud", "upgrade", "stats-101", chart, "-n", "stats-101",
                   "--reuse-values")
    _stuck_upgrade(world, "edu-cloud", "workshop", broken)
    # geo-cloud: a rollback, a failed upgrade, a stray release, and a repo change
    world.helm_run("geo-cloud", "upgrade", "seismo", chart, "-n", "seismo", "--reuse-values")
    world.helm_run("geo-cloud", "rollback", "seismo", "1", "-n", "seismo")
    broken_dask = world.repo / "broken-dask.values.yaml"
    broken_dask.write_text(yaml.safe_dump(broken_values("daskhub")))
    world.helm_run("geo-cloud", "upgrade", "ocean-lab", _chart(world, "daskhub"), "-n",
                   "ocean-lab", "--reuse-values", "-f", str(broken_dask), "--wait",
                   "--timeout", "3s", check=False)
    world.helm_run("geo-cloud", "install", "stray", chart, "-n", "stray", "--create-namespace")
    values = world.repo / "config/clusters/geo-cloud/staging.values.yaml"
    values.write_text(values.read_text() + "\n# a repo change\n")
    # bio-cloud: an uninstall, and a stray release hubtasks once installed
    world.helm_run("bio-cloud", "uninstall", "neuro", "-n", "neuro")
    world.helm_run("bio-cloud", "install", "old-hub", chart, "-n", "old-hub",
                   "--create-namespace", "--description", "hubtasks head=abc digest=0123")
    # a cluster nobody can reach
    folder = world.repo / "config/clusters/gone-cloud"
    folder.mkdir()
    (folder / "cluster.yaml").write_text(yaml.safe_dump({
        "name": "gone-cloud", "provider": "local",
        "hubs": [{"name": "lost", "domain": "lost.example.org", "helm_chart": "basehub",
                  "helm_chart_values_files": []}]}))
    kubeconfig = yaml.safe_load((world.repo / ".hubtasks/kubeconfigs/bio-cloud.yaml")
                                .read_text())
    for entry in kubeconfig["clusters"]:
        entry["cluster"]["server"] = "https://127.0.0.1:9"
    (world.repo / ".hubtasks/kubeconfigs/gone-cloud.yaml").write_text(yaml.safe_dump(kubeconfig))
    world.git("add", "-A")
    world.git("commit", "-qm", "drift")

    states = {k: v["state"] for k, v in world.states().items()}
    assert states["edu-cloud/stats-101"] == "changed-outside"
    assert states["edu-cloud/workshop"] == "pending"
    assert states["geo-cloud/seismo"] == "changed-outside"
    assert states["geo-cloud/ocean-lab"] == "failed"
    assert states["geo-cloud/stray"] == "orphan"
    assert states["geo-cloud/staging"] == "changed"
    assert states["bio-cloud/neuro"] == "missing"
    assert states["bio-cloud/old-hub"] == "orphan"
    assert states["gone-cloud/lost"] == "unreachable"
    drifted = {"edu-cloud/stats-101", "edu-cloud/workshop", "geo-cloud/seismo",
               "geo-cloud/ocean-lab", "geo-cloud/stray", "geo-cloud/staging",
               "bio-cloud/neuro", "bio-cloud/old-hub", "gone-cloud/lost"}
    assert {k for k, v in states.items() if v != "up-to-date"} == drifted
    table = world.run("status", check=1).stdout
    assert "unreachable" in table and "127.0.0.1:9" in table

    plan = world.plan()
    planned = {(j["stage"], f"{j['cluster']}/{j['hub']}"): j["reasons"] for j in plan["jobs"]}
    assert set(planned) == {
        ("staging", "edu-cloud/sandbox"), ("prod", "edu-cloud/stats-101"),
        ("prod", "edu-cloud/workshop"), ("staging", "geo-cloud/staging"),
        ("staging", "geo-cloud/dask-staging"), ("prod", "geo-cloud/seismo"),
        ("prod", "geo-cloud/ocean-lab"), ("prod", "bio-cloud/neuro")}
    assert "deployed state changed-outside" in planned[("prod", "edu-cloud/stats-101")]
    assert "deployed state failed" in planned[("prod", "geo-cloud/ocean-lab")]
    assert any(r.startswith("canary for prod hubs") for r in planned[("staging",
                                                                      "edu-cloud/sandbox")])
    assert plan["orphans"] == [
        {"cluster": "bio-cloud", "release": "old-hub", "namespace": "old-hub"},
        {"cluster": "geo-cloud", "release": "stray", "namespace": "stray"}]
    assert any("gone-cloud" in note for note in plan["notes"])
    assert "Orphans" in world.run("plan", "--against", "deployed").stdout


def test_deploy_all_against_deployed_converges(world: World) -> None:
    # helm refuses to upgrade a release with an operation in progress: roll it back first
    world.helm_run("edu-cloud", "rollback", "workshop", "1", "-n", "workshop")
    assert world.states()["edu-cloud/workshop"]["state"] == "changed-outside"
    # gone-cloud can't be read: the converge does the rest, and fails for it
    done = world.run("deploy-all", "--against", "deployed", *FAST, check=1)
    assert "stray" in done.stdout
    assert "1 cluster(s) unreachable, not converged: gone-cloud" in done.stderr
    assert "old-hub" in world.helm_run("bio-cloud", "list", "-A", "-q")  # no --prune: kept
    out = world.run("deploy-all", "--against", "deployed", "--prune", *FAST, check=1).stdout
    assert "prune bio-cloud/old-hub/old-hub: uninstalled" in out
    assert "prune geo-cloud/stray/stray: kept: not installed by hubtasks" in out
    assert "old-hub" not in world.helm_run("bio-cloud", "list", "-A", "-q")
    assert "stray" in world.helm_run("geo-cloud", "list", "-A", "-q")
    plan = world.plan()
    assert plan["jobs"] == []
    assert plan["orphans"] == [{"cluster": "geo-cloud", "release": "stray",
                                "namespace": "stray"}]
    states = world.states()
    assert {k for k, v in states.items() if v["state"] != "up-to-date"} == {
        "geo-cloud/stray", "gone-cloud/lost"}
