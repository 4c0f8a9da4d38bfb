"""Broken inputs block only their own releases (issue 11 item 1), on temporary git repos."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gitrepo import GitRepo
from test_cli_plan import hubtasks
from test_plan import base_files, job_ids

from hubtasks.config.jsonnet import RENDERER
from hubtasks.config.load import load_config
from hubtasks.deploying.values import release_digest
from hubtasks.model import Job, Stage
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
    out.unlink()
    strict = hubtasks(repo.root, "plan", "--base", "main", "--strict", "--out", str(out))
    assert strict.returncode == 2 and "prod1.values.yaml" in strict.stderr
    assert any(j.invalid for j in load_plan(out).jobs)  # saved all the same: the PR comment
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


def edited_cluster(tmp_path: Path, name: str, edit: Callable[[dict[str, Any]], object]) -> GitRepo:
    base = GitRepo(tmp_path / "origin", base_files())
    repo = GitRepo.clone(base.root, tmp_path / "repo")
    doc = repo.read_yaml(f"{C}/{name}/cluster.yaml")
    edit(doc)
    repo.write({f"{C}/{name}/cluster.yaml": doc})
    repo.commit("edit cluster.yaml")
    return repo


def test_unknown_key_in_a_hub_entry_marks_only_that_hub(tmp_path: Path) -> None:
    """2i2c's own schema validates only the first hub entry, so its history can carry a key
    hubtasks does not know in any other: the hub is planned (its entry changed) and invalid;
    its cluster's other releases still plan and deploy."""
    def edit(doc: dict[str, Any]) -> None:
        doc["hubs"][2]["enabled"] = False  # alpha/prod1
        doc["support"]["helm_chart_values_files"].append("support.values.yaml")
    repo = edited_cluster(tmp_path, "alpha", edit)
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    jobs = {f"{j.cluster}/{j.release}": j for j in plan.jobs}
    assert set(jobs) == {"alpha/prod1", "alpha/staging", "alpha/dask-staging", "alpha/support"}
    assert jobs["alpha/prod1"].invalid == (
        f"{C}/alpha/cluster.yaml: hubs[2](name=prod1): Additional properties are not allowed "
        "('enabled' was unexpected)",)
    assert any("hubs[prod1] changed: enabled" in r for r in jobs["alpha/prod1"].reasons)
    assert not any(j.invalid for k, j in jobs.items() if k != "alpha/prod1")
    assert not plan.notes


def test_malformed_optional_key_is_shed_but_a_required_one_breaks_the_cluster(
        tmp_path: Path) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["hubs"][0]["staging"] = "yes"        # canary: optional, malformed
        doc["hubs"][1]["display_name"] = 7       # research: optional, malformed
    repo = edited_cluster(tmp_path, "gamma", edit)
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    jobs = {f"{j.cluster}/{j.release}": j for j in plan.jobs}
    assert any("hubs[0](name=canary).staging: 'yes' is not of type 'boolean'" in p
               for p in jobs["gamma/canary"].invalid)
    assert jobs["gamma/canary"].stage.value == "prod"  # the flag is shed: the name rule decides
    assert "gamma/research" not in jobs  # display_name is descriptive: nothing to deploy

    def required(doc: dict[str, Any]) -> None:
        doc["hubs"][0]["enabled"] = False
        doc["hubs"][1]["helm_chart_values_files"] = "research.values.yaml"  # not a list
    repo = edited_cluster(tmp_path / "second", "gamma", required)
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    assert not any(j.cluster == "gamma" for j in plan.jobs)
    notes = "\n".join(n for n in plan.notes if n.startswith("cluster 'gamma' not planned"))
    assert "'enabled' was unexpected" in notes  # every error is reported, the shed ones too
    assert "hubs[1](name=research).helm_chart_values_files: 'research.values.yaml' is not of " \
        "type 'array'" in notes


def test_a_bad_item_of_a_hubs_values_list_marks_only_that_hub(tmp_path: Path) -> None:
    """An empty name in the (required) helm_chart_values_files list is the hub's own
    problem: the hub loads without that item, is planned (its entry changed) and invalid."""
    def edit(doc: dict[str, Any]) -> None:
        doc["hubs"][2]["helm_chart_values_files"].insert(0, "")  # alpha/prod1
    repo = edited_cluster(tmp_path, "alpha", edit)
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    jobs = {f"{j.cluster}/{j.release}": j for j in plan.jobs}
    assert jobs["alpha/prod1"].invalid == (
        f"{C}/alpha/cluster.yaml: hubs[2](name=prod1).helm_chart_values_files[0]: '' should "
        "be non-empty",)
    assert not any(j.invalid for k, j in jobs.items() if k != "alpha/prod1")
    assert not plan.notes


