"""The invoke tasks: a thin CLI. Each task parses options and calls library code.

The same collection serves `invoke ...` in this repo (through the root tasks.py) and
the `hubtasks` console script in any config repo (hubtasks.cli).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke import Collection, Context, Exit, task

from .model import HubtasksError

F = TypeVar("F", bound=Callable[..., Any])
DEFAULTS: dict[str, Any] = {
    "repo": ".",
    "base": "main",
    "results": ".hubtasks/results.json",
    "plan": ".hubtasks/plan.json",
    "log_dir": ".hubtasks/logs",
    "jobs": 8,
    "per_cluster": 4,
    "canary_workers": 8,
    "timeout": "10m",
    "retries": 2,
    "history_max": 10,
}


def user_errors(func: F) -> F:
    """Turn HubtasksError into a clean message and exit code 2 (never a traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HubtasksError as err:
            raise Exit(f"hubtasks: error: {err}", code=2) from None

    return wrapper  # type: ignore[return-value]


def setting(c: Context, name: str, value: Any) -> Any:
    """An option's value, else the `hubtasks.<name>` invoke config (env INVOKE_HUBTASKS_*)."""
    if value is not None:
        return value
    return c.config.get("hubtasks", {}).get(name, DEFAULTS[name])


def repo_dir(c: Context, repo: str | None) -> Path:
    return Path(setting(c, "repo", repo)).resolve()


def split_list(values: list[str] | None) -> list[str]:
    """Flatten repeatable options whose values may also be comma/space separated."""
    out: list[str] = []
    for value in values or ():
        out.extend(v for v in value.replace(",", " ").split() if v)
    return out


@task(
    iterable=["files", "label"],
    help={
        "base": "git ref to compare against (default: main); the diff starts at the merge-base",
        "head": "git ref to plan (default: HEAD)",
        "worktree": "also count uncommitted changes and untracked files",
        "files": "changed file paths (repeatable; one per line); skips git diff",
        "files_from": "read changed file paths from FILE ('-' for stdin)",
        "label": "a PR label such as deployer:deploy-hubs (repeatable)",
        "everything": "plan every release",
        "format": "table (default), json or github",
        "out": "also save the plan JSON to FILE for the later stages",
        "repo": "config repo to plan (default: current directory)",
    },
)
@user_errors
def plan(c: Context, base: str | None = None, head: str = "HEAD", worktree: bool = False,
         files: list[str] | None = None, files_from: str | None = None,
         label: list[str] | None = None, everything: bool = False, format: str = "table",
         out: str | None = None, repo: str | None = None) -> None:
    """Decide which releases need `helm upgrade`, and why."""
    from .commands import run_plan

    run_plan(repo=repo_dir(c, repo), base=setting(c, "base", base), head=head,
             worktree=worktree, files=_file_list(files, files_from), labels=label or [],
             everything=everything, fmt=format, out=Path(out) if out else None)


def _file_list(files: list[str] | None, files_from: str | None) -> tuple[str, ...] | None:
    if not files and files_from is None:
        return None
    lines = [line for value in files or () for line in value.splitlines()]
    if files_from == "-":
        lines += sys.stdin.read().splitlines()
    elif files_from:
        try:
            lines += Path(files_from).read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise HubtasksError(f"cannot read --files-from {files_from}: {err.strerror}") from None
    return tuple(lines)


@task(help={"repo": "config repo to check (default: current directory)"})
@user_errors
def check_config(c: Context, repo: str | None = None) -> None:
    """Load and validate every cluster.yaml (schema and file checks), without helm."""
    from .config import load_config

    config = load_config(repo_dir(c, repo))
    hubs = sum(len(cl.hubs) for cl in config.clusters.values())
    print(f"config OK: {len(config.clusters)} clusters, {hubs} hubs")


# ---------------------------------------------------------------------------- deploy stages

DEPLOY_HELP = {
    "plan": "plan JSON written by `plan --out` (default .hubtasks/plan.json)",
    "results": "results JSON file to record outcomes in (default .hubtasks/results.json)",
    "jobs": "at most N helm processes at once (default 8)",
    "per_cluster": "at most N prod upgrades at once per cluster (default 4)",
    "timeout": "helm --timeout per release, e.g. 10m (default 10m)",
    "atomic": "roll back a failed upgrade (--atomic / --rollback-on-failure); default on",
    "retries": "retries of transient helm errors (default 2)",
    "dry_run": "render every release with `helm template` instead; no cluster needed",
    "helm": "helm binary to use (default: helm on PATH, else the installed copy)",
    "kubeconfig_dir": "folder of <cluster>.yaml kubeconfigs (default from hubtasks.yaml)",
    "log_dir": "folder for per-job logs and the combined log (default .hubtasks/logs)",
    "verbose": "also log debug lines to the combined log",
    "repo": "config repo (default: current directory)",
}


def helps(*drop: str, **extra: str) -> dict[str, str]:
    """DEPLOY_HELP without options a task lacks, plus its own."""
    return {**{k: v for k, v in DEPLOY_HELP.items() if k not in drop}, **extra}


def stage_options(c: Context, *, repo: Path, results: str | None, jobs: int | None,
                  per_cluster: int | None, timeout: str | None, atomic: bool,
                  retries: int | None, dry_run: bool, helm: str | None,
                  kubeconfig_dir: str | None, log_dir: str | None, verbose: bool) -> Any:
    """Build StageOptions from task options and the `hubtasks` invoke config."""
    from .deploy import DeployOptions, parse_timeout
    from .stages import StageOptions, base_env

    def path(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else repo / p

    deploy = DeployOptions(
        timeout=parse_timeout(setting(c, "timeout", timeout)),
        atomic=atomic, retries=int(setting(c, "retries", retries)),
        history_max=int(setting(c, "history_max", None)), dry_run=dry_run,
        log_dir=path(setting(c, "log_dir", log_dir)),
        work_dir=repo / ".hubtasks/work",
        kubeconfig_dir=path(kubeconfig_dir) if kubeconfig_dir else None)
    return StageOptions(results=path(setting(c, "results", results)), deploy=deploy,
                        jobs=int(setting(c, "jobs", jobs)),
                        per_cluster=int(setting(c, "per_cluster", per_cluster)),
                        canary_workers=int(setting(c, "canary_workers", None)),
                        helm=Path(helm) if helm else None, verbose=verbose, env=base_env())


def _plan_file(c: Context, repo: Path, plan_path: str | None) -> Any:
    from .planfile import load_plan

    value = Path(setting(c, "plan", plan_path))
    return load_plan(value if value.is_absolute() else repo / value)


def _exit(code: int) -> None:
    if code:
        raise Exit(code=code)


@task(iterable=["cluster"], help=helps(
    "per_cluster", cluster="only these clusters (repeatable)",
    jobs="at most N clusters' canaries at once (default: hubtasks.canary_workers, 8)"))
@user_errors
def canary(c: Context, plan: str | None = None, cluster: list[str] | None = None,
           results: str | None = None, jobs: int | None = None, timeout: str | None = None,
           atomic: bool = True, retries: int | None = None, dry_run: bool = False,
           helm: str | None = None, kubeconfig_dir: str | None = None,
           log_dir: str | None = None, verbose: bool = False, repo: str | None = None) -> None:
    """Canary stage: per cluster, support then staging hubs; clusters in parallel."""
    from .model import Stage
    from .stages import finish, load_for, run_jobs, select_jobs

    root = repo_dir(c, repo)
    the_plan = _plan_file(c, root, plan)
    selected = select_jobs(the_plan, stages=(Stage.SUPPORT, Stage.STAGING),
                           clusters=split_list(cluster))
    options = stage_options(c, repo=root, results=results, jobs=None, per_cluster=None,
                            timeout=timeout, atomic=atomic, retries=retries, dry_run=dry_run,
                            helm=helm, kubeconfig_dir=kubeconfig_dir, log_dir=log_dir,
                            verbose=verbose)
    if jobs:
        options = dataclasses.replace(options, canary_workers=int(jobs))
    config = load_for(root, (j.cluster for j in selected))
    results_ = run_jobs(config, the_plan, selected, options, mode="canary")
    _exit(finish(results_, title="canary"))


@task(iterable=["results"], help={
    "plan": DEPLOY_HELP["plan"],
    "results": "canary results: files or folders, searched for *.json (repeatable)",
    "record": "also record the dropped prod jobs as skipped in this results file",
    "format": "text (default) or github (prod-matrix and has-prod to $GITHUB_OUTPUT)",
    "out": "write the filtered plan (surviving prod jobs only) to FILE",
    "repo": DEPLOY_HELP["repo"]})
@user_errors
def filter(c: Context, plan: str | None = None, results: list[str] | None = None,
           record: str | None = None, format: str = "text", out: str | None = None,
           repo: str | None = None) -> None:
    """Keep only the prod jobs of clusters whose canary succeeded (exact names)."""
    from .commands import run_filter

    root = repo_dir(c, repo)
    paths = [Path(p) for p in results or [setting(c, "results", None)]]
    run_filter(_plan_file(c, root, plan), [p if p.is_absolute() else root / p for p in paths],
               record=Path(record) if record else None, fmt=format,
               out=Path(out) if out else None)


@task(iterable=["cluster", "hub", "job"], help=helps(
    cluster="only prod hubs of these clusters (repeatable)",
    hub="only these hubs (with --cluster)", job="only these cluster/hub ids (repeatable)"))
@user_errors
def prod(c: Context, plan: str | None = None, cluster: list[str] | None = None,
         hub: list[str] | None = None, job: list[str] | None = None,
         results: str | None = None, jobs: int | None = None, per_cluster: int | None = None,
         timeout: str | None = None, atomic: bool = True, retries: int | None = None,
         dry_run: bool = False, helm: str | None = None, kubeconfig_dir: str | None = None,
         log_dir: str | None = None, verbose: bool = False, repo: str | None = None) -> None:
    """Prod stage: upgrade prod hubs in a pool bounded globally and per cluster."""
    from .model import Stage
    from .stages import finish, load_for, run_jobs, select_jobs

    root = repo_dir(c, repo)
    the_plan = _plan_file(c, root, plan)
    clusters, ids = split_list(cluster), split_list(job)
    if hub:
        if len(clusters) != 1:
            raise HubtasksError("--hub needs exactly one --cluster")
        ids += [f"{clusters[0]}/{h}" for h in split_list(hub)]
    selected = select_jobs(the_plan, stages=(Stage.PROD,), clusters=clusters, ids=ids)
    options = stage_options(c, repo=root, results=results, jobs=jobs, per_cluster=per_cluster,
                            timeout=timeout, atomic=atomic, retries=retries, dry_run=dry_run,
                            helm=helm, kubeconfig_dir=kubeconfig_dir, log_dir=log_dir,
                            verbose=verbose)
    config = load_for(root, (j.cluster for j in selected))
    results_ = run_jobs(config, the_plan, selected, options, mode="prod")
    _exit(finish(results_, title="prod"))


@task(iterable=["label"], help=helps(
    "plan", base="git ref to plan against (default main)",
    head="git ref to plan (default HEAD)", worktree="also count uncommitted changes",
    everything="deploy every release", label="a deployer:* label (repeatable)",
    pipeline="start a cluster's prod hubs as soon as its canary succeeded (no barrier "
             "across clusters); --no-pipeline waits for every canary first",
    canary_workers="at most N clusters' canaries at once (default 8)"))
@user_errors
def deploy_all(c: Context, base: str | None = None, head: str = "HEAD", worktree: bool = False,
               everything: bool = False, label: list[str] | None = None,
               pipeline: bool = True, results: str | None = None,
               jobs: int | None = None, per_cluster: int | None = None,
               canary_workers: int | None = None,
               timeout: str | None = None, atomic: bool = True,
               retries: int | None = None, dry_run: bool = False, helm: str | None = None,
               kubeconfig_dir: str | None = None, log_dir: str | None = None,
               verbose: bool = False, repo: str | None = None) -> None:
    """Plan, canary, filter and prod in one process."""
    from .commands import run_deploy_all
    from .planning import PlanOptions

    root = repo_dir(c, repo)
    options = stage_options(c, repo=root, results=results, jobs=jobs, per_cluster=per_cluster,
                            timeout=timeout, atomic=atomic, retries=retries, dry_run=dry_run,
                            helm=helm, kubeconfig_dir=kubeconfig_dir, log_dir=log_dir,
                            verbose=verbose)
    if canary_workers:
        options = dataclasses.replace(options, canary_workers=int(canary_workers))
    plan_options = PlanOptions(base=setting(c, "base", base), head=head, worktree=worktree,
                               labels=tuple(label or ()), everything=everything)
    _exit(run_deploy_all(root, plan_options, options,
                         pipelined=pipeline,
                         plan_out=root / setting(c, "plan", None)))


def _deploy_one(c: Context, cluster: str, hub: str | None, kwargs: dict[str, Any]) -> None:
    from .commands import manual_plan
    from .stages import finish, load_for, run_jobs

    root = repo_dir(c, kwargs.pop("repo"))
    config = load_for(root, [cluster])
    the_plan = manual_plan(config, cluster, hub)
    options = stage_options(c, repo=root, per_cluster=None, jobs=None, **kwargs)
    results_ = run_jobs(config, the_plan, list(the_plan.jobs), options, mode="prod")
    _exit(finish(results_, title="deploy"))


@task(help=helps("plan", "jobs", "per_cluster", cluster="the cluster", hub="the hub"))
@user_errors
def deploy_hub(c: Context, cluster: str, hub: str, results: str | None = None,
               timeout: str | None = None, atomic: bool = True,
               retries: int | None = None, dry_run: bool = False, helm: str | None = None,
               kubeconfig_dir: str | None = None, log_dir: str | None = None,
               verbose: bool = False, repo: str | None = None) -> None:
    """Upgrade one hub now, whatever the plan says (manual use)."""
    _deploy_one(c, cluster, hub, dict(
        results=results, timeout=timeout, atomic=atomic, retries=retries, dry_run=dry_run,
        helm=helm, kubeconfig_dir=kubeconfig_dir, log_dir=log_dir, verbose=verbose, repo=repo))


@task(help=helps("plan", "jobs", "per_cluster", cluster="the cluster"))
@user_errors
def deploy_support(c: Context, cluster: str, results: str | None = None,
                   timeout: str | None = None, atomic: bool = True,
                   retries: int | None = None, dry_run: bool = False, helm: str | None = None,
                   kubeconfig_dir: str | None = None, log_dir: str | None = None,
                   verbose: bool = False, repo: str | None = None) -> None:
    """Upgrade one cluster's support release now (manual use)."""
    _deploy_one(c, cluster, None, dict(
        results=results, timeout=timeout, atomic=atomic, retries=retries, dry_run=dry_run,
        helm=helm, kubeconfig_dir=kubeconfig_dir, log_dir=log_dir, verbose=verbose, repo=repo))


@task(iterable=["results"], help={
    "results": "results files or folders (repeatable; default .hubtasks/results.json)",
    "plan": "only report this plan's jobs; a planned job without a result fails the report",
    "format": "table (default) or github (also a markdown table to $GITHUB_STEP_SUMMARY)",
    "repo": DEPLOY_HELP["repo"]})
@user_errors
def report(c: Context, results: list[str] | None = None, plan: str | None = None,
           format: str = "table", repo: str | None = None) -> None:
    """Merge results files and print every job's outcome; non-zero exit if any failed."""
    from .commands import run_report
    from .planfile import load_plan

    root = repo_dir(c, repo)
    paths = [Path(p) for p in results or [setting(c, "results", None)]]
    the_plan = load_plan(Path(plan)) if plan else None
    _exit(run_report([p if p.is_absolute() else root / p for p in paths], plan=the_plan,
                     fmt=format))


@task(iterable=["cluster"], help={
    "cluster": "only these clusters (repeatable)",
    "jobs": "at most N helm processes at once (default 8)",
    "helm": DEPLOY_HELP["helm"],
    "repo": "config repo to validate (default: current directory)"})
@user_errors
def validate(c: Context, cluster: list[str] | None = None, jobs: int | None = None,
             helm: str | None = None, repo: str | None = None) -> None:
    """Schema and file checks, then `helm lint` + `helm template` of every release."""
    from .stages import base_env
    from .validate import exit_code, render_validation, validate_command

    results = validate_command(repo_dir(c, repo), clusters=split_list(cluster),
                               jobs=int(setting(c, "jobs", jobs)),
                               helm=Path(helm) if helm else None, env=base_env())
    print(f"\nvalidate\n{render_validation(results)}")
    _exit(exit_code(results))


@task(help={"helm_major": "only this helm major (3 or 4); default both",
            "deploy_only": "only what deploys need (helm, sops): no root, no local clusters"})
@user_errors
def install_tools(c: Context, helm_major: int | None = None, deploy_only: bool = False) -> None:
    """Install what is missing: helm v3/v4, sops, etcd and the control-plane binaries."""
    from .tools import helm_path, install_all, sops_path

    majors = (int(helm_major),) if helm_major else (3, 4)
    if deploy_only:
        found = {"helm": helm_path(majors[0] if helm_major else None), "sops": sops_path()}
    else:
        found = install_all(helm_majors=majors)
    for name, path in found.items():
        print(f"{name:>24}: {path}")


@task(help={"keep": "leave the local clusters running and print how to use them",
            "helm_major": "use helm 3 or 4 (default: helm on PATH, else 4)",
            "workdir": "work folder (default .hubtasks/demo)",
            "pipeline": "pipelined (default) or staged (--no-pipeline) deploy",
            "timeout": "helm --timeout per release (default 60s; the broken hub waits this long)",
            "repo": "config repo whose example to deploy (default: current directory)"})
@user_errors
def demo(c: Context, keep: bool = False, helm_major: int | None = None,
         workdir: str | None = None, pipeline: bool = True,
         timeout: str = "60s", repo: str | None = None) -> None:
    """Deploy the example config to local clusters, with one staging hub made to fail."""
    from .commands import run_demo
    from .deploy import parse_timeout

    root = repo_dir(c, repo)
    work = Path(workdir).resolve() if workdir else Path(".hubtasks/demo").resolve()
    _exit(run_demo(root, work, keep=keep, helm_major=int(helm_major) if helm_major else None,
                   pipelined=pipeline,
                   timeout=parse_timeout(timeout)))


@task(help={"workdir": "the demo's work folder (default .hubtasks/demo)"})
@user_errors
def demo_stop(c: Context, workdir: str | None = None) -> None:
    """Stop local clusters left running by `demo --keep`."""
    from .localk8s import stop_detached

    work = Path(workdir).resolve() if workdir else Path(".hubtasks/demo").resolve()
    print(stop_detached(work / "clusters.json"))


@task(help={"plan": "plan JSON written by `plan --out` (default: .hubtasks/plan.json)",
            "pr": "pull request number (default: from $GITHUB_EVENT_PATH)",
            "gh_repo": "OWNER/NAME of the pull request (default: $GITHUB_REPOSITORY)"})
@user_errors
def pr_comment(c: Context, plan: str | None = None, pr: str | None = None,
               gh_repo: str | None = None) -> None:
    """Post the plan as ONE pull request comment, updated in place on later pushes."""
    from .github import GitHubError, comment_target, publish_plan_comment
    from .planfile import load_plan

    target = comment_target(os.environ, pr=pr, repo=gh_repo)
    try:
        comment = publish_plan_comment(load_plan(Path(setting(c, "plan", plan))), target)
    except GitHubError as err:
        if err.status != 403:
            raise
        print(f"::warning::plan comment skipped: the token is read-only (a fork's PR?): {err}")
        return
    print(f"plan comment {'created' if comment.created else 'updated'}: {comment.url}")


ns = Collection(plan, check_config, validate, canary, filter, prod, deploy_all, deploy_hub,
                deploy_support, report, install_tools, demo, demo_stop, pr_comment)
ns.configure({"hubtasks": dict(DEFAULTS)})

__all__ = ["ns"]
