"""End to end: deploy-hubs.yaml's job graph run locally against real local clusters.

The workflow file itself is parsed and run by tests/actions_runner.py: jobs in `needs` order,
`if:` conditions, matrices from the plan's outputs, a GITHUB_OUTPUT file per step, artifacts
as folders. Each job leg gets a fresh `git clone` of a copy of the example config, as on
GitHub. The deployed change breaks one staging hub and touches every cluster's support and
the shared hub chart, so every cluster has a canary leg and prod legs; the broken cluster's
canary fails, its prod hubs are filtered out, and the report fails the run.

Only what a runner machine provides is stood in for: checkout (a clone), setup-python (this
venv first on PATH), the install step (hubtasks is already installed here), `gh` (a fake
that names the last successfully deployed commit) and the local clusters' kubeconfigs (which
the cluster-credentials action leaves to whoever created the clusters; the action itself
runs, from this repository).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from actions_runner import JobOutcome, JobRun, Step, load_workflow, run_workflow

from hubtasks import binaries
from hubtasks.config.load import load_config
from hubtasks.config.model import RepoConfig
from hubtasks.dev import install
from hubtasks.dev.demo import DEMO_KEY, BrokenHub, break_hub, copy_example, pick_broken_hub
from hubtasks.dev.localk8s import LocalClusters
from hubtasks.model import JobResult, Status
from hubtasks.options import Limits
from hubtasks.results import load_results, merge_results

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "deploy-hubs.yaml"
CREDENTIALS = "$/.github/actions/cluster-credentials"
VENV_BIN = Path(sys.executable).parent
KUBECONFIGS = ".hubtasks/kubeconfigs"
TIMEOUT = "30s"  # the broken staging hub waits this long for its pods
REPOSITORY = "example-org/hubs"
FAKE_GH = """#!/bin/sh
# `gh run list ... --json headSha --jq ...`: the head of the last successful deploy.
printf '%s\\n' "$*" >> "$FAKE_GH_CALLS"
echo "$FAKE_GH_SHA"
"""
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
Handler = Callable[[Step, JobRun], Mapping[str, str] | None]


@dataclass(frozen=True, kw_only=True)
class WorkflowRun:
    """One run of the workflow and everything a test looks at afterwards."""

    repo: Path
    base: str
    head: str
    broken: BrokenHub
    config: RepoConfig
    outcomes: dict[str, JobOutcome]
    artifacts: Path
    workspaces: Path
    helm: Path
    gh_calls: Path

    def kubeconfig(self, cluster: str) -> Path:
        return self.repo / KUBECONFIGS / f"{cluster}.yaml"

    def releases(self, cluster: str) -> dict[str, dict[str, Any]]:
        """`helm list -A`, read from the cluster itself."""
        out = _run([str(self.helm), "list", "-A", "-o", "json", "--kubeconfig",
                    str(self.kubeconfig(cluster))], cwd=self.repo)
        return {r["name"]: r for r in json.loads(out)}

    def history(self, cluster: str, release: str) -> list[dict[str, Any]]:
        out = _run([str(self.helm), "history", release, "-n", release, "-o", "json",
                    "--kubeconfig", str(self.kubeconfig(cluster))], cwd=self.repo)
        return list(json.loads(out))

    def summary(self, job: str, leg: int = 0) -> str:
        """The $GITHUB_STEP_SUMMARY a job leg wrote."""
        return (self.workspaces / f".runner-{job}-{leg}" / "summary.md").read_text()

    def matrix(self, job: str, output: str) -> list[dict[str, str]]:
        return list(json.loads(self.outcomes[job].outputs[output])["include"])


def _run(argv: list[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{argv}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc.stdout.strip()


def touch_every_cluster(repo: Path, config: RepoConfig) -> None:
    """Edit each support values file and the hub chart shared by every hub (not committed)."""
    for cluster in config.clusters.values():
        with (repo / cluster.folder / "support.values.yaml").open("a") as handle:
            handle.write("# e2e: touched to plan this cluster's support release\n")
    template = repo / "helm-charts/basehub/templates/hub-configmap.yaml"
    template.write_text(template.read_text() + "# e2e: touched to plan every hub\n")


def first_deploy(repo: Path, checkout: Path, helm: Path) -> None:
    """Deploy the base commit from its own clone, as the last successful run of the workflow
    did (a deploy builds chart dependencies in place, which must not leak into the repo)."""
    _run([*GIT, "clone", "-q", str(repo), str(checkout)], cwd=repo)
    shutil.copytree(repo / KUBECONFIGS, checkout / KUBECONFIGS)
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(repo / DEMO_KEY),
           "HUBTASKS_HELM": str(helm), "INVOKE_HUBTASKS_TIMEOUT": TIMEOUT}
    _run([str(VENV_BIN / "hubtasks"), "deploy-all", "--everything"], cwd=checkout, env=env)


# ---------------------------------------------------------------------- the runner's handlers

def checkout(repo: Path) -> Handler:
    """actions/checkout: a full clone of the repo, plus the local clusters' kubeconfigs."""

    def handle(step: Step, run: JobRun) -> None:
        _run([*GIT, "clone", "-q", str(repo), "."], cwd=run.workspace)
        _run([*GIT, "checkout", "-q", "--detach", run.context["github"]["sha"]],
             cwd=run.workspace)
        shutil.copytree(repo / KUBECONFIGS, run.workspace / KUBECONFIGS)

    return handle


