"""`validate` checks values against a chart's `values.schema.yaml` (2i2c's convention) and
renders jsonnet documents, with real helm, writing nothing into the chart folders."""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
import yaml
from test_validate import example, failed, helm_env, run  # noqa: F401 (example: a fixture)

from hubtasks.config.charts import BUILD_ARTIFACTS
from hubtasks.deploying.schemas import SCHEMA_JSON, SchemaCopies, needs_json_schema
from hubtasks.deploying.validate import Check
from hubtasks.model import HubtasksError
from hubtasks.output.validation import render_validation

SCHEMA = """\
$schema: http://json-schema.org/draft-07/schema#
type: object
properties:
  jupyterhub:
    type: object
    properties:
      custom:
        type: object
        properties:
          displayName: {type: string}
"""
# Rendered, it gives the hub a number as display name; read as YAML text, a string.
NUMBER_NAME = "{jupyterhub: {custom: {displayName: std.length(std.extVar('HUBTASKS_HUB_NAME'))}}}\n"


def listing(folder: Path) -> dict[str, bytes]:
    """Every source file of a charts folder (not `helm dependency build` output)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not set(p.relative_to(folder).parts) & set(BUILD_ARTIFACTS)}


def set_display_name(path: Path, value: object, *, nest: str | None = None) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    inner = doc[nest] if nest else doc
    inner["jupyterhub"]["custom"]["displayName"] = value
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")


def add_jsonnet(repo: Path, cluster: str, hub: str, text: str) -> None:
    """Append a `.jsonnet` values file to a hub's list."""
    folder = repo / "config/clusters" / cluster
    (folder / f"{hub}.jsonnet").write_text(text, encoding="utf-8")
    doc = yaml.safe_load((folder / "cluster.yaml").read_text(encoding="utf-8"))
    entry = next(h for h in doc["hubs"] if h["name"] == hub)
    entry["helm_chart_values_files"].append(f"{hub}.jsonnet")
    (folder / "cluster.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def test_a_yaml_schema_is_enforced_without_touching_the_chart(
        helm: Path, example: Path, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """basehub ships only values.schema.yaml: a basehub hub, a daskhub hub (basehub is its
    subchart) and a hub whose jsonnet renders a bad value fail; nothing else does."""
    (example / "helm-charts/basehub/values.schema.yaml").write_text(SCHEMA)
    set_display_name(example / "config/clusters/edu-cloud/stats-101.values.yaml", 101)
    set_display_name(example / "config/clusters/geo-cloud/ocean-lab.values.yaml", 7,
                     nest="basehub")
    add_jsonnet(example, "edu-cloud", "sandbox", NUMBER_NAME)
    charts = example / "helm-charts"
    before = listing(charts)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))

    results = run(example, helm, tmp_path)

    broken = {("edu-cloud", "stats-101"), ("geo-cloud", "ocean-lab"), ("edu-cloud", "sandbox")}
    assert failed(results) == {(c, h, check) for c, h in broken for check in Check}, \
        render_validation(results)
    for result in results:
        if not result:
            assert "displayName" in result.message, result.message
    text = render_validation(results)
    assert "edu-cloud/stats-101 lint:" in text and "geo-cloud/ocean-lab template:" in text
    assert listing(charts) == before  # no values.schema.json left in any chart folder
    assert not list(charts.rglob(SCHEMA_JSON))
    assert list(temp.iterdir()) == []  # the private copies are gone


def test_a_json_schema_the_chart_ships_wins(helm_bins: dict[int, Path],
                                            example: Path, tmp_path: Path) -> None:  # noqa: F811
    """With both forms, helm reads the chart's own JSON (as 2i2c's deployer would overwrite
    it, we do not: the chart folder is passed as it is)."""
    basehub = example / "helm-charts/basehub"
    (basehub / "values.schema.yaml").write_text(SCHEMA)
    (basehub / SCHEMA_JSON).write_text(json.dumps({"type": "object"}))
    set_display_name(example / "config/clusters/edu-cloud/stats-101.values.yaml", 101)

    results = run(example, helm_bins[4], tmp_path, clusters=("edu-cloud",))

    assert all(results), render_validation(results)


def test_validate_renders_jsonnet_and_names_a_broken_file(
        helm_bins: dict[int, Path], example: Path, tmp_path: Path) -> None:  # noqa: F811
    add_jsonnet(example, "edu-cloud", "sandbox",
                "{jupyterhub: {custom: {displayName: 'hub ' + std.extVar('HUBTASKS_HUB_NAME')}}}")
    add_jsonnet(example, "edu-cloud", "workshop", "{jupyterhub: {custom: \n")

    results = run(example, helm_bins[3], tmp_path, clusters=("edu-cloud",))

    assert failed(results) == {("edu-cloud", "workshop", check) for check in Check}
    message = next(r.message for r in results if not r)
    assert "workshop.jsonnet: jsonnet render failed" in message and ":2:" in message


