"""The glue between tasks and core, through the console script: selection by exact cluster
name, `filter --record`, `report --plan` with missing results, `validate`'s failure messages.

The clusters `leap` and `leap-staging` share a prefix on purpose: selecting one must never
select the other. Deploys here are `--dry-run` (real `helm template`, no cluster needed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gitrepo import GIT_ENV, GitRepo

from hubtasks.model import JobResult, Stage, Status
from hubtasks.planning.planfile import load_plan
from hubtasks.results import ResultsStore, load_results

HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]
C = "config/clusters"
CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}
data:
  greeting: {{ required "greeting is required" .Values.greeting | quote }}
"""


def cluster(name: str) -> dict[str, Any]:
    return {"name": name, "provider": "local",
            "support": {"helm_chart_values_files": ["support.values.yaml"]},
            "hubs": [{"name": "staging", "domain": f"staging.{name}.org", "helm_chart": "hub",
                      "helm_chart_values_files": ["hub.values.yaml"]},
                     {"name": "prod", "domain": f"{name}.org", "helm_chart": "hub",
                      "helm_chart_values_files": ["hub.values.yaml"]}]}


def repo_files() -> dict[str, Any]:
    files: dict[str, Any] = {}
    for chart in ("hub", "support"):
        files[f"helm-charts/{chart}/Chart.yaml"] = {"apiVersion": "v2", "name": chart,
                                                    "version": "0.1.0"}
        files[f"helm-charts/{chart}/templates/cm.yaml"] = CONFIGMAP
    for name in ("leap", "leap-staging"):
        files[f"{C}/{name}/cluster.yaml"] = cluster(name)
        files[f"{C}/{name}/support.values.yaml"] = "greeting: support\n"
        files[f"{C}/{name}/hub.values.yaml"] = "greeting: hello\n"
    return files


@pytest.fixture()
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "repo", repo_files())


def hubtasks(repo: GitRepo, *args: str,
             helm: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "PATH": os.environ["PATH"]}
    if helm is not None:
        env["HUBTASKS_HELM"] = str(helm)
    return subprocess.run([*HUBTASKS, *args], cwd=repo.root, env=env, capture_output=True,
                          text=True, check=False, timeout=300)


def planned(repo: GitRepo) -> Path:
    done = hubtasks(repo, "plan", "--everything", "--out", ".hubtasks/plan.json")
    assert done.returncode == 0, done.stderr
    return repo.root / ".hubtasks/plan.json"


def names(results: list[JobResult]) -> list[str]:
    return [r.name for r in results]


@pytest.mark.parametrize("chosen", ["leap", "leap-staging"])
def test_cluster_selection_is_by_exact_name(repo: GitRepo, helm: Path, chosen: str) -> None:
    planned(repo)
    canary = hubtasks(repo, "canary", "--cluster", chosen, "--dry-run", helm=helm)
    assert canary.returncode == 0, canary.stdout + canary.stderr
    prod = hubtasks(repo, "prod", "--cluster", chosen, "--dry-run", helm=helm)
    assert prod.returncode == 0, prod.stdout + prod.stderr
    results = load_results([repo.root / ".hubtasks/results.json"])
    assert names(results) == [f"support:{chosen}/support", f"staging:{chosen}/staging",
                              f"prod:{chosen}/prod"]


def test_unknown_cluster_is_a_user_error(repo: GitRepo) -> None:
    planned(repo)
    done = hubtasks(repo, "canary", "--cluster", "lea", "--dry-run")
    assert done.returncode == 2 and "cluster(s) not in the plan: lea" in done.stderr
    assert "Traceback" not in done.stderr


def record(repo: GitRepo, *results: JobResult) -> Path:
    """Record `results` as records of the saved plan (they carry its plan_id)."""
    path = repo.root / ".hubtasks/results.json"
    plan_id = load_plan(repo.root / ".hubtasks/plan.json").plan_id
    ResultsStore(path).record_many(dataclasses.replace(r, plan_id=plan_id) for r in results)
    return path


def outcome(stage: Stage, cluster: str, hub: str | None, status: Status) -> JobResult:
    return JobResult(stage=stage, cluster=cluster, hub=hub, status=status,
                     started_at="2026-12-01T00:00:00+00:00")


CANARY_OK = [outcome(Stage.SUPPORT, "leap", None, Status.SUCCEEDED),
             outcome(Stage.STAGING, "leap", "staging", Status.SUCCEEDED),
             outcome(Stage.SUPPORT, "leap-staging", None, Status.SUCCEEDED)]


def test_filter_drops_failed_clusters_and_records_them(repo: GitRepo, tmp_path: Path) -> None:
    planned(repo)
    record(repo, *CANARY_OK,
           outcome(Stage.STAGING, "leap-staging", "staging", Status.FAILED))
    recorded = tmp_path / "dropped.json"
    done = hubtasks(repo, "filter", "--record", str(recorded), "--out", "prod.json")
    assert done.returncode == 0, done.stderr
    assert "dropped prod:leap-staging/prod: canary staging:leap-staging/staging failed" in \
        done.stdout
    assert "1 prod job(s) kept, 1 dropped" in done.stdout
    [skipped] = load_results([recorded])
    assert (skipped.name, skipped.status) == ("prod:leap-staging/prod", Status.SKIPPED)
    kept = json.loads((repo.root / "prod.json").read_text())["jobs"]
    assert [(j["cluster"], j["hub"]) for j in kept] == [("leap", "prod")]


def test_a_canary_job_without_a_result_fails_the_gate(repo: GitRepo) -> None:
    planned(repo)
    record(repo, *CANARY_OK)  # leap-staging's staging hub has no result
    done = hubtasks(repo, "filter")
    assert "dropped prod:leap-staging/prod: canary staging:leap-staging/staging has no " \
           "result" in done.stdout


def test_report_with_a_plan_fails_on_missing_results(repo: GitRepo) -> None:
    plan = planned(repo)
    record(repo, *CANARY_OK)
    done = hubtasks(repo, "report", "--plan", str(plan))
    assert done.returncode == 1
    assert "3 planned job(s) have no result" in done.stderr
    everything = [*CANARY_OK, outcome(Stage.STAGING, "leap-staging", "staging", Status.SUCCEEDED),
                  outcome(Stage.PROD, "leap", "prod", Status.SUCCEEDED),
                  outcome(Stage.PROD, "leap-staging", "prod", Status.SUCCEEDED)]
    record(repo, *everything)
    assert hubtasks(repo, "report", "--plan", str(plan)).returncode == 0


def test_report_of_nothing_fails(repo: GitRepo) -> None:
    (repo.root / "empty").mkdir()
    done = hubtasks(repo, "report", "--results", "empty")
    assert done.returncode == 1 and "no results to report" in done.stderr


def test_validate_names_each_failure(repo: GitRepo, helm: Path) -> None:
    (repo.root / f"{C}/leap/hub.values.yaml").write_text("other: 1\n")  # greeting missing
    done = hubtasks(repo, "validate", "--cluster", "leap", helm=helm)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Failures (" in done.stdout
    for release in ("staging", "prod"):  # lint may pass (helm lint checks less than template)
        assert f"leap/{release} template:\n" in done.stdout
    assert "greeting is required" in done.stdout
    assert "3 releases, 6 checks: " in done.stdout and " 0 failed" not in done.stdout
