"""`hubtasks demo` (the README's first command) end to end, with --keep and demo-stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hubtasks.dev.install import install_helm

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


def test_demo_keep_then_stop(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    proc = hubtasks("demo", "--keep", "--timeout", "15s", "--workdir", str(work))
    try:
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert "demo OK: edu-cloud's canary failed, so its prod hubs were skipped" in proc.stdout
        assert "kubectl get pods -A" in proc.stdout
        kubeconfig = work / "repo/.hubtasks/kubeconfigs/geo-cloud.yaml"
        listed = subprocess.run([str(install_helm(3, os.environ)), "list", "-A", "-o", "json",
                                 "--kubeconfig", str(kubeconfig)], capture_output=True,
                                text=True, check=True)
        assert {r["name"] for r in json.loads(listed.stdout)} >= {"support", "staging"}
        state = json.loads((work / "clusters.json").read_text())
    finally:
        stopped = hubtasks("demo-stop", "--workdir", str(work))
    assert stopped.returncode == 0, stopped.stderr
    pids = [int(p["pid"]) for p in state["processes"]]
    assert pids and not any(alive(pid) for pid in pids)
