"""Records belong to a run: plan identity, digests, dry-run records, start records, dead runs."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hubtasks.model import HubtasksError, Job, JobResult, Plan, Stage, Status
from hubtasks.planning.planfile import load_plan, plan_from_dict, plan_to_dict, save_plan
from hubtasks.results import ResultsStore, load_results
from hubtasks.runrecords import (
    holding_run,
    plan_records,
    remove_dead_private_folders,
    settle_for_report,
    start_record,
)
from hubtasks.secrets import private_prefix

JOB = Job(stage=Stage.STAGING, cluster="leap", hub="staging", chart="basehub")
PLAN = Plan(base=None, head="abc", jobs=(JOB,), plan_id="plan-2")


def record(status: Status, *, plan_id: str | None = "plan-2", digest: str | None = "d1",
           dry_run: bool = False, at: str = "2026-12-01T00:00:00+00:00") -> JobResult:
    return JobResult(stage=JOB.stage, cluster=JOB.cluster, hub=JOB.hub, status=status,
                     started_at=at, ended_at=at, plan_id=plan_id, digest=digest,
                     dry_run=dry_run)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def test_a_record_of_this_plan_counts_whatever_its_status() -> None:
    found, missing = plan_records([record(Status.FAILED)], PLAN, lambda job: "other")
    assert [r.status for r in found] == [Status.FAILED] and missing == []


def test_an_earlier_plans_success_counts_only_with_the_same_digest() -> None:
    old = record(Status.SUCCEEDED, plan_id="plan-1")
    found, missing = plan_records([old], PLAN, lambda job: "d1")
    assert found[0].reason == "up to date since 2026-12-01T00:00:00+00:00" and not missing
    found, missing = plan_records([old], PLAN, lambda job: "d2")
    assert found == [] and missing == [JOB]
    failed = record(Status.FAILED, plan_id="plan-1")
    assert plan_records([failed], PLAN, lambda job: "d1") == ([], [JOB])


def test_dry_run_records_never_count_nor_replace_a_real_outcome(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.json")
    store.record(record(Status.FAILED, at="2026-12-01T00:00:00+00:00"))
    store.record(record(Status.SUCCEEDED, dry_run=True, at="2026-12-02T00:00:00+00:00"))
    merged = load_results([store.path])
    assert sorted((r.dry_run, r.status.value) for r in merged) == [
        (False, "failed"), (True, "succeeded")]
    found, _ = plan_records(merged, PLAN, lambda job: "d1")
    assert [(r.dry_run, r.status) for r in found] == [(False, Status.FAILED)]
    only_dry = [r for r in merged if r.dry_run]
    assert plan_records(only_dry, PLAN, lambda job: "d1") == ([], [JOB])


def test_plan_id_is_saved_and_a_file_without_one_gets_a_stable_one(tmp_path: Path) -> None:
    save_plan(PLAN, tmp_path / "plan.json")
    assert load_plan(tmp_path / "plan.json").plan_id == "plan-2"
    legacy = {**plan_to_dict(PLAN), "plan_id": None}
    first, second = plan_from_dict(legacy, "x"), plan_from_dict(dict(legacy), "y")
    assert first.plan_id == second.plan_id and (first.plan_id or "").startswith("content-")
    with pytest.raises(HubtasksError, match="plan_id must be a string"):
        plan_from_dict({**legacy, "plan_id": 3}, "bad.json")


def test_a_start_record_loses_to_the_outcome_started_at_the_same_time(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.json")
    start = start_record(JOB, plan=PLAN, dry_run=False)
    store.record(start)
    assert load_results([store.path])[0].status is Status.RUNNING
    store.record(dataclasses.replace(start, status=Status.SUCCEEDED, ended_at=start.started_at))
    assert load_results([store.path])[0].status is Status.SUCCEEDED


def test_next_run_settles_records_of_a_dead_run_and_refuses_a_live_one(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.json")
    dead = f"{dead_pid()}@{os.uname().nodename}"
    store.record(dataclasses.replace(start_record(JOB, plan=PLAN, dry_run=False), run=dead))
    shown = settle_for_report(load_results([store.path]))
    assert shown[0].status is Status.CANCELLED and dead in shown[0].reason
    with holding_run(store):
        settled = store.load()[0]
        assert settled.status is Status.CANCELLED
        assert settled.reason == f"interrupted: the run that started it died ({dead})"
        refused = rf"in use by another run \(pid {os.getpid()} on "
        with pytest.raises(HubtasksError, match=refused), holding_run(ResultsStore(store.path)):
            pass


def test_private_folders_of_dead_runs_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / f"hubtasks-values-{dead_pid()}-abc"
    mine = tmp_path / f"{private_prefix()}abc"
    other = tmp_path / "hubtasks-values-notapid"
    for folder in (dead, mine, other):
        folder.mkdir()
    assert remove_dead_private_folders(tmp_path) == [dead]
    assert not dead.exists() and mine.exists() and other.exists()


# ---- through the CLI: filter and report --plan count only this plan's records ------------

from gitrepo import GitRepo  # noqa: E402
from test_glue import (  # noqa: E402
    CANARY_OK,
    hubtasks,
    outcome,
    planned,
    repo,  # noqa: F401  (the fixture)
)

from hubtasks.config.load import load_config  # noqa: E402
from hubtasks.deploying.values import release_digest  # noqa: E402


def earlier(repo_: GitRepo, *results: JobResult, digest: bool) -> None:
    """Record `results` as a different plan's, with the right input digest when asked."""
    config = load_config(repo_.root)
    store = ResultsStore(repo_.root / ".hubtasks/results.json")
    jobs = {(j.stage, j.key): j for j in load_plan(repo_.root / ".hubtasks/plan.json").jobs}
    store.record_many(dataclasses.replace(
        r, plan_id="an-earlier-plan",
        digest=release_digest(config, jobs[(r.stage, r.key)]) if digest else "0" * 16)
        for r in results)


