"""2i2c's whole repo deployed through the real CLI against a recording helm.

The repo is the 2i2c fixture with age-encrypted stand-ins for its secrets and the
hubtasks.yaml README.md documents for 2i2c repos (twoi2c.py). The command is the one README.md
shows under "Checking a repo's values against a recording helm", read from there. Each of the
201 recorded `helm upgrade` calls must match 2i2c's deployer: release, chart folder, namespace,
`--install --create-namespace`, and the values documents' contents in order (`twoi2c.expected`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitrepo import GIT_ENV
from twoi2c import README, age_keypair, expected, standin_copy

pytestmark = pytest.mark.fixture

HERE = Path(__file__).resolve().parent
RECORDING_HELM = HERE / "fakes" / "recording_helm"
SECTION = "### Checking a repo's values against a recording helm"
FILE_DEPENDENCY = re.compile(r"""repository:\s*["']?file://([^"'\s]+)""")
# What the run may ask helm: the probe, chart builds, the repair's history, the upgrades.
EXPECTED_COMMANDS = {"version", "dependency", "history", "upgrade"}


def documented_command() -> list[str]:
    """The `hubtasks deploy-all` line of README.md's recording-helm section, as argv."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    line = next(line for line in section.splitlines() if line.startswith("$ hubtasks "))
    return shlex.split(line.removeprefix("$ "))


@dataclass(frozen=True)
class Repo:
    """The stand-in copy of 2i2c's repo, committed, with the README's kubeconfig stubs."""

    root: Path
    key: Path

    @property
    def stubs(self) -> Path:
        return self.root.parent / "stubs"


@dataclass(frozen=True)
class Run:
    proc: subprocess.CompletedProcess[str]
    calls: list[dict[str, Any]]
    results: Path

    def errors(self, stage: str) -> dict[str, str]:
        """cluster -> error of each failed job of `stage` (the results file keeps it whole)."""
        records = json.loads(self.results.read_text())["records"]
        return {r["cluster"]: r["error"] for r in records
                if r["stage"] == stage and r["status"] == "failed"}

    @property
    def upgrades(self) -> list[dict[str, Any]]:
        return [call for call in self.calls if call["argv"][0] == "upgrade"]


@pytest.fixture(scope="module")
def repo(fixture_2i2c: Path, sops: Path, tmp_path_factory: pytest.TempPathFactory) -> Repo:
    folder = tmp_path_factory.mktemp("i2c-recorded")
    key, public = age_keypair(folder)
    root = standin_copy(fixture_2i2c, folder / "infrastructure", sops=sops, recipient=public)
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "2i2c")):
        subprocess.run(["git", *args], cwd=root, env=GIT_ENV, check=True, capture_output=True)
    made = Repo(root=root, key=key)
    made.stubs.mkdir()  # as the README's loop: an empty kubeconfig per cluster folder
    for cluster in (root / "config/clusters").iterdir():
        (made.stubs / f"{cluster.name}.yaml").write_text("")
    return made


def run_documented(repo: Repo, name: str, *, drop: str = "") -> Run:
    """The README's command (less the option `drop` and its value) in `repo`, recorded."""
    log = repo.root.parent / f"helm-calls-{name}.jsonl"
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(repo.key), "RECORDING_HELM_LOG": str(log),
           "RECORDING_HELM_VERSION": "4.1.4"}  # 2i2c's deployer requires helm 4
    argv = documented_command()
    for var, value in (("HUBTASKS_CHECKOUT", HERE.parent), ("stubs", repo.stubs)):
        argv = [arg.replace(f"${var}", str(value)) for arg in argv]
    assert not [arg for arg in argv if "$" in arg], argv
    assert argv[argv.index("--helm") + 1] == str(RECORDING_HELM)
    if drop:
        at = argv.index(drop)
        takes_value = at + 1 < len(argv) and not argv[at + 1].startswith("--")
        del argv[at:at + 1 + takes_value]
    argv[0] = str(Path(sys.executable).parent / "hubtasks")  # the real console script
    results = repo.root.parent / f"results-{name}.json"
    proc = subprocess.run([*argv, "--results", str(results)], cwd=repo.root, env=env,
                          capture_output=True, text=True, timeout=1200)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return Run(proc=proc, calls=calls, results=results)


@pytest.fixture(scope="module")
def recorded(repo: Repo) -> Run:
    return run_documented(repo, "documented")


def test_the_documented_command_has_the_cluster_less_options() -> None:
    argv = documented_command()
    assert argv[:3] == ["hubtasks", "deploy-all", "--everything"]
    assert {"--no-lock", "--no-health-check", "--kubeconfig-dir", "--helm"} <= set(argv)


