"""End to end: the `hubtasks` console script planning a temporary git repo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gitrepo import GIT_ENV, GitRepo
from test_plan import base_files

from hubtasks.planning.planfile import load_plan

HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]
C = "config/clusters"


def hubtasks(repo: Path, *args: str, env: dict[str, str] | None = None,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **GIT_ENV, "PATH": os.environ["PATH"], **(env or {})}
    return subprocess.run([*HUBTASKS, *args], cwd=repo, env=full_env, capture_output=True,
                          text=True, input=stdin, check=False)


@pytest.fixture()
def repo(tmp_path: Path) -> GitRepo:
    base = GitRepo(tmp_path / "origin", base_files())
    repo = GitRepo.clone(base.root, tmp_path / "repo")
    repo.write({f"{C}/alpha/prod1.values.yaml": "x: 2\n",
                f"{C}/alpha/support.values.yaml": "s: 2\n"})
    repo.commit("change")
    return repo


def test_table_output(repo: GitRepo) -> None:
    proc = hubtasks(repo.root, "plan", "--base", "main")
    assert proc.returncode == 0, proc.stderr
    assert "Support (1)" in proc.stdout and "Prod hubs (1)" in proc.stdout
    assert "values config/clusters/alpha/prod1.values.yaml modified" in proc.stdout
    assert "canary for prod hubs: prod1" in proc.stdout


def test_json_output_and_out_file(repo: GitRepo, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    proc = hubtasks(repo.root, "plan", "--format", "json", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["version"] == 1 and doc["head"] == repo.git("rev-parse", "HEAD")
    assert doc["base"] == repo.git("rev-parse", "main")
    assert [(j["stage"], j["cluster"], j["hub"]) for j in doc["jobs"]] == [
        ("support", "alpha", None), ("staging", "alpha", "dask-staging"),
        ("staging", "alpha", "staging"), ("prod", "alpha", "prod1")]
    assert doc["jobs"][0]["chart"] == "support" and doc["removed"] == []
    assert load_plan(out).jobs[3].reasons == tuple(doc["jobs"][3]["reasons"])


def test_github_output(repo: GitRepo, tmp_path: Path) -> None:
    output, summary = tmp_path / "out", tmp_path / "summary.md"
    proc = hubtasks(repo.root, "plan", "--format", "github",
                    env={"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 0, proc.stderr
    values = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert json.loads(values["canary-matrix"]) == {"include": [{"name": "alpha",
                                                                "clusters": "alpha"}]}
    assert json.loads(values["prod-matrix"]) == {"include": [{"name": "alpha/prod1",
                                                              "jobs": "alpha/prod1"}]}
    assert values["has-prod"] == "true"
    text = summary.read_text()
    assert "| cluster" in text and "prod1" in text


def test_files_from_stdin(repo: GitRepo) -> None:
    proc = hubtasks(repo.root, "plan", "--format", "json", "--files-from", "-",
                    stdin=f"{C}/beta/one.values.yaml\n")
    assert proc.returncode == 0, proc.stderr
    assert [j["hub"] for j in json.loads(proc.stdout)["jobs"]] == ["one"]


def test_repo_option(repo: GitRepo, tmp_path: Path) -> None:
    proc = hubtasks(tmp_path, "plan", "--repo", str(repo.root), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["jobs"]) == 4


def test_unknown_base_is_a_clear_error(repo: GitRepo) -> None:
    proc = hubtasks(repo.root, "plan", "--base", "nope")
    assert proc.returncode == 2
    assert "base 'nope' is not a known commit" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_shallow_clone_says_how_to_fix(repo: GitRepo, tmp_path: Path) -> None:
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--no-single-branch",
                    f"file://{repo.root}", str(shallow)], check=True, env=GIT_ENV)
    subprocess.run(["git", "checkout", "-q", "change"], cwd=shallow, check=True, env=GIT_ENV)
    proc = hubtasks(shallow, "plan", "--base", "origin/main")
    assert proc.returncode == 2
    assert "shallow clone" in proc.stderr and "fetch-depth: 0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_config_is_a_clear_error(repo: GitRepo) -> None:
    repo.write({f"{C}/beta/cluster.yaml": "name: beta\nprovider: kubeconfig\nhubs: {}\n"})
    lenient = hubtasks(repo.root, "plan", "--worktree")  # other clusters still plan
    assert lenient.returncode == 0 and "cluster 'beta' not planned" in lenient.stdout
    proc = hubtasks(repo.root, "plan", "--worktree", "--strict")
    assert proc.returncode == 2
    assert f"{C}/beta/cluster.yaml: (top level): 'kubeconfig' is a required property" \
        in proc.stderr
    assert f"{C}/beta/cluster.yaml: hubs: {{}} is not of type 'array'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_config(repo: GitRepo) -> None:
    proc = hubtasks(repo.root, "check-config")
    assert proc.returncode == 0 and "3 clusters, 11 hubs" in proc.stdout


def test_files_are_compared_at_the_merge_base_not_at_the_bases_tip(tmp_path: Path) -> None:
    """CI passes a PR's changed files while main has moved on: a hub main added since the
    branch started is no removal of the PR's, nor is its cluster.yaml edit a change of it."""
    repo = GitRepo(tmp_path / "repo", base_files())
    repo.git("checkout", "-qb", "feature")
    repo.write({f"{C}/alpha/cluster.yaml": {**repo.read_yaml(f"{C}/alpha/cluster.yaml"),
                                            "display_name": "Alpha"}})
    repo.commit("describe alpha")
    repo.git("checkout", "-q", "main")
    alpha = repo.read_yaml(f"{C}/alpha/cluster.yaml")
    alpha["hubs"].append({**alpha["hubs"][-1], "name": "later"})
    repo.write({f"{C}/alpha/cluster.yaml": alpha})
    repo.commit("main adds a hub")
    repo.git("checkout", "-q", "feature")
    proc = hubtasks(repo.root, "plan", "--base", "main", "--format", "json",
                    "--files", f"{C}/alpha/cluster.yaml")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["jobs"] == [] and doc["removed"] == []
    assert doc["base"] == repo.git("merge-base", "main", "feature")