def test_a_copied_hub_entry_plans_its_hub_marked_with_the_duplicate(tmp_path: Path) -> None:
    """Two entries of one name: the name-keyed view sees no change (the copy is identical),
    so the count is compared too; the duplicate marks every release of the cluster."""
    def edit(doc: dict[str, Any]) -> None:
        doc["hubs"].append(copy.deepcopy(doc["hubs"][2]))  # alpha/prod1 twice
    repo = edited_cluster(tmp_path, "alpha", edit)
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    jobs = {f"{j.cluster}/{j.release}": j for j in plan.jobs}
    assert f"{C}/alpha/cluster.yaml: hubs[prod1] named 2 times" in jobs["alpha/prod1"].reasons
    duplicate = f"{C}/alpha/cluster.yaml: hubs[4](name=prod1): duplicate hub name 'prod1'"
    assert all(j.invalid == (duplicate,) for j in jobs.values()), jobs
    assert len([j for j in plan.jobs if j.release == "prod1"]) == 1


def test_check_config_still_rejects_an_unknown_hub_key(tmp_path: Path) -> None:
    repo = edited_cluster(tmp_path, "beta", lambda doc: doc["hubs"][1].update(colour="red"))
    check = hubtasks(repo.root, "check-config")
    assert check.returncode == 2
    assert "hubs[1](name=two): Additional properties are not allowed ('colour'" in check.stderr
    assert "Traceback" not in check.stderr


def with_jsonnet_hub() -> dict[str, object]:
    """The base repo, with alpha/prod1 also taking a jsonnet document that imports a library."""
    files = base_files()
    doc = copy.deepcopy(files[f"{C}/alpha/cluster.yaml"])
    assert isinstance(doc, dict)
    doc["hubs"][2]["helm_chart_values_files"].append("prod1.jsonnet")
    files[f"{C}/alpha/cluster.yaml"] = doc
    files[f"{C}/alpha/prod1.jsonnet"] = (
        "local lib = import './lib.libsonnet';\n"
        "{ hub: std.extVar('HUBTASKS_HUB_NAME'), host: std.extVar('HUBTASKS_HUB_DOMAIN') } + lib\n")
    files[f"{C}/alpha/lib.libsonnet"] = "{ extra: 1 }\n"
    return files


def plan_of(tmp_path: Path, base: dict[str, object], head: dict[str, object]
            ) -> dict[str, Job]:
    origin = GitRepo(tmp_path / "origin", base)
    repo = GitRepo.clone(origin.root, tmp_path / "repo")
    repo.write(head)
    repo.commit("change")
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    return {f"{j.cluster}/{j.release}": j for j in plan.jobs}


