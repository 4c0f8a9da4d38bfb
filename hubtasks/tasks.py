"""The invoke tasks: a thin CLI. Each task turns its flags into options, calls library code,
prints the outcome through a reporter and maps it to an exit code.

The same collection serves `invoke ...` in this repo (through the root tasks.py) and the
`hubtasks` console script in any config repo (hubtasks.cli). Imports inside the tasks keep
`hubtasks --list` and `plan` from loading what they don't use.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import invoke
from invoke import Collection, Context, Exit

from hubtasks.endings import file_error, terminate_as_interrupt
from hubtasks.model import HubtasksError
from hubtasks.options import DEFAULTS, given_path, repo_root, run_options, split_list

F = TypeVar("F", bound=Callable[..., Any])


class Task(invoke.Task):  # type: ignore[type-arg]  # generic only in invoke's annotations
    """invoke's Task with two of its flag quirks fixed.

    invoke pops each help text as it builds a task's flags, so building them twice (cli.py
    parses argv once itself for `values C H`) would print `--help` without texts; and when
    every letter of a flag's name is taken, it picks the `-` of `per-cluster` as the short
    flag (`--`). Help texts are kept, and that flag gets no short form (the others keep
    theirs).
    """

    def get_arguments(self, *args: Any, **kwargs: Any) -> list[Any]:
        kept = dict(self.help)
        try:
            return list(super().get_arguments(*args, **kwargs))
        finally:
            self.help = kept

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts: dict[str, Any] = super().arg_opts(name, default, taken_names)
        if "-" in opts["names"]:  # dropped, yet still taken: later flags keep their letters
            opts["names"].remove("-")
            taken_names.add("-")
        return opts


task = functools.partial(invoke.task, klass=Task)


def user_errors(func: F) -> F:
    """Turn HubtasksError into a clean message and exit code 2 (never a traceback); so is a
    file hubtasks could not write or read where it was told to (a read-only or full disk,
    a results path under a file: `OSError` naming a file)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with terminate_as_interrupt():
                code = func(*args, **kwargs)
        except HubtasksError as err:
            raise Exit(f"hubtasks: error: {err}", code=2) from None
        except OSError as err:
            message = file_error(err)
            if message is None:
                raise
            raise Exit(f"hubtasks: error: {message}", code=2) from None
        if code:
            raise Exit(code=code)
        return None

    return wrapper  # type: ignore[return-value]


PLAN_HELP = {
    "base": "git ref to compare against (default: main); the diff starts at the merge-base",
    "head": "git ref to plan (default: HEAD)",
    "worktree": "also count uncommitted changes and untracked files",
    "everything": "plan every release",
    "label": "a PR label such as deployer:deploy-hubs (repeatable)",
}
DEPLOY_HELP = {
    "plan": "plan JSON written by `plan --out` (default .hubtasks/plan.json)",
    "results": "results JSON file to record outcomes in (default .hubtasks/results.json)",
    "jobs": "at most N prod upgrades at once (default 8)",
    "per_cluster": "at most N prod upgrades at once per cluster (default 4)",
    "timeout": "helm --timeout per release: seconds or Go units, e.g. 10m (default 10m)",
    "kill_grace": "how long after helm's own timeout hubtasks kills it (default 60s)",
    "atomic": "roll back a failed upgrade (--atomic / --rollback-on-failure); default on",
    "retries": "retries of transient helm errors (default 2)",
    "repair": "roll back (or uninstall) a release stuck in pending-* before upgrading; "
              "--no-repair fails with the helm command that repairs it",
    "lock": "hold a coordination.k8s.io Lease per release while upgrading it; --no-lock "
            "skips it (see README, 'Locking and repair')",
    "lock_timeout": "how long to wait for another run's Lease, e.g. 5m (default 5m)",
    "dry_run": "render every release with `helm template` instead; no cluster needed",
    "health_check": "check each upgraded hub answers (hubtasks.yaml health_check); "
                    "--no-health-check skips it for this run",
    "helm": "helm binary (default: $HUBTASKS_HELM, PATH, then the install-tools cache)",
    "kubeconfig_dir": "folder of <cluster>.yaml kubeconfigs (default from hubtasks.yaml)",
    "log_dir": "folder for per-job logs and the combined log (default .hubtasks/logs)",
    "verbose": "also log debug lines to the combined log",
    "repo": "config repo (default: current directory)",
}


