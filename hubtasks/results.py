"""The results store: job outcomes in one JSON file shared by threads, processes and CI legs.

A results file holds one record per (stage, cluster, hub), one record per line, in plan order:

    {"kind": "hubtasks-results", "version": 1, "records": [
    {"stage": "support", "cluster": "leap", "hub": null, "status": "succeeded", ...},
    {"stage": "prod", "cluster": "leap", "hub": "prod", "status": "failed", ...}
    ]}

Merge rule, used by the store and by `load_results` alike: when two records share a key, the
one decided later wins. A record is decided at its `started_at`, or, for a job that never
started, at its `ended_at`, which `ResultsStore` stamps with the recording time when a record
has neither. Times compare as instants (no offset means UTC); a record with no time at all
loses to any record with one. Equal times fall back
to the worse status (failed > cancelled > skipped > succeeded, so a tie never hides a
failure), then to the record's canonical JSON. That is a total order, and the winner is its
maximum, so merging is commutative, associative and idempotent: any files, in any order and
any grouping, merge to the same records.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hubtasks.files import FileLock, remove_temp_files, write_atomic
from hubtasks.model import (
    HubtasksError,
    JobKey,
    JobResult,
    Stage,
    Status,
    plan_ordered,
    utc_now,
)

RESULTS_KIND = "hubtasks-results"
RESULTS_VERSION = 1
MOVE_AWAY = "move the file away or choose another --results path"

ResultKey = tuple[Stage, JobKey, bool]

_FIELDS = {f.name: f for f in dataclasses.fields(JobResult)}
_REQUIRED = {name for name, f in _FIELDS.items() if f.default is dataclasses.MISSING}
_TYPES: dict[str, tuple[type, ...]] = {
    "cluster": (str,), "hub": (str, type(None)), "attempts": (int,),
    "started_at": (str, type(None)), "ended_at": (str, type(None)), "duration": (int, float),
    "exit_code": (int, type(None)), "error": (str,), "log": (str, type(None)),
    "head": (str, type(None)), "reason": (str,), "plan_id": (str, type(None)),
    "digest": (str, type(None)), "dry_run": (bool,), "run": (str, type(None)),
    "repaired": (str,),
}
_TIMES = ("started_at", "ended_at")
_STAGES = {s.value: s for s in Stage}
_STATUSES = {s.value: s for s in Status}
_TIE_RANK = {Status.RUNNING: -1, Status.SUCCEEDED: 0, Status.SKIPPED: 1, Status.CANCELLED: 2,
             Status.FAILED: 3}
_NEVER = datetime.min.replace(tzinfo=UTC)
# The last text of each store's file and its records: every write re-reads the file, and
# parsing thousands of records per finished job would make recording quadratic in CPU.
_parsed: dict[Path, tuple[str, list[JobResult]]] = {}


# ---- records --------------------------------------------------------------------------------

def result_key(result: JobResult) -> ResultKey:
    """The identity a results file keeps one record for: (stage, cluster/hub, dry run).

    Dry-run records are kept apart, so a dry run never replaces a real outcome."""
    return (result.stage, result.key, result.dry_run)


def result_to_dict(result: JobResult) -> dict[str, Any]:
    """The JSON form of one record, fields in model order."""
    data = {name: getattr(result, name) for name in _FIELDS}
    data["stage"], data["status"] = result.stage.value, result.status.value
    return data


def result_from_dict(data: object, *, source: str = "results record") -> JobResult:
    """A record from its JSON form; a HubtasksError naming `source` if it is invalid."""
    if not isinstance(data, dict):
        raise _bad_record(source, f"expected an object, got {type(data).__name__}")
    unknown, missing = sorted(set(data) - set(_FIELDS)), sorted(_REQUIRED - set(data))
    if unknown or missing:
        raise _bad_record(source, f"unknown fields {unknown}" if unknown
                          else f"missing fields {missing}")
    values: dict[str, Any] = {name: _checked(name, value, source) for name, value in data.items()}
    values["stage"] = _member(_STAGES, data["stage"], "stage", source)
    values["status"] = _member(_STATUSES, data["status"], "status", source)
    return JobResult(**values)


def _checked(name: str, value: object, source: str) -> object:
    types = _TYPES.get(name)
    if types is None:  # stage and status are checked as enum members
        return value
    if isinstance(value, bool) != (bool in types) or not isinstance(value, types):
        raise _bad_record(source, f"{name} must be {' or '.join(_type_names(types))}, "
                                  f"got {value!r}")
    if name in _TIMES and isinstance(value, str) and _time_or_none(value) is None:
        raise _bad_record(source, f"{name} {value!r} is not an ISO 8601 time")
    if name == "duration" and isinstance(value, int):
        return float(value)  # JSON may write whole seconds without ".0"
    return value


def _member(members: dict[str, Stage] | dict[str, Status], value: object, name: str,
            source: str) -> Stage | Status:
    member = members.get(value) if isinstance(value, str) else None
    if member is None:
        raise _bad_record(source, f"unknown {name} {value!r} (expected one of: "
                                  f"{', '.join(members)})")
    return member


def _type_names(types: tuple[type, ...]) -> list[str]:
    return ["null" if t is type(None) else t.__name__ for t in types]


def _bad_record(source: str, problem: str) -> HubtasksError:
    return HubtasksError(f"{source}: {problem}; fix or delete that record, or move the file away")


# ---- merge ----------------------------------------------------------------------------------

def _time_or_none(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _decided_at(result: JobResult) -> datetime:
    """When the outcome was decided: its start, else (never started) its end, else never."""
    text = result.started_at or result.ended_at
    moment = _time_or_none(text) if text else None
    if text and moment is None:
        raise ValueError(f"{result.name}: {text!r} is not an ISO 8601 time")
    return moment or _NEVER


def _precedence(result: JobResult) -> tuple[datetime, int, str]:
    """The total order whose maximum wins a merge (see the module docstring)."""
    return (_decided_at(result), _TIE_RANK[result.status], _line(result))


def latest_by_key(results: Iterable[JobResult]) -> dict[ResultKey, JobResult]:
    """The winning record of every (stage, cluster/hub), by the merge rule."""
    latest: dict[ResultKey, JobResult] = {}
    for result in results:
        key = result_key(result)
        old = latest.get(key)
        latest[key] = result if old is None else max(old, result, key=_precedence)
    return latest


def merge_results(results: Iterable[JobResult]) -> list[JobResult]:
    """One record per key, by the merge rule, in plan order."""
    return plan_ordered(latest_by_key(results).values())


# ---- files ----------------------------------------------------------------------------------

def dump_results(results: Iterable[JobResult]) -> str:
    """The text of a results file: one record per line, in plan order."""
    body = ",\n".join(map(_line, plan_ordered(results)))
    return f'{{"kind": "{RESULTS_KIND}", "version": {RESULTS_VERSION}, "records": [\n{body}\n]}}\n'


@functools.lru_cache(maxsize=1 << 16)
def _line(result: JobResult) -> str:
    """One record's JSON; cached because every write re-serializes every record."""
    return json.dumps(result_to_dict(result), ensure_ascii=False, allow_nan=False)


