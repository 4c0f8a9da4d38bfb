"""Secrets on the paths around helm's upgrade: health checks, credentials, Lease, repair, status.

The example repo gets a `provider: kubeconfig` cluster whose kubeconfig is sops-encrypted
(real sops, the demo age key) and a hub whose domain comes from an encrypted
`domain_override_file`; fake helm and kubectl echo what they are given, like real ones do
in their errors. Nothing secret may reach the job's result, its log or hubtasks' log.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_tools import write_exe

from hubtasks.config.load import load_config
from hubtasks.config.model import RepoConfig
from hubtasks.deploying import lease, repair
from hubtasks.deploying.credentials import Credentials, credential_secrets
from hubtasks.deploying.deployed import ClusterAccess, _access
from hubtasks.deploying.identity import run_identity
from hubtasks.deploying.runner import HelmRunner
from hubtasks.dev.demo import DEMO_KEY, copy_example
from hubtasks.helm import ReleaseSpec, probe
from hubtasks.model import HubtasksError, Job, JobResult, Status
from hubtasks.options import DeployOptions
from hubtasks.output.logs import JobLog
from hubtasks.planning.planner import PlanRequest, build_plan
from hubtasks.secrets import Redactor

ROOT = Path(__file__).resolve().parents[1]
CLUSTER, HUB = "geo-cloud", "seismo"
TOKEN = "kubetoken-SUPERSECRET-0123456789abcdef"
CLIENT_KEY = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tc2VjcmV0a2V5"
DOMAIN = "hidden-hub.secretcorp.invalid"
KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "deployer",
    "clusters": [{"name": "geo", "cluster": {"server": "https://127.0.0.1:6443",
                                             "certificate-authority-data": "Q0FDRVJU"}}],
    "contexts": [{"name": "deployer", "context": {"cluster": "geo", "user": "deployer"}}],
    "users": [{"name": "deployer", "user": {"token": TOKEN, "client-key-data": CLIENT_KEY}}],
}
# Echoes the token line of its --kubeconfig in its errors, like an auth failure might.
FAKE_HELM = """#!/bin/sh
[ "$1" = version ] && { echo v3.17.3+gfake; exit 0; }
[ "$1" = dependency ] && exit 0
cmd=$1
kc=/dev/null
while [ $# -gt 0 ]; do [ "$1" = --kubeconfig ] && kc=$2; shift; done
leak=$(grep 'token:' "$kc" | sed 's/^ *//')
case "$cmd" in
  history)
    [ "$FAKE_HISTORY" = leak ] && { echo "Error: Unauthorized ($leak)" >&2; exit 1; }
    [ "$FAKE_HISTORY" = hang ] && { sleep 30; exit 0; }
    [ "$FAKE_HISTORY" = pending ] && { echo '[{"revision": 1, "status": "deployed"},
      {"revision": 2, "status": "pending-upgrade"}]'; exit 0; }
    echo "Error: release: not found" >&2; exit 1;;
  upgrade)
    [ "$FAKE_UPGRADE" = leak ] && { echo "Error: UPGRADE FAILED: $leak" >&2; exit 1; }
    echo "Release has been upgraded. Happy Helming!"; exit 0;;
  rollback|uninstall)
    [ "$FAKE_REPAIR" = hang ] && { sleep 30; exit 0; }
    echo "Error: rollback failed ($leak)" >&2; exit 1;;
  list) echo "Error: Kubernetes cluster unreachable: $leak" >&2; exit 1;;
esac
exit 0
"""
# FAKE_KUBECTL=ok: no Lease yet, writes succeed (echoing the object); hang; else an error.
FAKE_KUBECTL = """#!/bin/sh
kc=/dev/null
verb=""
while [ $# -gt 0 ]; do
  case "$1" in --kubeconfig) kc=$2;; get|create|replace) [ -z "$verb" ] && verb=$1;; esac
  shift
