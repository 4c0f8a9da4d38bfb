"""The invoke tasks: a thin CLI. Each task parses options and calls library code.

The same collection serves `invoke ...` in this repo (through the root tasks.py) and
the `hubtasks` console script in any config repo (hubtasks.cli).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke import Collection, Context, Exit, task

from .model import HubtasksError

F = TypeVar("F", bound=Callable[..., Any])
DEFAULTS: dict[str, Any] = {
    "repo": ".",
    "base": "main",
    "results": ".hubtasks/results.json",
    "plan": ".hubtasks/plan.json",
    "log_dir": ".hubtasks/logs",
    "jobs": 8,
    "per_cluster": 4,
    "canary_workers": 8,
    "timeout": "10m",
    "atomic": True,
    "retries": 2,
    "history_max": 10,
}


def user_errors(func: F) -> F:
    """Turn HubtasksError into a clean message and exit code 2 (never a traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HubtasksError as err:
            raise Exit(f"hubtasks: error: {err}", code=2) from None

    return wrapper  # type: ignore[return-value]


def setting(c: Context, name: str, value: Any) -> Any:
    """An option's value, else the `hubtasks.<name>` invoke config (env INVOKE_HUBTASKS_*)."""
    if value is not None:
        return value
    return c.config.get("hubtasks", {}).get(name, DEFAULTS[name])


def repo_dir(c: Context, repo: str | None) -> Path:
    return Path(setting(c, "repo", repo)).resolve()


def split_list(values: list[str] | None) -> list[str]:
    """Flatten repeatable options whose values may also be comma/space separated."""
    out: list[str] = []
    for value in values or ():
        out.extend(v for v in value.replace(",", " ").split() if v)
    return out


@task(
    iterable=["files", "label"],
    help={
        "base": "git ref to compare against (default: main); the diff starts at the merge-base",
        "head": "git ref to plan (default: HEAD)",
        "worktree": "also count uncommitted changes and untracked files",
        "files": "changed file paths (repeatable; one per line); skips git diff",
        "files_from": "read changed file paths from FILE ('-' for stdin)",
        "label": "a PR label such as deployer:deploy-hubs (repeatable)",
        "everything": "plan every release",
        "format": "table (default), json or github",
        "out": "also save the plan JSON to FILE for the later stages",
        "repo": "config repo to plan (default: current directory)",
    },
)
@user_errors
def plan(c: Context, base: str | None = None, head: str = "HEAD", worktree: bool = False,
         files: list[str] | None = None, files_from: str | None = None,
         label: list[str] | None = None, everything: bool = False, format: str = "table",
         out: str | None = None, repo: str | None = None) -> None:
    """Decide which releases need `helm upgrade`, and why."""
    from .commands import run_plan

    run_plan(repo=repo_dir(c, repo), base=setting(c, "base", base), head=head,
             worktree=worktree, files=_file_list(files, files_from), labels=label or [],
             everything=everything, fmt=format, out=Path(out) if out else None)


def _file_list(files: list[str] | None, files_from: str | None) -> tuple[str, ...] | None:
    if not files and files_from is None:
        return None
    lines = [line for value in files or () for line in value.splitlines()]
    if files_from == "-":
        lines += sys.stdin.read().splitlines()
    elif files_from:
        try:
            lines += Path(files_from).read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise HubtasksError(f"cannot read --files-from {files_from}: {err.strerror}") from None
    return tuple(lines)


@task(help={"repo": "config repo to check (default: current directory)"})
@user_errors
def check_config(c: Context, repo: str | None = None) -> None:
    """Load and validate every cluster.yaml (schema and file checks), without helm."""
    from .config import load_config

    config = load_config(repo_dir(c, repo))
    hubs = sum(len(cl.hubs) for cl in config.clusters.values())
    print(f"config OK: {len(config.clusters)} clusters, {hubs} hubs")


ns = Collection(plan, check_config)
ns.configure({"hubtasks": dict(DEFAULTS)})

__all__ = ["ns"]
