"""Human and machine outputs of a plan: tables, GitHub Actions matrices and summaries."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from .model import Job, Plan, Stage

MATRIX_LIMIT = 256  # GitHub Actions rejects a matrix of more than 256 legs
STAGE_TITLES = {Stage.SUPPORT: "Support", Stage.STAGING: "Staging hubs", Stage.PROD: "Prod hubs"}


def _rows(jobs: Iterable[Job], sep: str) -> list[list[str]]:
    return [[j.cluster, j.hub or "", j.chart, sep.join(j.reasons)] for j in jobs]


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
        parts.append(tabulate(_rows(jobs, sep), headers=["cluster", "hub", "chart", "reasons"],
                              tablefmt=fmt, maxcolwidths=widths))
    parts.extend(_extras(plan, markdown))
    return "\n\n".join(parts) + "\n"


def _extras(plan: Plan, markdown: bool) -> list[str]:
    out: list[str] = []
    if plan.removed:
        rows = [[r.cluster, r.hub or "(whole cluster)"] for r in plan.removed]
        title = f"Removed at head, not uninstalled ({len(rows)})"
        out += [f"### {title}" if markdown else title,
                tabulate(rows, headers=["cluster", "hub"], tablefmt="github" if markdown
                         else "simple")]
    for cluster in plan.no_canary:
        out.append(f"WARNING: cluster {cluster!r} has prod hubs planned but no canary "
                   "(no staging hub and no support job)")
    out += [f"note: {note}" for note in plan.notes]
    return out


def plan_summary_line(plan: Plan) -> str:
    """`3 support, 4 staging, 10 prod jobs on 5 clusters`."""
    counts = ", ".join(f"{len(plan.stage_jobs(s))} {s.value}" for s in Stage)
    return f"{counts} jobs on {len(plan.clusters())} clusters"


def batch_legs(items: Sequence[str], limit: int = MATRIX_LIMIT) -> list[list[str]]:
    """Split items into at most `limit` legs of near-equal size, keeping order."""
    if not items:
        return []
    legs = min(limit, len(items))
    size, extra = divmod(len(items), legs)
    out, start = [], 0
    for leg in range(legs):
        end = start + size + (1 if leg < extra else 0)
        out.append(list(items[start:end]))
        start = end
    return out


def _leg_name(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{items[0]} (+{len(items) - 1})"


def canary_matrix(plan: Plan, limit: int = MATRIX_LIMIT) -> dict[str, Any]:
    """Legs for `canary`: one per cluster with support or staging jobs (batched past limit)."""
    clusters = sorted({j.cluster for j in plan.jobs if j.stage is not Stage.PROD})
    return {"include": [{"name": _leg_name(b), "clusters": " ".join(b)}
                        for b in batch_legs(clusters, limit)]}


def prod_matrix(jobs: Iterable[Job], limit: int = MATRIX_LIMIT) -> dict[str, Any]:
    """Legs for `prod`: one per prod hub (`cluster/hub`), batched past the limit."""
    ids = [str(j.key) for j in jobs if j.stage is Stage.PROD]
    return {"include": [{"name": _leg_name(b), "jobs": " ".join(b)}
                        for b in batch_legs(ids, limit)]}


def github_output(values: dict[str, str], path: Path) -> None:
    """Append `name=value` pairs to $GITHUB_OUTPUT (heredoc form for multi-line values)."""
    with path.open("a", encoding="utf-8") as handle:
        for name, value in values.items():
            if "\n" in value:
                marker = f"ghadelimiter_{uuid.uuid4().hex}"
                handle.write(f"{name}<<{marker}\n{value}\n{marker}\n")
            else:
                handle.write(f"{name}={value}\n")


def plan_outputs(plan: Plan) -> dict[str, str]:
    """The plan's GitHub outputs: matrices as compact JSON plus has-* flags."""
    canary = canary_matrix(plan)
    prod = prod_matrix(plan.jobs)
    return {
        "canary-matrix": json.dumps(canary, separators=(",", ":")),
        "prod-matrix": json.dumps(prod, separators=(",", ":")),
        "has-canary": str(bool(canary["include"])).lower(),
        "has-prod": str(bool(prod["include"])).lower(),
        "head": plan.head or "",
    }


def append_summary(markdown: str, path: Path) -> None:
    """Append markdown to $GITHUB_STEP_SUMMARY."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(markdown)
        if not markdown.endswith("\n"):
            handle.write("\n")


def plan_markdown(plan: Plan, title: str = "hubtasks plan") -> str:
    """The plan as a markdown summary (tabulate's github format)."""
    head = f"## {title}\n\n{plan_summary_line(plan)}"
    if plan.base or plan.head:
        head += f" (base `{(plan.base or '-')[:12]}`, head `{(plan.head or 'work tree')[:12]}`)"
    return f"{head}\n\n{plan_tables(plan, fmt='github')}"
