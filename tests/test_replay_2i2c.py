"""Replay 2i2c-style commits on a git copy of 2i2c's real config (issue 11's done-when).

Each scenario is one kind of commit 2i2c's history has. It edits the checkout, the harness
commits and plans `HEAD~1..HEAD`, and the planned releases (set equality), the removals and the
invalid releases are compared with an oracle written from the rules (tests/replay_oracle.py),
never from the planner. Every scenario runs alone from the fixture, and all of them run as one
sequence of commits, each planned against the previous one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import replay_charts as charts
import replay_scenarios as commits
from gitrepo import GitRepo
from replay_oracle import CHARTS, Expect, broken_releases, cluster_docs, hubs, is_staging
from replay_scenarios import EXTRA_FILES, Replay
from test_cli_plan import hubtasks
from twoi2c import documented_settings

from hubtasks.model import Plan, Stage
from hubtasks.options import PlanOptions
from hubtasks.planning.repo import plan_repo

SCENARIOS: list[Callable[[Replay], Expect]] = [
    commits.hub_values_edit, commits.shared_values_edit, commits.secret_values_reencrypted,
    commits.support_values_edit, commits.values_file_moved_to_other_cluster, commits.hub_added,
    commits.hub_removed, commits.hub_renamed, commits.hub_moved_between_clusters,
    commits.cluster_removed, commits.cluster_renamed, commits.cluster_added,
    commits.cluster_added_without_credentials, commits.credentials_rotated,
    commits.credentials_deleted, commits.credentials_added_late,
    commits.credentials_path_changed,
    *(charts.chart_edit(rel, "basehub") for rel in ("templates/configurator.yaml", "values.yaml",
                                                    "values.jsonnet", "values.schema.yaml")),
    charts.chart_edit("Chart.yaml", "basehub", meta=True),
    charts.chart_edit("Chart.yaml", "daskhub", meta=True),
    *(charts.chart_edit(rel, "support") for rel in ("templates/calico.yaml", "values.yaml",
                                                    "values.jsonnet", "Chart.yaml", "README.md",
                                                    "enc-support.secret.values.yaml")),
    charts.daskhub_symlink_edit, charts.chart_override_edit, charts.unrelated_files,
    commits.domain_changed, commits.descriptive_keys_changed, commits.prod_flipped_to_staging,
    commits.staging_flipped_to_prod, commits.hub_chart_switched, commits.connection_changed,
    commits.support_removed, commits.values_file_dropped, charts.jsonnet_library_edit,
    charts.mixed_commit,
]


@pytest.fixture(scope="module")
def origin(fixture_2i2c: Path, tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    """The fixture as a git repo, with 2i2c's daskhub -> basehub symlink and other files."""
    root = tmp_path_factory.mktemp("replay") / "origin"
    shutil.copytree(fixture_2i2c, root, symlinks=True)
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            (Path(folder) / name).chmod(0o644)
    link = root / CHARTS / "daskhub" / "values.jsonnet"
    link.unlink()
    link.symlink_to("../basehub/values.jsonnet")
    repo = GitRepo(root, {**EXTRA_FILES, "hubtasks.yaml": documented_settings()})
    repo.git("tag", "fixture")
    return repo


def checkout(origin: GitRepo, tmp_path: Path) -> GitRepo:
    return GitRepo.clone(origin.root, tmp_path / "repo")


def plan_commit(repo: GitRepo, name: str) -> Plan:
    repo.commit(name)
    _, plan = plan_repo(repo.root, PlanOptions(base="HEAD~1"))
    return plan


def check(plan: Plan, expect: Expect, root: Path) -> None:
    head = cluster_docs(root)
    planned = {(j.cluster, j.hub) for j in plan.jobs}
    assert planned - expect.planned == set(), "planned beyond the oracle"
    assert expect.planned - planned == set(), "missed releases"
    assert {(r.cluster, r.hub, r.cluster_removed) for r in plan.removed} == expect.removed
    broken = broken_releases(root, head)
    assert expect.invalid <= broken, "the scenario's invalid releases are sound"
    invalid = {(j.cluster, j.hub) for j in plan.jobs if j.invalid}
    assert invalid == expect.invalid | (expect.planned & broken)
    entries = {(c, e["name"]): e for c, e in hubs(head)}
    for job in plan.jobs:
        want = Stage.SUPPORT if job.hub is None else (
            Stage.STAGING if is_staging(entries[(job.cluster, job.hub)]) else Stage.PROD)
        assert job.stage is want, job
    assert not any(n.startswith("cluster ") for n in plan.notes), plan.notes


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_replay_commit(scenario: Callable[[Replay], Expect], origin: GitRepo,
                       tmp_path: Path) -> None:
    repo = checkout(origin, tmp_path)
    expect = scenario(Replay(repo))
    check(plan_commit(repo, scenario.__name__), expect, repo.root)


def test_replay_sequence(origin: GitRepo, tmp_path: Path) -> None:
    """Every scenario as one history, each commit planned against its parent."""
    repo = checkout(origin, tmp_path)
    for scenario in SCENARIOS:
        expect = scenario(Replay(repo))
        plan = plan_commit(repo, scenario.__name__)
        try:
            check(plan, expect, repo.root)
        except AssertionError as error:
            raise AssertionError(f"{scenario.__name__}: {error}") from error


def test_replay_through_the_cli_json(origin: GitRepo, tmp_path: Path) -> None:
    """The same oracle through `hubtasks plan --format json` (the plan JSON contract)."""
    repo = checkout(origin, tmp_path)
    r = Replay(repo)
    expect = commits.cluster_removed(r)
    moved = commits.values_file_moved_to_other_cluster(Replay(repo))
    repo.commit("remove a cluster, move a values file")
    out = hubtasks(repo.root, "plan", "--base", "HEAD~1", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert {(j["cluster"], j["hub"]) for j in doc["jobs"]} == moved.planned
    assert {(j["cluster"], j["hub"]) for j in doc["jobs"] if j.get("invalid")} == moved.invalid
    assert {(x["cluster"], x["hub"], x["cluster_removed"]) for x in doc["removed"]} \
        == expect.removed
    strict = hubtasks(repo.root, "plan", "--base", "HEAD~1", "--strict", "--format", "json")
    assert strict.returncode == 2 and "does not exist" in strict.stderr