def setup_python(step: Step, run: JobRun) -> None:
    """actions/setup-python: the venv's python (with hubtasks installed) first on PATH."""
    assert step.with_["python-version"] == "3.11"
    run.path_prepend.insert(0, str(VENV_BIN))


def cluster_credentials(step: Step, run: JobRun) -> dict[str, str]:
    """The composite action from this repository, its steps run by the same runner."""
    folder = ROOT / CREDENTIALS.removeprefix("$/")
    action = yaml.safe_load((folder / "action.yaml").read_text())
    inputs = {name: step.with_.get(name, str(spec.get("default", "")))
              for name, spec in action["inputs"].items()}
    outputs = {name: spec["value"] for name, spec in action["outputs"].items()}
    composite = {"jobs": {"action": {"steps": action["runs"]["steps"], "outputs": outputs}}}
    inner = JobRun(workflow=composite, job="action",
                   context={**run.context, "inputs": inputs, "steps": {}},
                   workspace=run.workspace, artifacts=run.artifacts, base_env=run.base_env,
                   extra_env={"GITHUB_ACTION_PATH": str(folder)},
                   path_prepend=list(run.path_prepend))
    result, values = inner.run()
    if result != "success":
        raise subprocess.CalledProcessError(1, f"{CREDENTIALS}: {inner.log}")
    return values


def offline_installs(workflow: dict[str, Any]) -> list[str]:
    """Replace the install steps (pip install ., install-tools) with a check that hubtasks
    is on PATH: the temp repo is a config repo, and the tools are installed already."""
    replaced = []
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            if "pip install" in step.get("run", ""):
                step["run"] = "hubtasks --version"
                replaced.append(f"{name}: {step['name']}")
    return replaced


# ---------------------------------------------------------------------- the run

@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkflowRun]:
    work = tmp_path_factory.mktemp("workflow-e2e")
    helm = install.install_helm(4, os.environ)
    repo = copy_example(ROOT, work / "repo")
    base_config = load_config(repo)
    base = _run(["git", "rev-parse", "HEAD"], cwd=repo)
    clusters = LocalClusters(sorted(base_config.clusters), work / "clusters")
    try:
        clusters.start()
        clusters.write_kubeconfigs(repo / KUBECONFIGS)
        first_deploy(repo, work / "first-deploy", helm)
        broken = pick_broken_hub(base_config)
        touch_every_cluster(repo, base_config)
        break_hub(repo, base_config, broken)  # commits the touches too: one change on top
        head = _run(["git", "rev-parse", "HEAD"], cwd=repo)
        run = run_deploy_workflow(work, repo, base=base, head=head, helm=helm)
        yield WorkflowRun(repo=repo, base=base, head=head, broken=broken,
                          config=load_config(repo), helm=helm, **run)
    finally:
        clusters.stop()


