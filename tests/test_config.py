"""Config loading and validation: every problem reported at once, naming file and key."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitrepo import GitRepo
from test_plan import base_files

from hubtasks.config.load import load_config, load_settings
from hubtasks.config.yamlfiles import ConfigError
from hubtasks.options import PlanOptions
from hubtasks.planning.repo import plan_repo

C = "config/clusters"


def repo_with(tmp_path: Path, changes: dict[str, Any]) -> Path:
    """A plain folder holding the planner's base files, with `changes` (None deletes)."""
    files = {**base_files(), **changes}
    root = tmp_path / "repo"
    for rel, content in files.items():
        if content is None:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return root


def problems(root: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(root)
    return list(info.value.problems)


def alpha(**changes: Any) -> dict[str, Any]:
    doc = dict(base_files()[f"{C}/alpha/cluster.yaml"])
    doc.update(changes)
    return {f"{C}/alpha/cluster.yaml": doc}


def test_example_like_repo_loads(tmp_path: Path) -> None:
    config = load_config(repo_with(tmp_path, {}))
    assert sorted(config.clusters) == ["alpha", "beta", "gamma"]
    assert config.clusters["alpha"].hubs[0].values_files == (
        f"{C}/alpha/common.values.yaml", f"{C}/alpha/staging.values.yaml")


BAD_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("malformed-yaml", {f"{C}/alpha/cluster.yaml": "name: alpha\nhubs: [\n"},
     [f"{C}/alpha/cluster.yaml:3:1: invalid YAML"]),
    ("unknown-top-key", alpha(colour="blue"),
     [f"{C}/alpha/cluster.yaml: (top level): Additional properties are not allowed ('colour'"]),
    ("unknown-hub-key-in-third-hub",
     alpha(hubs=[*base_files()[f"{C}/alpha/cluster.yaml"]["hubs"][:2],
                 {**base_files()[f"{C}/alpha/cluster.yaml"]["hubs"][2], "colour": 1}]),
     [f"{C}/alpha/cluster.yaml: hubs[2](name=prod1): Additional properties are not allowed"]),
    ("missing-provider-block", {f"{C}/gamma/cluster.yaml": {
        k: v for k, v in base_files()[f"{C}/gamma/cluster.yaml"].items() if k != "gcp"}},
     [f"{C}/gamma/cluster.yaml: (top level): 'gcp' is a required property"]),
    ("name-mismatch", alpha(name="alfa"),
     [f"{C}/alpha/cluster.yaml: name: 'alfa' does not match its folder name 'alpha'"]),
    ("missing-values-file", {f"{C}/alpha/prod1.values.yaml": None},
     [f"{C}/alpha/cluster.yaml: hubs[2](name=prod1).helm_chart_values_files[1]: file "
      f"{C}/alpha/prod1.values.yaml does not exist"]),
    ("escaping-path", alpha(support={"helm_chart_values_files": ["../../../../etc/passwd"]}),
     [f"{C}/alpha/cluster.yaml: support.helm_chart_values_files[0]: '../../../../etc/passwd' "
      "escapes the repository"]),
    ("invalid-release-name", alpha(hubs=[{**base_files()[f"{C}/alpha/cluster.yaml"]["hubs"][0],
                                          "name": "Prod_Hub"}]),
     ["hubs[0](name=Prod_Hub).name: 'Prod_Hub' is not a valid release/namespace name"]),
    ("duplicate-hub", alpha(hubs=[base_files()[f"{C}/alpha/cluster.yaml"]["hubs"][0]] * 2),
     ["hubs[1](name=staging): duplicate hub name 'staging'"]),
    ("unknown-chart", alpha(hubs=[{**base_files()[f"{C}/alpha/cluster.yaml"]["hubs"][0],
                                   "helm_chart": "nohub"}]),
     ["hubs[0](name=staging).helm_chart: chart helm-charts/nohub does not exist"]),
    ("reserved-support-name", alpha(hubs=[{**base_files()[f"{C}/alpha/cluster.yaml"]["hubs"][0],
                                           "name": "support"}]),
     ["'support' is reserved"]),
    ("missing-override", {f"{C}/gamma/research-chart.yaml": None},
     ["hubs[1](name=research).chart_override: file"]),
    ("no-cluster-yaml", {f"{C}/stray/notes.txt": "x"},
     [f"{C}/stray/cluster.yaml: missing"]),
    ("wrong-types", alpha(hubs="none", provider="moon"),
     ["provider: 'moon' is not one of", "hubs: 'none' is not of type 'array'"]),
]


