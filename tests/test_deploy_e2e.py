"""End to end: the deploy tasks against real local clusters, with real helm v3 and v4.

Each helm major gets its own set of local clusters and its own copy of the example config
(a git repo). The scenario runs in order, as a user would: a first deploy with one broken
staging hub, a rerun after the fix, an upgrade through the separate CI-style stages, then
the per-cluster limit. Outcomes are checked in the results file AND on the clusters.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubtasks.config.load import load_config
from hubtasks.dev.demo import BROKEN_VALUES, DEMO_KEY, break_hub, copy_example, pick_broken_hub
from hubtasks.dev.localk8s import LocalClusters
from hubtasks.model import Stage, Status
from hubtasks.results import load_results

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]
FAST = ["--timeout", "20s", "--retries", "0"]


@dataclass
class Env:
    """One helm major's world: a config repo, its clusters and the helm binary."""

    repo: Path
    helm: Path
    clusters: list[str]
    broken: tuple[str, str]

    def run(self, *args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SOPS_AGE_KEY_FILE": str(self.repo / DEMO_KEY),
               "HUBTASKS_HELM": str(self.helm)}
        proc = subprocess.run([*HUBTASKS, *args], cwd=self.repo, env=env, capture_output=True,
                              text=True, check=False)
        if check is not None:
            assert proc.returncode == check, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=self.repo, capture_output=True, text=True,
                              check=True).stdout.strip()

    def releases(self, cluster: str) -> dict[str, dict[str, Any]]:
        """`helm list -A` read from the cluster itself."""
        out = subprocess.run([str(self.helm), "list", "-A", "-o", "json", "--kubeconfig",
                              str(self.repo / f".hubtasks/kubeconfigs/{cluster}.yaml")],
                             capture_output=True, text=True, check=True).stdout
        return {r["name"]: r for r in json.loads(out)}

    def history(self, cluster: str, release: str) -> list[dict[str, Any]]:
        out = subprocess.run([str(self.helm), "history", release, "-n", release, "-o", "json",
                              "--kubeconfig",
                              str(self.repo / f".hubtasks/kubeconfigs/{cluster}.yaml")],
                             capture_output=True, text=True, check=True).stdout
        return list(json.loads(out))

    def values(self, cluster: str, release: str) -> dict[str, Any]:
        """`helm get values`: the user-supplied values the release was deployed with."""
        out = subprocess.run([str(self.helm), "get", "values", release, "-n", release, "-o",
                              "json", "--kubeconfig",
                              str(self.repo / f".hubtasks/kubeconfigs/{cluster}.yaml")],
                             capture_output=True, text=True, check=True).stdout
        return dict(json.loads(out))

    def results(self, name: str = ".hubtasks/results.json") -> dict[str, Any]:
        return {f"{r.stage.value}:{r.cluster}/{r.hub or 'support'}": r
                for r in load_results([self.repo / name])}


