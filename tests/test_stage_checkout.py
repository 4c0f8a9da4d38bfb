"""`canary` and `prod` upgrade the checkout's files: like `deploy-all`, they refuse a checkout
that is not the plan's commit, or (for a plan from a diff) has uncommitted config changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitrepo import GitRepo
from test_plan import base_files

from hubtasks.config.load import load_config
from hubtasks.deploying.stages import check_planned_checkout
from hubtasks.model import HubtasksError
from hubtasks.options import PlanOptions
from hubtasks.planning.repo import plan_repo

C = "config/clusters"


@pytest.fixture()
def repo(tmp_path: Path) -> GitRepo:
    base = GitRepo(tmp_path / "origin", base_files())
    repo = GitRepo.clone(base.root, tmp_path / "repo")
    repo.write({f"{C}/alpha/prod1.values.yaml": "x: 2\n"})
    repo.commit("change")
    return repo


def _check(repo: GitRepo, **options: object) -> None:
    _, plan = plan_repo(repo.root, PlanOptions(base="main", **options))  # type: ignore[arg-type]
    check_planned_checkout(repo.root, load_config(repo.root, tolerant=True), plan)


def test_the_plans_own_checkout_deploys(repo: GitRepo) -> None:
    repo.write({"notes.txt": "not config\n"})
    _check(repo)


def test_an_uncommitted_config_change_after_the_plan_is_refused(repo: GitRepo) -> None:
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    repo.write({f"{C}/alpha/staging.values.yaml": "x: 9\n"})  # edited after planning
    with pytest.raises(HubtasksError, match=r"staging\.values\.yaml.*unplanned.*--worktree"):
        check_planned_checkout(repo.root, load_config(repo.root, tolerant=True), plan)
    assert plan.reads == "commit"
    _check(repo, worktree=True)  # planned as it is: deploys as it is
    _check(repo, everything=True)  # --everything plans the checkout as it is
    _check(repo, files=(f"{C}/alpha/staging.values.yaml",))  # so does --files


def test_a_checkout_at_another_commit_is_refused(repo: GitRepo) -> None:
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    repo.write({f"{C}/alpha/staging.values.yaml": "x: 9\n"})
    repo.commit("moved on")
    assert plan.head is not None
    with pytest.raises(HubtasksError, match=f"plan is of commit {plan.head[:12]}, but the "
                                            "checkout is at"):
        check_planned_checkout(repo.root, load_config(repo.root, tolerant=True), plan)