done
[ "$FAKE_KUBECTL" = hang ] && { sleep 30; exit 0; }
if [ "$FAKE_KUBECTL" = ok ]; then [ "$verb" = get ] || cat; exit 0; fi
echo "error: You must be logged in ($(grep 'token:' "$kc" | sed 's/^ *//'))" >&2
exit 1
"""


def _recipient(repo: Path) -> str:
    return next(line.split(": ")[1] for line in (repo / DEMO_KEY).read_text().splitlines()
                if "public key" in line)


def _encrypt(path: Path, recipient: str, sops: Path) -> None:
    subprocess.run([str(sops), "--encrypt", "--age", recipient, "--in-place", path.name],
                   cwd=path.parent, check=True, capture_output=True, timeout=60)


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, sops: Path) -> Path:
    """The example, geo-cloud on an encrypted kubeconfig, seismo on an encrypted domain."""
    root = copy_example(ROOT, tmp_path_factory.mktemp("redaction") / "repo")
    folder = root / "config/clusters" / CLUSTER
    recipient = _recipient(root)
    credentials = folder / "enc-deployer-credentials.secret.yaml"
    credentials.write_text(yaml.safe_dump(KUBECONFIG))
    _encrypt(credentials, recipient, sops)
    override = folder / "enc-domain.secret.yaml"
    override.write_text(f"domain: {DOMAIN}\n")
    _encrypt(override, recipient, sops)
    spec = yaml.safe_load((folder / "cluster.yaml").read_text())
    spec["provider"] = "kubeconfig"
    spec["kubeconfig"] = {"file": credentials.name}
    next(h for h in spec["hubs"] if h["name"] == HUB)["domain_override_file"] = override.name
    (folder / "cluster.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


def _config(repo: Path, health: dict[str, Any] | None = None) -> RepoConfig:
    settings = repo / "hubtasks.yaml"
    doc = yaml.safe_load(settings.read_text())
    doc["health_check"] = health if health is not None else False
    settings.write_text(yaml.safe_dump(doc))
    return load_config(repo)


def _job(config: RepoConfig) -> Job:
    plan = build_plan(config, PlanRequest(everything=True))
    return next(j for j in plan.jobs if j.cluster == CLUSTER and j.hub == HUB)


def _run(repo: Path, tmp_path: Path, sops: Path, *, health: dict[str, Any] | None = None,
         lock: bool = False, cancel: threading.Event | None = None,
         **fake: str) -> tuple[JobResult, str]:
    """One real (not dry-run) job of seismo; its result and the job log's text."""
    helm = write_exe(tmp_path / "helm", FAKE_HELM)
    kubectl = write_exe(tmp_path / "kubectl", FAKE_KUBECTL)
    env = {"PATH": "/usr/bin:/bin", "SOPS_AGE_KEY_FILE": str(repo / DEMO_KEY),
           "HUBTASKS_KUBECTL": str(kubectl), **fake}
    config = _config(repo, health)
    job = _job(config)
    options = DeployOptions(log_dir=tmp_path / "logs", work_dir=tmp_path / "work", env=env,
                            lock=lock, lock_timeout=1.0, retries=0, timeout=20.0,
                            kill_grace=5.0)
    credentials = Credentials(config, kubeconfig_dir=None, sops=sops, env=env)
    runner = HelmRunner(config, head="abc", helm=probe(helm, env=env), options=options,
                        charts={job.key: repo / "helm-charts/basehub"},
                        credentials=credentials, sops=sops)
    try:
        result = runner(job, cancel or threading.Event())
    finally:
        credentials.close()
    return result, Path(result.log or "").read_text()