AGAINST_HELP = {
    "against": "`deployed`: plan from what the clusters run instead of a git diff",
    "helm": DEPLOY_HELP["helm"], "kubeconfig_dir": DEPLOY_HELP["kubeconfig_dir"],
    "jobs": "with --against: read at most N clusters at once (default 8)"}


def helps(*drop: str, **extra: str) -> dict[str, str]:
    """DEPLOY_HELP without options a task lacks, plus its own."""
    return {**{k: v for k, v in DEPLOY_HELP.items() if k not in drop}, **extra}


@task(iterable=["files", "label"], help={
    **PLAN_HELP, "files": "changed file paths (repeatable; one per line); skips git diff",
    "files_from": "read changed file paths from FILE ('-' for stdin)",
    "format": "table (default), json or github", "repo": DEPLOY_HELP["repo"],
    "out": "also save the plan JSON to FILE for the later stages",
    "strict": "exit 2 when any release or cluster has invalid inputs (for PR checks)",
    **AGAINST_HELP})
@user_errors
def plan(c: Context, base: str | None = None, head: str = "HEAD", worktree: bool = False,
         files: list[str] | None = None, files_from: str | None = None,
         label: list[str] | None = None, everything: bool = False, format: str = "table",
         out: str | None = None, repo: str | None = None, against: str | None = None,
         helm: str | None = None, kubeconfig_dir: str | None = None,
         jobs: int | None = None, strict: bool = False) -> int:
    """Decide which releases need `helm upgrade`, and why."""
    from hubtasks.plancmd import plan_command

    return plan_command(c, locals())


@task(help={"repo": "config repo to check (default: current directory)"})
@user_errors
def check_config(c: Context, repo: str | None = None) -> None:
    """Load and validate every cluster.yaml (schema and file checks), without helm."""
    from hubtasks.config.load import load_config
    from hubtasks.config.valuefiles import check_values

    config = load_config(repo_root(c, locals()))
    check_values(config)
    hubs = sum(len(cl.hubs) for cl in config.clusters.values())
    print(f"config OK: {len(config.clusters)} clusters, {hubs} hubs")


@task(iterable=["cluster"], help=helps(
    "per_cluster", cluster="only these clusters (repeatable)",
    jobs="at most N clusters' canaries at once (default: hubtasks.canary_workers, 8)"))
@user_errors
def canary(c: Context, plan: str | None = None, cluster: list[str] | None = None,
           results: str | None = None, jobs: int | None = None, timeout: str | None = None,
           kill_grace: str | None = None, atomic: bool = True, retries: int | None = None,
           dry_run: bool = False,
           health_check: bool = True, repair: bool = True, lock: bool = True,
           lock_timeout: str | None = None,
           helm: str | None = None, kubeconfig_dir: str | None = None,
           log_dir: str | None = None, verbose: bool = False, repo: str | None = None) -> int:
    """Canary stage: per cluster, support then staging hubs; clusters in parallel."""
    from hubtasks.deploying import stages
    from hubtasks.output.reports import finish

    run = stages.canary(run_options(c, locals(), jobs_means="canary_workers"),
                        split_list(cluster))
    return finish(run.results, title="canary")


@task(iterable=["results"], help={
    "plan": DEPLOY_HELP["plan"],
    "results": "canary results: files or folders, searched for *.json (repeatable)",
    "record": "also record the dropped prod jobs as skipped in this results file",
    "format": "text (default) or github (prod-matrix, has-prod and prod-max-parallel to "
              "$GITHUB_OUTPUT)",
    "out": "write the filtered plan (surviving prod jobs only) to FILE",
    "jobs": "github: at most N prod legs at once, the matrix's max-parallel (default 8)",
    "per_cluster": "github: at most N prod legs per cluster (default 4)",
    "repo": DEPLOY_HELP["repo"]})
