"""Stuck releases on a real local cluster with real helm 3 and 4: kill -9 mid-upgrade, repair."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubtasks.deploying import repair
from hubtasks.dev.demo import FAIL_MARKER
from hubtasks.dev.localk8s import LocalClusters
from hubtasks.helm import ReleaseSpec, probe
from hubtasks.output.logs import JobLog

pytestmark = pytest.mark.cluster
CHART = """apiVersion: v2
name: tiny
version: 0.1.0
"""
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: tiny}
spec:
  selector: {matchLabels: {app: tiny}}
  template:
    metadata: {labels: {app: tiny}}
    spec:
      containers: [{name: c, image: "{{ .Values.image }}"}]
"""


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("repair")
    clusters = LocalClusters(["r1"], work / "clusters")
    try:
        clusters.start()
        clusters.write_kubeconfigs(work / "kc")
        yield work / "kc" / "r1.yaml"
    finally:
        clusters.stop()


def _chart(tmp_path: Path) -> Path:
    (tmp_path / "tiny/templates").mkdir(parents=True)
    (tmp_path / "tiny/Chart.yaml").write_text(CHART)
    (tmp_path / "tiny/templates/d.yaml").write_text(DEPLOYMENT)
    return tmp_path / "tiny"


def _upgrade(helm: Path, kc: Path, chart: Path, release: str, image: str) -> list[str]:
    return [str(helm), "upgrade", "--install", release, str(chart), "-n", release,
            "--create-namespace", "--kubeconfig", str(kc), "--set", f"image={image}",
            "--wait", "--timeout", "120s"]


def _history(helm: Path, kc: Path, release: str) -> list[tuple[str, str]]:
    out = subprocess.run([str(helm), "history", release, "-n", release, "-o", "json",
                          "--kubeconfig", str(kc)], capture_output=True, text=True, check=True)
    return [(e["status"], e.get("description", "")) for e in json.loads(out.stdout)]


def _kill_mid(argv: list[str], helm: Path, kc: Path, release: str, status: str) -> None:
    """Start helm, kill -9 it once the release shows `status`."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            found = subprocess.run([str(helm), "history", release, "-n", release, "-o", "json",
                                    "--kubeconfig", str(kc)], capture_output=True, text=True)
            if found.returncode == 0 and status in found.stdout:
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"never saw {status}")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)


def test_pending_upgrade_is_rolled_back_then_upgraded(helm: Path, kubeconfig: Path,
                                                      tmp_path: Path) -> None:
    chart, release = _chart(tmp_path), f"up{probe(helm, env=os.environ).major}"
    subprocess.run(_upgrade(helm, kubeconfig, chart, release, "ok/image:1"), check=True,
                   capture_output=True)
    _kill_mid(_upgrade(helm, kubeconfig, chart, release, f"x/{FAIL_MARKER}:1"), helm,
              kubeconfig, release, "pending-upgrade")
    info = probe(helm, env=os.environ)
    spec = ReleaseSpec(release=release, namespace=release, chart_dir=chart,
                       kubeconfig=kubeconfig)
    stuck = repair.find_stuck(info, spec, os.environ, "here")
    assert stuck is not None and stuck.status == "pending-upgrade"
    assert "rollback" in repair.refusal(stuck, "here") and f"{release} 1" in \
        repair.refusal(stuck, "here")
    summary = repair.repair(stuck, os.environ, JobLog(tmp_path / "log"), "here", timeout=120)
    assert summary == "rolled back pending-upgrade revision 2 to revision 1"
    subprocess.run(_upgrade(helm, kubeconfig, chart, release, "ok/image:2"), check=True,
                   capture_output=True)
    statuses = [s for s, _ in _history(helm, kubeconfig, release)]
    assert statuses[-2:] == ["superseded", "deployed"] and len(statuses) == 4
    assert "Rollback to 1" in _history(helm, kubeconfig, release)[2][1]


def test_pending_install_is_uninstalled(helm: Path, kubeconfig: Path, tmp_path: Path) -> None:
    chart, release = _chart(tmp_path), f"in{probe(helm, env=os.environ).major}"
    _kill_mid(_upgrade(helm, kubeconfig, chart, release, f"x/{FAIL_MARKER}:1"), helm,
              kubeconfig, release, "pending-install")
    info = probe(helm, env=os.environ)
    spec = ReleaseSpec(release=release, namespace=release, chart_dir=chart,
                       kubeconfig=kubeconfig)
    stuck = repair.find_stuck(info, spec, os.environ, "here")
    assert stuck is not None and "uninstall" in stuck.argv
    repair.repair(stuck, os.environ, JobLog(tmp_path / "log"), "here", timeout=120)
    assert repair.find_stuck(info, spec, os.environ, "here") is None
    subprocess.run(_upgrade(helm, kubeconfig, chart, release, "ok/image:1"), check=True,
                   capture_output=True)
    assert [s for s, _ in _history(helm, kubeconfig, release)] == ["deployed"]