# ---------------------------------------------------------------------------- the copies


def chart(folder: Path, name: str, *, schema: str | None = SCHEMA) -> Path:
    folder.mkdir(parents=True)
    (folder / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n")
    if schema is not None:
        (folder / "values.schema.yaml").write_text(schema)
    return folder


def package(source: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(source, arcname=source.name)
    return dest


def test_packaged_subcharts_are_unpacked_only_when_they_need_a_schema(tmp_path: Path) -> None:
    top = chart(tmp_path / "src/daskhub", "daskhub", schema=None)
    (top / "charts").mkdir()
    package(chart(tmp_path / "pkg/basehub", "basehub"), top / "charts/basehub-0.1.0.tgz")
    remote = chart(tmp_path / "pkg/remote", "remote", schema=None)
    (remote / SCHEMA_JSON).write_text("{}")
    package(remote, top / "charts/remote-1.0.0.tgz")
    assert needs_json_schema(top)
    copies = SchemaCopies(tmp_path / "copies")

    copy = copies.chart(top, shown="helm-charts/daskhub")

    assert copy.name == "daskhub" and copy.parent.parent == tmp_path / "copies"
    assert copies.chart(top, shown="x") == copy  # once per chart folder
    assert sorted(p.name for p in (copy / "charts").iterdir()) == ["basehub", "remote-1.0.0.tgz"]
    written = json.loads((copy / "charts/basehub" / SCHEMA_JSON).read_text())
    assert written == yaml.safe_load(SCHEMA)
    assert not (copy / SCHEMA_JSON).exists()
    assert sorted(p.name for p in (top / "charts").iterdir()) == ["basehub-0.1.0.tgz",
                                                                  "remote-1.0.0.tgz"]


def test_a_chart_without_yaml_schema_is_used_in_place(tmp_path: Path) -> None:
    plain = chart(tmp_path / "plain", "plain", schema=None)
    assert SchemaCopies(tmp_path / "copies").chart(plain, shown="plain") == plain
    assert not (tmp_path / "copies").exists()


def test_a_broken_yaml_schema_is_named(tmp_path: Path) -> None:
    broken = chart(tmp_path / "basehub", "basehub", schema="type: [\n")
    with pytest.raises(HubtasksError, match=r"helm-charts/basehub/values.schema.yaml: cannot"):
        SchemaCopies(tmp_path / "copies").chart(broken, shown="helm-charts/basehub")


def test_2i2c_support_schema_is_enforced(helm: Path, fixture_2i2c: Path, tmp_path: Path) -> None:
    """2i2c's own values.schema.yaml (the support chart's, dependencies dropped: no network),
    made JSON by a copy: its values.yaml passes helm lint, an unknown key fails it."""
    source = fixture_2i2c / "helm-charts/support"
    support = tmp_path / "helm-charts/support"
    support.mkdir(parents=True)
    for name in ("values.yaml", "values.schema.yaml"):
        (support / name).write_bytes((source / name).read_bytes())
    doc = yaml.safe_load((source / "Chart.yaml").read_text(encoding="utf-8"))
    doc.pop("dependencies", None)
    (support / "Chart.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    bad = tmp_path / "bad.values.yaml"
    bad.write_text("notAKey: 1\n")

    copy = SchemaCopies(tmp_path / "copies").chart(support, shown="helm-charts/support")

    env = helm_env(tmp_path, key=None)
    good = subprocess.run([str(helm), "lint", str(copy)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert good.returncode == 0, good.stdout + good.stderr
    rejected = subprocess.run([str(helm), "lint", str(copy), "--values", str(bad)], env=env,
                              capture_output=True, text=True, timeout=120)
    assert rejected.returncode != 0 and "notAKey" in rejected.stdout + rejected.stderr


def test_a_broken_yaml_schema_fails_only_its_charts_releases(
        helm_bins: dict[int, Path], example: Path, tmp_path: Path) -> None:  # noqa: F811
    (example / "helm-charts/basehub/values.schema.yaml").write_text("type: [\n")

    results = run(example, helm_bins[4], tmp_path, clusters=("edu-cloud",))

    hubs = {"sandbox", "workshop", "stats-101"}  # basehub; support's chart has no schema
    assert failed(results) == {("edu-cloud", h, check) for h in hubs for check in Check}
    messages = {r.message for r in results if not r}
    assert all(m.startswith("chart not prepared: helm-charts/basehub/values.schema.yaml: "
                            "cannot read the schema: ") for m in messages), messages
