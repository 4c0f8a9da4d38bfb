"""The deploy runner: digests, credentials, chart preparation, secret redaction."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from hubtasks.config.load import load_config
from hubtasks.deploying.charts import prepare_job_charts
from hubtasks.deploying.credentials import Credentials
from hubtasks.deploying.runner import HelmRunner
from hubtasks.deploying.values import release_digest
from hubtasks.dev.demo import DEMO_KEY, copy_example
from hubtasks.helm import probe
from hubtasks.model import HubtasksError, Job, Stage, Status
from hubtasks.options import DeployOptions
from hubtasks.planning.planner import PlanRequest, build_plan

ROOT = Path(__file__).resolve().parents[1]
ECHO_HELM = """#!/bin/sh
# prints every values file it is given, like a chart whose NOTES echo values would
[ "$1" = version ] && { echo v3.17.3+gfake; exit 0; }
[ "$1" = dependency ] && exit 0
while [ $# -gt 0 ]; do
  if [ "$1" = -f ]; then cat "$2"; shift; fi
  shift
done
"""


@pytest.fixture()
def example(tmp_path: Path) -> Path:
    return copy_example(ROOT, tmp_path / "repo")


def _job(repo: Path, cluster: str, hub: str) -> Job:
    plan = build_plan(load_config(repo), PlanRequest(everything=True))
    return next(j for j in plan.jobs if j.cluster == cluster and j.hub == hub)


def test_digest_follows_inputs(example: Path) -> None:
    job = _job(example, "geo-cloud", "seismo")
    before = release_digest(load_config(example), job)
    assert release_digest(load_config(example), job) == before
    (example / "helm-charts/basehub/charts").mkdir(exist_ok=True)
    (example / "helm-charts/basehub/charts/x.tgz").write_text("build output")
    assert release_digest(load_config(example), job) == before  # build output is not input
    template = next((example / "helm-charts/basehub/templates").iterdir())
    template.write_text(template.read_text() + "\n# changed\n")
    assert release_digest(load_config(example), job) != before


def test_missing_kubeconfig_names_the_cluster(example: Path) -> None:
    config = load_config(example)
    creds = Credentials(config, kubeconfig_dir=example / "nowhere", sops=None, env={})
    with pytest.raises(HubtasksError, match=r"cluster 'geo-cloud' .*no kubeconfig at"):
        creds.for_cluster(config.cluster("geo-cloud"))


def test_override_gets_a_private_chart_copy(example: Path, helm: Path) -> None:
    config = load_config(example)
    job = _job(example, "bio-cloud", "neuro")
    info = probe(helm, env=os.environ)
    prepared = prepare_job_charts(config, [job], info, work_dir=example / ".hubtasks/work",
                                  env=os.environ)
    assert not prepared.errors
    chart = prepared.charts[job.key]
    assert chart.is_relative_to(example / ".hubtasks/work")
    override_file = config.cluster("bio-cloud").hub("neuro").chart_override
    assert override_file is not None
    override = yaml.safe_load((example / override_file).read_text())
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["appVersion"] == \
        override["appVersion"]
    rendered = subprocess.run([str(helm), "template", "neuro", str(chart)], capture_output=True,
                              text=True, check=True).stdout
    assert "kind: Deployment" in rendered


def test_daskhub_dependencies_are_built_once(example: Path, helm: Path) -> None:
    config = load_config(example)
    jobs = [_job(example, "geo-cloud", h) for h in ("glacier", "ocean-lab")]
    prepared = prepare_job_charts(config, jobs, probe(helm, env=os.environ),
                                  work_dir=example / "work", env=os.environ)
    assert not prepared.errors
    built = list((example / "helm-charts/daskhub/charts").glob("basehub-*.tgz"))
    assert len(built) == 1


def test_digest_is_the_same_in_every_checkout(example: Path, tmp_path: Path) -> None:
    other = copy_example(ROOT, tmp_path / "elsewhere" / "clone")
    job = _job(example, "geo-cloud", "glacier")
    assert release_digest(load_config(example), job) == release_digest(load_config(other), job)


def test_decrypted_secrets_never_reach_the_log(example: Path, tmp_path: Path,
                                               sops: Path) -> None:
    fake = tmp_path / "helm"
    fake.write_text(ECHO_HELM)
    fake.chmod(0o755)
    config = load_config(example)
    job = _job(example, "geo-cloud", "glacier")  # has enc-glacier.secret.values.yaml
    env = {"PATH": "/usr/bin:/bin", "SOPS_AGE_KEY_FILE": str(example / DEMO_KEY)}
    plain = subprocess.run([str(sops), "--decrypt", str(example / config.cluster("geo-cloud")
                                                       .hub("glacier").values_files[-1])],
                           env=env, capture_output=True, text=True, check=True).stdout
    secret = str(yaml.safe_load(plain)["basehub"]["jupyterhub"]["hub"]["apiToken"])
    options = DeployOptions(dry_run=True, log_dir=tmp_path / "logs", env=env,
                            work_dir=tmp_path / "work")
    info = probe(fake, env=env)
    credentials = Credentials(config, kubeconfig_dir=None, sops=sops, env=env)
    runner = HelmRunner(config, head="abc", helm=info, options=options,
                        charts={job.key: example / "helm-charts/daskhub"},
                        credentials=credentials, sops=sops)
    result = runner(job, threading.Event())
    assert result.status is Status.SUCCEEDED and result.stage is Stage.PROD
    log = Path(result.log or "").read_text()
    assert "apiToken" in log and secret not in log and "***" in log


def test_invalid_job_fails_at_once_without_helm(example: Path, tmp_path: Path,
                                                 sops: Path) -> None:
    fake = tmp_path / "helm"
    fake.write_text(ECHO_HELM)
    fake.chmod(0o755)
    config = load_config(example)
    job = replace(_job(example, "geo-cloud", "glacier"),
                  invalid=("cluster.yaml: hubs[0]: file x.values.yaml does not exist",))
    env = {"PATH": "/usr/bin:/bin"}
    options = DeployOptions(dry_run=True, log_dir=tmp_path / "logs", env=env,
                            work_dir=tmp_path / "work")
    info = probe(fake, env=env)
    marker = tmp_path / "called"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\n")  # after probing: any later call marks
    runner = HelmRunner(config, head="abc", helm=info, options=options,
                        charts={job.key: example / "helm-charts/daskhub"},
                        credentials=Credentials(config, kubeconfig_dir=None, sops=sops,
                                                env=env), sops=sops)
    result = runner(job, threading.Event())
    assert result.status is Status.FAILED and "x.values.yaml does not exist" in result.error
    assert not marker.exists()


def test_helm_reads_the_runs_own_copy_of_a_built_chart(example: Path, helm: Path) -> None:
    """Another run's `helm dependency build` moves the repo chart's charts/ aside while it
    rebuilds it: the chart this run deploys is its own built copy, which stays whole."""
    config = load_config(example)
    job = _job(example, "geo-cloud", "ocean-lab")
    prepared = prepare_job_charts(config, [job], probe(helm, env=os.environ),
                                  work_dir=example / "work", env=os.environ)
    assert not prepared.errors
    chart = prepared.charts[job.key]
    assert chart.is_relative_to(example / "work")
    shutil.rmtree(example / "helm-charts/daskhub/charts")  # what a concurrent build does
    rendered = subprocess.run([str(helm), "template", "ocean-lab", str(chart)],
                              capture_output=True, text=True, check=True).stdout
    assert "kind: Deployment" in rendered


def test_a_dangling_symlink_in_a_chart_fails_its_jobs_not_drops_the_file(example: Path,
                                                                         helm: Path) -> None:
    """helm refuses a chart with a dangling link; the run's copy of the chart must not
    quietly leave the file out (every release would lose what it rendered)."""
    job = _job(example, "edu-cloud", "sandbox")  # (the plan marks it invalid: see
    # test_plan_invalid; validate prepares every release regardless)
    (example / "helm-charts/basehub/templates/shared.yaml").symlink_to("../../../gone.yaml")
    config = load_config(example, tolerant=True)
    prepared = prepare_job_charts(config, [job], probe(helm, env=os.environ),
                                  work_dir=example / "work", env=os.environ)
    assert "cannot copy it" in prepared.errors[job.key] and "shared.yaml" in \
        prepared.errors[job.key], prepared.errors