@user_errors
def filter(c: Context, plan: str | None = None, results: list[str] | None = None,
           record: str | None = None, format: str = "text", out: str | None = None,
           jobs: int | None = None, per_cluster: int | None = None,
           repo: str | None = None) -> None:
    """Keep only the prod jobs of clusters whose canary succeeded (exact names)."""
    from hubtasks.deploying.session import digest_lookup, filter_prod
    from hubtasks.output.reports import check_format, show_filter
    from hubtasks.planning.planfile import load_plan, save_filtered

    check_format(format, ("text", "github"))
    options = run_options(c, {**locals(), "results": None})
    paths = [given_path(p) for p in results] if results else [options.results]
    the_plan = load_plan(options.plan)
    kept, dropped = filter_prod(the_plan, paths, record_to=Path(record) if record else None,
                                digest_of=digest_lookup(options.repo))
    if out:
        save_filtered(the_plan, kept, Path(out))
    show_filter(kept, dropped, format, os.environ, options.limits)


@task(iterable=["cluster", "hub", "job"], help=helps(
    cluster="only prod hubs of these clusters (repeatable)",
    hub="only these hubs (with --cluster)", job="only these cluster/hub ids (repeatable)"))
@user_errors
def prod(c: Context, plan: str | None = None, cluster: list[str] | None = None,
         hub: list[str] | None = None, job: list[str] | None = None,
         results: str | None = None, jobs: int | None = None, per_cluster: int | None = None,
         timeout: str | None = None, kill_grace: str | None = None, atomic: bool = True,
         retries: int | None = None, dry_run: bool = False,
         health_check: bool = True, repair: bool = True, lock: bool = True,
         lock_timeout: str | None = None,
         helm: str | None = None,
         kubeconfig_dir: str | None = None, log_dir: str | None = None, verbose: bool = False,
         repo: str | None = None) -> int:
    """Prod stage: upgrade prod hubs in a pool bounded globally and per cluster."""
    from hubtasks.deploying import stages
    from hubtasks.output.reports import finish

    clusters = split_list(cluster)
    ids = split_list(job) + stages.hub_ids(clusters, split_list(hub))
    run = stages.prod(run_options(c, locals()), clusters, ids)
    return finish(run.results, title="prod")


@task(iterable=["label"], help=helps(
    **PLAN_HELP,
    plan="save the plan JSON to FILE (default .hubtasks/plan.json; with --results R.json: "
         "R.plan.json)",
    pipeline="start a cluster's prod hubs as soon as its canary succeeded (no barrier "
             "across clusters); --no-pipeline waits for every canary first",
    canary_workers="at most N clusters' canaries at once (default 8)",
    against=AGAINST_HELP["against"],
    prune="with --against deployed: uninstall orphans hubtasks installed, on clusters "
          "whose jobs all succeeded"))
@user_errors
def deploy_all(c: Context, base: str | None = None, head: str = "HEAD", worktree: bool = False,
               everything: bool = False, label: list[str] | None = None,
               against: str | None = None, prune: bool = False,
               pipeline: bool = True, results: str | None = None, jobs: int | None = None,
               per_cluster: int | None = None, canary_workers: int | None = None,
               timeout: str | None = None, kill_grace: str | None = None, atomic: bool = True,
               retries: int | None = None, dry_run: bool = False,
               health_check: bool = True, repair: bool = True, lock: bool = True,
               lock_timeout: str | None = None,
               helm: str | None = None,
               kubeconfig_dir: str | None = None, log_dir: str | None = None,
               verbose: bool = False, repo: str | None = None,
               plan: str | None = None) -> int:  # last: earlier flags keep their short forms
    """Plan, canary, filter and prod in one process."""
    from hubtasks.deploying import stages
    from hubtasks.deploying.converge import check_against, deploy_against
    from hubtasks.options import plan_options
    from hubtasks.output.reports import finish, show_planned
    from hubtasks.output.states import show_pruned, show_unreachable

    options = run_options(c, locals(), saves_plan=True)
    check_against(against)
    on_plan = functools.partial(show_planned, options=options, pipelined=pipeline)
    if prune and not against:
        raise HubtasksError("--prune needs --against deployed")
    if against:
        run, pruned, unreachable = deploy_against(options, pipelined=pipeline,
                                                  prune_orphans=prune, on_plan=on_plan)
        code = (finish(run.results, title="deploy-all") if run.results else 0) or \
            show_pruned(pruned)
        return show_unreachable(unreachable, "not converged") or code
    run = stages.deploy_all(options, plan_options(c, locals()), pipelined=pipeline,
                            on_plan=on_plan)
    return finish(run.results, title="deploy-all")