@pytest.fixture(scope="module", params=[3, 4], ids=["helm3", "helm4"])
def world(request: pytest.FixtureRequest, helm_bins: dict[int, Path],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp(f"e2e-helm{request.param}")
    repo = copy_example(ROOT, work / "repo")
    config = load_config(repo)
    broken = pick_broken_hub(config)
    break_hub(repo, config, broken)
    names = sorted(config.clusters)
    clusters = LocalClusters(names, work / "clusters")
    try:
        clusters.start()
        clusters.write_kubeconfigs(repo / ".hubtasks/kubeconfigs")
        yield Env(repo=repo, helm=helm_bins[request.param], clusters=names,
                  broken=(broken.cluster, broken.hub))
    finally:
        clusters.stop()


def test_first_deploy_with_a_broken_canary(world: Env) -> None:
    proc = world.run("deploy-all", "--everything", "--no-pipeline", *FAST, check=1)
    bad_cluster, bad_hub = world.broken
    results = world.results()
    head = world.git("rev-parse", "HEAD")
    config = load_config(world.repo)
    assert results[f"staging:{bad_cluster}/{bad_hub}"].status is Status.FAILED
    assert "canary" not in results[f"staging:{bad_cluster}/{bad_hub}"].reason
    for cluster in config.clusters.values():
        for hub in cluster.hubs:
            record = results[f"{'staging' if hub.staging else 'prod'}:{cluster.name}/{hub.name}"]
            assert record.head == head and record.attempts <= 1
            if cluster.name == bad_cluster and not hub.staging:
                assert record.status is Status.SKIPPED
                assert record.reason == f"canary staging:{bad_cluster}/{bad_hub} failed"
            elif hub.name != bad_hub or cluster.name != bad_cluster:
                assert record.status is Status.SUCCEEDED, record
                assert Path(record.log or "").is_file() and record.duration > 0
                assert record.exit_code == 0
    assert "failed" in proc.stdout and "skipped" in proc.stdout
    # the clusters agree: nothing of the broken cluster's prod, everything else deployed
    for cluster in config.clusters.values():
        on_cluster = world.releases(cluster.name)
        for hub in cluster.hubs:
            if cluster.name == bad_cluster:
                assert hub.name not in on_cluster or hub.staging
            else:
                assert on_cluster[hub.name]["status"] == "deployed"
                assert on_cluster[hub.name]["revision"] == "1"
                # the host comes from the chart's values.jsonnet (HUBTASKS_HUB_DOMAIN)
                values = world.values(cluster.name, hub.name)
                values = values["basehub"] if hub.chart == "daskhub" else values
                assert values["jupyterhub"]["ingress"]["hosts"] == [hub.domain]
        assert on_cluster["support"]["status"] == "deployed"
    description = world.history(cluster.name, "support")[-1]["description"]
    assert description.startswith(f"hubtasks head={head} digest=")


def test_rerun_after_the_fix_upgrades_and_installs(world: Env) -> None:
    bad_cluster, _ = world.broken
    folder = world.repo / "config/clusters" / bad_cluster
    doc = yaml.safe_load((folder / "cluster.yaml").read_text())
    for entry in doc["hubs"]:
        entry["helm_chart_values_files"] = [f for f in entry["helm_chart_values_files"]
                                            if f != BROKEN_VALUES]
    (folder / "cluster.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (folder / BROKEN_VALUES).unlink()
    world.git("commit", "-qam", "fix the broken image")
    world.run("deploy-all", "--everything", *FAST)
    results = world.results()
    assert all(r.status is Status.SUCCEEDED for r in results.values()), results
    on_cluster = world.releases(bad_cluster)
    for hub in load_config(world.repo).cluster(bad_cluster).hubs:
        assert on_cluster[hub.name]["status"] == "deployed"
    other = next(c for c in world.clusters if c != bad_cluster)
    assert {r["revision"] for r in world.releases(other).values()} == {"2"}


def test_separate_stages_like_ci(world: Env) -> None:
    """plan -> canary -> filter -> prod as separate processes, sharing files only."""
    cluster = next(c for c in world.clusters if c != world.broken[0])
    base = world.git("rev-parse", "HEAD")
    support_values = world.repo / "config/clusters" / cluster / "support.values.yaml"
    support_values.write_text(support_values.read_text() + "\n# touch\n")
    common = load_config(world.repo).cluster(cluster)
    prod_hub = next(h for h in common.hubs if not h.staging)
    values = world.repo / prod_hub.values_files[-1]
    if "secret" in values.name:
        values = world.repo / prod_hub.values_files[0]
    values.write_text(values.read_text() + "\n# touch\n")
    world.git("commit", "-qam", "touch support and one prod hub")
    world.run("plan", "--base", base, "--out", ".hubtasks/ci-plan.json")
    plan = json.loads((world.repo / ".hubtasks/ci-plan.json").read_text())
    assert {(j["stage"], j["hub"]) for j in plan["jobs"] if j["stage"] != "staging"} == {
        ("support", None), ("prod", prod_hub.name)}
    world.run("canary", "--plan", ".hubtasks/ci-plan.json", "--cluster", cluster,
              "--results", ".hubtasks/ci/canary.json", *FAST)
    filtered = world.run("filter", "--plan", ".hubtasks/ci-plan.json", "--results",
                         ".hubtasks/ci", "--out", ".hubtasks/ci-prod.json")
    assert "1 prod job(s) kept, 0 dropped" in filtered.stdout
    world.run("prod", "--plan", ".hubtasks/ci-prod.json", "--cluster", cluster, "--hub",
              prod_hub.name, "--results", ".hubtasks/ci/prod.json", *FAST)
    report = world.run("report", "--results", ".hubtasks/ci", "--plan",
                       ".hubtasks/ci-plan.json")
    assert "succeeded" in report.stdout
    assert world.releases(cluster)["support"]["revision"] == "3"
    assert world.releases(cluster)[prod_hub.name]["revision"] == "3"


def _intervals(results: dict[str, Any], cluster: str) -> list[tuple[datetime, datetime]]:
    return [(datetime.fromisoformat(r.started_at), datetime.fromisoformat(r.ended_at))
            for r in results.values() if r.cluster == cluster and r.stage is Stage.PROD]


def test_per_cluster_limit_is_honoured(world: Env) -> None:
    world.run("plan", "--everything", "--out", ".hubtasks/all.json")
    world.run("prod", "--plan", ".hubtasks/all.json", "--per-cluster", "1", "--jobs", "4",
              "--results", ".hubtasks/limit.json", *FAST)
    results = world.results(".hubtasks/limit.json")
    assert all(r.status is Status.SUCCEEDED for r in results.values())
    for cluster in world.clusters:
        spans = sorted(_intervals(results, cluster))
        pairs = itertools.pairwise(spans)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairs), spans


def test_dry_run_renders_without_clusters(world: Env) -> None:
    world.run("deploy-all", "--everything", "--dry-run", "--kubeconfig-dir", "/nonexistent",
              "--results", ".hubtasks/dry.json")
    results = world.results(".hubtasks/dry.json")
    assert len(results) == 13 and all(r.status is Status.SUCCEEDED for r in results.values())
    log = Path(results[f"prod:{world.clusters[0]}/{_a_prod_hub(world)}"].log or "")
    assert "kind: Deployment" in log.read_text()


def _a_prod_hub(world: Env) -> str:
    return next(h.name for h in load_config(world.repo).cluster(world.clusters[0]).hubs
                if not h.staging)
