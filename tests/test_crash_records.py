"""kill -9 of hubtasks mid-upgrade, on a real local cluster with real helm (3 and 4).

helm dies with it (PDEATHSIG); the results file holds the job's start record; `report` and
the next run call it interrupted by a run that died; the dead run's private folders go.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hubtasks.config.load import load_config
from hubtasks.dev.demo import DEMO_KEY, break_hub, copy_example, pick_broken_hub
from hubtasks.dev.localk8s import LocalClusters
from hubtasks.model import Status
from hubtasks.results import load_results

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]


def children(pid: int) -> list[int]:
    """Every live descendant of `pid`, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        todo += kids
    return found


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for(what: str, check: object, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_kill_9_of_hubtasks_leaves_an_interrupted_record(helm: Path, tmp_path: Path) -> None:
    repo = copy_example(ROOT, tmp_path / "repo")
    config = load_config(repo)
    broken = pick_broken_hub(config)  # its pods never become Ready: helm waits
    break_hub(repo, config, broken)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "HUBTASKS_HELM": str(helm), "SOPS_AGE_KEY_FILE": str(repo / DEMO_KEY),
           "TMPDIR": str(tmp)}
    clusters = LocalClusters([broken.cluster], tmp_path / "clusters")
    results = repo / ".hubtasks/results.json"
    try:
        clusters.start()
        clusters.write_kubeconfigs(repo / ".hubtasks/kubeconfigs")
        run = subprocess.Popen([*HUBTASKS, "deploy-hub", "--cluster", broken.cluster,
                                "--hub", broken.hub, "--timeout", "300s", "--retries", "0"],
                               cwd=repo, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            wait_for("helm to run", lambda: any(
                "upgrade" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
                for p in children(run.pid) if alive(p)))
            helms = children(run.pid)
            os.kill(run.pid, signal.SIGKILL)
            run.wait(timeout=30)
        finally:
            if run.poll() is None:
                run.kill()
        wait_for("helm to die with hubtasks", lambda: not any(alive(p) for p in helms), 30)
        [left] = load_results([results])
        assert left.status is Status.RUNNING and left.run == f"{run.pid}@{os.uname().nodename}"
        assert left.plan_id and left.digest is None  # a start record, written before helm
        # a secret-holding job's private folder is left by the dead run (if it made one) ...
        (tmp / f"hubtasks-values-{run.pid}-left").mkdir()
        report = subprocess.run([*HUBTASKS, "report"], cwd=repo, env=env, capture_output=True,
                                text=True, timeout=120, check=False)
        assert report.returncode == 1, report.stdout + report.stderr
        assert "interrupted: the run that started it died" in report.stdout
        assert "succeeded" not in report.stdout
        # ... the next run settles the record and removes the dead run's folder
        again = subprocess.run([*HUBTASKS, "deploy-support", "--cluster", broken.cluster,
                                "--timeout", "120s", "--retries", "0"], cwd=repo, env=env,
                               capture_output=True, text=True, timeout=600, check=False)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        by_name = {r.name: r for r in load_results([results])}
        dead = by_name[f"{left.stage.value}:{broken.cluster}/{broken.hub}"]
        assert dead.status is Status.CANCELLED
        assert dead.reason == f"interrupted: the run that started it died ({left.run})"
        assert by_name[f"support:{broken.cluster}/support"].status is Status.SUCCEEDED
        assert not list(tmp.glob(f"hubtasks-values-{run.pid}-*"))
        document = json.loads(results.read_text())
        assert all("plan_id" in r and "dry_run" in r for r in document["records"])
    finally:
        clusters.stop()
