"""The GitHub Actions workflows: pinning, injection, permissions, job graph, linters."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitrepo import GitRepo
from test_plan import C, base_files

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yaml"))
ACTIONS = sorted((GITHUB / "actions").glob("*/action.yaml"))
DEPLOY = GITHUB / "workflows" / "deploy-hubs.yaml"
PLAN_PR = GITHUB / "workflows" / "plan-pr.yaml"
KUBECONFIGS = GITHUB / "actions" / "cluster-credentials" / "kubeconfigs.py"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")
# The only write scopes a job may hold, and why.
WRITE_SCOPES = {"id-token": "OIDC login to the clouds", "pull-requests": "the plan comment"}
BIN = Path(sys.executable).parent


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def all_steps(path: Path) -> Iterator[dict[str, Any]]:
    doc = load(path)
    if "runs" in doc:
        yield from doc["runs"].get("steps", [])
    for job in doc.get("jobs", {}).values():
        yield from job.get("steps", [])


def test_files_exist() -> None:
    assert DEPLOY in WORKFLOWS and PLAN_PR in WORKFLOWS and ACTIONS


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=lambda p: p.parent.name + "/" + p.name)
def test_every_action_is_pinned_to_a_commit(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    uses = [line.split("uses:", 1)[1].strip() for line in lines if "uses:" in line
            and not line.lstrip().startswith("#")]
    assert uses
    for value in uses:
        if value.startswith(("$/", "./")):
            continue
        assert PINNED.match(value), f"not pinned to a SHA with a version comment: {value}"


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=lambda p: p.parent.name + "/" + p.name)
def test_no_expressions_inside_run_scripts(path: Path) -> None:
    for step in all_steps(path):
        assert "${{" not in step.get("run", ""), f"pass values through env: {step}"


def test_deploys_queue_and_are_never_cancelled() -> None:
    concurrency = load(DEPLOY)["concurrency"]
    assert concurrency["group"] and concurrency["cancel-in-progress"] is False
    assert "${{" not in concurrency["group"], "one group for every deploy"
    assert load(PLAN_PR)["concurrency"]["group"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_minimal(path: Path) -> None:
    doc = load(path)
    assert doc["permissions"] == {}
    for name, job in doc["jobs"].items():
        perms = job.get("permissions")
        assert isinstance(perms, dict), f"{name}: declare job permissions"
        assert perms.get("contents") == "read", name
        for scope, level in perms.items():
            assert level in ("read", "write"), f"{name}: {scope}: {level}"
            assert level == "read" or scope in WRITE_SCOPES, f"{name}: {scope}: write"
    text = path.read_text(encoding="utf-8")
    assert "write-all" not in text and "read-all" not in text


def test_write_scopes_only_where_used() -> None:
    jobs = load(DEPLOY)["jobs"]
    oidc = {n for n, j in jobs.items() if j["permissions"].get("id-token") == "write"}
    assert oidc == {"upgrade-support-and-staging", "upgrade-prod-hubs"}
    assert jobs["generate-jobs"]["permissions"] == {"contents": "read", "actions": "read"}
    pr_jobs = load(PLAN_PR)["jobs"]
    assert pr_jobs["plan"]["permissions"] == {"contents": "read"}
    assert pr_jobs["comment"]["permissions"]["pull-requests"] == "write"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_secrets_only_in_steps(path: Path) -> None:
    doc = load(path)
    assert "secrets." not in yaml.safe_dump(doc.get("env", {}))
    for name, job in doc["jobs"].items():
        assert "secrets." not in yaml.safe_dump(job.get("env", {})), name
        assert job.get("secrets") != "inherit", name
        outer = {k: v for k, v in job.items() if k != "steps"}
        assert "secrets." not in yaml.safe_dump(outer), f"{name}: secrets outside steps"


def test_deploy_job_graph() -> None:
    jobs = load(DEPLOY)["jobs"]
    chain = ["generate-jobs", "upgrade-support-and-staging", "filter-generate-jobs",
             "upgrade-prod-hubs", "report"]
    assert list(jobs) == chain
    assert "needs" not in jobs["generate-jobs"]
    for before, after in itertools.pairwise(chain):
        needs = jobs[after]["needs"]
        assert before in ([needs] if isinstance(needs, str) else needs), f"{after} needs {before}"
    for name in chain[2:]:  # past a failed canary leg, but not past a cancel
        assert "!cancelled()" in jobs[name]["if"], name


def test_pr_plan_fails_on_broken_inputs_and_is_still_commented_on() -> None:
    jobs = load(PLAN_PR)["jobs"]
    plan = next(s for s in jobs["plan"]["steps"] if "hubtasks plan" in s.get("run", ""))
    assert "--strict" in plan["run"] and "--out .hubtasks/plan.json" in plan["run"]
    upload = next(s for s in jobs["plan"]["steps"] if "upload-artifact" in s.get("uses", ""))
    assert "!cancelled()" in upload["if"]
    assert "!cancelled()" in jobs["comment"]["if"]
    assert "head.repo.full_name == github.repository" in jobs["comment"]["if"]


def test_matrices_come_from_the_plan() -> None:
    jobs = load(DEPLOY)["jobs"]
    for name, key, source in [("upgrade-support-and-staging", "clusters", "generate-jobs"),
                              ("upgrade-prod-hubs", "jobs", "filter-generate-jobs")]:
        strategy = jobs[name]["strategy"]
        assert strategy["fail-fast"] is False
        assert strategy["matrix"].startswith(f"${{{{ fromJSON(needs.{source}.outputs.")
        runs = " ".join(str(s.get("env", {})) for s in jobs[name]["steps"])
        assert f"matrix.{key}" in runs


def test_base_is_the_last_successful_deploy() -> None:
    steps = {s.get("id"): s for s in load(DEPLOY)["jobs"]["generate-jobs"]["steps"]}
    assert "gh run list" in steps["base"]["run"] and "--status success" in steps["base"]["run"]
    assert "--everything" in steps["plan"]["run"]


@pytest.mark.parametrize(("tool", "args"), [
    ("actionlint", []),
    ("zizmor", ["--offline", "--no-progress", ".github/"]),
], ids=["actionlint", "zizmor"])
def test_linters_report_nothing(tool: str, args: list[str]) -> None:
    exe = shutil.which(tool, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if exe is None:
        pytest.fail(f"{tool} is missing: pip install -e '.[test]'")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([exe, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------ cluster-credentials helper

FAKE_CLI = """#!/bin/sh
echo "$(basename "$0") $* KUBECONFIG=${KUBECONFIG:-}" >> "$CALLS"
[ -n "$NO_WRITE" ] || echo "apiVersion: v1" > "$KUBECONFIG"
"""


@pytest.fixture()
def config_repo(tmp_path: Path) -> GitRepo:
    files = base_files()
    files[f"{C}/delta/cluster.yaml"] = {
        "name": "delta", "provider": "aws", "hubs": [],
        "aws": {"key": "enc-key.secret.json", "clusterName": "eks-delta", "region": "eu-west-1"}}
    files[f"{C}/delta/enc-key.secret.json"] = "{}\n"
    return GitRepo(tmp_path / "repo", files)


def kubeconfigs(repo: Path, *args: str, tmp: Path,
                no_write: str = "") -> subprocess.CompletedProcess[str]:
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    for cli in ("gcloud", "aws", "az"):
        (bindir / cli).write_text(FAKE_CLI)
        (bindir / cli).chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "GITHUB_OUTPUT": str(tmp / "output"), "CALLS": str(tmp / "calls"),
           "NO_WRITE": no_write}
    return subprocess.run([sys.executable, str(KUBECONFIGS), *args], cwd=repo, env=env,
                          capture_output=True, text=True, check=False)


def test_credentials_providers(config_repo: GitRepo, tmp_path: Path) -> None:
    proc = kubeconfigs(config_repo.root, "providers", "gamma/prod delta alpha gamma/staging",
                       tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "output").read_text().splitlines() == [
        "gcp=gamma", "aws=delta", "azure=", "aws-region=eu-west-1"]


def test_credentials_write_kubeconfigs(config_repo: GitRepo, tmp_path: Path) -> None:
    proc = kubeconfigs(config_repo.root, "write", "alpha beta gamma delta", tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    target = config_repo.root / ".hubtasks" / "kubeconfigs"
    assert (tmp_path / "calls").read_text().splitlines() == [
        f"gcloud container clusters get-credentials c --project p --location z "
        f"KUBECONFIG={target}/gamma.yaml",
        f"aws eks update-kubeconfig --name eks-delta --region eu-west-1 --kubeconfig "
        f"{target}/delta.yaml KUBECONFIG={target}/delta.yaml"]
    assert "alpha: provider local: no credentials to fetch" in proc.stdout
    assert oct((target / "gamma.yaml").stat().st_mode & 0o777) == "0o600"


def test_credentials_cli_that_writes_nothing(config_repo: GitRepo, tmp_path: Path) -> None:
    proc = kubeconfigs(config_repo.root, "write", "gamma", tmp=tmp_path, no_write="1")
    assert proc.returncode == 1 and "gcloud wrote no kubeconfig" in proc.stderr


def test_credentials_unknown_cluster(config_repo: GitRepo, tmp_path: Path) -> None:
    proc = kubeconfigs(config_repo.root, "providers", "nope", tmp=tmp_path)
    assert proc.returncode == 1 and "::error::" in proc.stderr and "nope" in proc.stderr
