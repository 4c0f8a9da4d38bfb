"""What each task does, in terms of library calls; tasks.py only parses options."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .config import RepoConfig
from .model import HubtasksError, Job, Plan, Stage
from .planfile import plan_to_json, save_plan
from .planning import PlanOptions, plan_repo
from .report import (
    append_summary,
    github_output,
    plan_markdown,
    plan_outputs,
    plan_tables,
    prod_matrix,
)

if TYPE_CHECKING:
    from .stages import StageOptions


def run_plan(*, repo: Path, base: str, head: str, worktree: bool, files: tuple[str, ...] | None,
             labels: list[str], everything: bool, fmt: str, out: Path | None) -> Plan:
    """`plan`: compute the plan and print it in the chosen format."""
    if fmt not in ("table", "json", "github"):
        raise HubtasksError(f"unknown --format {fmt!r}: use table, json or github")
    options = PlanOptions(base=base, head=head, worktree=worktree, files=files,
                          labels=tuple(labels), everything=everything)
    _, plan = plan_repo(repo, options)
    if out is not None:
        save_plan(plan, out)
    if fmt == "json":
        sys.stdout.write(plan_to_json(plan))
    elif fmt == "github":
        write_github(plan)
    else:
        sys.stdout.write(plan_tables(plan))
    return plan


def publish_outputs(values: dict[str, str]) -> None:
    """Step outputs to $GITHUB_OUTPUT, or `name=value` lines on stdout outside Actions."""
    output_path = os.environ.get("GITHUB_OUTPUT")
    if output_path:
        github_output(values, Path(output_path))
    else:
        for name, value in values.items():
            print(f"{name}={value}")


def write_github(plan: Plan) -> None:
    """Matrices to $GITHUB_OUTPUT, tables to $GITHUB_STEP_SUMMARY (stdout when unset)."""
    publish_outputs(plan_outputs(plan))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        append_summary(plan_markdown(plan), Path(summary))
    sys.stdout.write(plan_tables(plan))


def run_filter(plan: Plan, results: list[Path], *, record: Path | None, fmt: str,
               out: Path | None) -> list[Job]:
    """`filter`: list dropped prod jobs, output the surviving prod matrix / plan."""
    from .stages import filter_prod

    if fmt not in ("text", "github"):
        raise HubtasksError(f"unknown --format {fmt!r}: use text or github")
    kept, dropped = filter_prod(plan, results, record_to=record)
    for result in dropped:
        print(f"dropped prod:{result.cluster}/{result.hub}: {result.reason}")
    print(f"{len(kept)} prod job(s) kept, {len(dropped)} dropped")
    filtered = dataclasses.replace(plan, jobs=tuple(kept))
    if out is not None:
        save_plan(filtered, out)
    if fmt == "github":
        prod = prod_matrix(kept)
        values = {"prod-matrix": json.dumps(prod, separators=(",", ":")),
                  "has-prod": str(bool(prod["include"])).lower()}
        publish_outputs(values)
    return kept


def manual_plan(config: RepoConfig, cluster: str, hub: str | None) -> Plan:
    """A one-job plan for `deploy-hub` / `deploy-support`."""
    found = config.cluster(cluster)
    if hub is None:
        if found.support is None:
            raise HubtasksError(f"cluster {cluster!r} has no support release "
                                f"(no `support:` in {found.config_file})")
        job = Job(stage=Stage.SUPPORT, cluster=cluster, hub=None,
                  chart=config.settings.support_chart, reasons=("manual deploy",))
    else:
        entry = found.hub(hub)
        job = Job(stage=Stage.STAGING if entry.staging else Stage.PROD, cluster=cluster,
                  hub=hub, chart=entry.chart, reasons=("manual deploy",))
    return Plan(base=None, head=_head(config.root), jobs=(job,))


def _head(repo: Path) -> str | None:
    from .planning import resolve_ref

    return resolve_ref(repo, "HEAD")


def run_report(results: list[Path], *, plan: Plan | None, fmt: str) -> int:
    """`report`: merge results, print (and publish) the summary, return the exit code."""
    from .logs import exit_code, render_summary
    from .results import load_results

    if fmt not in ("table", "github"):
        raise HubtasksError(f"unknown --format {fmt!r}: use table or github")
    merged = load_results(results)
    if plan is not None:
        keys = {(j.stage, j.key) for j in plan.jobs}
        merged = [r for r in merged if (r.stage, r.key) in keys]
        missing = len(keys) - len(merged)
        if missing:
            print(f"warning: {missing} planned job(s) have no result", file=sys.stderr)
    table = render_summary(merged) if merged else "no results"
    print(table)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if fmt == "github" and summary:
        append_summary(f"## hubtasks deploy results\n\n{render_summary(merged, fmt='github')}",
                       Path(summary))
    code = exit_code(merged)
    if plan is not None and len(merged) < len(plan.jobs):
        code = code or 1
    return code


def run_deploy_all(repo: Path, plan_options: PlanOptions, options: StageOptions, *,
                   pipelined: bool, plan_out: Path) -> int:
    """`deploy-all`: plan, then canary, filter and prod in one process."""
    from .stages import finish, run_jobs

    config, plan = plan_repo(repo, plan_options)
    save_plan(plan, plan_out)
    sys.stdout.write(plan_tables(plan))
    mode = "pipelined" if pipelined else "staged"
    print(f"\ndeploying {len(plan.jobs)} job(s) ({mode}); results in {options.results}")
    results = run_jobs(config, plan, list(plan.jobs), options, mode=mode)
    return finish(results, title="deploy-all")


def run_demo(source: Path, workdir: Path, *, keep: bool, helm_major: int | None,
             pipelined: bool, timeout: float) -> int:
    """`demo`: deploy the example to local clusters with one broken canary; 0 if as designed."""
    from tabulate import tabulate

    from .demo import DEMO_KEY, local_cluster_names, prepare, releases_on_clusters, start_clusters
    from .deploy import DeployOptions
    from .stages import StageOptions, base_env
    from .tools import helm_path

    repo, config, broken = prepare(source, workdir)
    print(f"example config copied to {repo} (a git repo); last commit gives staging hub "
          f"{broken.cluster}/{broken.hub} an image that never becomes Ready")
    kubeconfigs = repo / ".hubtasks/kubeconfigs"
    names = local_cluster_names(config)
    print(f"starting {len(names)} local clusters: {', '.join(names)} ...", flush=True)
    clusters = start_clusters(config, workdir, kubeconfigs)
    env = {**base_env(), "SOPS_AGE_KEY_FILE": str(repo / DEMO_KEY)}
    helm = helm_path(helm_major, env=env)
    deploy = DeployOptions(timeout=timeout, atomic=True, retries=1, backoff=2.0,
                           log_dir=repo / ".hubtasks/logs", work_dir=repo / ".hubtasks/work",
                           kubeconfig_dir=kubeconfigs)
    options = StageOptions(results=repo / ".hubtasks/results.json", deploy=deploy, jobs=6,
                           per_cluster=3, canary_workers=len(names), helm=helm, env=env)
    try:
        run_deploy_all(repo, PlanOptions(everything=True), options, pipelined=pipelined,
                       plan_out=repo / ".hubtasks/plan.json")
        rows = releases_on_clusters(helm, kubeconfigs, names)
        print("\nreleases on the clusters (helm list -A on each):")
        print(tabulate(rows, headers=["cluster", "release", "namespace", "status", "revision"]))
        return _demo_verdict(options.results, broken.cluster)
    finally:
        if keep:
            clusters.detach(workdir / "clusters.json")
            _print_keep_help(repo, kubeconfigs, helm, names, workdir)
        else:
            clusters.stop()
            print("\nlocal clusters stopped (use --keep to keep them running)")


def _demo_verdict(results_path: Path, broken_cluster: str) -> int:
    """The demo worked when only the broken cluster failed, and its prod was skipped."""
    from .model import Status
    from .results import load_results

    results = load_results([results_path])
    bad = [r for r in results if r.status is not Status.SUCCEEDED]
    as_designed = bad and all(r.cluster == broken_cluster for r in bad) and all(
        r.status is Status.SKIPPED for r in bad if r.stage is Stage.PROD)
    others = sorted({r.cluster for r in results} - {broken_cluster})
    if as_designed:
        print(f"\ndemo OK: {broken_cluster}'s canary failed, so its prod hubs were skipped; "
              f"every job on {', '.join(others)} succeeded.")
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
    hubtasks deploy-all --base HEAD~1 --kubeconfig-dir {kubeconfigs}
stop them with:  invoke demo-stop --workdir {workdir}""")
