"""`hubtasks demo` (the README's first command) end to end, with --keep and demo-stop.

The demo's broken staging hub (edu-cloud/sandbox) deploys fine and fails its health check
(the front-door stand-in answers 503 for its config): its cluster's prod is never installed,
the other clusters deploy fully.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hubtasks.config.load import load_config
from hubtasks.dev.install import install_helm
from hubtasks.model import Stage, Status
from hubtasks.results import load_results

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]


def hubtasks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HUBTASKS, *args], cwd=ROOT, capture_output=True, text=True,
                          check=False, env={**os.environ, "HUBTASKS_HELM": str(install_helm(3,
                                                                               os.environ))})


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def releases(work: Path, cluster: str) -> dict[str, str]:
    """release -> helm status, read from the kept cluster itself."""
    kubeconfig = work / f"repo/.hubtasks/kubeconfigs/{cluster}.yaml"
    listed = subprocess.run([str(install_helm(3, os.environ)), "list", "-A", "-o", "json",
                             "--kubeconfig", str(kubeconfig)], capture_output=True,
                            text=True, check=True, timeout=60)
    return {r["name"]: r["status"] for r in json.loads(listed.stdout)}


def test_demo_keep_then_stop(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    proc = hubtasks("demo", "--keep", "--timeout", "15s", "--workdir", str(work))
    try:
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert "demo OK: edu-cloud's canary failed, so its prod hubs were skipped" in proc.stdout
        assert "edu-cloud/sandbox: its upgrade succeeded, but the hub is unhealthy: GET " \
            "http://127.0.0.1:" in proc.stdout
        assert "-> 503 after 3 tries" in proc.stdout
        assert "kubectl get pods -A" in proc.stdout
        results = {r.name: r for r in load_results([work / "repo/.hubtasks/results.json"])}
        sandbox = results["staging:edu-cloud/sandbox"]
        assert sandbox.status is Status.FAILED and sandbox.exit_code == 0  # helm succeeded
        assert sandbox.error.startswith("unhealthy: GET ")
        assert releases(work, "edu-cloud") == {"support": "deployed", "sandbox": "deployed"}
        for hub in ("workshop", "stats-101"):
            assert results[f"prod:edu-cloud/{hub}"].status is Status.SKIPPED
        config = load_config(work / "repo")
        for name in ("geo-cloud", "bio-cloud"):  # fully deployed, every job succeeded
            wanted = {"support", *(h.name for h in config.cluster(name).hubs)}
            assert releases(work, name) == dict.fromkeys(wanted, "deployed")
            mine = [r for r in results.values() if r.cluster == name]
            assert {r.hub or "support" for r in mine} == wanted
            assert all(r.status is Status.SUCCEEDED for r in mine), mine
            assert {r.stage for r in mine} >= {Stage.SUPPORT, Stage.PROD}
        state = json.loads((work / "clusters.json").read_text())
    finally:
        stopped = hubtasks("demo-stop", "--workdir", str(work))
    assert stopped.returncode == 0, stopped.stderr
    pids = [int(p["pid"]) for p in state["processes"]]
    assert pids and not any(alive(pid) for pid in pids)
