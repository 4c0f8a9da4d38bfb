"""A chart_override that replaces a dependency (a daskhub hub overriding basehub) deploys
the top chart pointed at an overridden copy of that dependency; checked with real helm."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from hubtasks.config.load import load_config
from hubtasks.deploying.charts import SNAPSHOTS_DIR, prepare_job_charts
from hubtasks.dev.demo import copy_example
from hubtasks.helm import probe
from hubtasks.model import Job
from hubtasks.planning.planner import PlanRequest, build_plan

ROOT = Path(__file__).resolve().parents[1]
MARKER = "kind: ConfigMap\nmetadata:\n  name: override-marker\n"


@pytest.fixture()
def example(tmp_path: Path) -> Path:
    """The example repo; glacier (a daskhub hub) overrides basehub's Chart.yaml, adding a
    local `marker` chart whose ConfigMap shows up only when the override is used."""
    repo = copy_example(ROOT, tmp_path / "repo")
    marker = repo / "helm-charts/marker"
    (marker / "templates").mkdir(parents=True)
    (marker / "Chart.yaml").write_text("apiVersion: v2\nname: marker\nversion: 0.1.0\n")
    (marker / "templates/cm.yaml").write_text(MARKER)
    override = yaml.safe_load((repo / "helm-charts/basehub/Chart.yaml").read_text())
    override["dependencies"] = [{"name": "marker", "version": "0.1.0",
                                 "repository": "file://../marker"}]
    cluster = repo / "config/clusters/geo-cloud"
    (cluster / "basehub-override.yaml").write_text(yaml.safe_dump(override))
    text = (cluster / "cluster.yaml").read_text()
    hub = "domain: glacier.geo-cloud.example.org\n"
    assert hub in text
    (cluster / "cluster.yaml").write_text(
        text.replace(hub, f"{hub}  chart_override: basehub-override.yaml\n"))
    return repo


def _job(repo: Path, cluster: str, hub: str) -> Job:
    plan = build_plan(load_config(repo), PlanRequest(everything=True))
    return next(j for j in plan.jobs if j.cluster == cluster and j.hub == hub)


def _render(helm: Path, release: str, chart: Path) -> str:
    return subprocess.run([str(helm), "template", release, str(chart)], capture_output=True,
                          text=True, check=True).stdout


def test_daskhub_hub_renders_with_its_overridden_basehub(example: Path, helm: Path) -> None:
    config = load_config(example)
    assert config.cluster("geo-cloud").hub("glacier").override_chart == "helm-charts/basehub"
    jobs = [_job(example, "geo-cloud", "glacier"), _job(example, "geo-cloud", "ocean-lab")]
    prepared = prepare_job_charts(config, jobs, probe(helm, env=os.environ),
                                  work_dir=example / ".hubtasks/work", env=os.environ)
    assert not prepared.errors
    charts = prepared.charts
    top = charts[jobs[0].key]
    assert top == example / ".hubtasks/work/charts/geo-cloud--glacier/daskhub"
    deps = yaml.safe_load((top / "Chart.yaml").read_text())["dependencies"]
    assert [d["repository"] for d in deps] == ["file://../basehub"]
    copied = yaml.safe_load((top.parent / "basehub/Chart.yaml").read_text())
    assert copied["dependencies"][0]["repository"] == f"file://{example}/helm-charts/marker"
    rendered = _render(helm, "glacier", top)
    assert "name: override-marker" in rendered and "kind: Deployment" in rendered
    # the repo's own charts, and a daskhub hub without the override, are untouched
    assert charts[jobs[1].key] == example / ".hubtasks/work" / SNAPSHOTS_DIR / "helm-charts/daskhub"
    assert "override-marker" not in _render(helm, "ocean-lab", charts[jobs[1].key])
    assert "dependencies" not in yaml.safe_load(
        (example / "helm-charts/basehub/Chart.yaml").read_text())
