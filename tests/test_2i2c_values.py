"""Every release of 2i2c's repo gets the values documents 2i2c's deployer passes, in its order.

The expectation (`twoi2c.expected`) is built from 2i2c's deployer code, reading cluster.yaml
directly, not through hubtasks' config records; twoi2c.py says which code it follows.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from twoi2c import age_keypair, expected, standin_copy

from hubtasks.config.load import load_config
from hubtasks.config.model import RepoConfig
from hubtasks.deploying.documents import release_documents
from hubtasks.deploying.showvalues import helm_merge, show_values
from hubtasks.model import Job, Stage

pytestmark = pytest.mark.fixture


@pytest.fixture(scope="module")
def repo(fixture_2i2c: Path, sops: Path, tmp_path_factory: pytest.TempPathFactory,
         ) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("i2c")
    key, public = age_keypair(folder)
    root = standin_copy(fixture_2i2c, folder / "infrastructure", sops=sops, recipient=public)
    return root, {**os.environ, "SOPS_AGE_KEY_FILE": str(key)}


# ---------------------------------------------------------------- hubtasks


def actual(config: RepoConfig, cluster: str, hub: str | None, env: dict[str, str],
           sops: Path) -> list[tuple[str, Any]]:
    chart = config.release_chart(cluster, hub)
    job = Job(stage=Stage.PROD, cluster=cluster, hub=hub, chart=chart)
    with release_documents(config, job, sops=sops, env=env) as (docs, _redactor):
        return [(d.source, yaml.safe_load(d.path.read_text())) for d in docs]


def releases(config: RepoConfig) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for cluster in config.clusters.values():
        if cluster.support is not None:
            out.append((cluster.name, None))
        out += [(cluster.name, h.name) for h in cluster.hubs]
    return out


def pick(config: RepoConfig, kind: str) -> tuple[str, str | None]:
    """One release of each kind the deployer treats differently."""
    for cluster in config.clusters.values():
        for hub in cluster.hubs:
            if kind == "basehub" and hub.chart == "basehub" and cluster.provider == "gcp" \
                    and not hub.chart_override:
                return cluster.name, hub.name
            if kind == "daskhub" and hub.chart == "daskhub":
                return cluster.name, hub.name
            if kind == "chart_override" and hub.chart_override:
                return cluster.name, hub.name
            if kind == cluster.provider in ("aws", "kubeconfig"):
                return cluster.name, hub.name
        if kind == "support" and cluster.support is not None:
            return cluster.name, None
    raise AssertionError(f"no {kind} release in the fixture")


@pytest.mark.parametrize("kind", ["basehub", "daskhub", "chart_override", "aws", "kubeconfig",
                                  "support"])
def test_documents_and_order_equal_the_deployers(repo: tuple[Path, dict[str, str]], sops: Path,
                                                 kind: str, tmp_path: Path) -> None:
    root, env = repo
    config = load_config(root)
    cluster, hub = pick(config, kind)
    got = actual(config, cluster, hub, env, sops)
    want = expected(root, cluster, hub, tmp_path)
    assert [s for s, _ in got] == [s for s, _ in want]
    assert got == want
    if kind == "daskhub":
        assert set(got[0][1]) == {"basehub"}  # std.thisFile saw daskhub/, unresolved
    if hub is not None:
        assert config.cluster(cluster).hub(hub).domain in str(got[0][1])


def test_every_release_of_the_fixture(repo: tuple[Path, dict[str, str]], sops: Path,
                                      tmp_path: Path) -> None:
    """All 201 releases: counts as established from the fixture, documents as the deployer's."""
    root, env = repo
    config = load_config(root)
    found = releases(config)
    charts = Counter(config.release_chart(c, h) for c, h in found)
    assert (len(config.clusters), len(found)) == (30, 201)
    assert charts == {"basehub": 153, "daskhub": 18, "support": 30}
    for cluster, hub in found:
        assert actual(config, cluster, hub, env, sops) == expected(root, cluster, hub,
                                                                   tmp_path), (cluster, hub)


def test_real_symlink_renders_like_its_text_form(repo: tuple[Path, dict[str, str]], sops: Path,
                                                 tmp_path: Path) -> None:
    """daskhub/values.jsonnet as a real symlink gives the same documents as the text form."""
    root, env = repo
    config = load_config(root)
    cluster, hub = pick(config, "daskhub")
    before = actual(config, cluster, hub, env, sops)
    link = root / "helm-charts/daskhub/values.jsonnet"
    text = link.read_text()
    link.unlink()
    link.symlink_to("../basehub/values.jsonnet")
    try:
        assert actual(load_config(root), cluster, hub, env, sops) == before
    finally:
        link.unlink()
        link.write_text(text)


