"""Before-steps (`before:` in hubtasks.yaml): validation, context, redaction, once per cluster."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hubtasks.config.before import BeforeStep
from hubtasks.config.load import load_config, settings_from_doc
from hubtasks.config.yamlfiles import ConfigError
from hubtasks.deploying.before import BeforeSteps, StepContext
from hubtasks.deploying.values import release_digest
from hubtasks.model import Job, Stage
from hubtasks.output.logs import JobLog
from hubtasks.secrets import Redactor

ENV = {"PATH": "/usr/bin:/bin"}


def _job(cluster: str = "c1", hub: str | None = "h1", chart: str = "daskhub") -> Job:
    return Job(stage=Stage.PROD, cluster=cluster, hub=hub, chart=chart)


def _ctx(root: Path, kubeconfig: Path | None = None) -> StepContext:
    return StepContext(kubeconfig=kubeconfig, kube_context="ctx-a", root=root,
                       env={**ENV, "HELM_KUBECONTEXT": "elsewhere"})


def _sh(script: str, *, once: str = "release", timeout: float = 30.0,
        name: str = "step") -> BeforeStep:
    return BeforeStep(name=name, command=("sh", "-c", script), once=once, timeout=timeout)


def test_settings_parse_before_steps() -> None:
    settings = settings_from_doc({"before": {"daskhub": [
        {"name": "dask-gateway CRDs", "once": "cluster", "timeout": "5m",
         "command": ["kubectl", "apply", "--server-side", "-f", "helm-charts/daskhub/crds/"]},
    ]}}, "hubtasks.yaml")
    (step,) = settings.before["daskhub"]
    assert step == BeforeStep(name="dask-gateway CRDs", once="cluster", timeout=300.0,
                              command=("kubectl", "apply", "--server-side", "-f",
                                       "helm-charts/daskhub/crds/"))
    assert settings_from_doc({}, "hubtasks.yaml").before == {}


@pytest.mark.parametrize(("doc", "message"), [
    ({"before": []}, "hubtasks.yaml: before: must be a mapping"),
    ({"before": {"daskhub": {"name": "x"}}}, "hubtasks.yaml: before.daskhub: must be a list"),
    ({"before": {"daskhub": [{"name": "x"}]}}, "before.daskhub[0].command: missing"),
    ({"before": {"daskhub": [{"command": ["true"]}]}}, "before.daskhub[0].name: missing"),
    ({"before": {"daskhub": [{"name": "x", "command": "kubectl apply"}]}},
     "before.daskhub[0].command: must be an argv list"),
    ({"before": {"daskhub": [{"name": "x", "command": ["true"], "once": "hub"}]}},
     "before.daskhub[0].once: must be one of release, cluster"),
    ({"before": {"daskhub": [{"name": "x", "command": ["true"], "timeout": "soon"}]}},
     "before.daskhub[0].timeout:"),
    ({"before": {"support": [{"name": "x", "command": ["true"], "when": "always"}]}},
     "before.support[0]: unknown key(s) when"),
])
def test_bad_before_steps_name_their_key(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_doc(doc, "hubtasks.yaml")
    assert message in str(err.value)


def test_step_gets_release_context_cwd_and_redacted_log(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    script = ('echo "C=$HUBTASKS_CLUSTER H=$HUBTASKS_HUB N=$HUBTASKS_NAMESPACE '
              'R=$HUBTASKS_RELEASE K=$KUBECONFIG X=$HUBTASKS_KUBE_CONTEXT '
              'HK=${HELM_KUBECONTEXT:-unset} PWD=$(pwd) TOKEN=s3cr3t-value"')
    steps = BeforeSteps({"daskhub": (_sh(script),)})
    log_path = tmp_path / "job.log"
    with JobLog(log_path) as log:
        result = steps.run(_job(), _ctx(tmp_path, kubeconfig), cancel=threading.Event(),
                           log=log, redactor=Redactor(["s3cr3t-value"]))
    assert result.ok
    text = log_path.read_text()
    assert (f"C=c1 H=h1 N=h1 R=h1 K={kubeconfig} X=ctx-a HK=unset PWD={tmp_path} "
            "TOKEN=***") in text
    assert "s3cr3t-value" not in text


def test_support_release_has_an_empty_hub(tmp_path: Path) -> None:
    steps = BeforeSteps({"support": (_sh('test -z "$HUBTASKS_HUB" && '
                                         'test "$HUBTASKS_RELEASE" = support'),)})
    with JobLog(None) as log:
        assert steps.run(_job(hub=None, chart="support"), _ctx(tmp_path),
                         cancel=threading.Event(), log=log, redactor=Redactor()).ok


def test_failure_names_the_step_and_stops_later_steps(tmp_path: Path) -> None:
    marker = tmp_path / "second-ran"
    steps = BeforeSteps({"daskhub": (_sh("echo no CRDs here; exit 3", name="dask CRDs"),
                                     _sh(f"touch {marker}"))})
    with JobLog(None) as log:
        result = steps.run(_job(), _ctx(tmp_path), cancel=threading.Event(), log=log,
                           redactor=Redactor())
    assert not result.ok and not result.cancelled
    assert "before-step 'dask CRDs' failed" in result.error and "no CRDs here" in result.error
    assert not marker.exists()


def test_timeout_fails_the_release(tmp_path: Path) -> None:
    steps = BeforeSteps({"daskhub": (_sh("sleep 30", timeout=0.3, name="slow"),)})
    with JobLog(None) as log:
        result = steps.run(_job(), _ctx(tmp_path), cancel=threading.Event(), log=log,
                           redactor=Redactor())
    assert not result.ok and "before-step 'slow' failed" in result.error
    assert "timed out" in result.error or "timeout" in result.error


def test_other_charts_run_nothing(tmp_path: Path) -> None:
    steps = BeforeSteps({"daskhub": (_sh("exit 1"),)})
    with JobLog(None) as log:
        assert steps.run(_job(chart="basehub"), _ctx(tmp_path), cancel=threading.Event(),
                         log=log, redactor=Redactor()).ok


def _run_all(steps: BeforeSteps, jobs: list[Job], root: Path) -> dict[str, bool]:
    results: dict[str, bool] = {}
    lock = threading.Lock()

    def one(job: Job) -> None:
        with JobLog(None) as log:
            result = steps.run(job, _ctx(root), cancel=threading.Event(), log=log,
                               redactor=Redactor())
        with lock:
            results[f"{job.cluster}/{job.hub}"] = result.ok

    threads = [threading.Thread(target=one, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_once_per_cluster_runs_once_for_concurrent_releases(tmp_path: Path) -> None:
    count = tmp_path / "count"
    step = _sh(f'sleep 0.2; echo "$HUBTASKS_CLUSTER" >> {count}', once="cluster")
    steps = BeforeSteps({"daskhub": (step,)})
    jobs = [_job(cluster=c, hub=f"h{i}") for c in ("c1", "c2") for i in range(4)]
    results = _run_all(steps, jobs, tmp_path)
    assert all(results.values()) and len(results) == 8
    assert sorted(count.read_text().split()) == ["c1", "c2"]
    _run_all(steps, [_job(cluster="c1", hub="later")], tmp_path)  # same run: not again
    assert sorted(count.read_text().split()) == ["c1", "c2"]


def test_once_per_cluster_failure_fails_every_release_of_that_cluster(tmp_path: Path) -> None:
    step = _sh('sleep 0.2; [ "$HUBTASKS_CLUSTER" != c1 ]', once="cluster", name="crds")
    steps = BeforeSteps({"daskhub": (step,)})
    jobs = [_job(cluster=c, hub=f"h{i}") for c in ("c1", "c2") for i in range(3)]
    results = _run_all(steps, jobs, tmp_path)
    assert results == {**{f"c1/h{i}": False for i in range(3)},
                       **{f"c2/h{i}": True for i in range(3)}}


def test_cancel_stops_a_waiting_release(tmp_path: Path) -> None:
    step = _sh("sleep 30", once="cluster")
    steps = BeforeSteps({"daskhub": (step,)})
    cancel = threading.Event()
    first = threading.Thread(target=lambda: steps.run(_job(hub="a"), _ctx(tmp_path),
                                                      cancel=cancel, log=JobLog(None),
                                                      redactor=Redactor()))
    first.start()
    cancel.set()
    with JobLog(None) as log:
        result = steps.run(_job(hub="b"), _ctx(tmp_path), cancel=cancel, log=log,
                           redactor=Redactor())
    first.join(30)
    assert not result.ok and result.cancelled and not first.is_alive()


def test_steps_are_release_inputs(tmp_path: Path) -> None:
    from hubtasks.dev.demo import copy_example
    from hubtasks.planning.planner import PlanRequest, build_plan
    repo = copy_example(Path(__file__).resolve().parents[1], tmp_path / "repo")
    config = load_config(repo)
    job = build_plan(config, PlanRequest(everything=True)).jobs[0]
    before = release_digest(config, job)
    settings = repo / "hubtasks.yaml"
    old = settings.read_text() if settings.exists() else ""
    settings.write_text(old + f"\nbefore:\n  {job.chart}:\n    - name: x\n"
                        "      command: [\"true\"]\n")
    with_step = release_digest(load_config(repo), job)
    assert with_step != before
    settings.write_text(old + f"\nbefore:\n  {job.chart}:\n    - name: x\n"
                        "      command: [\"false\"]\n")
    assert release_digest(load_config(repo), job) not in (before, with_step)


def test_readme_2i2c_before_steps_are_valid() -> None:
    import re

    import yaml
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Before-steps (`before:`)"):]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    parsed = [settings_from_doc(yaml.safe_load(block), "README.md") for block in blocks[:2]]
    assert [step.name for step in parsed[0].before["daskhub"]] == ["dask-gateway CRDs"]
    assert {chart: [s.once for s in steps] for chart, steps in parsed[1].before.items()} == {
        "support": ["cluster"], "daskhub": ["cluster"]}


def test_dry_run_runs_no_steps(tmp_path: Path) -> None:
    from hubtasks.deploying.credentials import Credentials
    from hubtasks.deploying.runner import HelmRunner
    from hubtasks.dev.demo import copy_example
    from hubtasks.helm import probe
    from hubtasks.model import Status
    from hubtasks.options import DeployOptions
    from hubtasks.planning.planner import PlanRequest, build_plan
    repo = copy_example(Path(__file__).resolve().parents[1], tmp_path / "repo")
    marker = tmp_path / "step-ran"
    with (repo / "hubtasks.yaml").open("a") as settings:
        settings.write(f"\nbefore:\n  support:\n    - name: x\n      command: [touch, {marker}]\n")
    config = load_config(repo)
    job = next(j for j in build_plan(config, PlanRequest(everything=True)).jobs
               if j.hub is None and j.cluster == "edu-cloud")
    fake = tmp_path / "helm"
    fake.write_text("#!/bin/sh\n[ \"$1\" = version ] && echo v3.17.3+gfake\nexit 0\n")
    fake.chmod(0o755)
    options = DeployOptions(dry_run=True, log_dir=tmp_path / "logs", env=ENV,
                            work_dir=tmp_path / "work")
    runner = HelmRunner(config, head="abc", helm=probe(fake, env=ENV), options=options,
                        charts={job.key: repo / "helm-charts/support"},
                        credentials=Credentials(config, kubeconfig_dir=None, sops=None,
                                                env=ENV), sops=None)
    result = runner(job, threading.Event())
    assert result.status is Status.SUCCEEDED, result.error
    assert not marker.exists()
