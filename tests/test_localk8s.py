"""hubtasks.dev.localk8s: real control planes on loopback, real helm 3 and 4."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hubtasks.dev import apiserver, detached, envtest, localk8s, podready, processes
from hubtasks.dev.localk8s import LocalClusters
from hubtasks.helm import probe
from hubtasks.model import HubtasksError

pytestmark = pytest.mark.cluster

NAMES = ("alpha", "beta")
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: 1
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
        - name: main
          image: {{ .Values.image }}
"""


def make_chart(directory: Path, image: str) -> Path:
    """A chart with one single-replica Deployment of `image`."""
    (directory / "templates").mkdir(parents=True)
    (directory / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
    (directory / "values.yaml").write_text(f"image: {image}\n")
    (directory / "templates" / "deployment.yaml").write_text(DEPLOYMENT)
    return directory


def helm_env(home: Path) -> dict[str, str]:
    """An environment that keeps helm's config and cache inside the test's folder."""
    dirs = {f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CONFIG", "CACHE", "DATA")}
    return {**os.environ, **dirs}


def run_helm(helm: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run helm with a private home; never raises on failure."""
    argv = [str(helm), *args]
    return subprocess.run(argv, env=helm_env(home), capture_output=True, text=True, check=False)


def upgrade(
    helm: Path, tmp: Path, kubeconfig: Path, release: str, chart: Path, timeout: str
) -> subprocess.CompletedProcess[str]:
    """`helm upgrade --install --wait` one release into namespace `release`."""
    return run_helm(
        helm,
        tmp,
        "upgrade",
        "--install",
        release,
        str(chart),
        "--namespace",
        release,
        "--create-namespace",
        "--wait",
        "--timeout",
        timeout,
        "--kubeconfig",
        str(kubeconfig),
    )


def release_status(helm: Path, tmp: Path, kubeconfig: Path, release: str) -> str:
    """The status `helm list` shows for `release` in namespace `release`."""
    out = run_helm(helm, tmp, "list", "-n", release, "-o", "json", "--kubeconfig", str(kubeconfig))
    assert out.returncode == 0, out.stderr
    statuses = {str(r["name"]): str(r["status"]) for r in json.loads(out.stdout)}
    return statuses[release]


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalClusters]:
    """Two clusters, started once for this module."""
    with LocalClusters(NAMES, tmp_path_factory.mktemp("clusters")) as started:
        yield started


def test_clusters_and_kubeconfigs(clusters: LocalClusters, tmp_path: Path) -> None:
    assert sorted(clusters.clusters) == sorted(NAMES)
    clusters.write_kubeconfigs(tmp_path)
    for name in NAMES:
        written = tmp_path / f"{name}.yaml"
        assert written.stat().st_mode & 0o777 == 0o600
        config = yaml.safe_load(written.read_text())
        assert config["current-context"] == name
        assert config["clusters"][0]["cluster"]["server"] == clusters.clusters[name].server


def test_helm_install_waits_for_ready_pods(
    helm: Path, clusters: LocalClusters, tmp_path: Path
) -> None:
    chart = make_chart(tmp_path / "chart", "registry.invalid/tiny:1")
    release = f"ok-helm{probe(helm, env=os.environ).major}"
    for cluster in clusters.clusters.values():
        result = upgrade(helm, tmp_path, cluster.kubeconfig, release, chart, "90s")
        assert result.returncode == 0, result.stderr
        assert release_status(helm, tmp_path, cluster.kubeconfig, release) == "deployed"
        # A second upgrade of a running release also waits and succeeds.
        again = upgrade(helm, tmp_path, cluster.kubeconfig, release, chart, "90s")
        assert again.returncode == 0, again.stderr


def test_helm_wait_fails_when_image_has_marker(
    helm: Path, clusters: LocalClusters, tmp_path: Path
) -> None:
    chart = make_chart(tmp_path / "chart", "registry.invalid/hubtasks-fail:1")
    release = f"bad-helm{probe(helm, env=os.environ).major}"
    kubeconfig = clusters.clusters["alpha"].kubeconfig
    result = upgrade(helm, tmp_path, kubeconfig, release, chart, "15s")
    assert result.returncode != 0
    assert release_status(helm, tmp_path, kubeconfig, release) == "failed"


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (a reaped child does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_leaves_no_processes(tmp_path: Path) -> None:
    local = LocalClusters(["solo"], tmp_path)
    local.start()
    pids = local.pids
    assert len(pids) == 3 and all(process_alive(pid) for pid in pids)
    local.stop()
    assert [pid for pid in pids if process_alive(pid)] == []
    local.stop()  # idempotent


def wait_for_ready_pod(cluster: apiserver.LocalCluster, name: str) -> bool:
    """Poll (up to a minute) until the pod reports Ready."""
    path = f"/api/v1/namespaces/default/pods/{name}"
    for _ in range(120):
        if podready.is_pod_ready(apiserver.api_request(cluster.server, cluster.token, path)):
            return True
        time.sleep(0.5)
    return False


def test_detached_clusters_keep_marking_pods_ready_until_stopped(tmp_path: Path) -> None:
    local = LocalClusters(["kept"], tmp_path, keep_alive=True)
    cluster = local.start()["kept"]
    state_file = tmp_path / "clusters.json"
    local.detach(state_file)
    local.stop()  # a no-op now: the clusters are no longer this object's
    pids = [p["pid"] for p in json.loads(state_file.read_text())["processes"]]
    assert len(pids) == 4 and all(process_alive(pid) for pid in pids)
    pod = {"metadata": {"name": "late"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}
    apiserver.api_request(
        cluster.server, cluster.token, "/api/v1/namespaces/default/pods", method="POST", body=pod
    )
    assert wait_for_ready_pod(cluster, "late")
    assert detached.stop_detached(state_file).startswith("stopped local clusters kept")
    assert [pid for pid in pids if process_alive(pid)] == []
    assert not state_file.exists()
    assert "no detached local clusters" in detached.stop_detached(state_file)


def test_start_retries_when_a_port_was_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_free_ports = processes.free_ports
    calls: list[list[int]] = []

    def first_port_taken(count: int) -> list[int]:
        ports = real_free_ports(count)
        if not calls:  # etcd's client port, first attempt only, is the busy one
            ports[0] = busy.getsockname()[1]
        calls.append(ports)
        return ports

    with socket.create_server(("127.0.0.1", 0)) as busy:
        monkeypatch.setattr(localk8s, "free_ports", first_port_taken)
        with LocalClusters(["retry"], tmp_path) as local:
            assert len(calls) == 2
            assert apiserver.is_ready(
                f"{local.clusters['retry'].server}/readyz", local.clusters["retry"].token
            )


def test_failing_component_is_reported_and_cleaned_up(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    for name in envtest.ENVTEST_BINARIES:
        path = assets / name
        path.parent.mkdir(exist_ok=True)
        path.write_text("#!/bin/sh\necho 'broken on purpose' >&2\nexit 3\n")
        path.chmod(0o755)
    local = LocalClusters(["solo"], tmp_path / "work", assets=assets)
    with pytest.raises(HubtasksError, match=r"(?s)solo kube-apiserver exited with 3.*on purpose"):
        local.start()
    assert local.pids and [pid for pid in local.pids if process_alive(pid)] == []


@pytest.mark.parametrize("names", [[], ["Bad_Name"], ["a", "a"]], ids=["empty", "bad", "dup"])
def test_invalid_names(names: list[str], tmp_path: Path) -> None:
    with pytest.raises(HubtasksError, match="DNS labels"):
        LocalClusters(names, tmp_path)


def test_ready_status_and_images() -> None:
    pod = {
        "spec": {
            "initContainers": [{"name": "i", "image": "init:1"}],
            "containers": [{"name": "c", "image": "app:1"}],
        }
    }
    assert list(podready.pod_images(pod)) == ["init:1", "app:1"]
    patched = podready.ready_status(pod, "2024-01-01T00:00:00Z")
    assert podready.is_pod_ready(patched)
    assert [s["ready"] for s in patched["status"]["containerStatuses"]] == [True]