@pytest.mark.parametrize(("changes", "expected"), [c[1:] for c in BAD_CASES],
                         ids=[c[0] for c in BAD_CASES])
def test_bad_config(tmp_path: Path, changes: dict[str, Any], expected: list[str]) -> None:
    found = problems(repo_with(tmp_path, changes))
    for fragment in expected:
        assert any(fragment in p for p in found), (fragment, found)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    root = repo_with(tmp_path, {**alpha(name="alfa"), f"{C}/beta/one.values.yaml": None,
                                f"{C}/gamma/cluster.yaml": "{"})
    found = problems(root)
    assert len(found) == 3
    assert [p.split(":")[0] for p in found] == [f"{C}/alpha/cluster.yaml",
                                                f"{C}/beta/cluster.yaml",
                                                f"{C}/gamma/cluster.yaml"]


def test_symlink_escape(tmp_path: Path) -> None:
    root = repo_with(tmp_path, {})
    outside = tmp_path / "outside.yaml"
    outside.write_text("a: 1\n")
    target = root / C / "alpha/prod1.values.yaml"
    target.unlink()
    target.symlink_to(outside)
    assert any("escapes the repository" in p for p in problems(root))


def test_settings(tmp_path: Path) -> None:
    root = repo_with(tmp_path, {"hubtasks.yaml": {"clusters_dir": "clusters",
                                                  "exclude_clusters": ["x"]}})
    settings = load_settings(root)
    assert settings.clusters_dir == "clusters" and settings.exclude_clusters == ("x",)
    (root / "hubtasks.yaml").write_text("colour: red\n")
    with pytest.raises(ConfigError, match=r"hubtasks.yaml: .*'colour'"):
        load_settings(root)
    (root / "hubtasks.yaml").write_text("clusters_dir: ../elsewhere\n")
    with pytest.raises(ConfigError, match="escapes the repository"):
        load_settings(root)


# ---------------------------------------------------------------------------- 2i2c's real config


@pytest.fixture(scope="module")
def twoi2c(tmp_path_factory: pytest.TempPathFactory, fixture_2i2c: Path) -> GitRepo:
    root = tmp_path_factory.mktemp("2i2c") / "repo"
    shutil.copytree(fixture_2i2c, root)
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    repo = GitRepo.__new__(GitRepo)
    repo.root = root
    repo.git("init", "-q", "-b", "main")
    repo.commit("2i2c")
    return repo


def test_2i2c_loads_unchanged(twoi2c: GitRepo) -> None:
    config = load_config(twoi2c.root)
    hubs = list(config.hubs())
    assert len(config.clusters) == 30 and len(hubs) == 171
    assert "templates" not in config.clusters
    staging = [h for h in hubs if h.staging]
    assert staging and all("staging" in h.name for h in staging)
    assert len(staging) == 29
    uk = config.clusters["2i2c-uk"].hub("lis")
    assert uk.chart_override == f"{C}/2i2c-uk/lis-chart.yaml"
    assert config.chart_closure("daskhub") == ["helm-charts/daskhub", "helm-charts/basehub"]


def test_2i2c_plan_is_sane(twoi2c: GitRepo, tmp_path: Path) -> None:
    repo = GitRepo.clone(twoi2c.root, tmp_path / "clone")
    repo.write({f"{C}/leap/prod.values.yaml": (repo.root / C / "leap/prod.values.yaml")
                .read_text() + "\n# tweak\n",
                "helm-charts/daskhub/Chart.yaml": (repo.root / "helm-charts/daskhub/Chart.yaml")
                .read_text() + "\n# tweak\n"})
    repo.commit("tweak")
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    config = load_config(repo.root)
    dask_hubs = {(h.cluster, h.name) for h in config.hubs() if h.chart == "daskhub"
                 and h.chart_override is None}
    planned = {(j.cluster, j.hub) for j in plan.jobs}
    assert dask_hubs <= planned
    assert ("leap", "prod") in planned and ("leap", "staging") in planned
    # every cluster with a planned prod hub has all its staging hubs planned
    for cluster in {j.cluster for j in plan.jobs}:
        staging = {h.name for h in config.clusters[cluster].hubs if h.staging}
        assert staging <= {j.hub for j in plan.for_cluster(cluster)}
    assert not any(j.stage.value == "support" for j in plan.jobs)
