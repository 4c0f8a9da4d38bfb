"""Talking to local apiservers, and the pod-readiness loop that stands in for kubelets.

There is no kubelet on a local control plane: this loop marks pods Running/Ready the way a
kubelet would report them, except pods whose image contains a marker, which stay Pending so a
test can make a rollout fail.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .localk8s import LocalCluster

# Loopback only, with the apiserver's self-signed certificate.
INSECURE_TLS = ssl.create_default_context()
INSECURE_TLS.check_hostname = False
INSECURE_TLS.verify_mode = ssl.CERT_NONE
# Never through a proxy from the environment: every request goes to 127.0.0.1.
OPENER = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=INSECURE_TLS)
)


# ---------------------------------------------------------------- HTTP to the apiserver


def api_request(
    server: str,
    token: str,
    path: str,
    *,
    method: str = "GET",
    body: Any = None,
    content_type: str = "application/json",
    timeout: float = 5.0,
) -> Any:
    """One JSON request to an apiserver with a bearer token."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    req = urllib.request.Request(server + path, data=data, headers=headers, method=method)
    with OPENER.open(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def is_ready(url: str, token: str | None) -> bool:
    """Whether a health URL answers 200 `ok`."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        req = urllib.request.Request(url, headers=headers)
        with OPENER.open(req, timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


# ---------------------------------------------------------------- pod readiness


def pod_images(pod: Mapping[str, Any]) -> Iterator[str]:
    """Every image a pod's containers and init containers use."""
    spec = pod.get("spec", {})
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        yield str(container.get("image", ""))


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    """Whether a pod already reports phase Running and condition Ready."""
    status = pod.get("status", {})
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions", [])}
    return status.get("phase") == "Running" and conditions.get("Ready") == "True"


def container_status(container: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """A ready container's status in `state` (running, or terminated for init containers)."""
    name = container["name"]
    return {
        "name": name,
        "image": container.get("image", ""),
        "imageID": "",
        "ready": True,
        "started": True,
        "restartCount": 0,
        "containerID": f"hubtasks://{name}",
        "state": state,
    }


def ready_status(pod: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The status a kubelet would report once every container of `pod` runs and is ready."""
    spec = pod.get("spec", {})
    conditions = [
        {"type": kind, "status": "True", "lastTransitionTime": now}
        for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    running = [
        container_status(c, {"running": {"startedAt": now}}) for c in spec.get("containers", [])
    ]
    done = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    finished = [container_status(c, done) for c in spec.get("initContainers", [])]
    status = {"phase": "Running", "conditions": conditions, "containerStatuses": running}
    status |= {"initContainerStatuses": finished, "startTime": now, "podIP": "127.0.0.1"}
    return {"status": status | {"hostIP": "127.0.0.1"}}


class PodReadiness(threading.Thread):
    """Stands in for kubelets: marks pods Ready unless an image contains `fail_marker`."""

    def __init__(
        self,
        clusters: Sequence[LocalCluster],
        fail_marker: str,
        log: Path,
        interval: float,
        give_up_after: float | None = None,
    ) -> None:
        super().__init__(name="hubtasks-pod-readiness", daemon=True)
        self.clusters, self.fail_marker, self.log = list(clusters), fail_marker, log
        self.interval, self.give_up_after = interval, give_up_after
        self.stopping = threading.Event()

    def run(self) -> None:
        """Sweep every cluster until stopped (or, detached, until no apiserver answers)."""
        last_ok = time.monotonic()
        while not self.stopping.is_set():
            for cluster in self.clusters:
                try:
                    self.sweep(cluster)
                    last_ok = time.monotonic()
                except Exception as exc:  # an apiserver restarting must not end the loop
                    with self.log.open("a") as out:
                        out.write(f"{time.strftime('%H:%M:%S')} {cluster.name}: {exc!r}\n")
            if self.give_up_after and time.monotonic() - last_ok > self.give_up_after:
                return  # the clusters are gone: a detached sweeper must not outlive them
            self.stopping.wait(self.interval)

    def sweep(self, cluster: LocalCluster) -> None:
        """Mark every eligible pod of one cluster Running and Ready."""
        pods = api_request(cluster.server, cluster.token, "/api/v1/pods")["items"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for pod in pods:
            meta = pod["metadata"]
            if is_pod_ready(pod) or meta.get("deletionTimestamp"):
                continue
            if any(self.fail_marker in image for image in pod_images(pod)):
                continue
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status"
            api_request(
                cluster.server,
                cluster.token,
                path,
                method="PATCH",
                body=ready_status(pod, now),
                content_type="application/merge-patch+json",
            )