@pytest.mark.parametrize(("drop", "error"), [
    ("--kubeconfig-dir", r"cluster '[\w-]+' \((gcp|aws|azure)\): no kubeconfig at .*; write it"),
    ("--no-lock", r"cluster [\w-]+: .*cannot read Lease default/hubtasks-support: "),
])
def test_without_an_option_its_clusters_fail_clearly(repo: Repo, drop: str, error: str) -> None:
    """Each option is needed: without it, the support release of every cluster that needs it
    fails before helm's upgrade, saying why, and the canary rule skips that cluster's hubs."""
    run = run_documented(repo, drop.strip("-"), drop=drop)
    needing = {cluster for cluster, spec, _ in _releases(repo.root)
               if drop == "--no-lock" or spec["provider"] != "kubeconfig"}
    failed = run.errors("support")
    assert run.proc.returncode == 1
    assert set(failed) == needing and len(needing) >= 28
    assert all(re.search(error, line) for line in failed.values()), failed
    assert not {_cluster_of(call) for call in run.upgrades} & needing


def test_every_release_reaches_helm_once(recorded: Run) -> None:
    calls, proc = recorded.calls, recorded.proc
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "201 jobs: 201 succeeded" in proc.stdout
    assert {call["argv"][0] for call in calls} == EXPECTED_COMMANDS
    upgrades = [call["argv"] for call in calls if call["argv"][0] == "upgrade"]
    targets = {(_cluster_of(call), call["argv"][2]) for call in calls
               if call["argv"][0] == "upgrade"}
    assert len(upgrades) == len(targets) == 201


def _releases(root: Path) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(cluster, cluster.yaml, hub entry or None for support), read like the deployer."""
    out: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    for path in sorted((root / "config/clusters").glob("*/cluster.yaml")):
        spec = yaml.safe_load(path.read_text())
        if spec.get("support"):
            out.append((path.parent.name, spec, None))
        out += [(path.parent.name, spec, hub) for hub in spec.get("hubs", [])]
    return out


def deployer_charts(root: Path, cluster: str, hub: dict[str, Any] | None) -> dict[str, str]:
    """Chart.yaml of the deployer's chart folder and its file:// dependencies, by folder name.

    `get_chart_dir`: a `chart_override` replaces basehub's Chart.yaml (in a copy; a legacy
    daskhub's copy of daskhub then finds the copied basehub). Paths with a '/' are from the
    repo root, others from the cluster folder.
    """
    charts = root / "helm-charts"
    texts: dict[str, str] = {}
    override = hub.get("chart_override") if hub else None
    if override:
        base = root if "/" in override else root / "config/clusters" / cluster
        texts["basehub"] = (base / override).read_text()
    todo = [hub["helm_chart"] if hub else "support"]
    while todo:
        name = todo.pop()
        if name not in texts:
            texts[name] = (charts / name / "Chart.yaml").read_text()
        todo += [Path(dep).name for dep in FILE_DEPENDENCY.findall(texts[name])
                 if Path(dep).name not in texts]
    return texts


def _cluster_of(call: dict[str, Any]) -> str:
    """The cluster an upgrade went to: a stub's name, or whose credentials were decrypted."""
    argv = call["argv"]
    path = Path(argv[argv.index("--kubeconfig") + 1])
    if path.parent.name == "stubs":
        return path.stem
    # a `kubeconfig` cluster's own file, decrypted: {"standin": "config/clusters/<c>/..."}
    return Path(yaml.safe_load(call["kubeconfig"])["standin"]).parts[2]


def _recorded_charts(call: dict[str, Any]) -> dict[str, Any]:
    return {Path(folder).name: yaml.safe_load(text) for folder, text in call["charts"].items()}


def test_each_upgrade_matches_the_deployers(repo: Repo, recorded: Run, tmp_path: Path) -> None:
    root = repo.root
    upgrades = {(_cluster_of(call), call["argv"][2]): call for call in recorded.upgrades}
    releases = _releases(root)
    assert len(releases) == 201
    for cluster, spec, hub in releases:
        name = hub["name"] if hub else "support"
        call = upgrades[(cluster, name)]
        argv = call["argv"]
        assert argv[:3] == ["upgrade", "--install", name], (cluster, name)
        assert argv[argv.index("--namespace") + 1] == name and "--create-namespace" in argv
        chart = Path(argv[3])
        assert chart.name == (hub["helm_chart"] if hub else "support"), (cluster, name)
        if not (hub and hub.get("chart_override")):  # the run's copy of the built chart
            assert chart.relative_to(root / ".hubtasks/work/runs").parts[1:] == \
                ("shared", "helm-charts", chart.name), (cluster, name)
        want_charts = {folder: yaml.safe_load(text)
                       for folder, text in deployer_charts(root, cluster, hub).items()}
        assert _recorded_charts(call) == want_charts, (cluster, name)
        got = [yaml.safe_load(text) for text in call["values"]]
        want = [doc for _source, doc in expected(root, cluster, hub["name"] if hub else None,
                                                 tmp_path)]
        assert got == want, (cluster, name)
        assert spec["name"] == cluster
