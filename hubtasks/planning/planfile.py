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
from hubtasks.model import HubtasksError, Job, Orphan, Plan, Removed, Stage

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
    }


def plan_to_json(plan: Plan) -> str:
    return json.dumps(plan_to_dict(plan), indent=2) + "\n"


def plan_from_dict(doc: Any, source: str) -> Plan:
    """Parse a plan, with errors that name the file and the bad entry."""
    if not isinstance(doc, dict) or doc.get("version") != PLAN_VERSION or "jobs" not in doc:
        raise HubtasksError(f"{source}: not a hubtasks plan (version {PLAN_VERSION}); "
                            "create one with `hubtasks plan --out FILE`")
    try:
        jobs = tuple(Job(stage=Stage(j["stage"]), cluster=j["cluster"], hub=j.get("hub"),
                         chart=j["chart"], reasons=tuple(j.get("reasons", ())),
                         invalid=tuple(j.get("invalid", ())))
                     for j in doc["jobs"])
        removed = tuple(Removed(cluster=r["cluster"], hub=r.get("hub"),
                                cluster_removed=bool(r.get("cluster_removed", False)))
                        for r in doc.get("removed", ()))
        orphans = tuple(Orphan(cluster=o["cluster"], release=o["release"],
                               namespace=o["namespace"]) for o in doc.get("orphans", ()))
    except (KeyError, TypeError, ValueError) as err:
        raise HubtasksError(f"{source}: malformed plan entry: {err!r}") from None
    plan = Plan(base=doc.get("base"), head=doc.get("head"), jobs=jobs, removed=removed,
                no_canary=tuple(doc.get("no_canary", ())), notes=tuple(doc.get("notes", ())),
                orphans=orphans)
    plan_id = doc.get("plan_id")
    if plan_id is not None and not isinstance(plan_id, str):
        raise HubtasksError(f"{source}: plan_id must be a string, got {plan_id!r}")
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
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise HubtasksError(f"{path}: invalid JSON ({err})") from None
    return plan_from_dict(doc, str(path))


def save_plan(plan: Plan, path: Path) -> None:
    """Write a plan file atomically (readable by others: a plan holds no secret)."""
    write_atomic(path, plan_to_json(plan), mode=0o644)


def save_filtered(plan: Plan, kept: Sequence[Job], path: Path) -> None:
    """Save `plan` with only the `kept` jobs (the filter's surviving prod jobs)."""
    save_plan(replace(plan, jobs=tuple(kept)), path)
