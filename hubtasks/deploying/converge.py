"""`status`, `plan --against deployed` and `deploy-all --against deployed [--prune]`.

The plan comes from each release's deployed state instead of a git diff; deploying it is the
usual deploy-all. `--prune` then uninstalls orphans, but only those whose latest revision
carries hubtasks' marker, and only on clusters where every job of this run succeeded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from hubtasks.binaries import find_helm
from hubtasks.config.load import load_config
from hubtasks.config.model import RepoConfig
from hubtasks.deploying.deployed import Snapshot, cluster_credentials, read_states
from hubtasks.deploying.scheduler import run_pipelined, run_staged
from hubtasks.deploying.session import run_jobs
from hubtasks.deploying.stages import StageRun
from hubtasks.model import HubtasksError, Plan
from hubtasks.options import RunOptions
from hubtasks.planning.deployed import ReleaseState, State, plan_against
from hubtasks.planning.planfile import new_plan_id, save_plan
from hubtasks.planning.repo import resolve_ref

AGAINST = ("deployed",)


def check_against(against: str | None) -> None:
    if against is not None and against not in AGAINST:
        raise HubtasksError(f"--against must be one of {', '.join(AGAINST)}, not {against!r}")


def status(options: RunOptions, clusters: Sequence[str] = ()) -> list[ReleaseState]:
    """Every release's state (the repo's and the clusters')."""
    config = load_config(options.repo)
    with cluster_credentials(config, options) as credentials:
        return read_states(config, options, credentials, clusters).states


def plan_deployed(options: RunOptions) -> tuple[RepoConfig, Plan, Snapshot]:
    """The plan of every release that is not up-to-date, from a fresh read of the clusters."""
    config = load_config(options.repo)
    with cluster_credentials(config, options) as credentials:
        snapshot = read_states(config, options, credentials)
    plan = plan_against(config, snapshot.states, head=resolve_ref(options.repo, "HEAD"))
    return config, replace(plan, plan_id=new_plan_id()), snapshot


@dataclass(frozen=True, kw_only=True)
class Pruned:
    """What `--prune` did to one orphan."""

    cluster: str
    release: str
    namespace: str
    outcome: str  # "uninstalled", "kept: <why>" or "failed: <error>"

    @property
    def failed(self) -> bool:
        return self.outcome.startswith("failed")


def prune(snapshot: Snapshot, run: StageRun) -> list[Pruned]:
    """Uninstall orphans hubtasks installed, on clusters whose jobs all succeeded."""
    bad = {r.cluster for r in run.results if not r}
    out = []
    for s in snapshot.states:
        if s.state is not State.ORPHAN:
            continue
        access = snapshot.access.get(s.cluster)
        if not s.marked:
            outcome = "kept: not installed by hubtasks (no marker in its description)"
        elif s.cluster in bad:
            outcome = "kept: a job of this cluster did not succeed"
        elif access is None:
            outcome = "kept: cluster unreachable"
        else:
            ok, text = access.run("uninstall", s.release, "--namespace", s.namespace)
            outcome = "uninstalled" if ok else f"failed: {text.splitlines()[0] if text else ''}"
        out.append(Pruned(cluster=s.cluster, release=s.release, namespace=s.namespace,
                          outcome=outcome))
    return out


def unreachable_clusters(states: Iterable[ReleaseState]) -> list[str]:
    """The clusters that could not be read: nothing is known of them."""
    return sorted({s.cluster for s in states if s.state is State.UNREACHABLE})


def deploy_against(options: RunOptions, *, pipelined: bool, prune_orphans: bool,
                   on_plan: Callable[[Plan], None] | None = None,
                   ) -> tuple[StageRun, list[Pruned], list[str]]:
    """Plan against deployed state, deploy that plan, then prune when asked; also the
    clusters that could not be read (not converged)."""
    find_helm(options.env, explicit=options.helm)
    config, plan, snapshot = plan_deployed(options)
    unreachable = unreachable_clusters(snapshot.states)
    save_plan(plan, options.plan)
    if on_plan is not None:
        on_plan(plan)
    schedule = run_pipelined if pipelined else run_staged
    results = run_jobs(config, plan, list(plan.jobs), options, schedule) if plan.jobs else []
    run = StageRun(plan=plan, results=results)
    if not prune_orphans or not plan.orphans:
        return run, [], unreachable
    with cluster_credentials(config, options) as credentials:  # read again: state may move
        fresh = read_states(config, options, credentials,
                            sorted({o.cluster for o in plan.orphans}))
        return run, prune(fresh, run), unreachable
