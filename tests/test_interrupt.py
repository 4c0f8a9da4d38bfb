"""Ctrl-C during a deploy: no new job starts, helm is stopped, everything is recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hubtasks.dev.demo import DEMO_KEY, copy_example
from hubtasks.model import Status
from hubtasks.results import load_results

ROOT = Path(__file__).resolve().parents[1]
FAKE = """#!/usr/bin/env python3
import os, sys, time
if sys.argv[1:2] == ["version"]:
    print("v3.17.3+gfake"); sys.exit(0)
if sys.argv[1:2] == ["dependency"]:
    sys.exit(0)
with open(os.environ["FAKE_PIDS"], "a") as f:
    f.write(f"{os.getpid()}\\n")
print("waiting for resources", flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_sigint_cancels_running_and_pending_jobs(tmp_path: Path) -> None:
    repo = copy_example(ROOT, tmp_path / "repo")
    fake = tmp_path / "helm"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    pids = tmp_path / "pids"
    env = {**os.environ, "HUBTASKS_HELM": str(fake), "FAKE_PIDS": str(pids),
           "SOPS_AGE_KEY_FILE": str(repo / DEMO_KEY), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from hubtasks.cli import main; main()", "deploy-all",
         "--everything", "--dry-run", "--jobs", "2", "--no-pipeline"],
        cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    started = 0
    deadline = time.monotonic() + 120
    while started < 2 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        started += line.startswith("▶")
    assert started == 2
    while not (pids.exists() and len(pids.read_text().split()) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "SIGINT" in out and "Traceback" not in out
    results = load_results([repo / ".hubtasks/results.json"])
    assert len(results) == 13  # every planned job has a record
    statuses = {r.status for r in results}
    assert statuses == {Status.CANCELLED}
    ran = [r for r in results if r.started_at is not None]
    started_helms = pids.read_text().split()
    # the runner of a job may have begun (decrypting values) without starting helm yet
    assert 2 <= len(started_helms) <= len(ran) <= 3  # one canary chain per cluster at most
    assert all(r.stage.value == "support" for r in ran)  # nothing started after the signal
    assert all(r.reason == "interrupted" for r in results)
    assert not any(alive(int(pid)) for pid in started_helms)
