"""`invoke demo`: the example config deployed to local clusters, with one broken canary.

The demo never touches the user's checkout: it copies the example config into a fresh git
repo under the work folder, commits a change that breaks one staging hub (its hub config
carries the marker the front-door stand-in answers 503 for: the upgrade succeeds, the health
check fails), starts one local control plane per cluster and runs `deploy-all --everything`
with real helm and `--wait`. The run shows that cluster's prod hubs dropped while every other
cluster deploys. `break_hub` (an image that never becomes Ready: helm fails) is the other
way of breaking a hub, used by tests/test_deploy_e2e.py.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml
from tabulate import tabulate

from hubtasks import proc
from hubtasks.binaries import find_helm
from hubtasks.config.load import load_config
from hubtasks.config.model import RepoConfig
from hubtasks.deploying.stages import deploy_all
from hubtasks.dev.frontdoor import UNHEALTHY_MARKER, FrontDoor, point_checks_at, restore_settings
from hubtasks.dev.localk8s import LocalClusters
from hubtasks.model import HubtasksError, Stage, Status
from hubtasks.options import DeployOptions, Limits, PlanOptions, RunOptions, environment
from hubtasks.output.tables import plan_tables, render_summary
from hubtasks.planning.git import Git
from hubtasks.results import load_results

COPY = ("config", "helm-charts", "hubtasks.yaml", ".sops.yaml")
FAIL_MARKER = "hubtasks-fail"
BROKEN_VALUES = "demo-broken.values.yaml"
DEMO_KEY = "config/demo-age-key.txt"
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "hubtasks demo", "GIT_AUTHOR_EMAIL": "demo@hubtasks.invalid",
                "GIT_COMMITTER_NAME": "hubtasks demo",
                "GIT_COMMITTER_EMAIL": "demo@hubtasks.invalid"}


@dataclass(frozen=True, kw_only=True)
class BrokenHub:
    """The staging hub whose rollout the demo breaks."""

    cluster: str
    hub: str


def _git(repo: Path, *args: str) -> str:
    return Git(repo, env={**os.environ, **GIT_IDENTITY}).out(*args)


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


def unhealthy_values(chart: str) -> dict[str, object]:
    """A hub config that deploys fine but that the front-door stand-in answers 503 for."""
    config = {"JupyterHub": {"authenticator_class": UNHEALTHY_MARKER}}
    values: dict[str, object] = {"jupyterhub": {"hub": {"config": config}}}
    return {"basehub": values} if chart == "daskhub" else values


def break_hub(repo: Path, config: RepoConfig, broken: BrokenHub) -> None:
    """Commit a change that adds a broken-image values file to one staging hub (helm fails)."""
    chart = config.cluster(broken.cluster).hub(broken.hub).chart
    _commit_values(repo, config, broken, broken_values(chart),
                   f"demo: a broken image for {broken.cluster}/{broken.hub}")


def break_health(repo: Path, config: RepoConfig, broken: BrokenHub) -> None:
    """Commit a broken hub config for one staging hub: it deploys, then fails its check."""
    chart = config.cluster(broken.cluster).hub(broken.hub).chart
    _commit_values(repo, config, broken, unhealthy_values(chart),
                   f"demo: a broken authenticator config for {broken.cluster}/{broken.hub}")


def _commit_values(repo: Path, config: RepoConfig, broken: BrokenHub,
                   values: dict[str, object], message: str) -> None:
    """Add `values` as the hub's last values file (BROKEN_VALUES) and commit."""
    cluster = config.cluster(broken.cluster)
    folder = repo / cluster.folder
    (folder / BROKEN_VALUES).write_text(yaml.safe_dump(values))
    doc = yaml.safe_load((folder / "cluster.yaml").read_text())
    for entry in doc["hubs"]:
        if entry["name"] == broken.hub:
            entry["helm_chart_values_files"].append(BROKEN_VALUES)
    (folder / "cluster.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)


def local_cluster_names(config: RepoConfig) -> list[str]:
    names = [c.name for c in config.clusters.values() if c.provider == "local"]
    if not names:
        raise HubtasksError("the example config has no cluster with provider: local")
    return names


def prepare(source: Path, workdir: Path) -> tuple[Path, RepoConfig, BrokenHub]:
    """Copy the example, break one staging hub's health; returns (repo, config, broken hub)."""
    repo = copy_example(source, workdir / "repo")
    broken = pick_broken_hub(load_config(repo))
    break_health(repo, load_config(repo), broken)
    return repo, load_config(repo), broken


def start_clusters(config: RepoConfig, workdir: Path, kubeconfig_dir: Path, *,
                   keep_alive: bool = False) -> LocalClusters:
    """Start one local control plane per cluster and write their kubeconfigs."""
    clusters = LocalClusters(local_cluster_names(config), workdir / "clusters",
                             fail_marker=FAIL_MARKER, keep_alive=keep_alive)
    clusters.start()
    clusters.write_kubeconfigs(kubeconfig_dir)
    return clusters


def releases_on_clusters(helm: Path, kubeconfig_dir: Path, names: list[str]) -> list[list[str]]:
    """`helm list -A` of every cluster, read from the clusters themselves."""
    rows = []
    for name in names:
        argv = [str(helm), "list", "-A", "--kubeconfig", str(kubeconfig_dir / f"{name}.yaml"),
                "-o", "yaml"]
        out = proc.checked(proc.run(argv, env=os.environ, timeout=60, keep_stdout=True),
                           f"helm list on {name}")
        for item in yaml.safe_load(out.stdout or b"[]") or []:
            rows.append([name, item["name"], item["namespace"], item["status"],
                         item.get("revision", "")])
    return rows


def demo_options(repo: Path, kubeconfigs: Path, names: list[str], *, helm: Path,
                 timeout: float) -> RunOptions:
    env = {**environment(), "SOPS_AGE_KEY_FILE": str(repo / DEMO_KEY)}
    deploy = DeployOptions(timeout=timeout, atomic=True, retries=1, backoff=2.0,
                           log_dir=repo / ".hubtasks/logs", work_dir=repo / ".hubtasks/work",
                           kubeconfig_dir=kubeconfigs, env=env)
    return RunOptions(repo=repo, plan=repo / ".hubtasks/plan.json",
                      results=repo / ".hubtasks/results.json", deploy=deploy,
                      limits=Limits(jobs=6, per_cluster=3, canary_workers=len(names)), helm=helm)


def run_demo(source: Path, workdir: Path, *, keep: bool, helm_major: int | None,
             pipelined: bool, timeout: float) -> int:
    """`demo`: deploy the example to local clusters with one broken canary; 0 if as designed."""
    helm = find_helm(environment(), major=helm_major).path
    repo, config, broken = prepare(source, workdir)
    print(f"example config copied to {repo} (a git repo); last commit gives staging hub "
          f"{broken.cluster}/{broken.hub} a broken authenticator config: its upgrade "
          "will succeed and its health check fail")
    kubeconfigs = repo / ".hubtasks/kubeconfigs"
    names = local_cluster_names(config)
    print(f"starting {len(names)} local clusters: {', '.join(names)} ...", flush=True)
    clusters = start_clusters(config, workdir, kubeconfigs, keep_alive=keep)
    options = demo_options(repo, kubeconfigs, names, helm=helm, timeout=timeout)
    door = FrontDoor(clusters.clusters).start()
    settings = point_checks_at(repo, door.url_template)
    print(f"health checks go to a local front-door stand-in: {door.url_template}")
    try:
        run = deploy_all(options, PlanOptions(everything=True), pipelined=pipelined,
                         on_plan=lambda plan: print(plan_tables(plan), flush=True))
        print(f"\ndeploy-all\n{render_summary(run.results)}")
        rows = releases_on_clusters(helm, kubeconfigs, names)
        print("\nreleases on the clusters (helm list -A on each):")
        print(tabulate(rows, headers=["cluster", "release", "namespace", "status", "revision"]))
        return _verdict(options.results, broken)
    finally:
        door.stop()
        restore_settings(repo, settings)  # the stand-in is gone: later runs must not probe it
        if keep:
            clusters.detach(workdir / "clusters.json")
            _print_keep_help(repo, kubeconfigs, helm, names, workdir)
        else:
            clusters.stop()
            print("\nlocal clusters stopped (use --keep to keep them running)")


def _verdict(results_path: Path, broken: BrokenHub) -> int:
    """The demo worked when only the broken hub failed (unhealthy) and its cluster's prod
    was skipped, while every other job succeeded."""
    results = load_results([results_path])
    bad = [r for r in results if r.status is not Status.SUCCEEDED]
    canary = next((r for r in bad if r.stage is Stage.STAGING and r.hub == broken.hub
                   and r.cluster == broken.cluster), None)
    as_designed = canary is not None and canary.error.startswith("unhealthy:") and all(
        r.cluster == broken.cluster and (r is canary or r.status is Status.SKIPPED)
        for r in bad)
    others = sorted({r.cluster for r in results} - {broken.cluster})
    if canary is not None and canary.error.startswith("unhealthy:"):
        print(f"\n{broken.cluster}/{broken.hub}: its upgrade succeeded, but the hub is "
              f"{canary.error}")
    if as_designed:
        print(f"demo OK: {broken.cluster}'s canary failed, so its prod hubs were skipped; "
              f"every job on {', '.join(others)} succeeded, each hub answering its health "
              "check.")
        return 0
    print("\ndemo did NOT go as designed: see the summary above and .hubtasks/logs")
    return 1


def _print_keep_help(repo: Path, kubeconfigs: Path, helm: Path, names: list[str],
                     workdir: Path) -> None:
    first = kubeconfigs / f"{names[0]}.yaml"
    print(f"""
local clusters kept running. Try:
  export KUBECONFIG={first}
  kubectl get pods -A
  {helm} list -A --kubeconfig {first}
  cd {repo} && git revert --no-edit HEAD && \\
    hubtasks deploy-all --base HEAD~1 --kubeconfig-dir {kubeconfigs} --no-health-check
stop them with:  invoke demo-stop --workdir {workdir}""")
