"""A small world for fault tests: a trimmed example repo, its local clusters, real helm, the CLI.

Two clusters, five releases: edu-cloud (support, staging `sandbox`, prod `workshop` with a
secret) and bio-cloud (support, prod `neuro`), so a scenario stays a few minutes long.
Everything is judged from outside, as an operator would: exit codes, `helm history` read
from the clusters, the results file and the logs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from test_crash_records import children

from hubtasks.dev.demo import DEMO_KEY, FAIL_MARKER, _git, broken_values, copy_example
from hubtasks.dev.localk8s import LocalClusters
from hubtasks.dev.processes import wait_ready
from hubtasks.model import JobResult
from hubtasks.results import load_results

ROOT = Path(__file__).resolve().parents[1]
HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]
KEEP = {"edu-cloud": ("sandbox", "workshop"), "bio-cloud": ("neuro",)}
CANARY, PROD = ("edu-cloud", "sandbox"), ("edu-cloud", "workshop")
FAST = ("--timeout", "30s", "--retries", "0", "--kill-grace", "20s")
OPERATION_IN_PROGRESS = "another operation"


def small_example(target: Path) -> Path:
    """The example config with only the clusters and hubs of KEEP, committed."""
    repo = copy_example(ROOT, target)
    for folder in (repo / "config/clusters").iterdir():
        if folder.name not in KEEP and (folder / "cluster.yaml").is_file():
            shutil.rmtree(folder)
            continue
        if folder.name in KEEP:
            doc = yaml.safe_load((folder / "cluster.yaml").read_text())
            doc["hubs"] = [h for h in doc["hubs"] if h["name"] in KEEP[folder.name]]
            (folder / "cluster.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "fault tests: two clusters, five releases")
    return repo


def set_broken(repo: Path, cluster: str, hub: str, broken: bool) -> None:
    """Commit `hub`'s image as one whose pods never become Ready (helm waits), or undo it."""
    folder = repo / "config/clusters" / cluster
    doc = yaml.safe_load((folder / "cluster.yaml").read_text())
    extra = "faults-broken.values.yaml"
    for entry in doc["hubs"]:
        if entry["name"] == hub:
            files = [f for f in entry["helm_chart_values_files"] if f != extra]
            entry["helm_chart_values_files"] = files + ([extra] if broken else [])
    (folder / "cluster.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    if broken:
        (folder / extra).write_text(yaml.safe_dump(broken_values("basehub")))
    else:
        (folder / extra).unlink(missing_ok=True)
    _git(repo, "add", "-A")
    state = "broken" if broken else "fixed"
    _git(repo, "commit", "-q", "--allow-empty", "-m", f"faults: {cluster}/{hub} {state}")


def wait_for(what: str, check: Callable[[], object], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


@dataclass
class World:
    """One helm major's repo, its clusters and how to run hubtasks against them."""

    repo: Path
    helm: Path
    clusters: LocalClusters
    env: dict[str, str] = field(default_factory=dict)

    def kubeconfig(self, cluster: str) -> Path:
        return self.repo / ".hubtasks/kubeconfigs" / f"{cluster}.yaml"

    def command(self, *args: str) -> list[str]:
        return [*HUBTASKS, *args]

    def run(self, *args: str, repo: Path | None = None, timeout: float = 600,
            extra: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), cwd=repo or self.repo,
                              env={**self.env, **(extra or {})}, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def start(self, *args: str, repo: Path | None = None, out: Path,
              extra: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """hubtasks in the background, its stdout and stderr in `out`."""
        with out.open("w") as handle:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(self.command(*args), cwd=repo or self.repo,
                                    env={**self.env, **(extra or {})}, stdout=handle,
                                    stderr=subprocess.STDOUT, text=True)

    def helm_json(self, cluster: str, *args: str) -> Any:
        done = subprocess.run([str(self.helm), *args, "-o", "json", "--kubeconfig",
                               str(self.kubeconfig(cluster))], capture_output=True, text=True,
                              timeout=60, check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def history(self, cluster: str, release: str) -> list[dict[str, Any]]:
        """`helm history` of one release, read from its cluster ([] when there is none)."""
        return list(self.helm_json(cluster, "history", release, "-n", release) or [])

    def statuses(self, cluster: str, release: str) -> list[str]:
        return [e["status"] for e in self.history(cluster, release)]

    def releases(self) -> list[tuple[str, str]]:
        return [(c, r) for c, hubs in KEEP.items() for r in ("support", *hubs)]

    def results(self, name: str = ".hubtasks/results.json",
                repo: Path | None = None) -> dict[str, JobResult]:
        """Newest record per `stage:cluster/hub` of one results file."""
        return {f"{r.stage.value}:{r.cluster}/{r.hub or 'support'}": r
                for r in load_results([(repo or self.repo) / name])}

    def component(self, cluster: str, what: str = "kube-apiserver") -> Any:
        return next(c for c in self.clusters.components if c.label == f"{cluster} {what}")

    def kill_apiserver(self, cluster: str) -> None:
        comp = self.component(cluster)
        comp.signal(signal.SIGKILL)
        assert comp.wait(30)

    def restart_apiserver(self, cluster: str) -> None:
        """Start the killed API server again (same port, certificates and etcd prefix), then
        restart its controller manager, whose watches would otherwise resume only after a
        back-off of tens of seconds (a test artefact: no rollout would progress meanwhile)."""
        local = self.clusters.clusters[cluster]
        _restart(self.component(cluster), self.clusters.workdir, f"{local.server}/readyz",
                 local.token)
        manager = self.component(cluster, "kube-controller-manager")
        manager.signal(signal.SIGKILL)
        manager.wait(30)
        port = next(a.split("=")[1] for a in manager.argv if a.startswith("--secure-port="))
        _restart(manager, self.clusters.workdir, f"https://127.0.0.1:{port}/healthz", None)


def _restart(comp: Any, workdir: Path, url: str, token: str | None) -> None:
    deadline = time.monotonic() + 60
    while True:  # the port may take a moment to be free again
        comp.start(workdir)
        try:
            wait_ready(comp, url, token, 90)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            comp.signal(signal.SIGKILL)
            comp.wait(10)
            time.sleep(1)


def helm_children(pid: int, verb: str = "upgrade") -> list[int]:
    """Live helm processes below `pid` running `verb`, from /proc."""
    return [p for p in children(pid) if _is_helm(p, verb)]


def _is_helm(pid: int, verb: str) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return len(argv) > 1 and argv[0].endswith(b"helm") and argv[1] == verb.encode()


def make_world(work: Path, helm: Path) -> Iterator[World]:
    """A world in `work` (for a fixture): the repo, its clusters running, kubeconfigs written."""
    repo = small_example(work / "repo")
    tmp = work / "tmp"
    tmp.mkdir()
    env = {**os.environ, "HUBTASKS_HELM": str(helm), "SOPS_AGE_KEY_FILE": str(repo / DEMO_KEY),
           "TMPDIR": str(tmp), "HUBTASKS_LEASE_SECONDS": "20"}
    clusters = LocalClusters(list(KEEP), work / "clusters", fail_marker=FAIL_MARKER)
    try:
        clusters.start()
        clusters.write_kubeconfigs(repo / ".hubtasks/kubeconfigs")
        yield World(repo=repo, helm=helm, clusters=clusters, env=env)
    finally:
        clusters.stop()


def touch(repo: Path, cluster: str, hub: str) -> None:
    """Commit a no-op change (a comment) to `hub`'s first values file: it is planned."""
    folder = repo / "config/clusters" / cluster
    doc = yaml.safe_load((folder / "cluster.yaml").read_text())
    entry = next(h for h in doc["hubs"] if h["name"] == hub)
    values = folder / entry["helm_chart_values_files"][0]
    values.write_text(values.read_text() + f"\n# touched {time.time_ns()}\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", f"faults: touch {cluster}/{hub}")
