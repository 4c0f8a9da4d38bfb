"""A fast path for `hubtasks plan`: the same command without importing invoke (~100 ms).

`plan` runs on every PR push, so its start-up matters. This parses the plain long flags
of `plan` itself and runs `hubtasks.plancmd.plan_command`, the body the invoke task runs.
Anything it is not sure to read exactly as invoke would (help, short or unknown flags,
`--against`, a second task, invoke config files or `INVOKE_*` variables that could set
defaults) returns None, and the caller hands the command line to invoke unchanged.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

VALUE_FLAGS = frozenset({"base", "head", "files_from", "format", "out", "repo"})
LIST_FLAGS = frozenset({"files", "label"})
BOOL_FLAGS = frozenset({"worktree", "everything", "strict"})
# invoke's system, user and project config files: /etc/invoke.yaml, ~/.invoke.yaml, ./invoke.yaml
CONFIG_PREFIXES = ("/etc/invoke.", "~/.invoke.", "invoke.")  # the last: the current folder
CONFIG_SUFFIXES = ("yaml", "yml", "json", "py")


def parse_plan_flags(args: Sequence[str]) -> dict[str, Any] | None:
    """The flags of `plan ARGS...` as the task's keyword arguments; None when unsure."""
    flags: dict[str, Any] = {name: [] for name in LIST_FLAGS}
    rest = list(args)
    while rest:
        token = rest.pop(0)
        if not token.startswith("--") or token == "--":
            return None
        name, eq, value = token[2:].partition("=")
        name = name.replace("-", "_")
        if name in BOOL_FLAGS and not eq:
            flags[name] = True
            continue
        if name not in VALUE_FLAGS | LIST_FLAGS:
            return None
        if not eq:
            if not rest or (rest[0].startswith("-") and rest[0] != "-"):
                return None
            value = rest.pop(0)
        if name in LIST_FLAGS:
            flags[name].append(value)
        elif name in flags:
            return None  # given twice: leave invoke's rules to invoke
        else:
            flags[name] = value
    return flags


def invoke_config_may_apply(env: Mapping[str, str]) -> bool:
    """True when invoke could read defaults we would miss (config files, INVOKE_* vars),
    also the current folder's invoke.yaml, which the console script reads (cli.py)."""
    if any(key.startswith("INVOKE_") for key in env):
        return True
    return any(Path(prefix + suffix).expanduser().exists()
               for prefix in CONFIG_PREFIXES for suffix in CONFIG_SUFFIXES)


def fast_plan(argv: Sequence[str]) -> int | None:
    """Run `plan` without invoke when safe; its exit code, or None to use invoke."""
    if not argv or argv[0] != "plan" or invoke_config_may_apply(os.environ):
        return None
    flags = parse_plan_flags(argv[1:])
    if flags is None:
        return None
    from hubtasks.endings import file_error, terminate_as_interrupt
    from hubtasks.model import HubtasksError
    from hubtasks.plancmd import plan_command

    try:
        with terminate_as_interrupt():
            return plan_command(None, flags)
    except HubtasksError as err:
        print(f"hubtasks: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the same rule as tasks.user_errors
        message = file_error(err)
        if message is None:
            raise
        print(f"hubtasks: error: {message}", file=sys.stderr)
        return 2
