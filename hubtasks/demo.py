"""`invoke demo`: the example config deployed to local clusters, with one broken canary.

The demo never touches the user's checkout: it copies the example config into a fresh git
repo under the work folder, commits a change that breaks one staging hub's rollout (its
image carries the marker the local clusters keep Pending), starts one local control plane
per cluster and runs `deploy-all --everything` with real helm and `--wait`. The run shows
that cluster's prod hubs dropped while every other cluster deploys.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import RepoConfig, load_config
from .localk8s import LocalClusters
from .model import HubtasksError

COPY = ("config", "helm-charts", "hubtasks.yaml", ".sops.yaml")
FAIL_MARKER = "hubtasks-fail"
BROKEN_VALUES = "demo-broken.values.yaml"
DEMO_KEY = "config/demo-age-key.txt"
GIT_ID = ["-c", "user.name=hubtasks demo", "-c", "user.email=demo@hubtasks.invalid"]


@dataclass(frozen=True, kw_only=True)
class BrokenHub:
    """The staging hub whose rollout the demo breaks."""

    cluster: str
    hub: str


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *GIT_ID, *args], cwd=repo, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise HubtasksError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def copy_example(source: Path, target: Path) -> Path:
    """A fresh git repo holding a copy of the example config and charts."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    ignore = shutil.ignore_patterns("charts", "*.tgz", ".hubtasks")
    for name in COPY:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, target / name, ignore=ignore)
        elif path.is_file():
            shutil.copy2(path, target / name)
    # `helm dependency build` output must not show up as a change of the charts
    (target / ".gitignore").write_text(
        ".hubtasks/\nhelm-charts/*/charts/\nhelm-charts/*/Chart.lock\n")
    _git(target, "init", "-q", "-b", "main")
    _git(target, "add", "-A")
    _git(target, "commit", "-q", "-m", "example config")
    return target


def pick_broken_hub(config: RepoConfig) -> BrokenHub:
    """The first cluster with both staging and prod hubs: break its first basehub staging."""
    for cluster in config.clusters.values():
        staging = [h for h in cluster.hubs if h.staging]
        if staging and any(not h.staging for h in cluster.hubs):
            chosen = next((h for h in staging if h.chart == "basehub"), staging[0])
            return BrokenHub(cluster=cluster.name, hub=chosen.name)
    raise HubtasksError("the example has no cluster with both staging and prod hubs")


def broken_values(chart: str) -> dict[str, object]:
    """Values that point the hub at an image whose pods never become Ready."""
    image = {"name": f"example.org/{FAIL_MARKER}/hub", "tag": "broken"}
    values: dict[str, object] = {"jupyterhub": {"hub": {"image": image}}}
    return {"basehub": values} if chart == "daskhub" else values


def break_hub(repo: Path, config: RepoConfig, broken: BrokenHub) -> None:
    """Commit a change that adds a broken-image values file to one staging hub."""
    cluster = config.cluster(broken.cluster)
    hub = cluster.hub(broken.hub)
    folder = repo / cluster.folder
    (folder / BROKEN_VALUES).write_text(yaml.safe_dump(broken_values(hub.chart)))
    doc = yaml.safe_load((folder / "cluster.yaml").read_text())
    for entry in doc["hubs"]:
        if entry["name"] == broken.hub:
            entry["helm_chart_values_files"].append(BROKEN_VALUES)
    (folder / "cluster.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", f"demo: a broken image for {broken.cluster}/{broken.hub}")


def local_cluster_names(config: RepoConfig) -> list[str]:
    names = [c.name for c in config.clusters.values() if c.provider == "local"]
    if not names:
        raise HubtasksError("the example config has no cluster with provider: local")
    return names


def prepare(source: Path, workdir: Path) -> tuple[Path, RepoConfig, BrokenHub]:
    """Copy the example, break one staging hub; returns (repo, config, broken hub)."""
    repo = copy_example(source, workdir / "repo")
    broken = pick_broken_hub(load_config(repo))
    break_hub(repo, load_config(repo), broken)
    return repo, load_config(repo), broken


def start_clusters(config: RepoConfig, workdir: Path, kubeconfig_dir: Path) -> LocalClusters:
    """Start one local control plane per cluster and write their kubeconfigs."""
    clusters = LocalClusters(local_cluster_names(config), workdir / "clusters",
                             fail_marker=FAIL_MARKER)
    clusters.start()
    clusters.write_kubeconfigs(kubeconfig_dir)
    return clusters


def releases_on_clusters(helm: Path, kubeconfig_dir: Path, names: list[str]) -> list[list[str]]:
    """`helm list -A` of every cluster, read from the clusters themselves."""
    rows = []
    for name in names:
        proc = subprocess.run([str(helm), "list", "-A", "--kubeconfig",
                               str(kubeconfig_dir / f"{name}.yaml"), "-o", "yaml"],
                              capture_output=True, text=True, check=False)
        for item in yaml.safe_load(proc.stdout or "[]") or []:
            rows.append([name, item["name"], item["namespace"], item["status"],
                         item.get("revision", "")])
    return rows