def edited(rel: str, change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(base_files()[rel])
    change(doc)
    return doc


SOPS_LIKE = "secret: ENC[AES256_GCM,data:x]\nsops:\n  mac: ENC[x]\n  version: 3.9.0\n"


def test_changed_values_files_are_read_and_broken_ones_mark_their_release(
        tmp_path: Path) -> None:
    jobs = plan_of(tmp_path, base_files(), {
        f"{C}/alpha/prod1.values.yaml": "x: [unclosed\n",        # malformed YAML
        f"{C}/alpha/prod2.values.yaml": "x: 3\n",                # fine
        f"{C}/beta/one.secret.values.yaml": "token: plain\n",    # a plain secret, now listed
        f"{C}/beta/two.secret.values.yaml": SOPS_LIKE,           # encrypted: never decrypted
        f"{C}/beta/cluster.yaml": edited(f"{C}/beta/cluster.yaml", lambda d: [
            d["hubs"][0]["helm_chart_values_files"].append("one.secret.values.yaml"),
            d["hubs"][1]["helm_chart_values_files"].append("two.secret.values.yaml")]),
    })
    assert jobs["alpha/prod1"].invalid == (
        f"{C}/alpha/prod1.values.yaml:2:1: invalid YAML: did not find expected ',' or ']'",)
    assert not jobs["alpha/prod2"].invalid and not jobs["alpha/staging"].invalid
    assert any("one.secret.values.yaml: not sops-encrypted" in p for p in jobs["beta/one"].invalid)
    assert not jobs["beta/two"].invalid


def test_a_jsonnet_document_is_rendered_when_it_or_an_import_changed(tmp_path: Path) -> None:
    fine = plan_of(tmp_path / "fine", with_jsonnet_hub(),
                   {f"{C}/alpha/lib.libsonnet": "{ extra: 2 }\n"})
    assert "alpha/prod1" in fine and not fine["alpha/prod1"].invalid  # the ext vars are given
    broken = plan_of(tmp_path / "broken", with_jsonnet_hub(),
                     {f"{C}/alpha/lib.libsonnet": "{ extra: 2 \n"})
    problem, = broken["alpha/prod1"].invalid
    assert problem.startswith(f"{C}/alpha/prod1.jsonnet: jsonnet render failed:")
    assert "lib.libsonnet" in problem  # jsonnet names the file at fault


def test_cli_plan_strict_reports_a_malformed_changed_values_file(tmp_path: Path) -> None:
    origin = GitRepo(tmp_path / "origin", base_files())
    repo = GitRepo.clone(origin.root, tmp_path / "repo")
    repo.write({f"{C}/gamma/research.values.yaml": "a: b: c\n"})
    repo.commit("break")
    assert hubtasks(repo.root, "plan", "--base", "main").returncode == 0
    strict = hubtasks(repo.root, "plan", "--base", "main", "--strict")
    assert strict.returncode == 2 and "research.values.yaml:1:5: invalid YAML" in strict.stderr


def test_check_config_takes_a_jsonnet_values_file_as_jsonnet_not_yaml(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo", with_jsonnet_hub())
    check = hubtasks(repo.root, "check-config")
    assert check.returncode == 0, check.stderr


def test_a_broken_chart_marks_only_the_releases_that_render_from_it(tmp_path: Path) -> None:
    """daskhub's Chart.yaml unreadable: its hubs are invalid; basehub hubs and support plan."""
    head = {"helm-charts/daskhub/Chart.yaml": "name: daskhub\ndependencies: [unclosed\n",
            "helm-charts/basehub/templates/hub.yaml": "kind: Secret\n",
            "helm-charts/support/templates/p.yaml": "kind: Secret\n"}
    origin = GitRepo(tmp_path / "origin", base_files())
    repo = GitRepo.clone(origin.root, tmp_path / "repo")
    repo.write(head)
    repo.commit("break daskhub")
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    jobs = {f"{j.cluster}/{j.release}": j for j in plan.jobs}
    dask = {"alpha/dask-staging", "alpha/prod2", "gamma/geo"}  # geo's override replaces basehub
    assert {k for k, j in jobs.items() if j.chart == "daskhub"} == {*dask, "gamma/teach"}
    for key in dask:
        assert jobs[key].invalid == (
            "helm-charts/daskhub/Chart.yaml:3:1: invalid YAML: did not find expected ',' or ']'",
        ), key
    # teach's chart_override replaces daskhub's own Chart.yaml: the broken one is not used
    sound = {k for k, j in jobs.items() if j.chart != "daskhub"} | {"gamma/teach"}
    assert {"alpha/prod1", "alpha/support", "beta/one", "gamma/support"} <= sound
    assert not any(jobs[k].invalid for k in sound)
    assert any(n.startswith("chart helm-charts/daskhub is broken") for n in plan.notes)
    strict = hubtasks(repo.root, "plan", "--base", "main", "--strict")
    assert strict.returncode == 2 and strict.stderr.count("daskhub/Chart.yaml:3:1") == 1
    check = hubtasks(repo.root, "check-config")
    assert check.returncode == 2 and check.stderr.count("daskhub/Chart.yaml:3:1") == 1


def test_a_chart_dependency_outside_the_charts_folder_is_an_input(tmp_path: Path) -> None:
    files = base_files()
    files["helm-charts/support/Chart.yaml"] = {
        "apiVersion": "v2", "name": "support", "version": "0.1.0",
        "dependencies": [{"name": "common", "version": "0.1.0",
                          "repository": "file://../../libcharts/common"}]}
    files["libcharts/common/Chart.yaml"] = {"apiVersion": "v2", "name": "common",
                                            "version": "0.1.0", "type": "library",
                                            "dependencies": [{"name": "deeper", "version": "1",
                                                              "repository": "file://../deeper"}]}
    files["libcharts/common/templates/_x.tpl"] = "{{/* x */}}\n"
    files["libcharts/deeper/Chart.yaml"] = {"apiVersion": "v2", "name": "deeper",
                                            "version": "1", "type": "library"}
    files["libcharts/deeper/templates/_y.tpl"] = "{{/* y */}}\n"
    jobs = plan_of(tmp_path, files, {"libcharts/deeper/templates/_y.tpl": "{{/* z */}}\n"})
    assert set(jobs) == {"alpha/support", "gamma/support"}
    reasons = jobs["alpha/support"].reasons
    assert any("chart deeper: templates/_y.tpl modified" in r for r in reasons)


def test_a_missing_chart_values_file_marks_that_charts_releases_only(tmp_path: Path) -> None:
    """chart_values belong to the chart's own releases: basehub's are not daskhub's."""
    files = base_files()
    files["hubtasks.yaml"] = {"chart_values": {"basehub": ["values.jsonnet"]}}
    files["helm-charts/basehub/values.jsonnet"] = "{}\n"
    jobs = plan_of(tmp_path, files, {"helm-charts/basehub/values.jsonnet": None})
    problem = ("hubtasks.yaml: chart_values.basehub: helm-charts/basehub/values.jsonnet does "
               "not exist")
    assert jobs["alpha/prod1"].invalid == (problem,)
    assert not jobs["alpha/prod2"].invalid  # daskhub: planned (its closure changed), sound


BASEHUB_JSONNET = "helm-charts/basehub/values.jsonnet"
BASEHUB_HUBS = {"alpha/staging", "alpha/prod1", "beta/one", "beta/two", "beta/staging-docs",
                "gamma/canary", "gamma/research"}
DASKHUB_HUBS = {"alpha/dask-staging", "alpha/prod2", "gamma/teach", "gamma/geo"}


def with_chart_jsonnet(tmp_path: Path) -> GitRepo:
    """The base repo with 2i2c's chart documents: basehub's values.jsonnet importing a library
    outside the charts, and daskhub's values.jsonnet a symlink to it."""
    files = base_files()
    files[BASEHUB_JSONNET] = ("local lib = import '../../lib/common.libsonnet';\n"
                              "{ hub: std.extVar('HUBTASKS_HUB_NAME') } + lib\n")
    files["lib/common.libsonnet"] = "{ common: 1 }\n"
    origin = GitRepo(tmp_path / "origin", files)
    (origin.root / "helm-charts/daskhub/values.jsonnet").symlink_to("../basehub/values.jsonnet")
    origin.commit("daskhub renders basehub's values.jsonnet")
    return GitRepo.clone(origin.root, tmp_path / "repo")


def plan_after(repo: GitRepo, files: dict[str, object]) -> dict[str, Job]:
    repo.write(files)
    repo.commit("change")
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    return {f"{j.cluster}/{j.release}": j for j in plan.jobs}


@pytest.fixture()
def renders(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(document, hub) of every render the plan asks for."""
    seen: list[tuple[str, str]] = []
    real = RENDERER.render

    def counted(path: Path, context: dict[str, str], *, rel: str) -> Any:
        seen.append((rel, context["HUBTASKS_HUB_NAME"]))
        return real(path, context, rel=rel)

    monkeypatch.setattr(RENDERER, "render", counted)
    return seen


def test_a_sound_chart_jsonnet_edit_is_rendered_once(tmp_path: Path,
                                                     renders: list[tuple[str, str]]) -> None:
    jobs = plan_after(with_chart_jsonnet(tmp_path), {
        BASEHUB_JSONNET: "{ hub: std.extVar('HUBTASKS_HUB_NAME'), edited: true }\n"})
    assert set(jobs) == BASEHUB_HUBS | DASKHUB_HUBS  # daskhub's closure holds basehub
    assert not any(j.invalid for j in jobs.values())
    # one render for basehub's document, one for daskhub's (the symlink's target changed)
    assert renders == [(BASEHUB_JSONNET, "staging"),
                       ("helm-charts/daskhub/values.jsonnet", "dask-staging")]


def test_a_broken_chart_jsonnet_marks_every_release_it_breaks(
        tmp_path: Path, renders: list[tuple[str, str]]) -> None:
    jobs = plan_after(with_chart_jsonnet(tmp_path), {BASEHUB_JSONNET: "{ hub: \n"})
    for key in BASEHUB_HUBS:
        problem, = jobs[key].invalid
        assert problem.startswith(f"{BASEHUB_JSONNET}: jsonnet render failed:"), key
        assert f"ERROR: {BASEHUB_JSONNET}:" in problem  # named in the repo, not the machine
        assert str(tmp_path) not in problem
    for key in DASKHUB_HUBS:  # the symlink evaluates the same broken text
        problem, = jobs[key].invalid
        assert problem.startswith("helm-charts/daskhub/values.jsonnet: jsonnet render failed")
    assert "alpha/support" not in jobs  # the support chart has no such document
    assert len(renders) == 2  # a parse error is every context's: not rendered again


def test_a_context_dependent_chart_jsonnet_error_marks_only_those_releases(
        tmp_path: Path) -> None:
    """The first release's render fails, so each release is rendered with its own context."""
    text = ("local name = std.extVar('HUBTASKS_HUB_NAME');\n"
            "if std.length(std.findSubstr('staging', name)) > 0 then error 'no staging: ' + name"
            " else { hub: name }\n")
    jobs = plan_after(with_chart_jsonnet(tmp_path), {BASEHUB_JSONNET: text})
    broken = {k for k, j in jobs.items() if j.invalid}
    assert broken == {"alpha/staging", "beta/staging-docs", "alpha/dask-staging"}
    assert "no staging: beta/staging-docs" not in str(jobs["beta/staging-docs"].invalid)
    assert "no staging: staging-docs" in jobs["beta/staging-docs"].invalid[0]


def test_a_chart_jsonnet_import_outside_the_charts_is_an_input(tmp_path: Path) -> None:
    repo = with_chart_jsonnet(tmp_path)
    config_before = load_config(repo.root)
    job = Job(stage=Stage.PROD, cluster="alpha", hub="prod1", chart="basehub")
    before = release_digest(config_before, job)
    jobs = plan_after(repo, {"lib/common.libsonnet": "{ common: 2 }\n"})
    assert set(jobs) == BASEHUB_HUBS | DASKHUB_HUBS
    assert "chart basehub jsonnet import lib/common.libsonnet modified" in \
        jobs["alpha/prod1"].reasons
    assert "chart daskhub jsonnet import lib/common.libsonnet modified" in \
        jobs["alpha/prod2"].reasons
    assert not any(j.invalid for j in jobs.values())
    assert release_digest(load_config(repo.root), job) != before
    broken = plan_after(repo, {"lib/common.libsonnet": "{ common: \n"})
    assert all(j.invalid for j in broken.values())
    assert "lib/common.libsonnet" in broken["alpha/prod1"].invalid[0]


def test_a_chart_yaml_document_is_read_when_it_changed(tmp_path: Path) -> None:
    files = base_files()
    files["hubtasks.yaml"] = {"chart_values": {"support": ["extra.values.yaml"]}}
    files["helm-charts/support/extra.values.yaml"] = "a: 1\n"
    jobs = plan_of(tmp_path, files, {"helm-charts/support/extra.values.yaml": "a: [1\n"})
    assert set(jobs) == {"alpha/support", "gamma/support"}
    for job in jobs.values():
        problem, = job.invalid
        assert problem.startswith("helm-charts/support/extra.values.yaml:2:1: invalid YAML")


def with_symlinked_values(tmp_path: Path) -> GitRepo:
    """alpha/prod1's values file is a symlink to a shared file; beta/one reads a file through
    a symlinked folder."""
    files = base_files()
    files["shared/values/prod1.yaml"] = "x: 1\n"
    files["shared/common/one.yaml"] = "y: 1\n"
    files[f"{C}/alpha/prod1.values.yaml"] = None
    files[f"{C}/beta/cluster.yaml"] = edited(f"{C}/beta/cluster.yaml", lambda d: d["hubs"][0][
        "helm_chart_values_files"].append("common/one.yaml"))
    files = {k: v for k, v in files.items() if v is not None}
    origin = GitRepo(tmp_path / "origin", files)
    (origin.root / f"{C}/alpha/prod1.values.yaml").symlink_to(
        "../../../shared/values/prod1.yaml")
    (origin.root / f"{C}/beta/common").symlink_to("../../../shared/common")
    origin.commit("symlinks")
    return GitRepo.clone(origin.root, tmp_path / "repo")


def test_a_file_a_symlinked_values_file_reaches_is_an_input(tmp_path: Path) -> None:
    repo = with_symlinked_values(tmp_path)
    jobs = plan_after(repo, {"shared/values/prod1.yaml": "x: 2\n",
                             "shared/common/one.yaml": "y: 2\n"})
    assert set(jobs) == {"alpha/prod1", "alpha/staging", "alpha/dask-staging", "beta/one"}
    assert (f"values {C}/alpha/prod1.values.yaml -> shared/values/prod1.yaml modified"
            in jobs["alpha/prod1"].reasons)
    assert f"values {C}/beta/common/one.yaml -> shared/common/one.yaml modified" in \
        jobs["beta/one"].reasons
    assert not any(j.invalid for j in jobs.values())
    broken = plan_after(repo, {"shared/values/prod1.yaml": "x: [2\n"})
    assert broken["alpha/prod1"].invalid[0].startswith(
        f"{C}/alpha/prod1.values.yaml:2:1: invalid YAML")


def test_a_symlinked_values_file_whose_target_went_is_planned_invalid(tmp_path: Path) -> None:
    jobs = plan_after(with_symlinked_values(tmp_path), {"shared/values/prod1.yaml": None})
    assert "values config/clusters/alpha/prod1.values.yaml -> shared/values/prod1.yaml " \
        "deleted" in jobs["alpha/prod1"].reasons
    assert any("prod1.values.yaml does not exist" in p for p in jobs["alpha/prod1"].invalid)


def test_what_an_override_dependency_depends_on_is_an_input(tmp_path: Path) -> None:
    """research's override points basehub at a library chart outside the charts folder, which
    depends on another: no chart folder reaches either, and both are research's inputs."""
    files = base_files()
    override = dict(files[f"{C}/gamma/research-chart.yaml"])
    override["dependencies"] = [{"name": "foo", "version": "1",
                                 "repository": "file://../../libcharts/foo"}]
    files[f"{C}/gamma/research-chart.yaml"] = override
    files["libcharts/foo/Chart.yaml"] = {"apiVersion": "v2", "name": "foo", "version": "1",
                                         "dependencies": [{"name": "bar", "version": "1",
                                                           "repository": "file://../bar"}]}
    files["libcharts/bar/Chart.yaml"] = {"apiVersion": "v2", "name": "bar", "version": "1"}
    files["libcharts/bar/templates/_y.tpl"] = "{{/* y */}}\n"
    check = GitRepo(tmp_path / "check", files)
    assert "libcharts/bar" in load_config(check.root).charts
    jobs = plan_of(tmp_path, files, {"libcharts/bar/templates/_y.tpl": "{{/* z */}}\n"})
    assert set(jobs) == {"gamma/research", "gamma/geo", "gamma/canary"}  # geo: same override
    assert "chart bar: templates/_y.tpl modified" in jobs["gamma/research"].reasons


def test_a_file_deleted_in_a_symlinked_folder_is_planned_invalid(tmp_path: Path) -> None:
    jobs = plan_after(with_symlinked_values(tmp_path), {"shared/common/one.yaml": None})
    assert f"values {C}/beta/common/one.yaml -> shared/common/one.yaml deleted" in \
        jobs["beta/one"].reasons
    assert any("common/one.yaml does not exist" in p for p in jobs["beta/one"].invalid)


def test_a_symlinked_folder_pointed_elsewhere_plans_its_values_files(tmp_path: Path) -> None:
    repo = with_symlinked_values(tmp_path)
    repo.write({"shared/other/one.yaml": "y: 3\n"})
    link = repo.root / f"{C}/beta/common"
    link.unlink()
    link.symlink_to("../../../shared/other")
    jobs = plan_after(repo, {})
    assert set(jobs) == {"beta/one"}
    assert any(r.startswith(f"values {C}/beta/common/one.yaml -> {C}/beta/common ")
               for r in jobs["beta/one"].reasons), jobs["beta/one"].reasons


def test_a_text_symlink_chart_document_reads_what_its_target_imports(tmp_path: Path) -> None:
    """A checkout without symlink support holds daskhub's values.jsonnet as a one-line file
    naming basehub's: its target's imports are daskhub's inputs too."""
    files = base_files()
    files[BASEHUB_JSONNET] = ("local lib = import '../../lib/common.libsonnet';\n"
                              "{ hub: std.extVar('HUBTASKS_HUB_NAME') } + lib\n")
    files["helm-charts/daskhub/values.jsonnet"] = "../basehub/values.jsonnet\n"
    files["lib/common.libsonnet"] = "{ common: 1 }\n"
    jobs = plan_of(tmp_path, files, {"lib/common.libsonnet": "{ common: \n"})
    assert set(jobs) == BASEHUB_HUBS | DASKHUB_HUBS
    assert all(j.invalid for j in jobs.values())
    assert "chart daskhub jsonnet import lib/common.libsonnet modified" in \
        jobs["alpha/prod2"].reasons


def test_a_new_jsonnet_prefix_plans_and_checks_the_releases_that_render_jsonnet(
        tmp_path: Path) -> None:
    files = base_files()
    gamma = copy.deepcopy(files[f"{C}/gamma/cluster.yaml"])
    research = next(h for h in gamma["hubs"] if h["name"] == "research")
    research["helm_chart_values_files"] = ["research.jsonnet"]
    files[f"{C}/gamma/cluster.yaml"] = gamma
    files[f"{C}/gamma/research.jsonnet"] = "{ hub: std.extVar('HUBTASKS_HUB_NAME') }\n"
    base = GitRepo(tmp_path / "origin", files)
    repo = GitRepo.clone(base.root, tmp_path / "repo")
    repo.write({"hubtasks.yaml": {**files["hubtasks.yaml"], "jsonnet_ext_var_prefix": "X_"}})
    repo.commit("rename the variables")
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    assert job_ids(plan) == {"prod:gamma/research", "staging:gamma/canary"}
    found = next(j for j in plan.jobs if j.hub == "research")
    assert "hubtasks.yaml: jsonnet_ext_var_prefix changed" in found.reasons
    assert any("undefined external variable: HUBTASKS_HUB_NAME" in p for p in found.invalid)


def test_an_override_dependency_that_points_nowhere_marks_its_hub(tmp_path: Path) -> None:
    from test_plan import chart

    repo = changed(tmp_path, {"config/overrides/teach-chart.yaml":
                              chart("daskhub", ["basehub", "nope"])})
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    teach = next(j for j in plan.jobs if j.hub == "teach")
    assert any("teach-chart.yaml: dependency on helm-charts/nope (file://), which holds no "
               "Chart.yaml" in p for p in teach.invalid), teach.invalid
    assert not any(j.invalid for j in plan.jobs if j.hub != "teach")


@pytest.mark.parametrize(("doc", "problem"), [
    ({"apiVersion": "v2", "version": "0.1.0"}, "Chart.yaml: name is required"),
    ({"apiVersion": "v2", "name": "unused"}, "Chart.yaml: version is required"),
    ({"apiVersion": "v9", "name": "unused", "version": "1"}, "apiVersion must be v2"),
    ({"apiVersion": "v2", "name": "unused", "version": "1", "dependencies": 5},
     "dependencies must be a list"),
    ({"apiVersion": "v2", "name": "unused", "version": "1",
      "dependencies": [{"name": "etc", "version": "1", "repository": "file:///etc"}]},
     "dependency 'etc' (file:///etc) lies outside the repository"),
], ids=["no-name", "no-version", "api-version", "dependencies", "outside"])
def test_a_chart_yaml_helm_would_refuse_is_a_chart_problem(tmp_path: Path, doc: dict[str, Any],
                                                           problem: str) -> None:
    repo = changed(tmp_path, {"helm-charts/support/Chart.yaml": doc})
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    support = [j for j in plan.jobs if j.hub is None]
    assert support and all(any(problem in p for p in j.invalid) for j in support), support
    assert any(problem in note for note in plan.notes)


def test_a_values_file_that_is_a_folder_says_so(tmp_path: Path) -> None:
    repo = changed(tmp_path, {f"{C}/alpha/prod1.values.yaml": None,
                              f"{C}/alpha/prod1.values.yaml/x": "a: 1\n"})
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    prod1 = next(j for j in plan.jobs if j.hub == "prod1")
    assert any("prod1.values.yaml is a folder, not a file" in p for p in prod1.invalid)


def test_a_chart_override_spelled_with_dot_slash_is_another_file(tmp_path: Path) -> None:
    """`x.yaml` is the cluster folder's override, `./x.yaml` the repo root's."""
    base = GitRepo(tmp_path / "origin", base_files())
    repo = GitRepo.clone(base.root, tmp_path / "repo")
    doc = copy.deepcopy(repo.read_yaml(f"{C}/gamma/cluster.yaml"))
    next(h for h in doc["hubs"] if h["name"] == "research")["chart_override"] = \
        "./research-chart.yaml"
    repo.write({f"{C}/gamma/cluster.yaml": doc})
    repo.commit("point research at the root's override")
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    assert "prod:gamma/research" in job_ids(plan)


def test_an_edit_of_hubtasks_yaml_that_renders_nothing_differently_renders_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = base_files()
    gamma = copy.deepcopy(files[f"{C}/gamma/cluster.yaml"])
    next(h for h in gamma["hubs"] if h["name"] == "research")["helm_chart_values_files"] = \
        ["research.jsonnet"]
    files[f"{C}/gamma/cluster.yaml"] = gamma
    files[f"{C}/gamma/research.jsonnet"] = "{ a: 1 }\n"
    base = GitRepo(tmp_path / "origin", files)
    repo = GitRepo.clone(base.root, tmp_path / "repo")
    repo.write({"hubtasks.yaml": {**files["hubtasks.yaml"], "exclude_clusters": ["nope"]}})
    repo.commit("a setting that changes no render")
    renders: list[object] = []

    def render(*args: object, **kwargs: object) -> dict[str, object]:
        renders.append(args)
        return {}

    monkeypatch.setattr(RENDERER, "render", render)
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    assert not plan.jobs and not renders


def _relinked(tmp_path: Path, rel: str, *links: tuple[str, str]) -> GitRepo:
    """A clone where `rel` is replaced by the symlinks `links` (path, target), committed."""
    base = GitRepo(tmp_path / "origin", base_files())
    repo = GitRepo.clone(base.root, tmp_path / "repo")
    (repo.root / rel).unlink()
    for path, target in links:
        (repo.root / path).symlink_to(target)
    repo.commit("relink")
    return repo


@pytest.mark.parametrize(("links", "said"), [
    ([("prod1.values.yaml", "../../../../../../etc/hostname")], "escapes the repository"),
    ([("prod1.values.yaml", "loop.yaml"), ("loop.yaml", "prod1.values.yaml")],
     "is a loop of symlinks"),
], ids=["escapes", "loop"])
def test_a_values_file_become_a_bad_symlink_plans_its_hub_as_invalid(
        tmp_path: Path, links: list[tuple[str, str]], said: str) -> None:
    """It used to leave no trace (escape) or stop every cluster's plan (loop)."""
    folder = f"{C}/alpha"
    repo = _relinked(tmp_path, f"{folder}/prod1.values.yaml",
                     *((f"{folder}/{path}", target) for path, target in links))
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    jobs = {f"{j.cluster}/{j.release}": j for j in plan.jobs}
    assert any(said in p for p in jobs["alpha/prod1"].invalid), jobs["alpha/prod1"]
    assert not any(j.invalid for k, j in jobs.items() if k != "alpha/prod1")
    assert not plan.notes


def test_a_malformed_staging_flag_added_is_a_change_of_its_hub(tmp_path: Path) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["hubs"][2]["staging"] = "yes"  # alpha/prod1, which had no flag
    repo = edited_cluster(tmp_path, "alpha", edit)
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    jobs = {f"{j.cluster}/{j.release}": j for j in plan.jobs}
    assert any("staging: 'yes' is not of type 'boolean'" in p
               for p in jobs["alpha/prod1"].invalid)
    assert jobs["alpha/prod1"].stage is Stage.PROD


def test_a_cluster_name_that_no_longer_matches_its_folder_plans_every_release(
        tmp_path: Path) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["name"] = "alpha-2"
    repo = edited_cluster(tmp_path, "alpha", edit)
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    alpha = [j for j in plan.jobs if j.cluster == "alpha"]
    assert {j.release for j in alpha} == {"support", "staging", "dask-staging", "prod1", "prod2"}
    assert all(f"{C}/alpha/cluster.yaml: name changed" in j.reasons for j in alpha)
    assert all(any("does not match its folder" in p for p in j.invalid) for j in alpha)


def test_a_dangling_symlink_in_a_chart_marks_the_releases_of_that_chart(tmp_path: Path) -> None:
    """helm refuses such a chart: the plan says so, not only the deploy."""
    base = GitRepo(tmp_path / "origin", base_files())
    repo = GitRepo.clone(base.root, tmp_path / "repo")
    (repo.root / "helm-charts/support/templates/shared.yaml").symlink_to("../../../gone.yaml")
    repo.commit("a link to nothing")
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    support = [j for j in plan.jobs if j.release == "support"]
    assert support and all(
        any("helm-charts/support/templates/shared.yaml: a symlink to ../../../gone.yaml, "
            "which does not exist" in p for p in j.invalid) for j in support), support
    assert not any(j.invalid for j in plan.jobs if j.release != "support")