def read_results_file(path: Path, *, fix: str = MOVE_AWAY) -> list[JobResult]:
    """Every record of one results file; a HubtasksError if it is missing, corrupt or foreign."""
    return parse_results(_read_text(path, fix), path, fix=fix)


def _read_text(path: Path, fix: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HubtasksError(f"results file {path} not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise HubtasksError(f"cannot read results file {path} ({err}): {fix}") from None


def parse_results(text: str, path: Path, *, fix: str = MOVE_AWAY) -> list[JobResult]:
    """The records of a results file's text; errors name `path`."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise HubtasksError(f"{path} is not valid JSON ({err}), it may be truncated or "
                            f"corrupt; hubtasks never overwrites it: {fix}") from None
    return [result_from_dict(item, source=f"{path}: record {number}")
            for number, item in enumerate(_records(document, path, fix), start=1)]


def _records(document: object, path: Path, fix: str) -> list[object]:
    """The records list of a parsed file, after checking it is ours and of our version."""
    if not isinstance(document, dict) or document.get("kind") != RESULTS_KIND:
        raise HubtasksError(f'{path} is not a hubtasks results file (no "kind": '
                            f'"{RESULTS_KIND}"); hubtasks never overwrites it: {fix}')
    version = document.get("version")
    if version != RESULTS_VERSION:
        raise HubtasksError(f"{path} is a results file of version {version!r}, this hubtasks "
                            f"reads version {RESULTS_VERSION}: upgrade hubtasks, or {fix}")
    records = document.get("records")
    if not isinstance(records, list):
        raise HubtasksError(f'{path}: "records" must be a list: {fix}')
    return records


def load_results(paths: Iterable[Path]) -> list[JobResult]:
    """Merge results files and folders (searched recursively for *.json), in plan order.

    Every *.json under a folder must be a results file: an error names any other, rather than
    letting a stray file (or a results file mangled by an upload) silently drop outcomes.
    """
    found: list[JobResult] = []
    for path in map(Path, paths):
        if not path.is_dir():
            found += read_results_file(path)
            continue
        fix = f"every *.json under {path} must be a hubtasks results file; move it out"
        for file in sorted(p for p in path.rglob("*.json") if p.is_file()):
            found += read_results_file(file, fix=fix)
    return merge_results(found)


# ---- the store ------------------------------------------------------------------------------

class ResultsStore:
    """One results file that threads and processes record into at the same time.

    Each write happens under a cross-process lock on the sidecar `<path>.lock` (left in
    place: deleting lock files races) and a per-file thread lock; it reads the file, merges,
    and atomically replaces it, so a crash never leaves a half-written results file.
    """

    def __init__(self, path: Path) -> None:
        # A symlinked results file is its target: locks and writes follow it (an artifact
        # folder linked in), so two names of one file never make two runs at once.
        self.path = Path(path).resolve() if Path(path).is_symlink() else Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.load()  # a corrupt or foreign file fails the run now, before any deploy starts

    def load(self) -> list[JobResult]:
        """The stored records in plan order; none if the file does not exist yet."""
        if not self.path.exists():
            return []
        text = _read_text(self.path, MOVE_AWAY)
        cached = _parsed.get(self.path)
        if cached is not None and cached[0] == text:  # same bytes as we last wrote or read
            return list(cached[1])
        records = merge_results(parse_results(text, self.path))
        _parsed[self.path] = (text, records)
        return list(records)

    def record(self, result: JobResult) -> None:
        """Merge one record into the file."""
        self.record_many([result])

    def record_many(self, results: Iterable[JobResult]) -> None:
        """Merge records into the file in one atomic write."""
        new = [_stamped(r) for r in results]
        if not new:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(self.lock_path):
                merged = merge_results([*self.load(), *new])
                text = dump_results(merged)
                remove_temp_files(self.path.parent, self.path.name)
                write_atomic(self.path, text, durable=True)
                _parsed[self.path] = (text, merged)
        except OSError as err:
            raise HubtasksError(f"cannot write results file {self.path} ({err}): "
                                "choose another --results path") from err


def _stamped(result: JobResult) -> JobResult:
    """A record with no time gets the recording time as `ended_at`, so it can win a merge."""
    if result.started_at or result.ended_at:
        return result
    return dataclasses.replace(result, ended_at=utc_now())
