"""config/charts.py: the one Chart.yaml dependency reader and walk, and the checks at load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hubtasks.config.charts import (
    Chart,
    build_order,
    chart_closure,
    chart_from_doc,
    file_dependencies,
    find_cycle,
    with_absolute_file_deps,
)
from hubtasks.config.load import load_config
from hubtasks.config.yamlfiles import ConfigError

LOCAL = {"repository": "file://../basehub", "name": "basehub", "version": "1"}
REMOTE = {"repository": "https://jupyterhub.github.io/helm-chart/", "name": "jupyterhub"}


def chart(folder: str, *deps: dict[str, str]) -> tuple[str, Chart]:
    return folder, chart_from_doc({"name": folder.rsplit("/", 1)[-1],
                                   "dependencies": list(deps)}, folder)


def test_file_dependencies_are_repo_relative_and_stay_inside() -> None:
    doc = {"dependencies": [LOCAL, REMOTE, {"repository": "file://../../../etc"},
                            {"repository": "file:///abs"}, "junk"]}
    assert file_dependencies(doc, "helm-charts/daskhub") == ("helm-charts/basehub",)
    assert file_dependencies({"dependencies": "not a list"}, "x") == ()


def test_chart_record_knows_local_and_remote_dependencies() -> None:
    local_only = chart_from_doc({"dependencies": [LOCAL]}, "helm-charts/daskhub")
    mixed = chart_from_doc({"dependencies": [LOCAL, REMOTE]}, "helm-charts/daskhub")
    none = chart_from_doc({}, "helm-charts/basehub")
    assert (local_only.has_deps, local_only.all_local) == (True, True)
    assert (mixed.has_deps, mixed.all_local, mixed.remote_count) == (True, False, 1)
    assert (none.has_deps, none.all_local, none.name) == (False, False, "basehub")


CHARTS = dict([
    chart("c/common"),
    chart("c/basehub", {"repository": "file://../common"}),
    chart("c/daskhub", {"repository": "file://../basehub"}),
    chart("c/support"),
])


def test_closure_and_build_order() -> None:
    assert chart_closure(CHARTS, "c/daskhub") == ["c/daskhub", "c/basehub",
                         "c/common"]
    assert chart_closure(CHARTS, "c/daskhub", ()) == ["c/daskhub"]
    assert build_order(CHARTS, ["c/daskhub", "c/support",
                       "c/basehub"]) == [
        "c/common", "c/basehub", "c/daskhub", "c/support"]


def test_find_cycle() -> None:
    cyclic = dict([chart("c/a", {"repository": "file://../b"}),
                   chart("c/b", {"repository": "file://../a"})])
    assert find_cycle(cyclic) == ["c/a", "c/b", "c/a"]
    assert find_cycle(CHARTS) is None


def test_override_copies_point_at_absolute_dependencies(tmp_path: Path) -> None:
    doc = with_absolute_file_deps({"dependencies": [dict(LOCAL), dict(REMOTE)]},
                                  tmp_path / "helm-charts" / "daskhub")
    assert doc["dependencies"][0]["repository"] == f"file://{tmp_path / 'helm-charts/basehub'}"
    assert doc["dependencies"][1] == REMOTE


def write_repo(root: Path, charts: dict[str, dict[str, object]]) -> Path:
    (root / "config/clusters").mkdir(parents=True)
    for name, doc in charts.items():
        (root / "helm-charts" / name).mkdir(parents=True)
        (root / "helm-charts" / name / "Chart.yaml").write_text(yaml.safe_dump(doc))
    return root


@pytest.mark.parametrize(("charts", "problem"), [
    ({"a": {"dependencies": [{"repository": "file://../b"}]},
      "b": {"dependencies": [{"repository": "file://../a"}]}},
     r"helm-charts/a/Chart.yaml: chart dependency cycle: a -> b -> a"),
    ({"daskhub": {"dependencies": [{"repository": "file://../basehub"}]}},
     r"helm-charts/daskhub/Chart.yaml: dependency on helm-charts/basehub \(file://\), which "
     r"holds no Chart.yaml"),
], ids=["cycle", "missing-dependency"])
def test_check_config_refuses_broken_chart_graphs(tmp_path: Path, charts: dict[str, dict[str,
                                                  object]],
                                                  problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config(write_repo(tmp_path, charts))