def run_deploy_workflow(work: Path, repo: Path, *, base: str, head: str,
                        helm: Path) -> dict[str, Any]:
    """Run deploy-hubs.yaml for a push of `head` to main; outcomes and where things are."""
    workflow = load_workflow(WORKFLOW)
    assert offline_installs(workflow) == [
        "generate-jobs: Install hubtasks",
        "upgrade-support-and-staging: Install hubtasks, helm and sops",
        "filter-generate-jobs: Install hubtasks",
        "upgrade-prod-hubs: Install hubtasks, helm and sops",
        "report: Install hubtasks"]
    bindir, workspaces, artifacts = work / "bin", work / "workspaces", work / "artifacts"
    bindir.mkdir()
    (bindir / "gh").write_text(FAKE_GH)
    (bindir / "gh").chmod(0o755)
    gh_calls = work / "gh-calls"
    # The runner's own environment: the tools `hubtasks install-tools` would have cached, and
    # a helm timeout short enough for the broken hub (invoke config hubtasks.timeout).
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "HOME": str(work),
           "LANG": "C.UTF-8", "HUBTASKS_CACHE": str(binaries.cache_dir(os.environ)),
           "HUBTASKS_HELM": str(helm), "INVOKE_HUBTASKS_TIMEOUT": TIMEOUT,
           "FAKE_GH_SHA": base, "FAKE_GH_CALLS": str(gh_calls)}
    context = {
        "github": {"event_name": "push", "ref": "refs/heads/main", "ref_name": "main",
                   "sha": head, "repository": REPOSITORY, "token": "fake-token",
                   "workflow": "Deploy hubs", "run_id": 1,
                   "workflow_ref": f"{REPOSITORY}/.github/workflows/deploy-hubs.yaml"
                                   "@refs/heads/main",
                   "event": {"repository": {"default_branch": "main"}}},
        "inputs": {}, "vars": {},
        "secrets": {"SOPS_AGE_KEY": (repo / DEMO_KEY).read_text()},
        "runner": {"os": "Linux", "temp": str(work / "runner-temp")}}

    def workspace(job: str, leg: int) -> Path:
        folder = workspaces / f"{job}-{leg}"
        folder.mkdir(parents=True)
        return folder

    handlers = {"actions/checkout": checkout(repo), "actions/setup-python": setup_python,
                CREDENTIALS: cluster_credentials}
    outcomes = run_workflow(workflow, context, workspace=workspace, artifacts=artifacts,
                            env=env, handlers=handlers)
    return {"outcomes": outcomes, "artifacts": artifacts, "workspaces": workspaces,
            "gh_calls": gh_calls}


# ---------------------------------------------------------------------- expectations

def planned(config: RepoConfig) -> dict[str, list[str]]:
    """Every job the change plans, by stage: all support releases and every hub."""
    jobs: dict[str, list[str]] = {"support": [], "staging": [], "prod": []}
    for cluster in config.clusters.values():
        jobs["support"].append(f"{cluster.name}/support")
        for hub in cluster.hubs:
            jobs["staging" if hub.staging else "prod"].append(f"{cluster.name}/{hub.name}")
    return {stage: sorted(ids) for stage, ids in jobs.items()}


def prod_of(config: RepoConfig, cluster: str) -> list[str]:
    return sorted(f"{cluster}/{h.name}" for h in config.cluster(cluster).hubs if not h.staging)


def step_outcome(outcome: JobOutcome, leg: int, step: str) -> str:
    return dict(outcome.legs[leg])[step]


def merged_results(folder: Path) -> dict[str, JobResult]:
    """Every results file under `folder`, merged, by `stage:cluster/hub`."""
    assert folder.is_dir(), folder
    return {f"{r.stage.value}:{r.cluster}/{r.hub or 'support'}": r
            for r in merge_results(load_results([folder]))}


# ---------------------------------------------------------------------- the checks

def test_plan_job_plans_every_cluster_against_the_last_deploy(workflow_run: WorkflowRun) -> None:
    run = workflow_run
    plan_job = run.outcomes["generate-jobs"]
    assert plan_job.result == "success"
    assert plan_job.outputs["has-canary"] == "true" and plan_job.outputs["has-prod"] == "true"
    assert plan_job.outputs["head"] == run.head
    calls = run.gh_calls.read_text().splitlines()
    assert len(calls) == 1 and "run list" in calls[0] and "--status success" in calls[0]
    assert f"--repo {REPOSITORY}" in calls[0] and "--branch main" in calls[0]
    assert "--workflow deploy-hubs.yaml" in calls[0]
    plan = json.loads((run.artifacts / "plan" / "plan.json").read_text())
    assert plan["base"] == run.base and plan["head"] == run.head
    by_stage: dict[str, list[str]] = {"support": [], "staging": [], "prod": []}
    for job in plan["jobs"]:
        by_stage[job["stage"]].append(f"{job['cluster']}/{job['hub'] or 'support'}")
    assert by_stage == planned(run.config)
    assert [leg["name"] for leg in run.matrix("generate-jobs", "canary-matrix")] == sorted(
        run.config.clusters)
    assert "hubtasks plan" in run.summary("generate-jobs")


def test_only_the_broken_clusters_canary_leg_fails(workflow_run: WorkflowRun) -> None:
    run = workflow_run
    canary = run.outcomes["upgrade-support-and-staging"]
    legs = run.matrix("generate-jobs", "canary-matrix")
    assert canary.result == "failure" and len(canary.legs) == len(legs) == 3
    for index, leg in enumerate(legs):
        failed = leg["clusters"] == run.broken.cluster
        assert step_outcome(canary, index, "Upgrade support and staging hubs") == (
            "failure" if failed else "success"), leg
        assert step_outcome(canary, index, "Cluster credentials") == "success"
        artifact = run.artifacts / f"canary-results-{index}-{leg['name']}" / "canary.json"
        assert artifact.is_file()  # uploaded by the `if: always()` steps, even on failure
    assert (run.artifacts / f"canary-logs-0-{legs[0]['name']}").is_dir()


