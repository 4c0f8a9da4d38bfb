"""A plan from a diff plans a commit, whatever the checkout holds (planning/checkout.py): a
`--head` other than the checkout, and uncommitted changes to the config, are read from git;
a deploy that would upgrade files the plan did not read is refused."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from gitrepo import GitRepo
from test_plan import base_files, job_ids

from hubtasks.model import HubtasksError
from hubtasks.options import PlanOptions
from hubtasks.planning.checkout import tree_of
from hubtasks.planning.repo import plan_repo

C = "config/clusters"


@pytest.fixture()
def repo(tmp_path: Path) -> GitRepo:
    base = GitRepo(tmp_path / "origin", base_files())
    return GitRepo.clone(base.root, tmp_path / "repo")


def add_hub(repo: GitRepo, cluster: str, name: str) -> None:
    doc = repo.read_yaml(f"{C}/{cluster}/cluster.yaml")
    doc["hubs"].append({**doc["hubs"][-1], "name": name})
    repo.write({f"{C}/{cluster}/cluster.yaml": doc})


def test_head_other_than_the_checkout_is_planned_from_its_own_files(repo: GitRepo) -> None:
    add_hub(repo, "beta", "newhub")
    repo.commit("feature adds a hub")
    repo.git("checkout", "-q", "-b", "other", "main")
    doc = repo.read_yaml(f"{C}/alpha/cluster.yaml")
    doc["hubs"] = [h for h in doc["hubs"] if h["name"] != "prod1"]
    repo.write({f"{C}/alpha/cluster.yaml": doc})
    repo.commit("the checkout removes a hub")
    _, plan = plan_repo(repo.root, PlanOptions(base="main", head="change"))
    assert job_ids(plan) == {"prod:beta/newhub"}  # beta has no staging hub
    assert plan.removed == () and plan.head == repo.git("rev-parse", "change")
    assert not plan.notes


def test_uncommitted_config_changes_are_not_planned_and_say_so(repo: GitRepo) -> None:
    repo.write({f"{C}/alpha/prod1.values.yaml": "x: 2\n"})
    repo.commit("committed change")
    add_hub(repo, "alpha", "uncommitted")  # on disk only
    repo.write({f"{C}/beta/one.values.yaml": "x: 3\n", "notes.txt": "not config\n"})
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    assert "prod:alpha/prod1" in job_ids(plan)
    assert not {"prod:alpha/uncommitted", "prod:beta/one"} & job_ids(plan)
    [note] = plan.notes
    assert note.startswith("uncommitted changes are not planned (config/clusters/alpha/"
                           "cluster.yaml, config/clusters/beta/one.values.yaml)")
    assert "--worktree" in note
    _, as_is = plan_repo(repo.root, PlanOptions(base="main", worktree=True))
    assert {"prod:alpha/prod1", "prod:alpha/uncommitted", "prod:beta/one"} <= job_ids(as_is)
    assert not as_is.notes


def test_files_outside_the_config_leave_the_plan_alone(repo: GitRepo) -> None:
    repo.write({f"{C}/alpha/prod1.values.yaml": "x: 2\n"})
    repo.commit("change")
    repo.write({"notes.txt": "x\n", "README.md": "edited\n", ".hubtasks/results.json": "{}"})
    _, plan = plan_repo(repo.root, PlanOptions(base="main"), deploying=True)
    assert "prod:alpha/prod1" in job_ids(plan) and not plan.notes


def test_a_deploy_of_files_the_plan_did_not_read_is_refused(repo: GitRepo) -> None:
    repo.write({f"{C}/alpha/prod1.values.yaml": "x: 2\n"})
    repo.commit("change")
    repo.write({f"{C}/alpha/prod2.values.yaml": "x: 9\n"})
    with pytest.raises(HubtasksError, match=r"prod2\.values\.yaml.*unplanned"):
        plan_repo(repo.root, PlanOptions(base="main"), deploying=True)
    _, plan = plan_repo(repo.root, PlanOptions(base="main", worktree=True), deploying=True)
    assert {"prod:alpha/prod1", "prod:alpha/prod2"} <= job_ids(plan)
    repo.commit("more")
    repo.git("checkout", "-q", "main")
    with pytest.raises(HubtasksError, match=r"not --head change .*check out change first"):
        plan_repo(repo.root, PlanOptions(base="main", head="change"), deploying=True)


def test_a_removed_cluster_whose_folder_lingers_is_removed(repo: GitRepo) -> None:
    repo.git("rm", "-rq", f"{C}/gamma")
    repo.commit("decommission gamma")
    (repo.root / ".gitignore").write_text("*.secret.json\n")
    repo.git("add", ".gitignore")
    repo.commit("ignore decrypted credentials")
    leftover = repo.root / C / "gamma" / "deployer.secret.json"  # ignored: not a change
    leftover.parent.mkdir()
    leftover.write_text("{}")
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    assert {(r.cluster, r.hub, r.cluster_removed) for r in plan.removed} == {
        ("gamma", None, True), ("gamma", "canary", True), ("gamma", "research", True),
        ("gamma", "teach", True), ("gamma", "geo", True)}
    assert not any("gamma" in note for note in plan.notes)


def test_tree_of_writes_a_commits_files_and_leaves_the_checkout_alone(repo: GitRepo) -> None:
    (repo.root / "README.md").write_text("dirty\n")
    status = repo.git("status", "--porcelain")
    with tree_of(repo.root, repo.git("rev-parse", "HEAD")) as tree:
        assert (tree / "README.md").read_text() == "docs\n"
        assert (tree / C / "alpha" / "cluster.yaml").is_file()
    assert not tree.exists() and repo.git("status", "--porcelain") == status


def test_an_untracked_settings_file_is_the_checkouts_and_no_change(tmp_path: Path) -> None:
    """A 2i2c checkout commits no hubtasks.yaml: one added beside it configures hubtasks for
    every plan, also one that reads another commit's tree, and is no uncommitted change."""
    files = base_files()
    settings = {**files.pop("hubtasks.yaml"), "chart_values": {"support": ["templates/p.yaml"]}}
    base = GitRepo(tmp_path / "origin", files)
    repo = GitRepo.clone(base.root, tmp_path / "repo")
    repo.write({"shared/hubs/README": "edited\n"})  # deploy_all_hubs_on: shared/hubs/**
    repo.commit("edit a shared hub file")
    repo.write({"hubtasks.yaml": settings})  # untracked
    _, plan = plan_repo(repo.root, PlanOptions(base="main"), deploying=True)
    assert "prod:beta/one" in job_ids(plan) and not plan.notes
    _, as_is = plan_repo(repo.root, PlanOptions(base="main", worktree=True))
    assert job_ids(as_is) == job_ids(plan)  # nor a change with --worktree
    repo.git("checkout", "-q", "main")
    _, other = plan_repo(repo.root, PlanOptions(base="main", head="change"))
    assert job_ids(other) == job_ids(plan)


