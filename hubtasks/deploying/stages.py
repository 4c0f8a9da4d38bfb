"""What each deploy task does: pick its jobs from the plan, load their clusters, run them.

One function per task (`canary`, `prod`, `deploy-all`, `deploy-hub`/`deploy-support`), each
returning its results for the task to print; the schedule is passed as a function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hubtasks.binaries import find_helm
from hubtasks.config.model import RepoConfig
from hubtasks.deploying.scheduler import run_canary, run_pipelined, run_prod, run_staged
from hubtasks.deploying.session import load_for, run_jobs, select_jobs
from hubtasks.model import READS_COMMIT, HubtasksError, Job, JobResult, Plan, Stage
from hubtasks.options import PlanOptions, RunOptions
from hubtasks.planning.checkout import config_inputs, uncommitted, uncommitted_note
from hubtasks.planning.planfile import load_plan, new_plan_id, save_plan
from hubtasks.planning.repo import plan_repo, resolve_ref


@dataclass(frozen=True, kw_only=True)
class StageRun:
    """What a stage did: the plan it ran from and every job's result, in plan order."""

    plan: Plan
    results: list[JobResult]


def canary(options: RunOptions, clusters: Sequence[str] = ()) -> StageRun:
    """Per cluster, support then staging hubs; clusters in parallel."""
    plan = load_plan(options.plan)
    jobs = select_jobs(plan, stages=(Stage.SUPPORT, Stage.STAGING), clusters=clusters)
    config = load_for(options.repo, (j.cluster for j in jobs))
    if jobs:
        check_planned_checkout(options.repo, config, plan)
    return StageRun(plan=plan, results=run_jobs(config, plan, jobs, options, run_canary))


def prod(options: RunOptions, clusters: Sequence[str] = (), ids: Sequence[str] = ()) -> StageRun:
    """Prod hubs, bounded globally and per cluster."""
    plan = load_plan(options.plan)
    jobs = select_jobs(plan, stages=(Stage.PROD,), clusters=clusters, ids=ids)
    config = load_for(options.repo, (j.cluster for j in jobs))
    if jobs:
        check_planned_checkout(options.repo, config, plan)
    return StageRun(plan=plan, results=run_jobs(config, plan, jobs, options, run_prod))


def check_planned_checkout(repo: Path, config: RepoConfig, plan: Plan) -> None:
    """A stage upgrades the checkout's files: refuse, as `deploy-all` does, when they are not
    the plan's. The checkout must be the plan's `head` commit, and, for a plan from a diff
    (`reads` the committed files), have no uncommitted config change. A plan of the
    checkout as it is (`--everything`, `--files`; `--worktree`, which has no head) deploys
    it as it is; outside git nothing is known."""
    if plan.head is None:
        return
    checkout = resolve_ref(repo, "HEAD")
    if checkout is None:
        return
    if checkout != plan.head:
        raise HubtasksError(f"the plan is of commit {plan.head[:12]}, but the checkout is at "
                            f"{checkout[:12]}, and a deploy upgrades the checkout's files: "
                            f"check out {plan.head[:12]}, or plan again")
    dirty = config_inputs(config, uncommitted(repo)) if plan.reads == READS_COMMIT else []
    if dirty:
        raise HubtasksError(f"{uncommitted_note(dirty)}; a deploy would upgrade them "
                            "unplanned: commit or stash them, or plan with --worktree")


def hub_ids(clusters: Sequence[str], hubs: Sequence[str]) -> list[str]:
    """`--cluster C --hub H ...` as `C/H` ids."""
    if not hubs:
        return []
    if len(clusters) != 1:
        raise HubtasksError("--hub needs exactly one --cluster")
    return [f"{clusters[0]}/{hub}" for hub in hubs]


def deploy_all(options: RunOptions, plan_options: PlanOptions, *, pipelined: bool,
               on_plan: Callable[[Plan], None] | None = None) -> StageRun:
    """Plan, then canary, filter and prod in one process; the plan is saved before any job
    starts, once this run holds the results file.

    `on_plan` hears the plan before any job starts (to show it).
    """
    find_helm(options.env, explicit=options.helm)  # fail before planning, not after
    config, plan = plan_repo(options.repo, plan_options, deploying=True)
    if on_plan is not None:
        on_plan(plan)
    schedule = run_pipelined if pipelined else run_staged
    return StageRun(plan=plan, results=run_jobs(
        config, plan, list(plan.jobs), options, schedule,
        on_held=lambda: save_plan(plan, options.plan)))  # not while another run holds it


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
        job = Job(stage=entry.stage, cluster=cluster,
                  hub=hub, chart=entry.chart, reasons=("manual deploy",))
    return Plan(base=None, head=resolve_ref(config.root, "HEAD"), jobs=(job,),
                plan_id=new_plan_id())


def deploy_one(options: RunOptions, cluster: str, hub: str | None) -> StageRun:
    """Upgrade one release now, whatever the plan says."""
    config = load_for(options.repo, [cluster])
    plan = manual_plan(config, cluster, hub)
    return StageRun(plan=plan, results=run_jobs(config, plan, list(plan.jobs), options,
                                                run_prod))
