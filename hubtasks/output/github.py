"""GitHub Actions outputs: matrices of legs, `$GITHUB_OUTPUT` values, the step summary."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hubtasks.model import Job, Plan, Stage
from hubtasks.output.tables import plan_summary_line, plan_tables

MATRIX_LIMIT = 256  # GitHub Actions rejects a matrix of more than 256 legs


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


def prod_outputs(jobs: Iterable[Job]) -> dict[str, str]:
    """The filter's GitHub outputs: the surviving prod matrix and has-prod."""
    prod = prod_matrix(jobs)
    return {"prod-matrix": json.dumps(prod, separators=(",", ":")),
            "has-prod": str(bool(prod["include"])).lower()}


def github_env() -> dict[str, str]:
    """The GITHUB_* variables of this process (read once, in the main thread)."""
    return {k: v for k, v in os.environ.items() if k.startswith("GITHUB_")}
