"""GitHub Actions outputs: matrices of legs, `$GITHUB_OUTPUT` values, the step summary."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hubtasks.model import Job, Plan, Stage
from hubtasks.options import Limits
from hubtasks.output.tables import plan_summary_line, plan_tables

MATRIX_LIMIT = 256  # GitHub Actions rejects a matrix of more than 256 legs
PER_CLUSTER = Limits().per_cluster
T = TypeVar("T")


def batch_legs(items: Sequence[T], limit: int = MATRIX_LIMIT) -> list[list[T]]:
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


def prod_lanes(jobs: Iterable[Job], per_cluster: int) -> list[list[str]]:
    """Each cluster's prod hubs (`cluster/hub`) dealt round-robin into at most `per_cluster`
    lanes, in plan order. A lane's hubs run one after another, so at most `per_cluster`
    upgrades run on a cluster at once however many legs run: `prod --per-cluster`'s bound."""
    by_cluster: dict[str, list[str]] = {}
    for job in jobs:
        if job.stage is Stage.PROD:
            by_cluster.setdefault(job.cluster, []).append(str(job.key))
    lanes: list[list[str]] = []
    for ids in by_cluster.values():
        count = min(per_cluster, len(ids))
        lanes.extend(ids[lane::count] for lane in range(count))
    return lanes


def prod_matrix(jobs: Iterable[Job], per_cluster: int = PER_CLUSTER,
                limit: int = MATRIX_LIMIT) -> dict[str, Any]:
    """Legs for `prod`: one per lane (`prod_lanes`), lanes batched into legs past the limit."""
    legs = [[i for lane in batch for i in lane]
            for batch in batch_legs(prod_lanes(jobs, per_cluster), limit)]
    return {"include": [{"name": _leg_name(leg), "jobs": " ".join(leg)} for leg in legs]}


def github_output(values: Mapping[str, str], path: Path) -> None:
    """Append `name=value` pairs to $GITHUB_OUTPUT (heredoc form for multi-line values)."""
    with path.open("a", encoding="utf-8") as handle:
        for name, value in values.items():
            if "\n" in value:
                marker = f"ghadelimiter_{os.urandom(16).hex()}"
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


def publish_outputs(values: Mapping[str, str], env: Mapping[str, str]) -> list[str]:
    """Step outputs to $GITHUB_OUTPUT; outside Actions, the `name=value` lines to print."""
    output_path = env.get("GITHUB_OUTPUT")
    if output_path:
        github_output(values, Path(output_path))
        return []
    return [f"{name}={value}" for name, value in values.items()]


def step_summary(markdown: str, env: Mapping[str, str]) -> bool:
    """Append to $GITHUB_STEP_SUMMARY when set; whether it was."""
    path = env.get("GITHUB_STEP_SUMMARY")
    if path:
        append_summary(markdown, Path(path))
    return bool(path)


def prod_outputs(jobs: Iterable[Job], limits: Limits) -> dict[str, str]:
    """The filter's GitHub outputs: the surviving prod matrix (lanes of at most
    `limits.per_cluster` per cluster), has-prod, and how many legs may run at once
    (`limits.jobs`, the workflow's `max-parallel`)."""
    prod = prod_matrix(jobs, limits.per_cluster)
    return {"prod-matrix": json.dumps(prod, separators=(",", ":")),
            "has-prod": str(bool(prod["include"])).lower(),
            "prod-max-parallel": str(limits.jobs)}