def test_filter_ignores_an_earlier_plans_canary_unless_it_proves_the_inputs(
        repo: GitRepo) -> None:  # noqa: F811
    planned(repo)
    canary = [*CANARY_OK, outcome(Stage.STAGING, "leap-staging", "staging", Status.SUCCEEDED)]
    earlier(repo, *canary, digest=False)
    done = hubtasks(repo, "filter")
    assert done.returncode == 0, done.stderr
    assert "0 prod job(s) kept, 2 dropped" in done.stdout and "has no result" in done.stdout
    earlier(repo, *canary, digest=True)
    done = hubtasks(repo, "filter")
    assert "2 prod job(s) kept, 0 dropped" in done.stdout, done.stdout


def test_report_plan_says_up_to_date_and_ignores_dry_runs(repo: GitRepo) -> None:  # noqa: F811
    plan = planned(repo)
    jobs = load_plan(plan).jobs
    everything = [outcome(j.stage, j.cluster, j.hub, Status.SUCCEEDED) for j in jobs]
    store = ResultsStore(repo.root / ".hubtasks/results.json")
    store.record_many(dataclasses.replace(r, dry_run=True, plan_id=load_plan(plan).plan_id)
                      for r in everything)
    done = hubtasks(repo, "report", "--plan", str(plan))
    assert done.returncode == 1 and f"{len(jobs)} planned job(s) have no result" in done.stderr
    earlier(repo, *everything, digest=True)
    done = hubtasks(repo, "report", "--plan", str(plan))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up to date since 2026-12-01T00:00:00+00:00" in done.stdout


def test_an_unreachable_cluster_and_a_killed_helm_are_named_in_the_error() -> None:
    from hubtasks.deploying.runner import _outcome_of
    from hubtasks.helm import HelmRun, failure_text
    from hubtasks.proc import Outcome

    lines = ("Error: Get \"https://127.0.0.1:6443/api\": dial tcp 127.0.0.1:6443: connect: "
             "connection refused\nError: UPGRADE FAILED: resource Deployment/hub not ready\n")
    outcome = Outcome(argv=("helm",), exit_code=1, output=lines)
    error = _outcome_of(HelmRun(outcome=outcome, attempts=1, error=failure_text(outcome)),
                        60).error
    assert error.startswith("the cluster's API server was unreachable (Error: Get")
    killed = Outcome(argv=("helm",), signal=9)
    error = _outcome_of(HelmRun(outcome=killed, attempts=1, error=failure_text(killed)), 60).error
    assert "killed by signal 9" in error


@pytest.mark.parametrize(("change", "message"), [
    ({"head": 5}, "head must be a string or null, got 5"),
    ({"no_canary": 5}, "no_canary must be a list of strings"),
    ({"jobs": [{"stage": "prod", "cluster": 5, "chart": "c"}]}, "jobs[0].cluster must be a"),
    ({"jobs": [{"stage": "prod", "cluster": "c", "chart": "c", "invalid": "abc"}]},
     "jobs[0].invalid must be a list of strings"),
    ({"jobs": {"a": 1}}, "jobs must be a list of objects"),
    ({"removed": [{"cluster": "c", "hub": 3}]}, "removed[0].hub must be a string or null"),
], ids=repr)
def test_a_plan_of_the_wrong_shape_is_refused_before_anything_records_it(
        change: dict[str, object], message: str) -> None:
    with pytest.raises(HubtasksError, match=re.escape(message)):
        plan_from_dict({**plan_to_dict(PLAN), **change}, "bad.json")


