"""What each task does, in terms of library calls; tasks.py only parses options."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .model import HubtasksError, Plan
from .planfile import plan_to_json, save_plan
from .planning import PlanOptions, plan_repo
from .report import append_summary, github_output, plan_markdown, plan_outputs, plan_tables


def run_plan(*, repo: Path, base: str, head: str, worktree: bool, files: tuple[str, ...] | None,
             labels: list[str], everything: bool, fmt: str, out: Path | None) -> Plan:
    """`plan`: compute the plan and print it in the chosen format."""
    if fmt not in ("table", "json", "github"):
        raise HubtasksError(f"unknown --format {fmt!r}: use table, json or github")
    options = PlanOptions(base=base, head=head, worktree=worktree, files=files,
                          labels=tuple(labels), everything=everything)
    _, plan = plan_repo(repo, options)
    if out is not None:
        save_plan(plan, out)
    if fmt == "json":
        sys.stdout.write(plan_to_json(plan))
    elif fmt == "github":
        write_github(plan)
    else:
        sys.stdout.write(plan_tables(plan))
    return plan


def write_github(plan: Plan) -> None:
    """Matrices to $GITHUB_OUTPUT, tables to $GITHUB_STEP_SUMMARY (stdout when unset)."""
    outputs = plan_outputs(plan)
    output_path = os.environ.get("GITHUB_OUTPUT")
    if output_path:
        github_output(outputs, Path(output_path))
    else:
        for name, value in outputs.items():
            print(f"{name}={value}")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        append_summary(plan_markdown(plan), Path(summary))
    sys.stdout.write(plan_tables(plan))