@task(help=helps("plan", "jobs", "per_cluster", cluster="the cluster", hub="the hub"))
@user_errors
def deploy_hub(c: Context, cluster: str, hub: str, results: str | None = None,
               timeout: str | None = None, kill_grace: str | None = None, atomic: bool = True,
               retries: int | None = None, dry_run: bool = False,
               health_check: bool = True, repair: bool = True, lock: bool = True,
               lock_timeout: str | None = None,
               helm: str | None = None,
               kubeconfig_dir: str | None = None, log_dir: str | None = None,
               verbose: bool = False, repo: str | None = None) -> int:
    """Upgrade one hub now, whatever the plan says (manual use)."""
    from hubtasks.deploying import stages
    from hubtasks.output.reports import finish

    return finish(stages.deploy_one(run_options(c, locals()), cluster, hub).results,
                  title="deploy")


@task(help=helps("plan", "jobs", "per_cluster", "health_check", cluster="the cluster"))
@user_errors
def deploy_support(c: Context, cluster: str, results: str | None = None,
                   timeout: str | None = None, kill_grace: str | None = None,
                   atomic: bool = True, retries: int | None = None, dry_run: bool = False,
                   repair: bool = True, lock: bool = True, lock_timeout: str | None = None,
                   helm: str | None = None, kubeconfig_dir: str | None = None,
                   log_dir: str | None = None, verbose: bool = False,
                   repo: str | None = None) -> int:
    """Upgrade one cluster's support release now (manual use)."""
    from hubtasks.deploying import stages
    from hubtasks.output.reports import finish

    return finish(stages.deploy_one(run_options(c, locals()), cluster, None).results,
                  title="deploy")


@task(iterable=["cluster"], help={
    "cluster": "only these clusters (repeatable)", "format": "table (default) or json",
    "jobs": "read at most N clusters at once (default 8)", "helm": DEPLOY_HELP["helm"],
    "kubeconfig_dir": DEPLOY_HELP["kubeconfig_dir"], "repo": DEPLOY_HELP["repo"]})
@user_errors
def status(c: Context, cluster: list[str] | None = None, format: str = "table",
           jobs: int | None = None, helm: str | None = None,
           kubeconfig_dir: str | None = None, repo: str | None = None) -> int:
    """Each release's deployed state: up-to-date, changed, changed-outside, failed, ..."""
    from hubtasks.deploying.converge import status as read_status
    from hubtasks.deploying.converge import unreachable_clusters
    from hubtasks.output.reports import check_format
    from hubtasks.output.states import STATUS_FORMATS, show_states, show_unreachable

    check_format(format, STATUS_FORMATS)
    states = read_status(run_options(c, locals()), split_list(cluster))
    show_states(states, format)
    return show_unreachable(unreachable_clusters(states), "state unknown")


@task(iterable=["results"], help={
    "results": "results files or folders (repeatable; default .hubtasks/results.json)",
    "plan": "only report this plan's jobs; a planned job without a result fails the report",
    "format": "table (default) or github (also a markdown table to $GITHUB_STEP_SUMMARY)",
    "repo": DEPLOY_HELP["repo"]})
@user_errors
def report(c: Context, results: list[str] | None = None, plan: str | None = None,
           format: str = "table", repo: str | None = None) -> int:
    """Merge results files and print every job's outcome; non-zero exit if any failed."""
    from hubtasks.deploying.session import digest_lookup
    from hubtasks.output.reports import check_format, report_results

    check_format(format, ("table", "github"))
    options = run_options(c, {**locals(), "results": None, "plan": None})
    paths = [given_path(p) for p in results] if results else [options.results]
    return report_results(paths, Path(plan) if plan else None, format, os.environ,
                          digest_lookup(options.repo))


@task(iterable=["cluster"], help={
    "cluster": "only these clusters (repeatable)",
    "jobs": "at most N helm processes at once (default 8)",
    "helm": DEPLOY_HELP["helm"], "repo": "config repo to validate (default: current directory)"})
