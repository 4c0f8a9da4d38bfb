"""Broken inputs block only their own releases (issue 11 item 1), on temporary git repos."""

from __future__ import annotations

from pathlib import Path

from gitrepo import GitRepo
from test_cli_plan import hubtasks
from test_plan import base_files, job_ids

from hubtasks.options import PlanOptions
from hubtasks.planning.planfile import load_plan
from hubtasks.planning.repo import plan_repo

C = "config/clusters"


def changed(tmp_path: Path, files: dict[str, object]) -> GitRepo:
    base = GitRepo(tmp_path / "origin", base_files())
    repo = GitRepo.clone(base.root, tmp_path / "repo")
    repo.write(files)
    repo.commit("change")
    return repo


def test_vanished_values_file_plans_its_hub_as_invalid(tmp_path: Path) -> None:
    repo = changed(tmp_path, {f"{C}/alpha/prod1.values.yaml": None,
                              f"{C}/beta/one.values.yaml": "x: 9\n"})
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    jobs = {f"{j.cluster}/{j.release}": j for j in plan.jobs}
    assert "prod:alpha/prod1" in job_ids(plan) and "prod:beta/one" in job_ids(plan)
    assert any("prod1.values.yaml does not exist" in p for p in jobs["alpha/prod1"].invalid)
    assert jobs["alpha/prod1"].reasons and not jobs["beta/one"].invalid
    assert not jobs["alpha/staging"].invalid  # the canary is planned and sound


def test_missing_credentials_file_marks_every_release_of_the_cluster(tmp_path: Path) -> None:
    repo = changed(tmp_path, {f"{C}/gamma/enc-deployer-credentials.secret.json": None,
                              f"{C}/gamma/research.values.yaml": "r: 2\n"})
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    research = next(j for j in plan.jobs if j.hub == "research")
    assert any("gcp.key" in p for p in research.invalid)


def test_unreadable_cluster_yaml_is_reported_and_others_plan(tmp_path: Path) -> None:
    repo = changed(tmp_path, {f"{C}/beta/cluster.yaml": "name: [unclosed\n",
                              f"{C}/alpha/prod1.values.yaml": "x: 2\n"})
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    assert "prod:alpha/prod1" in job_ids(plan)
    assert not any(j.cluster == "beta" for j in plan.jobs)
    assert not plan.removed  # a broken cluster is not a removed one
    assert any(n.startswith("cluster 'beta' not planned") for n in plan.notes)


def test_cli_plan_exits_0_and_strict_exits_2(tmp_path: Path) -> None:
    repo = changed(tmp_path, {f"{C}/alpha/prod1.values.yaml": None})
    out = tmp_path / "plan.json"
    proc = hubtasks(repo.root, "plan", "--base", "main", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "INVALID" in proc.stdout
    job = next(j for j in load_plan(out).jobs if j.hub == "prod1")
    assert job.invalid
    strict = hubtasks(repo.root, "plan", "--base", "main", "--strict")
    assert strict.returncode == 2 and "prod1.values.yaml" in strict.stderr
    check = hubtasks(repo.root, "check-config")
    assert check.returncode == 2


def test_cluster_wide_problem_marks_every_release(tmp_path: Path) -> None:
    base = GitRepo(tmp_path / "origin", base_files())
    repo = GitRepo.clone(base.root, tmp_path / "repo")
    doc = repo.read_yaml(f"{C}/beta/cluster.yaml")
    doc["name"] = "not-beta"
    repo.write({f"{C}/beta/cluster.yaml": doc, f"{C}/beta/one.values.yaml": "x: 3\n"})
    repo.commit("rename inside")
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    beta = [j for j in plan.jobs if j.cluster == "beta"]
    assert beta and all(any("does not match its folder" in p for p in j.invalid) for j in beta)
