"""Records shared by every stage: plan jobs, statuses and job outcomes.

Data flows one way: config -> changes -> plan -> execute -> results -> report.
These records are the currency between those steps; they hold no behaviour
beyond small derived properties.
"""

from __future__ import annotations

import enum
import functools
import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

SUPPORT_RELEASE = "support"
INTERRUPTED = "interrupted"  # the reason of every job a Ctrl-C stopped or kept from starting


class HubtasksError(Exception):
    """A user-facing error: printed as a message, never as a traceback."""


def utc_now() -> str:
    """Now as ISO 8601 UTC with milliseconds: the time format of every JobResult."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def gc_paused(func: Callable[P, R]) -> Callable[P, R]:
    """Pause the cyclic GC while `func` builds many small objects (~15% faster).

    Loading 20,000 hubs allocates hundreds of thousands of dicts and strings, none
    cyclic garbage; the collector's repeated full passes over them are pure cost.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return wrapper


class Stage(enum.StrEnum):
    """The stage a job runs in; the order of the members is the run order."""

    SUPPORT = "support"
    STAGING = "staging"
    PROD = "prod"


_STAGE_RANK = {stage: index for index, stage in enumerate(Stage)}
CANARY_STAGES = frozenset({Stage.SUPPORT, Stage.STAGING})


def plan_order(stage: Stage, cluster: str, hub: str | None) -> tuple[int, str, str]:
    """The one order of jobs and results everywhere: stage (support, staging, prod), cluster,
    hub (support first)."""
    return (_STAGE_RANK[stage], cluster, hub or "")


class Ordered(Protocol):
    """A job or a result: anything with a stage, a cluster and a hub."""

    @property
    def stage(self) -> Stage: ...
    @property
    def cluster(self) -> str: ...
    @property
    def hub(self) -> str | None: ...


OrderedT = TypeVar("OrderedT", bound=Ordered)


def plan_ordered(items: Iterable[OrderedT]) -> list[OrderedT]:
    """Jobs or results sorted in plan order (`plan_order`)."""
    return sorted(items, key=lambda item: plan_order(item.stage, item.cluster, item.hub))


class Status(enum.StrEnum):
    """The outcome of one job."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    RUNNING = "running"  # a start record: the job began and has no outcome yet


@dataclass(frozen=True, kw_only=True, order=True)
class JobKey:
    """Identifies a release: (cluster, hub) or (cluster, None) for support."""

    cluster: str
    hub: str | None = None

    @property
    def release(self) -> str:
        return self.hub if self.hub is not None else SUPPORT_RELEASE

    @property
    def namespace(self) -> str:
        """The release's namespace: its own name (2i2c's layout: one namespace per hub)."""
        return self.release

    def __str__(self) -> str:
        return f"{self.cluster}/{self.release}"


@dataclass(frozen=True, kw_only=True)
class Job:
    """One planned `helm upgrade`, with the reasons it was planned."""

    stage: Stage
    cluster: str
    hub: str | None
    chart: str
    reasons: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()  # problems with its own inputs: the job fails without helm

    @property
    def key(self) -> JobKey:
        return JobKey(cluster=self.cluster, hub=self.hub)

    @property
    def release(self) -> str:
        return self.key.release

    @property
    def namespace(self) -> str:
        return self.key.namespace

    @property
    def name(self) -> str:
        """A label for logs and tables, e.g. `prod:leap/prod`."""
        return f"{self.stage.value}:{self.key}"

    def sort_key(self) -> tuple[int, str, str]:
        return plan_order(self.stage, self.cluster, self.hub)


@dataclass(frozen=True, kw_only=True)
class Removed:
    """A release present at base but gone at head: a hub, or the support release (hub None).

    `cluster_removed` is set on every release of a cluster whose folder went entirely.
    """

    cluster: str
    hub: str | None = None
    cluster_removed: bool = False


@dataclass(frozen=True, kw_only=True, order=True)
class Orphan:
    """A release on a cluster that the repo does not have (`plan --against deployed`)."""

    cluster: str
    release: str
    namespace: str


READS_COMMIT, READS_CHECKOUT = "commit", "checkout"  # what a plan's files were (Plan.reads)


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The full decision of what to deploy; pure data, deterministic order."""

    base: str | None
    head: str | None
    jobs: tuple[Job, ...] = ()
    removed: tuple[Removed, ...] = ()
    no_canary: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    orphans: tuple[Orphan, ...] = ()
    plan_id: str | None = None  # the run's identity: every record of this plan carries it
    # READS_COMMIT: a diff plan, of head's committed files (a deploy needs a clean checkout
    # of head); READS_CHECKOUT: the checkout as it is (--everything, --files, --worktree)
    reads: str = READS_CHECKOUT

    def stage_jobs(self, stage: Stage) -> tuple[Job, ...]:
        return tuple(j for j in self.jobs if j.stage is stage)

    def clusters(self) -> tuple[str, ...]:
        return tuple(sorted({j.cluster for j in self.jobs}))

    def for_cluster(self, cluster: str) -> tuple[Job, ...]:
        return tuple(j for j in self.jobs if j.cluster == cluster)


@dataclass(frozen=True, kw_only=True)
class JobResult:
    """The recorded outcome of one job; truthy when it succeeded.

    Times are ISO 8601 UTC strings; `duration` is in seconds. `reason` says why a
    job was skipped or cancelled (e.g. the failed canary that stopped it). `plan_id` is
    the plan the record belongs to, `digest` the release's input digest, `dry_run` marks a
    `helm template` record (never a real outcome), `run` the recording process (`pid@host`).
    """

    stage: Stage
    cluster: str
    hub: str | None
    status: Status
    attempts: int = 0
    started_at: str | None = None
    ended_at: str | None = None
    duration: float = 0.0
    exit_code: int | None = None
    error: str = ""
    log: str | None = None
    head: str | None = None
    reason: str = ""
    plan_id: str | None = None
    digest: str | None = None
    dry_run: bool = False
    run: str | None = None
    repaired: str = ""  # how a stuck (pending-*) release was repaired before the upgrade

    def __bool__(self) -> bool:
        return self.status is Status.SUCCEEDED

    @property
    def key(self) -> JobKey:
        return JobKey(cluster=self.cluster, hub=self.hub)

    @property
    def name(self) -> str:
        return f"{self.stage.value}:{self.key}"