def test_what_helm_dependency_build_writes_is_no_uncommitted_change(repo: GitRepo) -> None:
    repo.write({f"{C}/alpha/prod1.values.yaml": "x: 2\n"})
    repo.commit("change")
    repo.write({"helm-charts/daskhub/charts/basehub-0.1.0.tgz": "built\n",
                "helm-charts/daskhub/Chart.lock": "dependencies: []\n"})  # not ignored here
    _, plan = plan_repo(repo.root, PlanOptions(base="main"), deploying=True)
    assert "prod:alpha/prod1" in job_ids(plan) and not plan.notes


def test_a_plan_never_writes_the_checkouts_index(repo: GitRepo) -> None:
    """git status would refresh the index under .git/index.lock; a plan that ends early
    (an error, Ctrl-C) killed it mid-write and left the lock for the user's next git."""
    repo.write({f"{C}/alpha/prod1.values.yaml": "x: 2\n"})
    repo.commit("change")
    for path in (repo.root / C).rglob("*.yaml"):
        os.utime(path)  # stat info out of date: a refreshing git status rewrites the index
    index = repo.root / ".git/index"
    before = index.stat().st_mtime_ns
    time.sleep(0.05)
    plan_repo(repo.root, PlanOptions(base="main"))
    assert index.stat().st_mtime_ns == before
