"""Tables for people: the plan by stage, and the results of a run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from hubtasks.model import Job, JobResult, Plan, Stage, Status, plan_ordered
from hubtasks.output.console import detail
from hubtasks.output.plaintable import simple_table


def tabulate(*args: Any, **kwargs: Any) -> str:
    """tabulate, imported on first use (plain plan tables don't need it: ~40 ms)."""
    from tabulate import tabulate as render

    return render(*args, **kwargs)


STAGE_TITLES = {Stage.SUPPORT: "Support", Stage.STAGING: "Staging hubs", Stage.PROD: "Prod hubs"}


def _rows(jobs: Iterable[Job], sep: str) -> list[list[str]]:
    return [[j.cluster, j.hub or "", j.chart,
             sep.join([*(f"INVALID: {p}" for p in j.invalid), *j.reasons])] for j in jobs]


def plan_tables(plan: Plan, *, fmt: str = "simple", width: int = 80) -> str:
    """One table per stage, then removed releases and flags; for terminals or markdown."""
    markdown = fmt == "github"
    sep = "<br>" if markdown else "\n"
    parts: list[str] = []
    for stage in Stage:
        jobs = plan.stage_jobs(stage)
        title = f"{STAGE_TITLES[stage]} ({len(jobs)})"
        parts.append(f"### {title}" if markdown else title)
        if not jobs:
            parts.append("_none_" if markdown else "  none")
            continue
        widths = None if markdown else [None, None, None, width]
        rows, headers = _rows(jobs, sep), ["cluster", "hub", "chart", "reasons"]
        plain = simple_table(rows, headers, widths) if fmt == "simple" else None
        parts.append(plain or tabulate(rows, headers=headers, tablefmt=fmt, maxcolwidths=widths))
    parts.extend(_extras(plan, markdown))
    return "\n\n".join(parts) + "\n"


def _extras(plan: Plan, markdown: bool) -> list[str]:
    out: list[str] = []
    if plan.removed:
        rows = [[r.cluster, r.hub or "(support)", "yes" if r.cluster_removed else ""]
                for r in plan.removed]
        title = f"Removed at head, not uninstalled ({len(rows)})"
        out += [f"### {title}" if markdown else title,
                tabulate(rows, headers=["cluster", "release", "cluster removed"],
                         tablefmt="github" if markdown else "simple")]
    if plan.orphans:
        rows = [[o.cluster, o.release, o.namespace] for o in plan.orphans]
        title = f"Orphans: on a cluster, not in the repo ({len(rows)})"
        out += [f"### {title}" if markdown else title,
                tabulate(rows, headers=["cluster", "release", "namespace"],
                         tablefmt="github" if markdown else "simple")]
    for cluster in plan.no_canary:
        out.append(f"WARNING: cluster {cluster!r} has prod hubs planned but no canary "
                   "(no staging hub and no support job)")
    out += [f"note: {note}" for note in plan.notes]
    return out


def plan_summary_line(plan: Plan) -> str:
    """`3 support, 4 staging, 10 prod jobs on 5 clusters`."""
    counts = ", ".join(f"{len(plan.stage_jobs(s))} {s.value}" for s in Stage)
    return f"{counts} jobs on {len(plan.clusters())} clusters"


def render_summary(results: Iterable[JobResult], *, fmt: str = "simple") -> str:
    """A table of every job in plan order, then a count per status."""
    ordered = plan_ordered(results)
    rows = [[r.stage.value, r.cluster, r.hub or "", r.status.value, r.attempts,
             f"{r.duration:.1f}s" if r.started_at is not None or r.duration else "", detail(r)]
            for r in ordered]
    table = tabulate(rows, headers=["stage", "cluster", "hub", "status", "attempts", "duration",
                                    "reason / error"], tablefmt=fmt)
    counts = Counter(r.status for r in ordered)
    totals = ", ".join(f"{counts[s]} {s.value}" for s in Status if counts[s])
    return f"{table}\n\n{len(ordered)} jobs: {totals or 'none'}\n"


def exit_code(results: Iterable[JobResult]) -> int:
    """0 when every job succeeded (or there were none), else 1."""
    return 0 if all(results) else 1
