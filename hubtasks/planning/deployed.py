"""Deployed state: each release's state from what a cluster holds, and the plan from states.

Pure functions over data: the reading (helm list / history) and the repo digests happen in
deploying/deployed.py. A release is (cluster, release name, namespace); hubtasks installs
each release into the namespace of its name, so a repo release matches exactly that pair.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hubtasks.config.model import RepoConfig
from hubtasks.helm import (
    DEPLOYED,
    FAILED,
    PENDING,
    UNINSTALLED,
    UNINSTALLING,
    parse_description,
)
from hubtasks.model import Job, Orphan, Plan
from hubtasks.planning.planner import Key, PlanRequest, build_plan, canary


class State(enum.StrEnum):
    """The state of one release (README, "Deployed state"); the names are a contract."""

    UP_TO_DATE = "up-to-date"
    CHANGED = "changed"
    CHANGED_OUTSIDE = "changed-outside"
    FAILED = "failed"
    PENDING = "pending"
    MISSING = "missing"
    ORPHAN = "orphan"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, kw_only=True)
class Observed:
    """A release's latest revision as helm reports it."""

    release: str
    namespace: str
    revision: int | None
    status: str
    updated: str | None
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class Expected:
    """A release the repo has, with the digest of its inputs."""

    job: Job
    digest: str


@dataclass(frozen=True, kw_only=True)
class ReleaseState:
    """One row of `status`; `reason` (not in the JSON) explains `unreachable`."""

    cluster: str
    hub: str | None
    release: str
    namespace: str
    state: State
    revision: int | None = None
    deployed_head: str | None = None
    deployed_digest: str | None = None
    repo_digest: str | None = None
    helm_status: str | None = None
    updated: str | None = None
    marked: bool = False  # the latest revision carries hubtasks' marker
    reason: str = ""


def state_to_dict(state: ReleaseState) -> dict[str, Any]:
    """The documented JSON object of one release's state."""
    return {"cluster": state.cluster, "hub": state.hub, "release": state.release,
            "namespace": state.namespace, "state": state.state.value,
            "revision": state.revision, "deployed_head": state.deployed_head,
            "deployed_digest": state.deployed_digest, "repo_digest": state.repo_digest,
            "helm_status": state.helm_status, "updated": state.updated}


def repo_releases(config: RepoConfig) -> list[Job]:
    """Every release of the repo as a job (stage, chart), in plan order."""
    return list(build_plan(config, PlanRequest(everything=True)).jobs)


def judge(digest: str, seen: Observed) -> State:
    """The state of a repo release found on its cluster."""
    if seen.status in PENDING or seen.status == UNINSTALLING:
        return State.PENDING
    if seen.status == FAILED:
        return State.FAILED
    if seen.status == UNINSTALLED:
        return State.MISSING
    marker = parse_description(seen.description)
    if marker is None:
        return State.CHANGED_OUTSIDE
    return State.UP_TO_DATE if marker.digest == digest and seen.status == DEPLOYED \
        else State.CHANGED


def _row(cluster: str, hub: str | None, seen: Observed, state: State,
         digest: str | None) -> ReleaseState:
    marker = parse_description(seen.description)
    return ReleaseState(cluster=cluster, hub=hub, release=seen.release,
                        namespace=seen.namespace, state=state, revision=seen.revision,
                        deployed_head=marker.head if marker else None,
                        deployed_digest=marker.digest if marker else None, repo_digest=digest,
                        helm_status=seen.status, updated=seen.updated, marked=bool(marker))


def cluster_states(cluster: str, expected: Sequence[Expected],
                   observed: Sequence[Observed] | str) -> list[ReleaseState]:
    """States of one cluster's releases; `observed` is the read error when it is a string."""
    if isinstance(observed, str):
        return [ReleaseState(cluster=cluster, hub=e.job.hub, release=e.job.release,
                             namespace=e.job.namespace, state=State.UNREACHABLE,
                             repo_digest=e.digest, reason=observed) for e in expected]
    found = {(o.release, o.namespace): o for o in observed}
    out = []
    for e in expected:
        seen = found.pop((e.job.release, e.job.namespace), None)
        if seen is None:
            out.append(ReleaseState(cluster=cluster, hub=e.job.hub, release=e.job.release,
                                    namespace=e.job.namespace, state=State.MISSING,
                                    repo_digest=e.digest))
        else:
            out.append(_row(cluster, e.job.hub, seen, judge(e.digest, seen), e.digest))
    out += [_row(cluster, None, seen, State.ORPHAN, None)
            for _, seen in sorted(found.items())]
    return out


def orphans(states: Iterable[ReleaseState]) -> tuple[Orphan, ...]:
    return tuple(sorted(Orphan(cluster=s.cluster, release=s.release, namespace=s.namespace)
                        for s in states if s.state is State.ORPHAN))


def plan_against(config: RepoConfig, states: Sequence[ReleaseState], *,
                 head: str | None) -> Plan:
    """Plan every repo release that is not up-to-date (and the canaries this calls for).

    Unreachable clusters are not planned (nothing is known of them); a note names them.
    """
    jobs = {(j.cluster, j.hub): j for j in repo_releases(config)}
    reasons: dict[Key, list[str]] = defaultdict(list)
    unreachable: dict[str, str] = {}
    for s in states:
        if s.state is State.UNREACHABLE:
            unreachable[s.cluster] = s.reason
        elif s.state not in (State.UP_TO_DATE, State.ORPHAN) and (s.cluster, s.hub) in jobs:
            reasons[(s.cluster, s.hub)].append(f"deployed state {s.state.value}")
    no_canary = []
    for name in sorted({c for c, _ in reasons}):
        staging, flagged = canary(config.cluster(name), reasons)
        for hub, why in staging.items():
            reasons[(name, hub)].append(why)
        if flagged:
            no_canary.append(name)
    planned = [Job(stage=jobs[k].stage, cluster=k[0], hub=k[1], chart=jobs[k].chart,
                   reasons=tuple(why)) for k, why in reasons.items() if why]
    notes = tuple(f"cluster {c!r} unreachable, not planned: {why.splitlines()[0] if why else ''}"
                  for c, why in sorted(unreachable.items()))
    return Plan(base=None, head=head, jobs=tuple(sorted(planned, key=Job.sort_key)),
                no_canary=tuple(no_canary), notes=notes, orphans=orphans(states))

