"""What the tasks print: the plan in each format, the filter's verdicts, run summaries.

These are the reporters: library code returns values, and only these functions (and the
console reporter during a run) write to stdout, `$GITHUB_OUTPUT` or the step summary.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hubtasks.model import HubtasksError, Job, JobResult, Plan
from hubtasks.options import Limits, RunOptions
from hubtasks.output.github import (
    plan_markdown,
    plan_outputs,
    prod_outputs,
    publish_outputs,
    step_summary,
)
from hubtasks.output.tables import exit_code, plan_tables, render_summary

if TYPE_CHECKING:
    from hubtasks.runrecords import DigestOf

PLAN_FORMATS = ("table", "json", "github")


def check_format(fmt: str, allowed: Sequence[str]) -> None:
    """Refuse an unknown --format before anything runs."""
    if fmt not in allowed:
        raise HubtasksError(f"unknown --format {fmt!r}: use {', '.join(allowed)}")


def show_plan(plan: Plan, fmt: str, env: Mapping[str, str]) -> None:
    """The plan as tables, as JSON, or as GitHub outputs + step summary + tables."""
    from hubtasks.planning.planfile import plan_to_json

    if fmt == "json":
        sys.stdout.write(plan_to_json(plan))
        return
    if fmt == "github":
        for line in publish_outputs(plan_outputs(plan), env):
            print(line)
        step_summary(plan_markdown(plan), env)
    sys.stdout.write(plan_tables(plan))


def show_filter(kept: Sequence[Job], dropped: Sequence[JobResult], fmt: str,
                env: Mapping[str, str], limits: Limits) -> None:
    """Each dropped prod job with its reason, the counts, and (github) the prod matrix."""
    for result in dropped:
        print(f"dropped prod:{result.cluster}/{result.hub}: {result.reason}")
    print(f"{len(kept)} prod job(s) kept, {len(dropped)} dropped")
    if fmt == "github":
        for line in publish_outputs(prod_outputs(kept, limits), env):
            print(line)


def finish(results: Sequence[JobResult], *, title: str) -> int:
    """Print the summary table; the exit code is 0 only when every job succeeded."""
    if results:
        print(f"\n{title}\n{render_summary(results)}")
    else:
        print(f"\n{title}: nothing to do")
    return exit_code(results)


def show_report(results: Sequence[JobResult], missing: Sequence[Job], fmt: str,
                env: Mapping[str, str]) -> None:
    """The merged results table (and, with github, the step summary); planned jobs without
    a result of this plan are listed as "no result"."""
    for job in missing:
        print(f"no result: {job.name} (no record of this plan)", file=sys.stderr)
    if missing:
        print(f"error: {len(missing)} planned job(s) have no result", file=sys.stderr)
    print(render_summary(results) if results else "no results")
    if fmt == "github":
        step_summary(f"## hubtasks deploy results\n\n{render_summary(results, fmt='github')}",
                     env)


def show_planned(plan: Plan, *, options: RunOptions, pipelined: bool) -> None:
    """deploy-all's plan, before its jobs start."""
    sys.stdout.write(plan_tables(plan))
    mode = "pipelined" if pipelined else "staged"
    print(f"\ndeploying {len(plan.jobs)} job(s) ({mode}); results in {options.results}",
          flush=True)


def report_results(paths: Sequence[Path], plan_path: Path | None, fmt: str,
                   env: Mapping[str, str], digest_of: DigestOf = lambda job: None) -> int:
    """`report`: merge results (of a plan's jobs), print them; 1 if any failed or is missing.

    With a plan, only its records count (or earlier ones proving the same inputs deployed)."""
    from hubtasks.planning.planfile import load_plan
    from hubtasks.results import load_results
    from hubtasks.runrecords import plan_records, settle_for_report

    merged = settle_for_report(load_results(paths))
    missing: list[Job] = []
    planned = None if plan_path is None else load_plan(plan_path)
    if planned is not None:
        merged, missing = plan_records(merged, planned, digest_of)
    show_report(merged, missing, fmt, env)
    if not merged and not missing and planned is None:
        print("error: no results to report (nothing was recorded in "
              f"{', '.join(map(str, paths))})", file=sys.stderr)
        return 1
    return exit_code(merged) or (1 if missing else 0)
