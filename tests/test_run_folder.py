"""A run holds its results file before it prepares anything, and its chart_override copies
live in its own folder: a run refused because another holds the file touches nothing, and
two runs never replace each other's copies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_tools import write_exe

from hubtasks.config.load import load_config
from hubtasks.deploying.charts import RUNS_DIR, run_folder
from hubtasks.deploying.scheduler import run_prod
from hubtasks.deploying.session import run_jobs
from hubtasks.dev.demo import copy_example
from hubtasks.model import HubtasksError
from hubtasks.options import DeployOptions, Limits, RunOptions
from hubtasks.planning.planner import PlanRequest, build_plan
from hubtasks.results import ResultsStore
from hubtasks.runrecords import holding_run
from hubtasks.secrets import PRIVATE_PREFIX

ROOT = Path(__file__).resolve().parents[1]
LOGGING_HELM = """#!/bin/sh
echo "$*" >> "$HELM_CALLS"
[ "$1" = version ] && { echo v3.17.3+gfake; exit 0; }
exit 0
"""


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_refused_run_prepares_no_chart(tmp_path: Path) -> None:
    repo = copy_example(ROOT, tmp_path / "repo")
    helm = write_exe(tmp_path / "helm", LOGGING_HELM)
    calls = tmp_path / "calls"
    config = load_config(repo)
    plan = build_plan(config, PlanRequest(everything=True))
    options = RunOptions(repo=repo, plan=repo / "plan.json", results=repo / "results.json",
                         deploy=DeployOptions(log_dir=tmp_path / "logs",
                                              work_dir=tmp_path / "work",
                                              env={**os.environ, "HELM_CALLS": str(calls)}),
                         limits=Limits(), helm=helm)
    with holding_run(ResultsStore(options.results)), \
            pytest.raises(HubtasksError, match="in use by another run"):
        run_jobs(config, plan, list(plan.jobs), options, run_prod)
    called = calls.read_text().splitlines() if calls.exists() else []
    assert not [c for c in called if c.startswith("dependency")], called
    assert not (tmp_path / "work" / RUNS_DIR).exists() or \
        not list((tmp_path / "work" / RUNS_DIR).iterdir())


def test_each_run_has_its_own_folder_and_a_dead_runs_is_removed(tmp_path: Path) -> None:
    runs = tmp_path / RUNS_DIR
    dead = runs / f"{PRIVATE_PREFIX}{dead_pid()}-x"
    (dead / "charts").mkdir(parents=True)
    with run_folder(tmp_path) as own, run_folder(tmp_path) as other:
        assert own.parent == runs and own != other and own.is_dir()
        assert not dead.exists()
    assert not own.exists() and not other.exists()


HANGING_HELM = """#!/bin/sh
[ "$1" = version ] && { echo v3.17.3+gfake; exit 0; }
[ "$1" = dependency ] && exit 0
exec sleep 300
"""


def test_sigterm_of_validate_removes_its_decrypted_copies(tmp_path: Path, sops: Path) -> None:
    """validate and values install no deploy handlers: SIGTERM unwinds them like Ctrl-C."""
    import signal
    import time

    from hubtasks.dev.demo import DEMO_KEY

    repo = copy_example(ROOT, tmp_path / "repo")
    helm = write_exe(tmp_path / "helm", HANGING_HELM)
    private = tmp_path / "tmp"
    private.mkdir()
    env = {**os.environ, "TMPDIR": str(private), "SOPS_AGE_KEY_FILE": str(repo / DEMO_KEY),
           "PATH": f"{sops.parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen([sys.executable, "-c", "from hubtasks.cli import main; main()",
                             "validate", "--cluster", "edu-cloud", "--helm", str(helm)],
                            cwd=repo, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(private.glob(f"{PRIVATE_PREFIX}*")) and time.monotonic() < deadline:
        time.sleep(0.1)  # until a release's values are decrypted
    assert list(private.glob(f"{PRIVATE_PREFIX}*"))
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130  # invoke's Program made every interrupt exit 1
    assert not list(private.glob(f"{PRIVATE_PREFIX}*"))


HANGING_BUILD = """#!/bin/sh
echo "$*" >> "$HELM_CALLS"
[ "$1" = version ] && { echo v3.17.3+gfake; exit 0; }
[ "$1" = dependency ] && exec sleep 300
exit 0
"""


def test_ctrl_c_stops_a_chart_build_at_once(tmp_path: Path) -> None:
    """The results file is held (and Ctrl-C handled) before charts are prepared: the first
    Ctrl-C must stop a `helm dependency build`, not wait for it (up to 10 minutes)."""
    import signal
    import time

    from hubtasks.model import Status
    from hubtasks.results import load_results

    repo = copy_example(ROOT, tmp_path / "repo")
    helm = write_exe(tmp_path / "helm", HANGING_BUILD)
    calls = tmp_path / "calls"
    env = {**os.environ, "HELM_CALLS": str(calls)}
    proc = subprocess.Popen([sys.executable, "-c", "from hubtasks.cli import main; main()",
                             "deploy-all", "--everything", "--dry-run", "--helm", str(helm)],
                            cwd=repo, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (calls.exists() and "dependency" in calls.read_text()) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    assert "dependency" in calls.read_text()
    clock = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) != 0
    assert time.monotonic() - clock < 30
    records = load_results([repo / ".hubtasks/results.json"])
    assert records and all(r.status is Status.CANCELLED for r in records), records
