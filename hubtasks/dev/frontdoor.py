"""A stand-in for the hubs' front door on local clusters: a loopback HTTP server.

Local clusters have no ingress, DNS or hub pods that answer, so health checks go here:
`GET /<cluster>/<hub>/hub/health` answers 200 when the hub's Deployments (namespace `<hub>`)
all have their replicas ready on that cluster's API server, 503 otherwise, 404 for an unknown
cluster. A hub whose namespace holds a ConfigMap containing `UNHEALTHY_MARKER` answers 503
even when ready: it stands in for a hub that starts but fails its requests (e.g. a broken
authenticator config), so a config change can deploy fine and still fail its check.
Point `health_check.url` at `url_template` (`http://127.0.0.1:PORT/{cluster}/{hub}/hub/health`).

Tests make a hub misbehave with `behave(cluster, hub, how)`: `ok`, `503`, `never` (no
answer), `slow` (answers 200 after `slow_seconds`) or `redirect` (302 to the hub's real
health path, i.e. healthy after one redirect). `hits` counts the requests per `cluster/hub`.
"""

from __future__ import annotations

import collections
import threading
import urllib.error
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from hubtasks.config.model import SETTINGS_FILE
from hubtasks.dev.apiserver import LocalCluster, api_request

BEHAVIOURS = ("ok", "503", "never", "slow", "redirect")
HEALTH_PATH = "hub/health"
UNHEALTHY_MARKER = "hubtasks-unhealthy"


class FrontDoor:
    """The loopback server; a context manager that stops it and unblocks hung answers."""

    def __init__(self, clusters: Mapping[str, LocalCluster], *, slow_seconds: float = 5.0) -> None:
        self.clusters = dict(clusters)
        self.slow_seconds = slow_seconds
        self.behaviours: dict[str, str] = {}
        self.hits: collections.Counter[str] = collections.Counter()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name="hubtasks-front-door")

    @property
    def url_template(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{{cluster}}/{{hub}}/hub/health"

    def behave(self, cluster: str, hub: str, how: str) -> None:
        if how not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {how!r} (known: {', '.join(BEHAVIOURS)})")
        self.behaviours[f"{cluster}/{hub}"] = how

    def count(self, name: str) -> None:
        with self._lock:
            self.hits[name] += 1

    def start(self) -> FrontDoor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FrontDoor:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def hub_ready(self, cluster: str, hub: str) -> bool:
        """Whether every Deployment in the hub's namespace has all its replicas ready."""
        items = self._list(cluster, f"/apis/apps/v1/namespaces/{hub}/deployments")
        return bool(items) and all(_deployment_ready(d) for d in items or ())

    def hub_healthy(self, cluster: str, hub: str) -> bool:
        """Ready, and no ConfigMap of the hub's namespace carries `UNHEALTHY_MARKER`."""
        if not self.hub_ready(cluster, hub):
            return False
        items = self._list(cluster, f"/api/v1/namespaces/{hub}/configmaps")
        return items is not None and not any(  # unreadable: not known to be healthy
            UNHEALTHY_MARKER in str(value) for item in items
            for value in (item.get("data") or {}).values())

    def _list(self, cluster: str, path: str) -> list[dict[str, Any]] | None:
        """The `items` of a list request to a cluster's API server; None when it fails."""
        found = self.clusters[cluster]
        try:
            return list(api_request(found.server, found.token, path)["items"])
        except (OSError, urllib.error.URLError, KeyError, TypeError):
            return None


def _deployment_ready(doc: Mapping[str, Any]) -> bool:
    wanted = int(doc.get("spec", {}).get("replicas", 1))
    return int(doc.get("status", {}).get("readyReplicas") or 0) >= max(wanted, 1)


def _handler(door: FrontDoor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = self.path.split("?")[0].strip("/").split("/", 2)
            if len(parts) != 3 or parts[0] not in door.clusters:
                return self._answer(404)
            cluster, hub, rest = parts
            how = door.behaviours.get(f"{cluster}/{hub}", "ok")
            if rest != HEALTH_PATH:  # the target of `redirect`
                return self._answer(200 if rest == f"real/{HEALTH_PATH}" else 404)
            door.count(f"{cluster}/{hub}")
            if how == "never":
                door.stopping.wait()
                return None
            if how == "slow":
                door.stopping.wait(door.slow_seconds)
            if how == "redirect":
                return self._answer(302, location=f"/{cluster}/{hub}/real/{HEALTH_PATH}")
            healthy = how != "503" and door.hub_healthy(cluster, hub)
            return self._answer(200 if healthy else 503)

        def _answer(self, code: int, location: str | None = None) -> None:
            body = b"ok\n" if code == 200 else f"{code}\n".encode()
            self.send_response(code)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the console belongs to the run's reporter."""

    return Handler


def point_checks_at(repo: Path, url: str) -> str:
    """Point `health_check.url` of a demo repo's hubtasks.yaml at `url`; returns the old text.

    Left uncommitted, and put back with `restore_settings`: it only holds while this process
    serves the front door.
    """
    path = repo / SETTINGS_FILE
    before = path.read_text(encoding="utf-8") if path.is_file() else ""
    doc = yaml.safe_load(before) or {}
    doc["health_check"] = {"url": url, "attempts": 3, "interval": "1s", "timeout": "5s"}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return before


def restore_settings(repo: Path, text: str) -> None:
    """Put back the hubtasks.yaml text `point_checks_at` returned."""
    (repo / SETTINGS_FILE).write_text(text, encoding="utf-8")
