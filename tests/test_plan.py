"""Data-driven planner cases on a small git repo in 2i2c's layout."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from gitrepo import GitRepo

from hubtasks.config.load import load_config
from hubtasks.model import Plan, Stage
from hubtasks.options import PlanOptions
from hubtasks.planning.changes import ChangedFile
from hubtasks.planning.planner import PlanRequest, build_plan, glob_regex
from hubtasks.planning.repo import plan_repo
from hubtasks.planning.semantics import UNKNOWN

C = "config/clusters"


def chart(name: str, deps: list[str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "v2", "name": name, "version": "0.1.0"}
    if deps:
        doc["dependencies"] = [{"name": d, "version": "0.1.0", "repository": f"file://../{d}"}
                               for d in deps]
    return doc


def hub(name: str, chart_name: str = "basehub", files: list[str] | None = None,
        **extra: Any) -> dict[str, Any]:
    return {"name": name, "display_name": name.title(), "domain": f"{name}.example.org",
            "helm_chart": chart_name, "helm_chart_values_files": files or [f"{name}.values.yaml"],
            **extra}


ALPHA: dict[str, Any] = {  # two staging hubs (one by name, one daskhub), shared common.values.yaml
    "name": "alpha", "provider": "local",
    "support": {"helm_chart_values_files": ["support.values.yaml"]},
    "hubs": [hub("staging", files=["common.values.yaml", "staging.values.yaml"]),
             hub("dask-staging", "daskhub", files=["common.values.yaml",
                                                   "dask-staging.values.yaml"]),
             hub("prod1", files=["common.values.yaml", "prod1.values.yaml"]),
             hub("prod2", "daskhub", files=["common.values.yaml", "prod2.values.yaml"])],
}
BETA: dict[str, Any] = {  # no staging hub, no support; kubeconfig connection
    "name": "beta", "provider": "kubeconfig", "kubeconfig": {"file": "kubeconfig.yaml"},
    "hubs": [hub("one"), hub("two"), hub("staging-docs", staging=False)],
}
GAMMA: dict[str, Any] = {  # 2i2c style: gcp, metadata, chart overrides, explicit staging flag
    "name": "gamma", "provider": "gcp", "provider_url": "https://example.org",
    "metadata": {"2i2c": {"hubspot_deal_id": 1}},
    "gcp": {"key": "enc-deployer-credentials.secret.json", "project": "p", "cluster": "c",
            "zone": "z", "billing": {"paid_by_us": True}},
    "support": {"helm_chart_values_files": ["support.values.yaml"]},
    "hubs": [hub("canary", staging=True),
             hub("research", chart_override="research-chart.yaml"),
             hub("teach", "daskhub", chart_override="config/overrides/teach-chart.yaml"),
             hub("geo", "daskhub", chart_override="research-chart.yaml")],  # replaces basehub
}


def base_files() -> dict[str, Any]:
    files: dict[str, Any] = {
        "hubtasks.yaml": {"deploy_all_hubs_on": ["shared/hubs/**"],
                          "deploy_all_support_on": ["shared/support/*.yaml"]},
        "helm-charts/basehub/Chart.yaml": chart("basehub"),
        "helm-charts/basehub/templates/hub.yaml": "kind: ConfigMap\n",
        "helm-charts/daskhub/Chart.yaml": chart("daskhub", ["basehub"]),
        "helm-charts/daskhub/templates/gw.yaml": "kind: ConfigMap\n",
        "helm-charts/support/Chart.yaml": chart("support"),
        "helm-charts/support/templates/p.yaml": "kind: ConfigMap\n",
        "helm-charts/unused/Chart.yaml": chart("unused"),
        "config/overrides/teach-chart.yaml": chart("daskhub", ["basehub"]),
        f"{C}/templates/gcp/cluster.yaml": "name: {{ cluster_name }}\n",
        "shared/hubs/README": "x\n", "shared/support/a.yaml": "x: 1\n",
        "README.md": "docs\n",
    }
    for doc in (ALPHA, BETA, GAMMA):
        folder = f"{C}/{doc['name']}"
        files[f"{folder}/cluster.yaml"] = doc
        for h in doc["hubs"]:
            for f in h["helm_chart_values_files"]:
                files[f"{folder}/{f}"] = f"x: {h['name']}\n"
        if "support" in doc:
            files[f"{folder}/support.values.yaml"] = "s: 1\n"
    files[f"{C}/beta/kubeconfig.yaml"] = "apiVersion: v1\n"
    files[f"{C}/gamma/enc-deployer-credentials.secret.json"] = "{}\n"
    files[f"{C}/gamma/research-chart.yaml"] = chart("basehub")
    files[f"{C}/gamma/unused.secret.yaml"] = "x: 1\n"
    return files


Edit = Callable[[GitRepo], object]


def edit_cluster(name: str, change: Callable[[dict[str, Any]], object]) -> Edit:
    def apply(repo: GitRepo) -> None:
        rel = f"{C}/{name}/cluster.yaml"
        doc = copy.deepcopy(repo.read_yaml(rel))
        change(doc)
        repo.write({rel: doc})
    return apply


def write(files: dict[str, Any]) -> Callable[[GitRepo], object]:
    return lambda repo: repo.write(files)


def rename(old: str, new: str) -> Callable[[GitRepo], object]:
    return lambda repo: repo.git("mv", old, new)


@dataclass
class Case:
    id: str
    edit: Callable[[GitRepo], object]
    jobs: set[str]  # "stage:cluster/release"
    reasons: dict[str, str] = field(default_factory=dict)  # job -> substring of its reasons
    removed: set[str] = field(default_factory=set)
    no_canary: set[str] = field(default_factory=set)
    labels: tuple[str, ...] = ()


def set_key(path: list[Any], value: Any) -> Callable[[dict[str, Any]], object]:
    def change(doc: dict[str, Any]) -> None:
        node = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    return change


ALPHA_CANARY = {"staging:alpha/staging", "staging:alpha/dask-staging"}
CASES = [
    Case("nothing-relevant", write({"README.md": "more\n", f"{C}/gamma/unused.secret.yaml": "y\n",
                                    "helm-charts/unused/values.yaml": "a: 1\n"}), set()),
    Case("prod-values-plans-prod-and-all-staging",
         write({f"{C}/alpha/prod1.values.yaml": "x: 2\n"}),
         {"prod:alpha/prod1", *ALPHA_CANARY},
         {"prod:alpha/prod1": "values config/clusters/alpha/prod1.values.yaml modified",
          "staging:alpha/staging": "canary for prod hubs: prod1"}),
    Case("staging-values-only-plans-that-staging",
         write({f"{C}/alpha/staging.values.yaml": "x: 2\n"}), {"staging:alpha/staging"}),
    Case("shared-values-file", write({f"{C}/alpha/common.values.yaml": "x: 2\n"}),
         {"prod:alpha/prod1", "prod:alpha/prod2", *ALPHA_CANARY}),
    Case("support-values", write({f"{C}/alpha/support.values.yaml": "s: 2\n"}),
         {"support:alpha/support"}),
    Case("basehub-chart-plans-daskhub-users-too",
         write({"helm-charts/basehub/templates/hub.yaml": "kind: Secret\n"}),
         {"prod:alpha/prod1", "prod:alpha/prod2", *ALPHA_CANARY, "prod:beta/one",
          "prod:beta/two", "prod:beta/staging-docs", "staging:gamma/canary", "prod:gamma/teach",
          "prod:gamma/research", "prod:gamma/geo"},
         {"prod:alpha/prod2": "chart basehub: templates/hub.yaml modified"},
         no_canary={"beta"}),
    Case("daskhub-chart-only-daskhub",
         write({"helm-charts/daskhub/templates/gw.yaml": "kind: Secret\n"}),
         {"prod:alpha/prod2", *ALPHA_CANARY, "prod:gamma/teach", "prod:gamma/geo",
          "staging:gamma/canary"}),
    Case("chart-yaml-edit-skips-overridden-hubs",
         write({"helm-charts/basehub/Chart.yaml": {**chart("basehub"), "version": "0.2.0"}}),
         {"prod:alpha/prod1", "prod:alpha/prod2", *ALPHA_CANARY, "prod:beta/one",
          "prod:beta/two", "prod:beta/staging-docs", "staging:gamma/canary", "prod:gamma/teach"},
         no_canary={"beta"}),
    Case("chart-override-file", write({f"{C}/gamma/research-chart.yaml": chart("basehub", [])
                                       | {"version": "9"}}),
         {"prod:gamma/research", "prod:gamma/geo", "staging:gamma/canary"},
         {"prod:gamma/research": "chart_override config/clusters/gamma/research-chart.yaml"}),
    Case("root-relative-chart-override",
         write({"config/overrides/teach-chart.yaml": {**chart("daskhub", ["basehub"]),
                                                      "version": "2"}}),
         {"prod:gamma/teach", "staging:gamma/canary"}),
    Case("display-name-is-descriptive",
         edit_cluster("alpha", set_key(["hubs", 2, "display_name"], "New name")), set()),
    Case("metadata-and-billing-are-descriptive",
         edit_cluster("gamma", lambda d: (d["metadata"].update(x=2),
                                          d["gcp"]["billing"].update(paid_by_us=False))), set()),
    Case("hub-entry-edit-plans-that-hub",
         edit_cluster("alpha", set_key(["hubs", 2, "domain"], "new.example.org")),
         {"prod:alpha/prod1", *ALPHA_CANARY},
         {"prod:alpha/prod1": "hubs[prod1] changed: domain"}),
    Case("hub-order-change-plans-nothing",
         edit_cluster("alpha", lambda d: d["hubs"].reverse()), set()),
    Case("connection-edit-plans-whole-cluster",
         edit_cluster("gamma", set_key(["gcp", "zone"], "europe")),
         {"support:gamma/support", "staging:gamma/canary", "prod:gamma/research",
          "prod:gamma/teach", "prod:gamma/geo"},
         {"prod:gamma/teach": "connection changed: gcp.zone"}),
    Case("credentials-file-content-plans-nothing",
         write({f"{C}/beta/kubeconfig.yaml": "apiVersion: v1\nx: 1\n"}), set()),
    Case("credentials-file-path-plans-cluster",
         lambda repo: (write({f"{C}/beta/kc2.yaml": "apiVersion: v1\n"})(repo),
                       edit_cluster("beta", set_key(["kubeconfig", "file"], "kc2.yaml"))(repo)),
         {"prod:beta/one", "prod:beta/two", "prod:beta/staging-docs"},
         {"prod:beta/one": "connection changed: kubeconfig.file"}, no_canary={"beta"}),
    Case("support-entry-edit",
         edit_cluster("alpha", set_key(["support", "helm_chart_values_files"],
                                       ["support.values.yaml", "common.values.yaml"])),
         {"support:alpha/support"}),
    Case("new-hub", lambda repo: (write({f"{C}/alpha/new.values.yaml": "n: 1\n"})(repo),
                                  edit_cluster("alpha", lambda d: d["hubs"].append(hub("new")))(
                                      repo)),
         {"prod:alpha/new", *ALPHA_CANARY}, {"prod:alpha/new": "new hub"}),
    Case("removed-hub", edit_cluster("alpha", lambda d: d["hubs"].pop(3)), set(),
         removed={"alpha/prod2"}),
    Case("removed-support", edit_cluster("alpha", lambda d: d.pop("support")), set(),
         removed={"alpha/support"}),
    Case("renamed-hub-is-removal-plus-addition",
         lambda repo: (rename(f"{C}/beta/two.values.yaml", f"{C}/beta/deux.values.yaml")(repo),
                       edit_cluster("beta", lambda d: d["hubs"][1].update(
                           name="deux", helm_chart_values_files=["deux.values.yaml"]))(repo)),
         {"prod:beta/deux"}, {"prod:beta/deux": "new hub"}, removed={"beta/two"},
         no_canary={"beta"}),
    Case("staging-flag-flip-moves-hub-to-staging",
         edit_cluster("beta", set_key(["hubs", 0, "staging"], True)),
         {"staging:beta/one"}, {"staging:beta/one": "hubs[one] changed: staging"}),
    Case("deleted-values-file-of-a-hub",
         lambda repo: (edit_cluster("alpha", set_key(["hubs", 3, "helm_chart_values_files"],
                                                     ["prod2.values.yaml"]))(repo),
                       write({f"{C}/alpha/common.values.yaml": None})(repo),
                       edit_cluster("alpha", set_key(["hubs", 0, "helm_chart_values_files"],
                                                     ["staging.values.yaml"]))(repo),
                       edit_cluster("alpha", set_key(["hubs", 1, "helm_chart_values_files"],
                                                     ["dask-staging.values.yaml"]))(repo),
                       edit_cluster("alpha", set_key(["hubs", 2, "helm_chart_values_files"],
                                                     ["prod1.values.yaml"]))(repo)),
         {"prod:alpha/prod1", "prod:alpha/prod2", *ALPHA_CANARY},
         {"prod:alpha/prod2": "helm_chart_values_files"}),
    Case("renamed-values-file",
         lambda repo: (rename(f"{C}/beta/two.values.yaml", f"{C}/beta/second.values.yaml")(repo),
                       edit_cluster("beta", set_key(["hubs", 1, "helm_chart_values_files"],
                                                    ["second.values.yaml"]))(repo)),
         {"prod:beta/two"},
         {"prod:beta/two": "values config/clusters/beta/second.values.yaml renamed from"},
         no_canary={"beta"}),
    Case("basehub-template-plans-every-closure-with-basehub-override-or-not",
         write({"helm-charts/basehub/templates/hub.yaml": "kind: Secret\n"}),
         {"prod:alpha/prod1", "prod:alpha/prod2", *ALPHA_CANARY, "prod:beta/one",
          "prod:beta/two", "prod:beta/staging-docs", "staging:gamma/canary",
          "prod:gamma/research", "prod:gamma/teach", "prod:gamma/geo"},
         {"prod:gamma/geo": "chart basehub: templates/hub.yaml modified"}, no_canary={"beta"}),
    Case("basehub-chart-yaml-skips-hubs-whose-override-replaces-it",
         write({"helm-charts/basehub/Chart.yaml": {**chart("basehub"), "version": "0.2.0"}}),
         {"prod:alpha/prod1", "prod:alpha/prod2", *ALPHA_CANARY, "prod:beta/one",
          "prod:beta/two", "prod:beta/staging-docs", "staging:gamma/canary",
          "prod:gamma/teach"}, no_canary={"beta"}),
    Case("override-edit-plans-its-hubs",
         write({f"{C}/gamma/research-chart.yaml": {**chart("basehub"), "version": "0.3.0"}}),
         {"prod:gamma/research", "prod:gamma/geo", "staging:gamma/canary"},
         {"prod:gamma/geo": "chart_override config/clusters/gamma/research-chart.yaml"}),
    Case("deleted-chart-template",
         write({"helm-charts/support/templates/p.yaml": None}),
         {"support:alpha/support", "support:gamma/support"},
         {"support:alpha/support": "chart support: templates/p.yaml deleted"}),
    Case("new-cluster", lambda repo: (write({
        f"{C}/delta/cluster.yaml": {"name": "delta", "provider": "local",
                                    "hubs": [hub("solo")]},
        f"{C}/delta/solo.values.yaml": "a: 1\n"})(repo)),
         {"prod:delta/solo"}, {"prod:delta/solo": "new cluster"}, no_canary={"delta"}),
    Case("removed-cluster", lambda repo: repo.git("rm", "-rq", f"{C}/gamma"), set(),
         removed={"gamma/support!", "gamma/canary!", "gamma/research!", "gamma/teach!",
                  "gamma/geo!"}),
    Case("renamed-cluster", lambda repo: (
        repo.git("mv", f"{C}/beta", f"{C}/bravo"),
        edit_cluster("bravo", set_key(["name"], "bravo"))(repo)),
         {"prod:bravo/one", "prod:bravo/two", "prod:bravo/staging-docs"},
         removed={"beta/one!", "beta/two!", "beta/staging-docs!"},
         no_canary={"bravo"}),
    Case("deploy-all-hubs-glob", write({"shared/hubs/nested/x.txt": "1\n"}),
         {"prod:alpha/prod1", "prod:alpha/prod2", *ALPHA_CANARY, "prod:beta/one",
          "prod:beta/two", "prod:beta/staging-docs", "staging:gamma/canary",
          "prod:gamma/research", "prod:gamma/teach", "prod:gamma/geo"},
         {"prod:beta/one": "deploy_all_hubs_on 'shared/hubs/**' matched: shared/hubs/nested"},
         no_canary={"beta"}),
    Case("deploy-all-support-glob", write({"shared/support/b.yaml": "1\n"}),
         {"support:alpha/support", "support:gamma/support"}),
    Case("settings-support-chart-swaps-support-releases",
         write({"hubtasks.yaml": {"support_chart": "unused",
                                  "deploy_all_hubs_on": ["shared/hubs/**"]}}),
         {"support:alpha/support", "support:gamma/support"},
         {"support:alpha/support": "hubtasks.yaml: support_chart changed"}),
    Case("settings-chart-values-plan-that-charts-releases",
         write({"hubtasks.yaml": {"deploy_all_hubs_on": ["shared/hubs/**"],
                                  "deploy_all_support_on": ["shared/support/*.yaml"],
                                  "chart_values": {"support": ["templates/p.yaml"]}}}),
         {"support:alpha/support", "support:gamma/support"},
         {"support:alpha/support": "hubtasks.yaml: chart_values.support changed"}),
    Case("settings-before-steps-plan-that-charts-releases",
         write({"hubtasks.yaml": {"deploy_all_hubs_on": ["shared/hubs/**"],
                                  "deploy_all_support_on": ["shared/support/*.yaml"],
                                  "before": {"support": [{"name": "crds",
                                                          "command": ["true"]}]}}}),
         {"support:alpha/support", "support:gamma/support"},
         {"support:gamma/support": "hubtasks.yaml: before.support changed"}),
    Case("mode-only-change-plans-nothing",
         lambda repo: (repo.root / f"{C}/alpha/prod1.values.yaml").chmod(0o755), set()),
    Case("same-files-spelled-with-dot-slash-plan-nothing",
         edit_cluster("alpha", lambda doc: [
             h.update(helm_chart_values_files=[f"./{f}" for f in h["helm_chart_values_files"]])
             for h in [*doc["hubs"], doc["support"]]]), set()),
    Case("settings-globs-only-plan-nothing",
         write({"hubtasks.yaml": {"deploy_all_hubs_on": ["elsewhere/**"]}}), set()),
    Case("label-skip-deploy", write({f"{C}/alpha/prod1.values.yaml": "x: 2\n"}), set(),
         labels=("deployer:skip-deploy",)),
    Case("label-skip-deploy-hubs",
         write({f"{C}/alpha/prod1.values.yaml": "x: 2\n", f"{C}/alpha/support.values.yaml": "2"}),
         {"support:alpha/support"}, labels=("deployer:skip-deploy-hubs",)),
    Case("label-deploy-support", write({}), {"support:alpha/support", "support:gamma/support"},
         {"support:gamma/support": "label deployer:deploy-support"},
         labels=("deployer:deploy-support",)),
    Case("label-deploy-hubs", write({}),
         {"prod:alpha/prod1", "prod:alpha/prod2", *ALPHA_CANARY, "prod:beta/one",
          "prod:beta/two", "prod:beta/staging-docs", "staging:gamma/canary",
          "prod:gamma/research", "prod:gamma/teach", "prod:gamma/geo"},
         {"prod:beta/one": "label deployer:deploy-hubs"}, no_canary={"beta"},
         labels=("deployer:deploy-hubs",)),
    Case("support-planned-is-the-canary", lambda repo: repo.write({
        f"{C}/gamma/support.values.yaml": "s: 2\n", f"{C}/gamma/research.values.yaml": "r: 2\n"}),
         {"support:gamma/support", "staging:gamma/canary", "prod:gamma/research"}),
]


@pytest.fixture(scope="module")
def base_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = GitRepo(tmp_path_factory.mktemp("base") / "repo", base_files())
    return repo.root


def job_ids(plan: Plan) -> set[str]:
    return {f"{j.stage.value}:{j.cluster}/{j.release}" for j in plan.jobs}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan_case(case: Case, base_repo: Path, tmp_path: Path) -> None:
    repo = GitRepo.clone(base_repo, tmp_path / "repo")
    case.edit(repo)
    repo.commit(case.id)
    _, plan = plan_repo(repo.root, PlanOptions(base="main", labels=case.labels))
    assert job_ids(plan) == case.jobs
    for job_id, fragment in case.reasons.items():
        job = next(j for j in plan.jobs if f"{j.stage.value}:{j.cluster}/{j.release}" == job_id)
        assert any(fragment in r for r in job.reasons), job.reasons
    assert {f"{r.cluster}/{r.hub or 'support'}" + ("!" if r.cluster_removed else "")
            for r in plan.removed} == case.removed
    assert set(plan.no_canary) == case.no_canary
    assert all(j.reasons for j in plan.jobs)


def test_staging_by_name_and_flag(base_repo: Path) -> None:
    config = load_config(base_repo)
    staging = {(h.cluster, h.name) for h in config.hubs() if h.staging}
    assert staging == {("alpha", "staging"), ("alpha", "dask-staging"), ("gamma", "canary")}


def test_plan_is_sorted_and_deterministic(base_repo: Path) -> None:
    config = load_config(base_repo)
    request = PlanRequest(everything=True)
    plans = [build_plan(config, request) for _ in range(3)]
    assert plans[0] == plans[1] == plans[2]
    keys = [j.sort_key() for j in plans[0].jobs]
    assert keys == sorted(keys)
    stages = [j.stage for j in plans[0].jobs]
    assert stages.index(Stage.STAGING) > stages.index(Stage.SUPPORT)


def test_changes_order_does_not_matter(base_repo: Path) -> None:
    config = load_config(base_repo)
    changes = [ChangedFile(path=f"{C}/alpha/common.values.yaml"),
               ChangedFile(path="helm-charts/support/templates/p.yaml", status="D"),
               ChangedFile(path="shared/hubs/x", status="A")]
    one = build_plan(config, PlanRequest(changes=tuple(changes)))
    two = build_plan(config, PlanRequest(changes=tuple(reversed(changes))))
    assert one == two


def test_unknown_base_doc_plans_whole_cluster(base_repo: Path) -> None:
    config = load_config(base_repo)
    request = PlanRequest(changes=(ChangedFile(path=f"{C}/beta/cluster.yaml"),),
                          base_docs={"beta": UNKNOWN})
    plan = build_plan(config, request)
    assert job_ids(plan) == {"prod:beta/one", "prod:beta/two", "prod:beta/staging-docs"}
    assert "base version unknown" in plan.jobs[0].reasons[0]


def test_worktree_changes(base_repo: Path, tmp_path: Path) -> None:
    repo = GitRepo.clone(base_repo, tmp_path / "repo")
    repo.write({f"{C}/alpha/support.values.yaml": "s: 3\n"})
    _, committed = plan_repo(repo.root, PlanOptions(base="main"))
    _, worktree = plan_repo(repo.root, PlanOptions(base="main", worktree=True))
    assert committed.jobs == ()
    assert job_ids(worktree) == {"support:alpha/support"}


def test_files_option_without_base(base_repo: Path) -> None:
    files = (f"{C}/alpha/prod1.values.yaml", f"{C}/gamma/cluster.yaml")
    _, plan = plan_repo(base_repo, PlanOptions(base="no-such-ref", files=files))
    assert plan.base is None
    # gamma's cluster.yaml can't be compared with an unknown base: every release is planned
    assert {"support:gamma/support", "prod:alpha/prod1"} <= job_ids(plan)


@pytest.mark.parametrize(("pattern", "path", "hit"), [
    ("shared/**", "shared/a/b/c.yaml", True),
    ("shared/**", "sharedx/a", False),
    ("helm-charts/*/values.yaml", "helm-charts/basehub/values.yaml", True),
    ("helm-charts/*/values.yaml", "helm-charts/a/b/values.yaml", False),
    ("**/*.schema.json", "x/y/z.schema.json", True),
    ("**/*.schema.json", "z.schema.json", True),
    ("a?c", "abc", True),
], ids=lambda v: str(v))
def test_glob(pattern: str, path: str, hit: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is hit
