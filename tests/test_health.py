"""Health checks without clusters: the setting, the urllib probe, attempts and commands.

The probe talks to a real loopback http.server that answers 200, 503, never, slowly or with
a redirect; the check runs real commands through proc.run.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hubtasks.config.health import HealthCheck
from hubtasks.config.load import settings_from_doc
from hubtasks.config.yamlfiles import ConfigError
from hubtasks.deploying.health import Target, check_hub, command_env
from hubtasks.deploying.probe import get, proxies
from hubtasks.output.logs import JobLog

NO_PROXY_ENV: dict[str, str] = {}


class Server:
    """A loopback server whose paths say how to answer: /ok /503 /never /slow /redirect."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.hits: list[str] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits.append(self.path)
                name = self.path.strip("/").split("/")[0]
                if name == "never":
                    server.stop.wait()
                    return
                if name == "slow":
                    server.stop.wait(3)
                if name == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "/ok")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                code = 503 if name == "503" else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    found = Server()
    yield found
    found.stop.set()
    found.httpd.shutdown()
    found.httpd.server_close()


def probe(url: str, timeout: float = 2.0, cancel: threading.Event | None = None) -> Any:
    return get(url, timeout=timeout, cancel=cancel or threading.Event(), env=NO_PROXY_ENV)


@pytest.mark.parametrize(("path", "status", "ok"), [
    ("/ok", 200, True), ("/503", 503, False), ("/redirect", 200, True)],
    ids=["200", "503", "redirect-followed"])
def test_probe_answers(server: Server, path: str, status: int, ok: bool) -> None:
    answer = probe(server.url(path))
    assert answer.status == status and bool(answer) is ok
    assert answer.describe() == f"GET {server.url(path)} -> {status}"


@pytest.mark.parametrize("path", ["/never", "/slow"])
def test_probe_times_out_per_try(server: Server, path: str) -> None:
    answer = probe(server.url(path), timeout=0.5)
    assert not answer and answer.status is None
    assert answer.describe().endswith("-> timed out after 0.5s")


def test_probe_refused_and_cancelled(server: Server) -> None:
    port = server.httpd.server_address[1]
    server.httpd.shutdown()
    server.httpd.server_close()
    refused = probe(f"http://127.0.0.1:{port}/ok")
    assert not refused and refused.status is None and "refused" in refused.describe().lower()
    cancel = threading.Event()
    cancel.set()
    assert probe("http://127.0.0.1:9/never", cancel=cancel).cancelled


def test_probe_verifies_tls() -> None:
    """A plain-HTTP server on an https URL: the TLS handshake fails, nothing passes."""
    answer = probe("https://127.0.0.1:9/hub/health", timeout=1)
    assert not answer and answer.status is None


def test_proxies_come_from_the_env_snapshot() -> None:
    env = {"HTTPS_PROXY": "http://proxy:3128", "http_proxy": "http://p2:1", "NO_PROXY": "x"}
    assert proxies(env) == {"http": "http://p2:1", "https": "http://proxy:3128", "no": "x"}


def test_no_proxy_reaches_loopback_directly(server: Server) -> None:
    env = {"http_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.1"}
    answer = get(server.url("/ok"), timeout=2, cancel=threading.Event(), env=env)
    assert answer.status == 200


# ---------------------------------------------------------------------------- the check

TARGET = Target(cluster="alpha", hub="staging", domain="staging.alpha.test", namespace="staging",
                kubeconfig=Path("/tmp/alpha.yaml"))


def run_check(check: HealthCheck, tmp_path: Path,
              cancel: threading.Event | None = None) -> Any:
    with JobLog(tmp_path / "job.log") as log:
        return check_hub(check, TARGET, cancel=cancel or threading.Event(), log=log,
                         env={"PATH": "/usr/bin:/bin", "KUBECONFIG": "/wrong"}, cwd=tmp_path)


def test_unhealthy_after_all_attempts(server: Server, tmp_path: Path) -> None:
    check = HealthCheck(url=server.url("/503/{cluster}/{hub}"), attempts=3, interval=0.05)
    verdict = run_check(check, tmp_path)
    assert not verdict.healthy and verdict.tries == 3
    assert verdict.message == f"GET {server.url('/503/alpha/staging')} -> 503 after 3 tries"
    assert server.hits == ["/503/alpha/staging"] * 3
    assert (tmp_path / "job.log").read_text().count("-> 503") == 3


def test_interval_is_waited_between_tries(server: Server, tmp_path: Path) -> None:
    check = HealthCheck(url=server.url("/503"), attempts=2, interval=0.4)
    assert run_check(check, tmp_path).duration >= 0.4


def test_timeouts_count_as_failed_tries(server: Server, tmp_path: Path) -> None:
    check = HealthCheck(url=server.url("/slow"), attempts=2, interval=0, timeout=0.3)
    verdict = run_check(check, tmp_path)
    assert not verdict.healthy and verdict.message.endswith("timed out after 0.3s after 2 tries")


