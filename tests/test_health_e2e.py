"""Health checks end to end: deploy-all on real local clusters, hubs answered by the front door.

Two clusters of the example (edu-cloud: a staging hub and two prod hubs; bio-cloud: support
as its canary and two prod hubs), real helm, and `hubtasks/dev/frontdoor.py` answering the
hubs' health URL from their Deployments' readiness, with some hubs told to misbehave.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubtasks.dev.demo import DEMO_KEY, copy_example
from hubtasks.dev.frontdoor import FrontDoor
from hubtasks.dev.localk8s import LocalClusters
from hubtasks.model import Status
from hubtasks.results import load_results

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]
FAST = ["--timeout", "30s", "--retries", "0"]
CLUSTERS = ["bio-cloud", "edu-cloud"]
# Logs what a check command sees; fails for bio-cloud/neuro (a prod hub).
CHECK = """\
import os, sys
names = ('HUBTASKS_CLUSTER', 'HUBTASKS_HUB', 'HUBTASKS_DOMAIN', 'HUBTASKS_NAMESPACE', 'KUBECONFIG')
print('check', *(os.environ[n] for n in names))
with open(os.path.join(os.path.dirname(__file__), 'checked.txt'), 'a') as out:
    out.write(os.environ['HUBTASKS_CLUSTER'] + '/' + os.environ['HUBTASKS_HUB'] + '\\n')
sys.exit(1 if os.environ['HUBTASKS_HUB'] == 'neuro' else 0)
"""


@dataclass
class World:
    repo: Path
    helm: Path
    door: FrontDoor

    def run(self, *args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SOPS_AGE_KEY_FILE": str(self.repo / DEMO_KEY),
               "HUBTASKS_HELM": str(self.helm)}
        proc = subprocess.run([*HUBTASKS, *args], cwd=self.repo, env=env, capture_output=True,
                              text=True, check=False, timeout=600)
        if check is not None:
            assert proc.returncode == check, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    def results(self) -> dict[str, Any]:
        return {f"{r.stage.value}:{r.cluster}/{r.hub or 'support'}": r
                for r in load_results([self.repo / ".hubtasks/results.json"])}

    def releases(self, cluster: str) -> set[str]:
        out = subprocess.run([str(self.helm), "list", "-A", "-q", "--kubeconfig",
                              str(self.repo / f".hubtasks/kubeconfigs/{cluster}.yaml")],
                             capture_output=True, text=True, check=True, timeout=60).stdout
        return set(out.split())


def _repo(work: Path, url: str) -> Path:
    repo = copy_example(ROOT, work / "repo")
    shutil.rmtree(repo / "config/clusters/geo-cloud")
    (repo / "check.py").write_text(CHECK)
    settings = yaml.safe_load((repo / "hubtasks.yaml").read_text())
    settings["health_check"] = {"url": url, "attempts": 2, "interval": "200ms",
                                "timeout": "5s", "skip": ["bio-cloud/genom*"],
                                "command": [sys.executable, "check.py"]}
    (repo / "hubtasks.yaml").write_text(yaml.safe_dump(settings))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "health checks on"], cwd=repo, check=True)
    return repo


@pytest.fixture(scope="module", params=[3, 4], ids=["helm3", "helm4"])
def world(request: pytest.FixtureRequest, helm_bins: dict[int, Path],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp(f"health-helm{request.param}")
    clusters = LocalClusters(CLUSTERS, work / "clusters")
    try:
        started = clusters.start()
        with FrontDoor(started) as door:
            repo = _repo(work, door.url_template)
            clusters.write_kubeconfigs(repo / ".hubtasks/kubeconfigs")
            yield World(repo=repo, helm=helm_bins[request.param], door=door)
    finally:
        clusters.stop()


def test_unhealthy_staging_drops_its_prod_and_unhealthy_prod_fails_alone(world: World) -> None:
    world.door.behave("edu-cloud", "sandbox", "503")
    proc = world.run("deploy-all", "--everything", *FAST, check=1)
    results = world.results()
    sandbox = results["staging:edu-cloud/sandbox"]
    url = world.door.url_template.format(cluster="edu-cloud", hub="sandbox")
    assert sandbox.status is Status.FAILED and sandbox.exit_code == 0
    assert sandbox.error == f"unhealthy: GET {url} -> 503 after 2 tries"
    for hub in ("workshop", "stats-101"):
        assert results[f"prod:edu-cloud/{hub}"].status is Status.SKIPPED
        assert results[f"prod:edu-cloud/{hub}"].reason == "canary staging:edu-cloud/sandbox failed"
    assert world.releases("edu-cloud") == {"support", "sandbox"}  # prod never installed
    # bio-cloud deploys fully; its prod hub whose check command fails is the only failure
    assert results["support:bio-cloud/support"].status is Status.SUCCEEDED
    assert results["prod:bio-cloud/genomics"].status is Status.SUCCEEDED
    neuro = results["prod:bio-cloud/neuro"]
    assert neuro.status is Status.FAILED
    assert neuro.error == f"unhealthy: command {sys.executable} exited 1 after 2 tries"
    assert world.releases("bio-cloud") == {"support", "genomics", "neuro"}
    # skipped hubs are never probed; support releases have no hub to check
    assert world.door.hits["bio-cloud/genomics"] == 0
    assert world.door.hits["edu-cloud/sandbox"] == 2 and world.door.hits["bio-cloud/neuro"] == 2
    assert (world.repo / "check.py").parent.joinpath("checked.txt").read_text().split() == [
        "bio-cloud/neuro"] * 2
    log = Path(neuro.log or "").read_text()
    assert "check bio-cloud neuro neuro.bio-cloud.example.org neuro" in log
    assert "unhealthy" in proc.stdout


def test_no_health_check_flag_and_a_redirect(world: World) -> None:
    before = world.door.hits["edu-cloud/sandbox"]
    world.run("deploy-hub", "--cluster", "edu-cloud", "--hub", "sandbox", "--no-health-check",
              *FAST)
    assert world.door.hits["edu-cloud/sandbox"] == before
    world.door.behave("edu-cloud", "sandbox", "redirect")
    world.run("deploy-hub", "--cluster", "edu-cloud", "--hub", "sandbox", *FAST)
    assert world.results()["staging:edu-cloud/sandbox"].status is Status.SUCCEEDED
    assert world.door.hits["edu-cloud/sandbox"] == before + 1


def test_a_hub_that_never_answers_times_out(world: World) -> None:
    world.door.behave("edu-cloud", "workshop", "never")
    proc = world.run("deploy-hub", "--cluster", "edu-cloud", "--hub", "workshop", *FAST, check=1)
    record = world.results()["prod:edu-cloud/workshop"]
    assert record.status is Status.FAILED
    assert record.error.endswith("-> timed out after 5s after 2 tries")
    assert "unhealthy" in proc.stdout
