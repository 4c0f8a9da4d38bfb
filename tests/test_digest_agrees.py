"""The diff planner and the release digest agree, history by history: after each commit, the
releases planned for their own inputs (not as canaries) are exactly those whose digest
changed. Cases: symlinks a chart folder holds (a file, a folder), a symlinked chart_override,
domain_override_file or chart_values document, a chart_override replacing a Chart.yaml,
build output git tracks (Chart.lock, charts/*.tgz), a support entry's path spelling, and
chart_values naming the default."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from gitrepo import GitRepo
from test_plan import ALPHA, C, base_files, chart, write

from hubtasks.config.load import load_config
from hubtasks.config.yamlfiles import ConfigError
from hubtasks.deploying.values import release_digest
from hubtasks.model import Plan
from hubtasks.options import PlanOptions
from hubtasks.planning.deployed import repo_releases
from hubtasks.planning.repo import plan_repo

Step = Callable[[GitRepo], object]
BH = "helm-charts/basehub"
OVERRIDES_BASEHUB = {"gamma/research", "gamma/geo"}  # their chart_override replaces basehub's


def link(path: str, target: str) -> Step:
    """A step that makes `path` a symlink to `target` (replacing what is there)."""
    def apply(repo: GitRepo) -> None:
        where = repo.root / path
        where.parent.mkdir(parents=True, exist_ok=True)
        if where.is_symlink() or where.exists():
            where.unlink()
        os.symlink(target, where)
    return apply


def own_planned(plan: Plan) -> set[str]:
    """Releases planned for a reason of their own (the canary rule adds the others)."""
    return {f"{j.cluster}/{j.release}" for j in plan.jobs
            if any(not r.startswith("canary for prod hubs") for r in j.reasons)}


def digests(root: Path) -> dict[str, str]:
    config = load_config(root)
    return {f"{j.cluster}/{j.release}": release_digest(config, j) for j in repo_releases(config)}


def history(tmp_path: Path, files: dict[str, Any], setup: Sequence[Step],
            steps: Sequence[Step]) -> list[tuple[set[str], set[str], Plan]]:
    """(planned, digest changed, plan) after each step, each step its own commit."""
    repo = GitRepo(tmp_path / "repo")
    repo.write(files)
    for step in setup:
        step(repo)
    base = repo.commit("base")
    before = digests(repo.root)
    out = []
    for step in steps:
        step(repo)
        head = repo.commit("step")
        _, plan = plan_repo(repo.root, PlanOptions(base=base))
        after = digests(repo.root)
        out.append((own_planned(plan), {k for k in after if before.get(k) != after[k]}, plan))
        base, before = head, after
    return out


def every_hub() -> set[str]:
    return {f"{name}/{h['name']}" for name, doc in _docs().items() for h in doc["hubs"]}


def _docs() -> dict[str, Any]:
    return {path.split("/")[2]: doc for path, doc in base_files().items()
            if path.endswith("/cluster.yaml") and isinstance(doc, dict)}


def hubs_of(chart_name: str) -> set[str]:
    return {f"{name}/{h['name']}" for name, doc in _docs().items() for h in doc["hubs"]
            if h["helm_chart"] == chart_name}


def reasons_of(plan: Plan, release: str) -> tuple[str, ...]:
    return next(j.reasons for j in plan.jobs if f"{j.cluster}/{j.release}" == release)


def agree(found: list[tuple[set[str], set[str], Plan]], *expected: set[str]) -> None:
    assert [(planned, changed) for planned, changed, _ in found] == \
        [(want, want) for want in expected]


def test_editing_the_target_of_a_linked_template_plans_the_charts_releases(
        tmp_path: Path) -> None:
    files = {**base_files(), "shared-templates/x.yaml": "kind: ConfigMap\n"}
    found = history(tmp_path, files,
                    [link(f"{BH}/templates/shared-x.yaml", "../../../shared-templates/x.yaml")],
                    [write({"shared-templates/x.yaml": "kind: Secret\n"})])
    agree(found, every_hub())
    assert "chart basehub templates/shared-x.yaml -> shared-templates/x.yaml modified" in \
        reasons_of(found[0][2], "alpha/staging")


def test_a_linked_folder_of_templates_is_rendered_and_its_edits_planned(
        tmp_path: Path) -> None:
    files = {**base_files(), "shared/tpl/y.yaml": "kind: ConfigMap\n"}
    found = history(tmp_path, files, [],
                    [link(f"{BH}/templates/shared", "../../../shared/tpl"),
                     write({"shared/tpl/y.yaml": "kind: Secret\n"}),
                     write({"shared/tpl/z.yaml": "kind: Secret\n"})])
    agree(found, every_hub(), every_hub(), every_hub())
    assert "chart basehub templates/shared -> shared/tpl: y.yaml modified" in \
        reasons_of(found[1][2], "beta/one")


def test_a_linked_folder_in_a_support_chart_plans_only_support(tmp_path: Path) -> None:
    files = {**base_files(), "shared/tpl/y.yaml": "kind: ConfigMap\n"}
    found = history(tmp_path, files,
                    [link("helm-charts/support/templates/s", "../../../shared/tpl")],
                    [write({"shared/tpl/y.yaml": "kind: Secret\n"})])
    agree(found, {"alpha/support", "gamma/support"})


def test_a_symlinked_domain_override_file(tmp_path: Path) -> None:
    files = copy.deepcopy(base_files())  # its cluster.yaml documents are test_plan's own
    gamma = files[f"{C}/gamma/cluster.yaml"]
    next(h for h in gamma["hubs"] if h["name"] == "canary")["domain_override_file"] = "d.yaml"
    files["shared/d.yaml"] = "domain: other.example.org\n"
    found = history(tmp_path, files, [link(f"{C}/gamma/d.yaml", "../../../shared/d.yaml")],
                    [write({"shared/d.yaml": "domain: third.example.org\n"})])
    agree(found, {"gamma/canary"})
    assert "domain_override_file config/clusters/gamma/d.yaml -> shared/d.yaml modified" in \
        reasons_of(found[0][2], "gamma/canary")


def test_a_symlinked_chart_override(tmp_path: Path) -> None:
    files = base_files()
    files["shared/research-chart.yaml"] = files.pop(f"{C}/gamma/research-chart.yaml")
    edited = {**chart("basehub"), "description": "edited"}
    found = history(tmp_path, files,
                    [link(f"{C}/gamma/research-chart.yaml", "../../../shared/research-chart.yaml")],
                    [write({"shared/research-chart.yaml": edited})])
    agree(found, OVERRIDES_BASEHUB)


def test_a_chart_values_document_linked_from_outside_the_chart(tmp_path: Path) -> None:
    files = {**base_files(), "shared/extra.yaml": "a: 1\n"}
    files["hubtasks.yaml"] = {**files["hubtasks.yaml"], "chart_values": {"basehub": ["extra.yaml"]}}
    found = history(tmp_path, files, [link(f"{BH}/extra.yaml", "../../shared/extra.yaml")],
                    [write({"shared/extra.yaml": "a: 2\n"})])
    agree(found, every_hub())  # helm packages basehub's extra.yaml for daskhub's hubs too
    assert "chart basehub extra.yaml -> shared/extra.yaml modified" in \
        reasons_of(found[0][2], "alpha/prod1")


def test_a_chart_values_document_linked_out_of_the_repository_is_refused(
        tmp_path: Path) -> None:
    files = base_files()
    files["hubtasks.yaml"] = {**files["hubtasks.yaml"], "chart_values": {"basehub": ["extra.yaml"]}}
    repo = GitRepo(tmp_path / "repo", files)
    (tmp_path / "outside.yaml").write_text("a: 1\n")
    os.symlink("../../../outside.yaml", repo.root / BH / "extra.yaml")
    with pytest.raises(ConfigError, match=r"extra\.yaml escapes the repository"):
        load_config(repo.root)


def test_a_basehub_chart_yaml_edit_skips_hubs_whose_override_replaces_it(
        tmp_path: Path) -> None:
    found = history(tmp_path, base_files(), [],
                    [write({f"{BH}/Chart.yaml": {**chart("basehub"), "description": "x"}})])
    agree(found, every_hub() - OVERRIDES_BASEHUB)


def test_a_tracked_chart_lock_is_an_input_and_an_untracked_one_is_not(tmp_path: Path) -> None:
    found = history(tmp_path, base_files(), [],
                    [write({f"{BH}/Chart.lock": "dependencies: []\n"}),
                     write({f"{BH}/Chart.lock": "dependencies: []\ndigest: x\n"})])
    agree(found, every_hub() - OVERRIDES_BASEHUB, every_hub() - OVERRIDES_BASEHUB)
    root = tmp_path / "repo"
    before = digests(root)
    (root / "helm-charts/daskhub/Chart.lock").write_text("generated: now\n")  # helm's output
    (root / "helm-charts/daskhub/charts").mkdir()
    (root / "helm-charts/daskhub/charts/basehub-0.1.0.tgz").write_text("built\n")
    assert digests(root) == before


def test_committed_archives_count_only_in_a_chart_without_dependencies(
        tmp_path: Path) -> None:
    found = history(tmp_path, base_files(), [],
                    [write({"helm-charts/daskhub/charts/basehub-0.1.0.tgz": "x\n"}),
                     write({"helm-charts/support/charts/extra-0.1.0.tgz": "x\n"})])
    agree(found, set(), {"alpha/support", "gamma/support"})


def test_dot_slash_in_the_support_entry_is_the_same_file(tmp_path: Path) -> None:
    alpha = {**ALPHA, "support": {"helm_chart_values_files": ["./support.values.yaml"]}}
    found = history(tmp_path, base_files(), [], [write({f"{C}/alpha/cluster.yaml": alpha})])
    agree(found, set())


@pytest.mark.parametrize("chart_values", [
    {"basehub": ["values.jsonnet"]}, {"basehub": ["./values.jsonnet"]}, {"daskhub": []},
], ids=["default-named", "default-dot-slash", "none-named-for-none"])
def test_chart_values_naming_the_default_plans_nothing(tmp_path: Path,
                                                       chart_values: dict[str, Any]) -> None:
    files = {**base_files(), f"{BH}/values.jsonnet": "{ a: 1 }\n"}
    settings = {**files["hubtasks.yaml"], "chart_values": chart_values}
    found = history(tmp_path, files, [], [write({"hubtasks.yaml": settings})])
    agree(found, set())


def test_chart_values_naming_another_document_plans_the_chart(tmp_path: Path) -> None:
    files = {**base_files(), f"{BH}/values.jsonnet": "{ a: 1 }\n", f"{BH}/more.yaml": "b: 1\n"}
    settings = {**files["hubtasks.yaml"], "chart_values": {"basehub": ["more.yaml"]}}
    found = history(tmp_path, files, [], [write({"hubtasks.yaml": settings})])
    agree(found, hubs_of("basehub"))


def test_a_linked_domain_override_file_that_loses_its_domain_marks_its_hub(
        tmp_path: Path) -> None:
    files = copy.deepcopy(base_files())
    gamma = files[f"{C}/gamma/cluster.yaml"]
    next(h for h in gamma["hubs"] if h["name"] == "canary")["domain_override_file"] = "d.yaml"
    files["shared/d.yaml"] = "domain: other.example.org\n"
    (_, _, plan), = history(tmp_path, files, [link(f"{C}/gamma/d.yaml", "../../../shared/d.yaml")],
                            [write({"shared/d.yaml": "other: 1\n"})])
    invalid = next(j.invalid for j in plan.jobs if j.cluster == "gamma" and j.hub == "canary")
    assert any("domain" in problem for problem in invalid), invalid