def test_passes_on_first_2xx(server: Server, tmp_path: Path) -> None:
    verdict = run_check(HealthCheck(url=server.url("/redirect"), interval=5), tmp_path)
    assert verdict.healthy and verdict.tries == 1 and verdict.duration < 5


def test_skip_globs_are_never_probed(server: Server, tmp_path: Path) -> None:
    check = HealthCheck(url=server.url("/503"), skip=("beta/*", "alpha/stag*"))
    assert run_check(check, tmp_path).healthy and server.hits == []


def test_cancel_stops_the_interval_wait(server: Server, tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    verdict = run_check(HealthCheck(url=server.url("/503"), interval=30), tmp_path, cancel)
    assert verdict.cancelled and not verdict.healthy
    assert time.monotonic() - started < 10


def test_command_gets_the_hub_env_and_its_output_logged(server: Server, tmp_path: Path) -> None:
    script = ("import os,sys; print('seen', *(os.environ[k] for k in ('HUBTASKS_CLUSTER',"
              "'HUBTASKS_HUB','HUBTASKS_DOMAIN','HUBTASKS_NAMESPACE','KUBECONFIG')));"
              "sys.exit(int(os.environ['HUBTASKS_HUB'] == 'staging'))")
    check = HealthCheck(url=server.url("/ok"), attempts=2, interval=0,
                        command=(sys.executable, "-c", script))
    verdict = run_check(check, tmp_path)
    assert not verdict.healthy and verdict.tries == 2
    assert verdict.message == f"command {sys.executable} exited 1 after 2 tries"
    log = (tmp_path / "job.log").read_text()
    assert "seen alpha staging staging.alpha.test staging /tmp/alpha.yaml" in log


def test_command_not_run_when_the_url_fails(server: Server, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    check = HealthCheck(url=server.url("/503"), attempts=1,
                        command=(sys.executable, "-c", f"open({str(marker)!r}, 'w')"))
    assert not run_check(check, tmp_path).healthy and not marker.exists()


def test_command_env_drops_other_cluster_settings() -> None:
    ambient = {"KUBECONFIG": "/x", "HELM_NAMESPACE": "y", "HELM_KUBETOKEN": "t",
               "HELM_KUBEAPISERVER": "https://other", "HELM_KUBECAFILE": "/ca",
               "HELM_KUBECONTEXT": "c2"}
    env = command_env({**ambient, "HOME": "/h"},
                      Target(cluster="c", hub="h", domain="d", namespace="h"))
    assert not set(ambient) & set(env) and env["HOME"] == "/h"
    env = command_env(ambient, Target(cluster="c", hub="h", domain="d", namespace="h",
                                      kubeconfig=Path("/k"), kube_context="ctx"))
    assert env["KUBECONFIG"] == "/k" and env["HUBTASKS_KUBE_CONTEXT"] == "ctx"
    assert "HELM_KUBETOKEN" not in env and env["HUBTASKS_DOMAIN"] == "d"


# ---------------------------------------------------------------------------- the setting


def test_defaults_on_and_false_turns_off() -> None:
    assert settings_from_doc({}, "hubtasks.yaml").health_check == HealthCheck()
    assert settings_from_doc({"health_check": False}, "hubtasks.yaml").health_check is None
    check = settings_from_doc({"health_check": {"interval": "1m30s", "timeout": 5,
                                                "skip": ["a/*"], "command": ["./c"],
                                                "insecure": True}}, "hubtasks.yaml").health_check
    assert check == HealthCheck(interval=90, timeout=5, skip=("a/*",), command=("./c",),
                                insecure=True)
    assert check.skips("a", "x") and not check.skips("b", "x")


@pytest.mark.parametrize(("doc", "message"), [
    ({"attempts": 0}, "health_check.attempts: must be a whole number of at least 1"),
    ({"interval": "10 seconds"}, "health_check.interval: invalid duration '10 seconds'"),
    ({"timeout": 0}, "health_check.timeout: invalid duration 0: must be more than 0"),
    ({"url": "ftp://x"}, "health_check.url: must be an http:// or https:// URL"),
    ({"url": "https://{host}/"}, "health_check.url: bad placeholder 'host'"),
    ({"command": "./check.sh"}, "health_check.command: must be an argv list"),
    ({"skip": "a/*"}, "health_check.skip: must be a list"),
    ({"insecure": "yes"}, "health_check.insecure: must be true or false"),
    ({"colour": 1}, "health_check.colour: unknown key"),
], ids=lambda v: str(v)[:20])
def test_bad_values_name_their_key(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_doc({"health_check": doc}, "hubtasks.yaml")
    assert f"hubtasks.yaml: {message}" in str(info.value)


def test_a_bad_type_is_refused() -> None:
    with pytest.raises(ConfigError, match="health_check"):
        settings_from_doc({"health_check": 3}, "hubtasks.yaml")