def test_filter_drops_exactly_the_broken_clusters_prod_jobs(workflow_run: WorkflowRun) -> None:
    run = workflow_run
    filter_job = run.outcomes["filter-generate-jobs"]
    assert filter_job.result == "success" and filter_job.outputs["has-prod"] == "true"
    kept = [leg["jobs"] for leg in run.matrix("filter-generate-jobs", "prod-matrix")]
    dropped = prod_of(run.config, run.broken.cluster)
    assert dropped and kept == sorted(set(planned(run.config)["prod"]) - set(dropped))
    recorded = merged_results(run.artifacts / "filter-results")
    assert sorted(key.removeprefix("prod:") for key in recorded) == dropped
    reason = f"canary staging:{run.broken.cluster}/{run.broken.hub} failed"
    assert {(r.status, r.reason) for r in recorded.values()} == {(Status.SKIPPED, reason)}


def test_prod_legs_run_for_the_surviving_clusters_only(workflow_run: WorkflowRun) -> None:
    run = workflow_run
    prod = run.outcomes["upgrade-prod-hubs"]
    legs = run.matrix("filter-generate-jobs", "prod-matrix")
    assert prod.result == "success" and len(prod.legs) == len(legs)
    assert prod.max_parallel == Limits().jobs  # filter's prod-max-parallel, evaluated
    assert all(step_outcome(prod, i, "Upgrade prod hubs") == "success" for i in range(len(legs)))
    assert {leg["jobs"].split("/")[0] for leg in legs} == set(run.config.clusters) - {
        run.broken.cluster}


def test_report_merges_every_result_and_fails_the_run(workflow_run: WorkflowRun) -> None:
    run = workflow_run
    report = run.outcomes["report"]
    assert report.result == "failure"
    assert step_outcome(report, 0, "Report every job (fails if any failed, was cancelled or "
                                   "has no result)") == "failure"
    assert step_outcome(report, 0, "Fail if a job ended before recording results") == "skipped"
    all_results = run.workspaces / "report-0" / ".hubtasks" / "all-results"  # as downloaded
    assert sorted(p.name for p in all_results.iterdir()) == sorted(
        p.name for p in run.artifacts.iterdir() if "-results" in p.name)
    results = merged_results(all_results)
    expected = {}
    for stage, ids in planned(run.config).items():
        for job in ids:
            cluster = job.split("/")[0]
            status = Status.SUCCEEDED
            if job == f"{run.broken.cluster}/{run.broken.hub}":
                status = Status.FAILED
            elif stage == "prod" and cluster == run.broken.cluster:
                status = Status.SKIPPED
            expected[f"{stage}:{job}"] = status
    assert {key: r.status for key, r in results.items()} == expected
    assert {r.head for r in results.values() if r.status is not Status.SKIPPED} == {run.head}
    summary = run.summary("report")
    assert "## hubtasks deploy results" in summary
    assert "| stage " in summary and "| status " in summary
    table = [line for line in summary.splitlines() if line.startswith("| ")][1:]
    rows = {tuple(cell.strip() for cell in line.strip("|").split("|")[:4]) for line in table}
    assert rows == {(key.split(":")[0], *summary_hub(key.split(":")[1]), status.value)
                    for key, status in expected.items()}


def summary_hub(job: str) -> tuple[str, str]:
    """(cluster, hub) as the results table shows them: support has an empty hub."""
    cluster, hub = job.split("/")
    return cluster, "" if hub == "support" else hub


def test_the_clusters_hold_what_the_run_deployed(workflow_run: WorkflowRun) -> None:
    run = workflow_run
    for name, cluster in run.config.clusters.items():
        releases = run.releases(name)
        assert releases["support"]["status"] == "deployed"
        assert releases["support"]["revision"] == "2", name  # first deploy, then this run
        for hub in cluster.hubs:
            if (name, hub.name) == (run.broken.cluster, run.broken.hub):
                continue
            untouched = name == run.broken.cluster and not hub.staging
            assert releases[hub.name]["status"] == "deployed", (name, hub.name)
            assert releases[hub.name]["revision"] == ("1" if untouched else "2"), hub.name
            deployed_by = run.history(name, hub.name)[-1]["description"]
            assert deployed_by.startswith(f"hubtasks head={run.base if untouched else run.head}")


def test_the_failed_canary_was_rolled_back(workflow_run: WorkflowRun) -> None:
    history = workflow_run.history(workflow_run.broken.cluster, workflow_run.broken.hub)
    assert [h["status"] for h in history] == ["superseded", "failed", "deployed"]
    assert history[-1]["description"].startswith("Rollback to 1")