def test_a_plan_file_that_is_not_text_and_a_plan_over_results_are_refused(
        tmp_path: Path) -> None:
    binary = tmp_path / "ls"
    binary.write_bytes(b"\x7fELF\xff\xfe")
    with pytest.raises(HubtasksError, match="not a hubtasks plan"):
        load_plan(binary)
    results = tmp_path / "results.json"
    ResultsStore(results).record(record(Status.SUCCEEDED))
    kept = results.read_text()
    with pytest.raises(HubtasksError, match="is a hubtasks results file"):
        save_plan(PLAN, results)
    assert results.read_text() == kept


def test_a_symlinked_results_file_is_written_through_the_link(tmp_path: Path) -> None:
    (tmp_path / "artifacts").mkdir()
    link = tmp_path / "results.json"
    link.symlink_to("artifacts/real.json")
    store = ResultsStore(link)
    store.record(record(Status.SUCCEEDED))
    assert link.is_symlink() and (tmp_path / "artifacts/real.json").is_file()
    assert [r.status for r in load_results([link])] == [Status.SUCCEEDED]
    assert store.path == tmp_path / "artifacts/real.json"  # its locks sit beside the target


def _error_of(output: str, **how: object) -> str:
    from hubtasks.deploying.runner import _outcome_of
    from hubtasks.helm import HelmRun, failure_text
    from hubtasks.proc import Outcome

    outcome = Outcome(argv=("helm",), output=output, **how)  # type: ignore[arg-type]
    return _outcome_of(HelmRun(outcome=outcome, attempts=1, error=failure_text(outcome)),
                       80).error


def test_an_unreachable_api_server_leads_the_error_even_when_helm_says_it_later() -> None:
    """helm 3's first line names the call that failed; the word `unreachable` came later on
    it, and the console (first line, cut) never showed the cause."""
    error = _error_of('Error: UPGRADE FAILED: an error occurred while finding last successful '
                      'release. original upgrade error: Get "https://127.0.0.1:6443/x": dial '
                      'tcp 127.0.0.1:6443: connect: connection refused (cluster unreachable)\n',
                      exit_code=1)
    assert error.startswith("the cluster's API server was unreachable (Error: UPGRADE FAILED")


def test_a_webhook_that_cannot_be_called_is_named_and_not_retried() -> None:
    from hubtasks.helm import is_transient

    line = ('Error: UPGRADE FAILED: cannot patch "workshop-hub" with kind Deployment: Internal '
            'error occurred: failed calling webhook "block.review.invalid": failed to call '
            'webhook: Post "https://127.0.0.1:1/block?timeout=10s": dial tcp 127.0.0.1:1: '
            'connect: connection refused')
    error = _error_of(line + "\n", exit_code=1)
    assert error.startswith("admission webhook 'block.review.invalid' could not be called")
    assert "API server was unreachable" not in error
    assert not is_transient([line])
    assert is_transient(["dial tcp 127.0.0.1:6443: connect: connection refused"])


def test_a_hung_api_server_and_a_timeout_give_one_number() -> None:
    error = _error_of("Error: Get \"https://127.0.0.1:6443/x\": net/http: TLS handshake "
                      "timeout\n", timed_out=True, duration=85.0)
    assert error.startswith("the cluster's API server was unreachable (Error: Get")
    assert "timed out after 80s (helm's --timeout and the grace period)" in error
    assert "85s" not in error


def test_filter_names_a_canary_whose_run_died_as_interrupted(repo: GitRepo) -> None:  # noqa: F811
    """The dead run's `running` record is settled as `report` settles it."""
    plan = load_plan(planned(repo))
    dead = dataclasses.replace(outcome(Stage.STAGING, "leap-staging", "staging", Status.RUNNING),
                               run=f"{dead_pid()}@{os.uname().nodename}", plan_id=plan.plan_id)
    ResultsStore(repo.root / ".hubtasks/results.json").record_many(
        [dataclasses.replace(r, plan_id=plan.plan_id) for r in CANARY_OK] + [dead])
    done = hubtasks(repo, "filter")
    assert done.returncode == 0, done.stderr
    # as deploy-all does: the prod of an interrupted canary is cancelled, `interrupted`
    assert "dropped prod:leap-staging/prod: interrupted" in done.stdout, done.stdout
    assert "running" not in done.stdout