def test_helm_merge_rules() -> None:
    """Maps deep-merged, later wins, lists replaced whole, null deletes the key."""
    base = {"a": {"b": 1, "c": [1, 2], "d": "x"}, "e": 1}
    over = {"a": {"b": 2, "c": [3], "d": None}, "f": {"g": 1}}
    assert helm_merge(base, over) == {"a": {"b": 2, "c": [3]}, "e": 1, "f": {"g": 1}}


def test_values_command_redacts_secrets_and_names_sources(
        repo: tuple[Path, dict[str, str]]) -> None:
    root, env = repo
    config = load_config(root)
    cluster, _ = pick(config, "support")
    text = show_values(root, cluster, None, merged=False, env=env)
    lines = [line for line in text.splitlines() if line.startswith("# ")]
    assert lines[0] == ("# 1. helm-charts/support/enc-support.secret.values.yaml "
                        "(chart values, decrypted)")
    assert "rendered jsonnet" in lines[2]
    assert "standin: helm-charts/support/enc-support" not in text
    merged = show_values(root, cluster, None, merged=True, env=env)
    assert "standin: '***'" in merged and "enc-cryptnono" not in merged


def test_domain_override_file_replaces_the_domain(repo: tuple[Path, dict[str, str]],
                                                  sops: Path, tmp_path: Path) -> None:
    """Hub.deploy: the decrypted override's `domain` replaces spec["domain"] (HUB_DOMAIN)."""
    root, env = repo
    config = load_config(root)
    cluster, hub = pick(config, "basehub")
    folder = root / "config/clusters" / cluster
    spec_file = folder / "cluster.yaml"
    spec_text = spec_file.read_text()
    override = folder / "enc-domain.secret.yaml"
    override.write_text("domain: hidden.example.org\n")
    key = Path(env["SOPS_AGE_KEY_FILE"])
    recipient = next(line.split(": ")[1] for line in key.read_text().splitlines()
                     if "public key" in line)
    from twoi2c import _encrypt
    _encrypt(override, recipient, sops)
    spec = yaml.safe_load(spec_text)
    entry = next(h for h in spec["hubs"] if h["name"] == hub)
    entry["domain_override_file"] = override.name
    spec_file.write_text(yaml.safe_dump(spec))
    try:
        got = actual(load_config(root), cluster, hub, env, sops)
        assert "hidden.example.org" in str(got[0][1])
        assert entry["domain"] not in str(got[0][1])
        shown = show_values(root, cluster, hub, merged=True, env=env)
        assert "hidden.example.org" not in shown
    finally:
        spec_file.write_text(spec_text)
        override.unlink()


def test_render_error_names_file_and_line(tmp_path: Path) -> None:
    from hubtasks.config.jsonnet import JsonnetRenderer
    from hubtasks.model import HubtasksError

    path = tmp_path / "values.jsonnet"
    path.write_text("{\n  a: std.extVar('MISSING'),\n}\n")
    with pytest.raises(HubtasksError, match=r"(?s)helm-charts/x/values.jsonnet: jsonnet render "
                                            r"failed: .*values.jsonnet:2"):
        JsonnetRenderer().render(path, {}, rel="helm-charts/x/values.jsonnet")


def test_renders_once_per_file_and_context(tmp_path: Path) -> None:
    from hubtasks.config.jsonnet import JsonnetRenderer

    path = tmp_path / "values.jsonnet"
    path.write_text("{ host: std.extVar('D') }\n")
    renderer = JsonnetRenderer()
    for _ in range(3):
        assert yaml.safe_load(renderer.render(path, {"D": "a.org"}, rel="v")) == {"host": "a.org"}
    renderer.render(path, {"D": "b.org"}, rel="v")
    assert renderer.renders == 2


def test_chart_values_escaping_the_chart_is_a_config_error() -> None:
    from hubtasks.config.load import settings_from_doc
    from hubtasks.config.yamlfiles import ConfigError

    with pytest.raises(ConfigError, match=r"hubtasks.yaml: chart_values.support: '../x.yaml' "
                                          "escapes the chart folder"):
        settings_from_doc({"chart_values": {"support": ["../x.yaml"]}}, "hubtasks.yaml")


def test_missing_chart_values_file_is_a_config_error(tmp_path: Path) -> None:
    from hubtasks.config.yamlfiles import ConfigError

    (tmp_path / "config/clusters").mkdir(parents=True)
    (tmp_path / "helm-charts/support").mkdir(parents=True)
    (tmp_path / "hubtasks.yaml").write_text("chart_values: {support: [nope.yaml]}\n")
    with pytest.raises(ConfigError, match=re.escape(
            "hubtasks.yaml: chart_values.support: helm-charts/support/nope.yaml does not exist")):
        load_config(tmp_path)
