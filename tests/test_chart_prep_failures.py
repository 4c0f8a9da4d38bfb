"""A chart that fails to prepare fails only the releases that need it, never the run.

`helm dependency build` of a chart with local `file://` dependencies, and a hub's
chart_override copy, are prepared before any job runs. A failure there fails, at once and
without helm upgrade/template, only the jobs whose chart closure needs that chart (or the hub
of that override), each recorded with helm's error; the other jobs deploy. Real helm, through
the console script, with `--dry-run` (no cluster needed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from hubtasks.config.load import load_config
from hubtasks.deploying.charts import SNAPSHOTS_DIR, prepare_job_charts
from hubtasks.dev.demo import DEMO_KEY, copy_example
from hubtasks.helm import probe
from hubtasks.model import Job, JobResult, Status
from hubtasks.planning.planner import PlanRequest, build_plan
from hubtasks.results import load_results

ROOT = Path(__file__).resolve().parents[1]
HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]
BASEHUB = "helm-charts/basehub/Chart.yaml"
DASKHUB = "helm-charts/daskhub/Chart.yaml"
NEURO_OVERRIDE = "config/clusters/bio-cloud/neuro-chart.yaml"  # bio-cloud/neuro's override
DASKHUB_JOBS = {"staging:geo-cloud/dask-staging", "prod:geo-cloud/glacier",
                "prod:geo-cloud/ocean-lab", "prod:bio-cloud/genomics"}


@pytest.fixture()
def example(tmp_path: Path) -> Path:
    return copy_example(ROOT, tmp_path / "repo")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                   check=True, capture_output=True)


def _edit(repo: Path, rel: str, text: str) -> None:
    (repo / rel).write_text(text)
    _git(repo, "commit", "-q", "-am", f"break {rel}")


def _hubtasks(repo: Path, helm: Path, sops: Path,
              *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUBTASKS_HELM": str(helm), "HUBTASKS_SOPS": str(sops),
           "SOPS_AGE_KEY_FILE": str(repo / DEMO_KEY)}
    return subprocess.run([*HUBTASKS, *args], cwd=repo, env=env, capture_output=True,
                          text=True, check=False, timeout=300)


def _run(repo: Path, helm: Path, sops: Path, *args: str) -> dict[str, JobResult]:
    """Run a deploy task; every job ran or was failed, none crashed: exit 1, no traceback."""
    done = _hubtasks(repo, helm, sops, *args, "--dry-run", "--no-lock")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout
    return {r.name: r for r in load_results([repo / ".hubtasks/results.json"])}


def _plan(repo: Path, helm: Path, sops: Path) -> None:
    done = _hubtasks(repo, helm, sops, "plan", "--everything", "--out", ".hubtasks/plan.json")
    assert done.returncode == 0, done.stderr


def _failed_at_once(result: JobResult, *needles: str) -> None:
    assert result.status is Status.FAILED, result
    assert result.attempts == 0, result  # no helm upgrade / template was tried
    for needle in needles:
        assert needle in result.error, result.error


def _unsatisfiable_basehub_dependency(repo: Path) -> None:
    """daskhub asks for a basehub version that isn't there (and its Chart.lock no longer
    matches): a Chart.yaml the plan accepts, whose `helm dependency build` fails."""
    text = (repo / DASKHUB).read_text()
    assert '    version: "0.1.0"\n    repository: file://../basehub' in text
    _edit(repo, DASKHUB, text.replace('    version: "0.1.0"\n    repository: file://../basehub',
                                      '    version: "9.9.9"\n    repository: file://../basehub'))


# ---------------------------------------------------------------------------- H1


def test_a_chart_whose_dependency_build_fails_blocks_only_its_releases_canary(
        example: Path, helm: Path, sops: Path) -> None:
    _unsatisfiable_basehub_dependency(example)  # daskhub's `helm dependency build` fails
    _plan(example, helm, sops)
    results = _run(example, helm, sops, "canary")
    dask = results["staging:geo-cloud/dask-staging"]
    _failed_at_once(dask, "chart not prepared", "helm-charts/daskhub", "helm dependency build")
    # the first line (what tables and the console show) carries helm's message
    assert dask.error.splitlines()[0].startswith("chart not prepared: chart ")
    assert "Error:" in dask.error.splitlines()[0], dask.error
    for cluster in ("bio-cloud", "edu-cloud", "geo-cloud"):  # the support chart is sound
        assert results[f"support:{cluster}/support"].status is Status.SUCCEEDED
    # a basehub hub does not need daskhub: it deploys
    assert results["staging:edu-cloud/sandbox"].status is Status.SUCCEEDED


def test_a_chart_whose_dependency_build_fails_blocks_only_its_releases_deploy_all(
        example: Path, helm: Path, sops: Path) -> None:
    _unsatisfiable_basehub_dependency(example)
    results = _run(example, helm, sops, "deploy-all", "--everything")
    for name in ("staging:geo-cloud/dask-staging", "prod:bio-cloud/genomics"):
        _failed_at_once(results[name], "chart not prepared", "helm-charts/daskhub")
    # geo-cloud's canary failed: the rest of its canary and its prod hubs are skipped
    geo = [r for r in results.values() if r.cluster == "geo-cloud" and r.hub is not None
           and r.hub != "dask-staging"]
    assert geo and all(r.status is Status.SKIPPED for r in geo), geo
    others = [r for name, r in results.items() if r not in geo and name not in DASKHUB_JOBS]
    assert others and all(r.status is Status.SUCCEEDED for r in others), others


def test_a_chart_yaml_helm_would_refuse_marks_its_releases_at_plan_time(
        example: Path, helm: Path, sops: Path) -> None:
    text = (example / BASEHUB).read_text()
    _edit(example, BASEHUB, text.replace("\nname: basehub\n", "\n"))
    results = _run(example, helm, sops, "deploy-all", "--everything")
    _failed_at_once(results["staging:edu-cloud/sandbox"], "invalid inputs",
                    "helm-charts/basehub/Chart.yaml: name is required")
    for cluster in ("bio-cloud", "edu-cloud", "geo-cloud"):
        assert results[f"support:{cluster}/support"].status is Status.SUCCEEDED
    # neuro's chart_override replaces basehub's Chart.yaml: the broken one is not its chart
    assert results["prod:bio-cloud/neuro"].status is Status.SUCCEEDED


# ---------------------------------------------------------------------------- H2


def test_an_override_that_is_not_yaml_fails_only_its_hub(example: Path, helm: Path,
                                                         sops: Path) -> None:
    _edit(example, NEURO_OVERRIDE, "a: [\n")
    _plan(example, helm, sops)
    results = _run(example, helm, sops, "prod")
    _failed_at_once(results["prod:bio-cloud/neuro"], "neuro-chart.yaml", "invalid YAML")
    others = [r for name, r in results.items() if name != "prod:bio-cloud/neuro"]
    assert others and all(r.status is Status.SUCCEEDED for r in others), others


def _jobs(repo: Path) -> list[Job]:
    return list(build_plan(load_config(repo, tolerant=True), PlanRequest(everything=True)).jobs)


def test_preparing_an_override_that_is_not_yaml_is_that_jobs_error(example: Path,
                                                                   helm: Path) -> None:
    """Even a job the plan did not mark (validate prepares every release) gets an error,
    not a YAML traceback, and the other jobs their charts."""
    _edit(example, NEURO_OVERRIDE, "a: [\n")
    config = load_config(example, tolerant=True)
    jobs = [replace(j, invalid=()) for j in _jobs(example)]
    prepared = prepare_job_charts(config, jobs, probe(helm, env=os.environ),
                                  work_dir=example / ".hubtasks/work", env=os.environ)
    assert {str(k) for k in prepared.errors} == {"bio-cloud/neuro"}
    assert f"{NEURO_OVERRIDE}:2:1: invalid YAML" in next(iter(prepared.errors.values()))
    assert set(prepared.charts) == {j.key for j in jobs} - set(prepared.errors)


# ---------------------------------------------------------------------------- H3


def test_an_override_dependency_pointing_nowhere_fails_only_its_hub(example: Path, helm: Path,
                                                                    sops: Path) -> None:
    text = (example / NEURO_OVERRIDE).read_text()
    _edit(example, NEURO_OVERRIDE, text + "dependencies:\n- name: nope\n  version: 0.1.0\n"
                                          "  repository: file://../nope\n")
    results = _run(example, helm, sops, "deploy-all", "--everything")
    # the plan finds it (load checks an override's file:// paths): invalid, never prepared
    _failed_at_once(results["prod:bio-cloud/neuro"], "invalid inputs",
                    "which holds no Chart.yaml", NEURO_OVERRIDE)
    others = [r for name, r in results.items() if name != "prod:bio-cloud/neuro"]
    assert len(others) == 12 and all(r.status is Status.SUCCEEDED for r in others), others


# ---------------------------------------------------------------------------- propagation


def test_a_failed_dependency_is_not_packaged_into_the_charts_that_need_it(
        example: Path, helm: Path) -> None:
    """basehub -> file://../common, common broken: basehub's build fails, daskhub (which
    needs basehub) is not built at all and its jobs carry basehub's error; support builds."""
    (example / "helm-charts/common/templates").mkdir(parents=True)
    (example / "helm-charts/common/Chart.yaml").write_text("apiVersion: v2\nversion: 0.1.0\n")
    (example / BASEHUB).write_text((example / BASEHUB).read_text() + (
        "dependencies:\n- name: common\n  version: 0.1.0\n  repository: file://../common\n"))
    _git(example, "add", "-A")
    _git(example, "commit", "-q", "-m", "basehub needs a broken common")
    config = load_config(example, tolerant=True)
    jobs = _jobs(example)
    prepared = prepare_job_charts(config, jobs, probe(helm, env=os.environ),
                                  work_dir=example / ".hubtasks/work", env=os.environ)
    by_name = {j.name: j for j in jobs}
    for name in DASKHUB_JOBS:
        error = prepared.errors[by_name[name].key]
        assert error.startswith(f"chart {example}/helm-charts/basehub: `helm dependency "
                                "build` failed"), error
    assert not (example / "helm-charts/daskhub/charts").exists()  # never built
    assert prepared.charts[by_name["support:geo-cloud/support"].key] == \
        example / ".hubtasks/work" / SNAPSHOTS_DIR / "helm-charts/support"
    assert by_name["prod:bio-cloud/neuro"].key in prepared.charts  # its override has no deps
