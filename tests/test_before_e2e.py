"""Before-steps on real local clusters with real helm: a step applies a ConfigMap with
kubectl before the support release, and a failing step fails a staging hub (the canary) and
so drops its cluster's prod hubs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hubtasks.dev.demo import DEMO_KEY, copy_example
from hubtasks.dev.localk8s import LocalClusters
from hubtasks.model import Status
from hubtasks.results import load_results

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]
CLUSTERS = ["bio-cloud", "edu-cloud"]

SETTINGS = """
before:
  support:
    - name: marker ConfigMap
      once: cluster
      timeout: 1m
      command:
        - sh
        - -c
        - |
          set -e
          existed=no
          {kubectl} get namespace "$HUBTASKS_NAMESPACE" >/dev/null 2>&1 && existed=yes
          {kubectl} create configmap before-support -n default \\
            --from-literal=cluster="$HUBTASKS_CLUSTER" \\
            --from-literal=release="$HUBTASKS_RELEASE" \\
            --from-literal=namespace-existed="$existed" --dry-run=client -o yaml \\
            | {kubectl} apply -f -
  basehub:
    - name: refuse sandbox
      timeout: 30s
      command: [sh, -c, 'echo "checking $HUBTASKS_HUB"; [ "$HUBTASKS_HUB" != sandbox ]']
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                   capture_output=True, check=True)


def test_before_steps_on_local_clusters(helm: Path, kubectl: Path, tmp_path: Path) -> None:
    repo = copy_example(ROOT, tmp_path / "repo")
    shutil.rmtree(repo / "config/clusters/geo-cloud")  # two clusters are enough
    with (repo / "hubtasks.yaml").open("a") as settings:
        settings.write(SETTINGS.format(kubectl=kubectl))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "before-steps")
    clusters = LocalClusters(CLUSTERS, tmp_path / "clusters")
    try:
        clusters.start()
        clusters.write_kubeconfigs(repo / ".hubtasks/kubeconfigs")
        env = {**os.environ, "SOPS_AGE_KEY_FILE": str(repo / DEMO_KEY),
               "HUBTASKS_HELM": str(helm)}
        proc = subprocess.run([*HUBTASKS, "deploy-all", "--everything", "--no-pipeline",
                               "--timeout", "20s", "--retries", "0"], cwd=repo, env=env,
                              capture_output=True, text=True, check=False, timeout=600)
        assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
        results = {f"{r.stage.value}:{r.cluster}/{r.hub or 'support'}": r
                   for r in load_results([repo / ".hubtasks/results.json"])}
        sandbox = results["staging:edu-cloud/sandbox"]
        assert sandbox.status is Status.FAILED
        assert "before-step 'refuse sandbox' failed" in sandbox.error
        assert "checking sandbox" in Path(sandbox.log or "").read_text()
        for hub in ("workshop", "stats-101"):
            record = results[f"prod:edu-cloud/{hub}"]
            assert record.status is Status.SKIPPED
            assert record.reason == "canary staging:edu-cloud/sandbox failed"
        for key in ("prod:bio-cloud/genomics", "prod:bio-cloud/neuro"):
            assert results[key].status is Status.SUCCEEDED, results[key]
        for cluster in CLUSTERS:
            support = results[f"support:{cluster}/support"]
            assert support.status is Status.SUCCEEDED, support
            assert "before-step 'marker ConfigMap'" in Path(support.log or "").read_text()
            kubeconfig = repo / f".hubtasks/kubeconfigs/{cluster}.yaml"
            out = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "get",
                                  "configmap", "before-support", "-n", "default", "-o", "json"],
                                 capture_output=True, text=True, check=True, timeout=60).stdout
            data = json.loads(out)["data"]
            # it ran before helm created the release's namespace
            assert data == {"cluster": cluster, "release": "support",
                            "namespace-existed": "no"}
    finally:
        clusters.stop()
