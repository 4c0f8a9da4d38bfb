"""The pod-readiness loop that stands in for kubelets on local control planes.

There is no kubelet on a local control plane: this loop marks pods Running/Ready the way a
kubelet would report them, except pods whose image contains a marker, which stay Pending so a
test can make a rollout fail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hubtasks.dev.apiserver import LocalCluster, api_request

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
