"""Deployed state for people and programs: the `status` table / JSON, and `--prune` lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tabulate import tabulate

from hubtasks.planning.deployed import ReleaseState, state_to_dict

if TYPE_CHECKING:
    from hubtasks.deploying.converge import Pruned

STATUS_FORMATS = ("table", "json")
HEADERS = ["cluster", "hub", "release", "namespace", "state", "revision", "helm status",
           "updated", "reason"]


def states_table(states: Sequence[ReleaseState]) -> str:
    """One row per release, then a count per state."""
    rows = [[s.cluster, s.hub or "", s.release, s.namespace, s.state.value,
             "" if s.revision is None else s.revision, s.helm_status or "",
             (s.updated or "")[:19], s.reason.splitlines()[0] if s.reason else ""]
            for s in states]
    counts: dict[str, int] = {}
    for s in states:
        counts[s.state.value] = counts.get(s.state.value, 0) + 1
    totals = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return f"{tabulate(rows, headers=HEADERS, tablefmt='simple')}\n\n" \
           f"{len(states)} releases: {totals or 'none'}\n"


def show_states(states: Sequence[ReleaseState], fmt: str) -> None:
    """`status`: a table, or the documented JSON list (reasons of unreachable to stderr)."""
    if fmt == "json":
        sys.stdout.write(json.dumps([state_to_dict(s) for s in states], indent=2) + "\n")
        for s in states:
            if s.reason:
                print(f"{s.cluster}/{s.release}: {s.state.value}: {s.reason.splitlines()[0]}",
                      file=sys.stderr)
        return
    sys.stdout.write(states_table(states))


def show_pruned(pruned: Sequence[Pruned]) -> int:
    """Each orphan `--prune` looked at; 1 when an uninstall failed."""
    for p in pruned:
        print(f"prune {p.cluster}/{p.namespace}/{p.release}: {p.outcome}")
    return 1 if any(p.failed for p in pruned) else 0


def show_unreachable(clusters: Sequence[str], what: str) -> int:
    """1 (and a line on stderr) when clusters could not be read, else 0: a converge or a
    `status` that could not see a cluster must not pass as a clean one."""
    if not clusters:
        return 0
    print(f"hubtasks: {len(clusters)} cluster(s) unreachable, {what}: {', '.join(clusters)}",
          file=sys.stderr)
    return 1
