"""The plan as JSON: the contract between `plan` and the later stages (and CI legs)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hubtasks.files import write_atomic
from hubtasks.model import (
    READS_CHECKOUT,
    READS_COMMIT,
    HubtasksError,
    Job,
    Orphan,
    Plan,
    Removed,
    Stage,
)

PLAN_VERSION = 1


def new_plan_id() -> str:
    """A fresh plan identity: sortable by time, unique across machines and runs."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.urandom(4).hex()}"


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The documented JSON form of a plan (README: "Plan JSON")."""
    return {
        "version": PLAN_VERSION,
        "base": plan.base,
        "head": plan.head,
        "jobs": [{"stage": j.stage.value, "cluster": j.cluster, "hub": j.hub, "chart": j.chart,
                  "reasons": list(j.reasons), **({"invalid": list(j.invalid)} if j.invalid else {})}
                 for j in plan.jobs],
        "removed": [{"cluster": r.cluster, "hub": r.hub, "cluster_removed": r.cluster_removed}
                    for r in plan.removed],
        "no_canary": list(plan.no_canary),
        "notes": list(plan.notes),
        "orphans": [{"cluster": o.cluster, "release": o.release, "namespace": o.namespace}
                    for o in plan.orphans],
        "plan_id": plan.plan_id,
        "reads": plan.reads,
    }


def plan_to_json(plan: Plan) -> str:
    return json.dumps(plan_to_dict(plan), indent=2) + "\n"


class _Malformed(Exception):
    """A plan entry of the wrong shape (named by plan_from_dict)."""


def _text(value: Any, what: str, *, optional: bool = False) -> Any:
    if isinstance(value, str) or (optional and value is None):
        return value
    raise _Malformed(f"{what} must be a string{' or null' if optional else ''}, "
                     f"got {value!r}")


def _texts(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Malformed(f"{what} must be a list of strings, got {value!r}")
    return tuple(_text(v, f"{what}[{i}]") for i, v in enumerate(value))


def _entries(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    entries = doc.get(key, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise _Malformed(f"{key} must be a list of objects")
    return entries


def _job(j: dict[str, Any], what: str) -> Job:
    return Job(stage=Stage(j["stage"]), cluster=_text(j["cluster"], f"{what}.cluster"),
               hub=_text(j.get("hub"), f"{what}.hub", optional=True),
               chart=_text(j["chart"], f"{what}.chart"),
               reasons=_texts(j.get("reasons", []), f"{what}.reasons"),
               invalid=_texts(j.get("invalid", []), f"{what}.invalid"))


def plan_from_dict(doc: Any, source: str) -> Plan:
    """Parse a plan, with errors that name the file and the bad entry; every field is
    checked, so a bad plan is refused before a run records anything from it."""
    if not isinstance(doc, dict) or doc.get("version") != PLAN_VERSION or "jobs" not in doc:
        raise HubtasksError(f"{source}: not a hubtasks plan (version {PLAN_VERSION}); "
                            "create one with `hubtasks plan --out FILE`")
    try:
        jobs = tuple(_job(j, f"jobs[{i}]") for i, j in enumerate(_entries(doc, "jobs")))
        removed = tuple(Removed(cluster=_text(r["cluster"], f"removed[{i}].cluster"),
                                hub=_text(r.get("hub"), f"removed[{i}].hub", optional=True),
                                cluster_removed=bool(r.get("cluster_removed", False)))
                        for i, r in enumerate(_entries(doc, "removed")))
        orphans = tuple(Orphan(cluster=_text(o["cluster"], f"orphans[{i}].cluster"),
                               release=_text(o["release"], f"orphans[{i}].release"),
                               namespace=_text(o["namespace"], f"orphans[{i}].namespace"))
                        for i, o in enumerate(_entries(doc, "orphans")))
        plan = Plan(base=_text(doc.get("base"), "base", optional=True),
                    head=_text(doc.get("head"), "head", optional=True), jobs=jobs,
                    removed=removed, no_canary=_texts(doc.get("no_canary", []), "no_canary"),
                    notes=_texts(doc.get("notes", []), "notes"), orphans=orphans)
        plan_id = _text(doc.get("plan_id"), "plan_id", optional=True)
        reads = doc.get("reads", READS_CHECKOUT)  # plans written before the field: as is
        if reads not in (READS_COMMIT, READS_CHECKOUT):
            raise _Malformed(f"reads must be {READS_COMMIT!r} or {READS_CHECKOUT!r}, "
                             f"got {reads!r}")
    except _Malformed as err:
        raise HubtasksError(f"{source}: malformed plan: {err}") from None
    except (KeyError, TypeError, ValueError) as err:
        raise HubtasksError(f"{source}: malformed plan entry: {err!r}") from None
    plan = replace(plan, reads=reads)
    return replace(plan, plan_id=plan_id or content_plan_id(plan))


def content_plan_id(plan: Plan) -> str:
    """The identity of a plan file written without one: a digest of its content, the same
    for every reader (CI legs) of that file."""
    import hashlib  # here: OpenSSL's ~2 ms import is not on every plan's path

    text = json.dumps({**plan_to_dict(plan), "plan_id": None}, sort_keys=True)
    return "content-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def load_plan(path: Path) -> Plan:
    """Read a plan file written by `plan --out`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise HubtasksError(f"cannot read plan {path}: {err.strerror}; create it with "
                            "`hubtasks plan --out FILE`") from None
    except UnicodeDecodeError:
        raise HubtasksError(f"{path}: not a hubtasks plan (not UTF-8 text)") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise HubtasksError(f"{path}: invalid JSON ({err})") from None
    return plan_from_dict(doc, str(path))


def save_plan(plan: Plan, path: Path) -> None:
    """Write a plan file atomically (readable by others: a plan holds no secret); never
    over a results file (`--out` naming one by mistake would lose its records)."""
    from hubtasks.results import RESULTS_KIND  # here: only a plan that is saved needs it

    try:
        with path.open("rb") as existing:
            if f'"kind": "{RESULTS_KIND}"'.encode() in existing.read(200):
                raise HubtasksError(f"{path} is a hubtasks results file: a plan is not "
                                    "written over it; choose another file")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass
    write_atomic(path, plan_to_json(plan), mode=0o644)


def save_filtered(plan: Plan, kept: Sequence[Job], path: Path) -> None:
    """Save `plan` with only the `kept` jobs (the filter's surviving prod jobs)."""
    save_plan(replace(plan, jobs=tuple(kept)), path)
