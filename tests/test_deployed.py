"""Deployed state, pure part: each release's state from helm's view, and the plan from states."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from hubtasks.config.load import load_config
from hubtasks.helm import describe_release
from hubtasks.model import Orphan, Stage
from hubtasks.planning.deployed import (
    Expected,
    Observed,
    State,
    cluster_states,
    judge,
    plan_against,
    repo_releases,
    state_to_dict,
)
from hubtasks.planning.planfile import plan_from_dict, plan_to_dict

ROOT = Path(__file__).resolve().parents[1]
MARKED = describe_release("abc", "d1")


def seen(status: str = "deployed", description: str = MARKED, name: str = "hub",
         namespace: str | None = None) -> Observed:
    return Observed(release=name, namespace=namespace or name, revision=3, status=status,
                    updated="2026-01-01", description=description)


@pytest.mark.parametrize(("status", "description", "state"), [
    ("deployed", MARKED, State.UP_TO_DATE),
    ("deployed", describe_release("abc", "other"), State.CHANGED),
    ("deployed", "Upgrade complete", State.CHANGED_OUTSIDE),
    ("deployed", "Rollback to 1", State.CHANGED_OUTSIDE),
    ("failed", MARKED, State.FAILED),
    ("pending-upgrade", MARKED, State.PENDING),
    ("pending-install", "Initial install underway", State.PENDING),
    ("uninstalled", MARKED, State.MISSING),
])
def test_judge(status: str, description: str, state: State) -> None:
    assert judge("d1", seen(status, description)) is state


def test_cluster_states_missing_orphan_unreachable() -> None:
    config = load_config(ROOT)
    jobs = [j for j in repo_releases(config) if j.cluster == "edu-cloud"]
    expected = [Expected(job=j, digest="d1") for j in jobs]
    observed = [seen(name=j.release) for j in jobs[1:]] + [seen(name="stray"),
                                                           seen(name="sandbox", namespace="x")]
    states = cluster_states("edu-cloud", expected, observed)
    by = {(s.release, s.namespace): s for s in states}
    assert by[(jobs[0].release, jobs[0].release)].state is State.MISSING
    assert by[("stray", "stray")].state is State.ORPHAN
    assert by[("sandbox", "x")].state is State.ORPHAN  # same name, other namespace
    assert by[("stray", "stray")].hub is None and by[("stray", "stray")].marked
    assert all(by[(j.release, j.release)].state is State.UP_TO_DATE for j in jobs[1:])
    assert set(state_to_dict(states[0])) == {
        "cluster", "hub", "release", "namespace", "state", "revision", "deployed_head",
        "deployed_digest", "repo_digest", "helm_status", "updated"}
    down = cluster_states("edu-cloud", expected, "connection refused")
    assert {s.state for s in down} == {State.UNREACHABLE} and len(down) == len(jobs)
    assert down[0].reason == "connection refused"


def test_plan_against_states_applies_the_canary_rule() -> None:
    config = load_config(ROOT)
    rows = []
    for cluster in ("edu-cloud", "bio-cloud"):
        jobs = [j for j in repo_releases(config) if j.cluster == cluster]
        expected = [Expected(job=j, digest="d1") for j in jobs]
        observed = [seen(name=j.release, description="Upgrade complete"
                         if j.hub == "workshop" else MARKED) for j in jobs]
        rows += cluster_states(cluster, expected, [*observed, seen(name="stray")])
    rows += cluster_states("geo-cloud", [Expected(job=j, digest="d1") for j in
                                         repo_releases(config) if j.cluster == "geo-cloud"],
                           "boom")
    plan = plan_against(config, rows, head="h")
    assert [(j.stage, j.cluster, j.hub) for j in plan.jobs] == [
        (Stage.STAGING, "edu-cloud", "sandbox"), (Stage.PROD, "edu-cloud", "workshop")]
    assert plan.jobs[1].reasons == ("deployed state changed-outside",)
    assert plan.jobs[0].reasons[0].startswith("canary for prod hubs")
    assert plan.orphans == (Orphan(cluster="bio-cloud", release="stray", namespace="stray"),
                            Orphan(cluster="edu-cloud", release="stray", namespace="stray"))
    assert plan.notes == ("cluster 'geo-cloud' unreachable, not planned: boom",)
    with_id = dataclasses.replace(plan, plan_id="p1")
    assert plan_from_dict(plan_to_dict(with_id), "x") == with_id


@pytest.mark.parametrize("args", [["plan", "--against", "git"],
                                  ["deploy-all", "--prune", "--dry-run"],
                                  ["status", "--cluster", "nowhere"]])
def test_bad_flags_are_user_errors(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", "from hubtasks.cli import main; main()", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("hubtasks: error:") and "Traceback" not in proc.stderr
