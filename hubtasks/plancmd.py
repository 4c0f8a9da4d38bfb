"""The `plan` command's body, shared by the invoke task and the fast CLI path (hubtasks.fastcli).

It imports only what planning needs; `--against deployed` loads the deploy side lazily.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hubtasks.model import gc_paused
from hubtasks.options import plan_options, repo_root, run_options


@gc_paused  # a plan of 20,000 hubs: ~10% of its time went to collections between phases
def plan_command(c: Any, flags: Mapping[str, Any]) -> int:
    """Plan, print (and save with --out); 2 under --strict when inputs are invalid."""
    from hubtasks.output.reports import PLAN_FORMATS, check_format, show_plan
    from hubtasks.planning.planfile import save_plan
    from hubtasks.planning.repo import invalid_problems, plan_repo

    check_format(flags.get("format") or "table", PLAN_FORMATS)
    if flags.get("against") is not None:
        from hubtasks.deploying.converge import check_against, plan_deployed

        check_against(flags["against"])
        config, the_plan, _ = plan_deployed(run_options(c, flags))
    else:
        config, the_plan = plan_repo(repo_root(c, flags), plan_options(c, flags))
    if flags.get("out"):
        save_plan(the_plan, Path(flags["out"]))
    show_plan(the_plan, flags.get("format") or "table", os.environ)
    problems = invalid_problems(config) if flags.get("strict") else []
    for problem in problems:
        print(f"hubtasks: invalid: {problem}", file=sys.stderr)
    return 2 if problems else 0
