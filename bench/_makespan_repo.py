"""The synthetic repo, helm stand-in and hub front door of bench/deploy_makespan.py.

Every release's work is known in advance: helm (the `sh` stand-in) sleeps `job_seconds`, and
each hub's health check is answered by a loopback server after `health_seconds`, so the
benchmark can tell helm's time from the health check's (`HealthTimes`, from the records
`hubtasks.deploying.health` logs per job).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from hubtasks.config.model import RepoConfig
from hubtasks.model import SUPPORT_RELEASE, Job, JobKey, Plan
from hubtasks.output.logs import JobFilter
from hubtasks.planning.planner import PlanRequest, build_plan

SECONDS = {SUPPORT_RELEASE: 0.3, "staging": 0.2}
PROD_SECONDS = (0.1, 0.4)
HEALTH_SECONDS = (0.02, 0.08)  # a hub's answer to GET /hub/health
KUBECONFIG_DIR = ".hubtasks/kubeconfigs"  # the default kubeconfig_dir of provider `local`
HEALTH_LOGGER = "hubtasks.deploying.health"
FAKE_HELM = """#!/bin/sh
# helm stand-in: `version` answers as helm 3; anything else sleeps for the `sleep:` value
# of its last -f values file, then exits 0.
if [ "$1" = version ]; then echo v3.99.0+gbench; exit 0; fi
if [ "$1" = history ]; then echo '[]'; exit 0; fi  # never stuck (deploying/repair.py)
values=
while [ $# -gt 0 ]; do
  if [ "$1" = -f ]; then values=$2; fi
  shift
done
read -r key seconds < "$values"
exec sleep "$seconds"
"""
CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-bench
data:
  sleep: {{ .Values.sleep | quote }}
"""


def job_seconds(cluster: str, release: str) -> float:
    """The stand-in's sleep for one release: fixed for canaries, seeded per prod hub."""
    if release in SECONDS:
        return SECONDS[release]
    return round(random.Random(f"{cluster}/{release}").uniform(*PROD_SECONDS), 2)


def health_seconds(cluster: str, hub: str) -> float:
    """How long the front door takes to answer one hub's health URL (seeded per hub)."""
    return round(random.Random(f"health:{cluster}/{hub}").uniform(*HEALTH_SECONDS), 3)


def write_repo(root: Path, clusters: Sequence[str], hubs: int, *,
               health_url: str | None) -> None:
    """Charts `basehub` and `support` (one ConfigMap each) and one folder per cluster.

    With `health_url` every hub is checked once (one try) at that URL; without, not at all.
    """
    for chart in ("basehub", "support"):
        folder = root / "helm-charts" / chart
        (folder / "templates").mkdir(parents=True)
        doc = {"apiVersion": "v2", "name": chart, "version": "0.1.0"}
        (folder / "Chart.yaml").write_text(yaml.safe_dump(doc))
        (folder / "templates" / "configmap.yaml").write_text(CONFIGMAP)
    check: Any = False if health_url is None else {"url": health_url, "attempts": 1,
                                                   "timeout": "10s"}
    (root / "hubtasks.yaml").write_text(yaml.safe_dump({"health_check": check}))
    for cluster in clusters:
        write_cluster(root, cluster, hubs)


def write_cluster(root: Path, cluster: str, hubs: int) -> None:
    """cluster.yaml with `staging` + prod hubs; each release's last values file sets `sleep`."""
    folder = root / "config/clusters" / cluster
    folder.mkdir(parents=True)
    names = ["staging", *(f"hub-{i}" for i in range(1, hubs))]
    (folder / "common.values.yaml").write_text("common: true\n")
    for release in [SUPPORT_RELEASE, *names]:
        (folder / f"{release}.values.yaml").write_text(
            f"sleep: {job_seconds(cluster, release)}\n")
    entries = [{"name": h, "display_name": h, "domain": f"{h}.{cluster}.example.org",
                "helm_chart": "basehub",
                "helm_chart_values_files": ["common.values.yaml", f"{h}.values.yaml"]}
               for h in names]
    doc = {"name": cluster, "provider": "local",
           "support": {"helm_chart_values_files": [f"{SUPPORT_RELEASE}.values.yaml"]},
           "hubs": entries}
    (folder / "cluster.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def write_fake_helm(folder: Path, clusters: Sequence[str], root: Path) -> Path:
    """The sleeping helm stand-in, and a placeholder kubeconfig per cluster for it to be given."""
    helm = folder / "helm"
    helm.write_text(FAKE_HELM)
    helm.chmod(0o755)
    for cluster in clusters:
        path = root / KUBECONFIG_DIR / f"{cluster}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("apiVersion: v1\nkind: Config\n")
    return helm


def plan_everything(config: RepoConfig) -> Plan:
    """The real planner's plan of every release (support, staging, prod)."""
    return build_plan(config, PlanRequest(everything=True, head="bench"))


def sleeps(jobs: Iterable[Job]) -> dict[JobKey, float]:
    """Each job's stand-in sleep: its helm work, as far as the schedule is concerned."""
    return {j.key: job_seconds(j.cluster, j.release) for j in jobs}


def health_delays(jobs: Iterable[Job]) -> dict[JobKey, float]:
    """Each hub job's front-door delay (support jobs have no check: 0)."""
    return {j.key: 0.0 if j.hub is None else health_seconds(j.cluster, j.hub) for j in jobs}


class DelayedFrontDoor:
    """Loopback server: `GET /<cluster>/<hub>/hub/health` -> 200 after `health_seconds`."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.stopping))
        self.server.daemon_threads = True
        self.server.request_queue_size = 64
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{{cluster}}/{{hub}}/hub/health"

    def __enter__(self) -> DelayedFrontDoor:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def _handler(stopping: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            cluster, hub = [*self.path.strip("/").split("/"), "", ""][:2]
            stopping.wait(health_seconds(cluster, hub))
            self.send_response(200)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler


class HealthTimes(logging.Handler):
    """Collects each job's health-check duration from `hubtasks.deploying.health`'s records.

    The check logs `health check passed in %.3fs: ...` once per job, in the job's thread
    (JobFilter names the job); `seconds` maps job names (`prod:c/h`) to those durations.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.addFilter(JobFilter())
        self.seconds: dict[str, float] = {}
        self._logger = logging.getLogger(HEALTH_LOGGER)

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if str(record.msg).startswith("health check %s in") and isinstance(args, tuple):
            self.seconds[str(getattr(record, "job", ""))] = float(str(args[1]))

    def __enter__(self) -> HealthTimes:
        self._logger.addHandler(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._logger.removeHandler(self)