def _hidden(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text, text


# ---------------------------------------------------------------------------- A: health


def test_unhealthy_message_hides_an_encrypted_domain(
        repo: Path, tmp_path: Path, sops: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    health = {"url": "http://127.0.0.1:9/{domain}/hub/health", "attempts": 1,
              "timeout": "5s"}
    result, log = _run(repo, tmp_path, sops, health=health)
    assert result.status is Status.FAILED
    assert result.error.startswith("unhealthy: GET http://127.0.0.1:9/***/hub/health -> ")
    assert "health check: GET http://127.0.0.1:9/***/hub/health" in log
    _hidden(DOMAIN, result.error, log, caplog.text)


def test_health_command_output_hides_an_encrypted_domain(
        repo: Path, tmp_path: Path, sops: Path, server: int,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    health = {"url": f"http://127.0.0.1:{server}/{{hub}}/hub/health", "attempts": 1,
              "command": ["sh", "-c", f"echo checking $HUBTASKS_DOMAIN {DOMAIN}; exit 3"]}
    result, log = _run(repo, tmp_path, sops, health=health)
    assert result.status is Status.FAILED
    assert result.error == "unhealthy: command sh exited 3 after 1 try"
    assert "checking *** ***" in log
    _hidden(DOMAIN, result.error, log, caplog.text)


def test_a_healthy_hub_still_passes(repo: Path, tmp_path: Path, sops: Path,
                                    server: int) -> None:
    health = {"url": f"http://127.0.0.1:{server}/{{domain}}/hub/health", "attempts": 1}
    result, log = _run(repo, tmp_path, sops, health=health)
    assert result.status is Status.SUCCEEDED, result.error
    _hidden(DOMAIN, log)


# ---------------------------------------------------------------------------- B: credentials


def test_credential_secrets_are_a_kubeconfigs_user_credentials() -> None:
    doc = {**KUBECONFIG, "users": [*KUBECONFIG["users"], {"name": "plugin", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "gke-auth",
        "args": ["--secret-arg=hush-hush-1"], "interactiveMode": "Never",
        "env": [{"name": "PLUGIN_TOKEN", "value": "hush-hush-2"}]}}}]}
    found = credential_secrets(yaml.safe_dump(doc).encode())
    assert {TOKEN, CLIENT_KEY, "--secret-arg=hush-hush-1", "hush-hush-2"} <= found
    kept = {"Config", "deployer", "geo", "https://127.0.0.1:6443", "gke-auth", "Never",
            "PLUGIN_TOKEN", "client.authentication.k8s.io/v1beta1"}
    assert not kept & found


def test_credential_secrets_of_other_files_are_every_scalar() -> None:
    key = {"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nabc\n"}
    assert credential_secrets(yaml.safe_dump(key).encode()) >= set(key.values())
    assert credential_secrets(b"not: [yaml") == {"not: [yaml", "[yaml"}  # line, value


def test_credentials_remember_what_to_redact_per_cluster(repo: Path, sops: Path) -> None:
    config = _config(repo)
    env = {"PATH": "/usr/bin:/bin", "SOPS_AGE_KEY_FILE": str(repo / DEMO_KEY)}
    credentials = Credentials(config, kubeconfig_dir=None, sops=sops, env=env)
    try:
        assert not credentials.redactor(CLUSTER)  # nothing decrypted yet
        credentials.for_cluster(config.cluster(CLUSTER))
        redact = credentials.redactor(CLUSTER)
        assert redact(f"token: {TOKEN}") == "token: ***"
        assert redact("cluster geo-cloud, user deployer") == "cluster geo-cloud, user deployer"
        assert not credentials.redactor("edu-cloud")
    finally:
        credentials.close()


def test_helm_error_hides_the_decrypted_kubeconfigs_token(
        repo: Path, tmp_path: Path, sops: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    result, log = _run(repo, tmp_path, sops, FAKE_UPGRADE="leak")
    assert result.status is Status.FAILED
    assert "UPGRADE FAILED: token: ***" in result.error and "token: ***" in log
    _hidden(TOKEN, result.error, log, caplog.text)


def test_helm_history_error_hides_the_token(repo: Path, tmp_path: Path, sops: Path) -> None:
    result, log = _run(repo, tmp_path, sops, FAKE_HISTORY="leak")
    assert result.status is Status.FAILED and "helm history: Error: Unauthorized" in result.error
    assert "***" in result.error
    _hidden(TOKEN, result.error, log)


def test_lease_error_hides_the_token(repo: Path, tmp_path: Path, sops: Path) -> None:
    result, log = _run(repo, tmp_path, sops, lock=True)
    assert result.status is Status.FAILED
    assert "cannot read Lease default/hubtasks-seismo: error: You must be logged in " \
        "(token: ***)" in result.error
    _hidden(TOKEN, result.error, log)


def test_repair_of_a_stuck_release_hides_the_token(repo: Path, tmp_path: Path,
                                                   sops: Path) -> None:
    result, log = _run(repo, tmp_path, sops, lock=True, FAKE_KUBECTL="ok",
                       FAKE_HISTORY="pending")
    assert result.status is Status.FAILED
    assert "repair of pending-upgrade release failed" in result.error
    assert result.error.endswith("Error: rollback failed (token: ***)")
    assert "lease default/hubtasks-seismo released" in log
    _hidden(TOKEN, result.error, log)


def _kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(yaml.safe_dump(KUBECONFIG))
    return path


def _secrets() -> Redactor:
    return Redactor(credential_secrets(yaml.safe_dump(KUBECONFIG).encode()))


def test_lease_kubectl_output_is_redacted(tmp_path: Path) -> None:
    target = lease.Target(kubectl=write_exe(tmp_path / "kubectl", FAKE_KUBECTL),
                          kubeconfig=_kubeconfig(tmp_path), context=None, cluster="c",
                          release="r", env={"PATH": "/usr/bin:/bin"}, redact=_secrets())
    outcome = target.run("get", "lease", "hubtasks-r")
    assert "token: ***" in outcome.output and TOKEN not in outcome.output


def test_repair_output_is_redacted(tmp_path: Path) -> None:
    helm = write_exe(tmp_path / "helm", FAKE_HELM)
    kubeconfig = _kubeconfig(tmp_path)
    stuck = repair.Stuck(status="pending-upgrade", revision=3, summary="rolled back",
                         argv=(str(helm), "rollback", "r", "2", "--kubeconfig", str(kubeconfig)))
    path = tmp_path / "job.log"
    with JobLog(path) as log, pytest.raises(HubtasksError) as caught:
        repair.repair(stuck, {"PATH": "/usr/bin:/bin"}, log, "release r", timeout=20.0,
                      redact=_secrets())
    assert "token: ***" in str(caught.value)
    _hidden(TOKEN, str(caught.value), path.read_text())


def test_status_reads_are_redacted(repo: Path, tmp_path: Path, sops: Path) -> None:
    config = _config(repo)
    env = {"PATH": "/usr/bin:/bin", "SOPS_AGE_KEY_FILE": str(repo / DEMO_KEY)}
    helm = probe(write_exe(tmp_path / "helm", FAKE_HELM), env=env)
    credentials = Credentials(config, kubeconfig_dir=None, sops=sops, env=env)
    try:
        access = _access(credentials, config, CLUSTER, helm, env)
        assert isinstance(access, ClusterAccess)
        ok, text = access.run("list", "-A")
    finally:
        credentials.close()
    assert not ok and "token: ***" in text and TOKEN not in text


# ---------------------------------------------------------------------------- C: cancel


def _cancel_soon(cancel: threading.Event, after: float = 0.3) -> None:
    threading.Timer(after, cancel.set).start()


def test_repair_stops_on_cancel(tmp_path: Path) -> None:
    helm = write_exe(tmp_path / "helm", FAKE_HELM)
    stuck = repair.Stuck(status="pending-upgrade", revision=3, summary="rolled back",
                         argv=(str(helm), "rollback", "r", "2"))
    cancel = threading.Event()
    _cancel_soon(cancel)
    clock = time.monotonic()
    with JobLog(None) as log, pytest.raises(HubtasksError, match="cancelled"):
        repair.repair(stuck, {"PATH": "/usr/bin:/bin", "FAKE_REPAIR": "hang"}, log,
                      "release r", timeout=60.0, cancel=cancel)
    assert time.monotonic() - clock < 10


def test_helm_history_stops_on_cancel(tmp_path: Path) -> None:
    helm = probe(write_exe(tmp_path / "helm", FAKE_HELM), env={"PATH": "/usr/bin:/bin"})
    spec = ReleaseSpec(release="r", namespace="r", chart_dir=tmp_path, values_files=(),
                       kubeconfig=_kubeconfig(tmp_path), kube_context=None)
    cancel = threading.Event()
    _cancel_soon(cancel)
    clock = time.monotonic()
    with pytest.raises(HubtasksError, match="cancelled"):
        repair.find_stuck(helm, spec, {"PATH": "/usr/bin:/bin", "FAKE_HISTORY": "hang"},
                          "release r", cancel=cancel)
    assert time.monotonic() - clock < 10


def test_taking_a_lease_stops_on_cancel(tmp_path: Path) -> None:
    target = lease.Target(kubectl=write_exe(tmp_path / "kubectl", FAKE_KUBECTL),
                          kubeconfig=_kubeconfig(tmp_path), context=None, cluster="c",
                          release="r", env={"PATH": "/usr/bin:/bin", "FAKE_KUBECTL": "hang"})
    cancel = threading.Event()
    _cancel_soon(cancel)
    clock = time.monotonic()
    with pytest.raises(HubtasksError), \
            lease.holding(target, run_identity({}), timeout=60.0, cancel=cancel,
                          note=lambda text: None):
        pass
    assert time.monotonic() - clock < 10
    assert replace(target, cancel=None) == target  # the caller's Target is left as it was


def test_a_job_whose_repair_the_interrupt_stopped_is_cancelled(repo: Path, tmp_path: Path,
                                                               sops: Path) -> None:
    cancel = threading.Event()
    _cancel_soon(cancel, after=1.0)
    clock = time.monotonic()
    result, _ = _run(repo, tmp_path, sops, lock=True, cancel=cancel, FAKE_KUBECTL="ok",
                     FAKE_HISTORY="pending", FAKE_REPAIR="hang")
    assert time.monotonic() - clock < 15
    assert result.status is Status.CANCELLED and result.reason == "interrupted", result