@user_errors
def validate(c: Context, cluster: list[str] | None = None, jobs: int | None = None,
             helm: str | None = None, repo: str | None = None) -> int:
    """Schema and file checks, then `helm lint` + `helm template` of every release."""
    from hubtasks.deploying.validate import exit_code, validate_command
    from hubtasks.output.validation import render_validation

    options = run_options(c, locals())
    found = validate_command(options.repo, clusters=split_list(cluster),
                             jobs=options.limits.jobs, helm=options.helm, env=options.env,
                             work_dir=options.deploy.work_dir,
                             on_start=lambda line: print(line, flush=True))
    print(f"\nvalidate\n{render_validation(found.results)}")
    return exit_code(found.results)


@task(help={"cluster": "the cluster",
            "hub": "the hub, or as `hubtasks values CLUSTER HUB` (default: support release)",
            "merged": "print the one document helm merges them into",
            "repo": "config repo (default: current directory)"})
@user_errors
def values(c: Context, cluster: str, hub: str | None = None, merged: bool = False,
           repo: str | None = None) -> None:
    """The values documents a release gets, in order, with sources; secrets redacted."""
    from hubtasks.deploying.showvalues import show_values

    print(show_values(repo_root(c, locals()), cluster, hub, merged=merged, env=os.environ), end="")


@task(help={"helm_major": "only this helm major (3 or 4); default both",
            "deploy_only": "only what deploys need (helm, sops, kubectl): no root, no clusters"})
@user_errors
def install_tools(c: Context, helm_major: int | None = None, deploy_only: bool = False) -> None:
    """Install what is missing, hash-checked: helm v3/v4, sops, kubectl (and test tools)."""
    from hubtasks.dev.install import install_deploy_tools

    majors = (int(helm_major),) if helm_major else (3, 4)
    found = install_deploy_tools(os.environ, majors)
    if not deploy_only:
        from hubtasks.dev.envtest import install_test_tools

        found |= install_test_tools()
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
         timeout: str = "60s", repo: str | None = None) -> int:
    """Deploy the example config to local clusters, with one staging hub made to fail."""
    from hubtasks.dev.demo import run_demo
    from hubtasks.duration import positive_duration

    work = Path(workdir or ".hubtasks/demo").resolve()
    return run_demo(repo_root(c, locals()), work, keep=keep,
                    helm_major=int(helm_major) if helm_major else None, pipelined=pipeline,
                    timeout=positive_duration(timeout, what="--timeout"))


@task(help={"workdir": "the demo's work folder (default .hubtasks/demo)"})
@user_errors
def demo_stop(c: Context, workdir: str | None = None) -> None:
    """Stop local clusters left running by `demo --keep`."""
    from hubtasks.dev.detached import stop_detached

    print(stop_detached(Path(workdir or ".hubtasks/demo").resolve() / "clusters.json"))


@task(help={"plan": "plan JSON written by `plan --out` (default: .hubtasks/plan.json)",
            "pr": "pull request number (default: from $GITHUB_EVENT_PATH)",
            "gh_repo": "OWNER/NAME of the pull request (default: $GITHUB_REPOSITORY)"})
@user_errors
def pr_comment(c: Context, plan: str | None = None, pr: str | None = None,
               gh_repo: str | None = None) -> None:
    """Post the plan as ONE pull request comment, updated in place on later pushes."""
    from hubtasks.options import Flags, hubtasks_config
    from hubtasks.output.prcomment import comment_target, post_plan_comment
    from hubtasks.planning.planfile import load_plan

    target = comment_target(os.environ, pr=pr, repo=gh_repo)
    path = Flags(hubtasks_config(c), {"plan": plan}).path("plan", repo_root(c, {}))
    print(post_plan_comment(load_plan(path), target))


ns = Collection(plan, status, check_config, validate, canary, filter, prod, deploy_all, deploy_hub,
                deploy_support, report, values, install_tools, demo, demo_stop, pr_comment)
# Numbers as text: invoke casts INVOKE_HUBTASKS_* variables to a default's type, and its
# int() of `abc` is a traceback; as text they reach Flags.integer, which says what is wrong.
ns.configure({"hubtasks": {k: str(v) if isinstance(v, int) else v for k, v in DEFAULTS.items()}})

__all__ = ["ns"]
