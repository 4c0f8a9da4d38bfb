"""The results store: file format, merge rule, concurrency, corrupt files and crashes."""

from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from hubtasks.model import HubtasksError, JobResult, Stage, Status
from hubtasks.results import (
    RESULTS_KIND,
    RESULTS_VERSION,
    ResultsStore,
    dump_results,
    load_results,
    merge_results,
    result_from_dict,
    result_to_dict,
)

T1 = "2025-01-01T10:00:00+00:00"
T2 = "2025-01-01T11:00:00.250+00:00"
T3 = "2025-01-01T12:00:00Z"


def result(cluster: str = "leap", hub: str | None = "prod", *, stage: Stage = Stage.PROD,
           status: Status = Status.SUCCEEDED, started_at: str | None = T1,
           **extra: Any) -> JobResult:
    """A record with plausible defaults."""
    return JobResult(stage=stage, cluster=cluster, hub=hub, status=status,
                     started_at=started_at, **extra)


FULL = result(attempts=2, ended_at=T2, duration=12.5, exit_code=1, error="helm: boom ✗",
              log="logs/prod/leap/prod.log", head="abc123", reason="retried",
              status=Status.FAILED)
SUPPORT = result(hub=None, stage=Stage.SUPPORT)


def write_leg(path: Path, *results: JobResult) -> Path:
    """A results file as one CI leg would leave it."""
    ResultsStore(path).record_many(results)
    return path


# ---- format ---------------------------------------------------------------------------------

@pytest.mark.parametrize("record", [FULL, SUPPORT, result(started_at=None, status=Status.SKIPPED)],
                         ids=["full", "support", "not-run"])
def test_dict_round_trip(record: JobResult) -> None:
    data = json.loads(json.dumps(result_to_dict(record)))
    assert result_from_dict(data) == record


def test_store_round_trip(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "out" / "results.json")
    store.record(FULL)
    store.record(SUPPORT)
    assert store.load() == [SUPPORT, FULL]
    assert ResultsStore(store.path).load() == [SUPPORT, FULL]


def test_file_is_sorted_one_record_per_line(tmp_path: Path) -> None:
    records = [result("b", "x"), result("a", "y"), result("a", "x"),
               result("b", "staging", stage=Stage.STAGING), result("c", None, stage=Stage.SUPPORT)]
    path = write_leg(tmp_path / "r.json", *records)
    document = json.loads(path.read_text())
    assert (document["kind"], document["version"]) == (RESULTS_KIND, RESULTS_VERSION)
    names = [(r["stage"], r["cluster"], r["hub"]) for r in document["records"]]
    assert names == [("support", "c", None), ("staging", "b", "staging"), ("prod", "a", "x"),
                     ("prod", "a", "y"), ("prod", "b", "x")]
    assert len(path.read_text().splitlines()) == len(records) + 2
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)  # results are private


def test_not_run_record_is_stamped_with_its_recording_time(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.json")
    store.record(result(status=Status.SKIPPED, started_at=None))
    (loaded,) = store.load()
    assert loaded.started_at is None and loaded.ended_at is not None


# ---- merge rule -----------------------------------------------------------------------------

def test_newer_start_wins_in_either_order() -> None:
    old, new = result(status=Status.FAILED, started_at=T1), result(started_at=T2)
    assert merge_results([old, new]) == merge_results([new, old]) == [new]


def test_rerun_skip_replaces_an_older_run(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.json")
    store.record(result(started_at=T1))
    store.record(result(status=Status.SKIPPED, started_at=None, reason="canary failed"))
    assert [r.status for r in store.load()] == [Status.SKIPPED]


def test_record_without_any_time_loses_to_a_timed_one() -> None:
    timeless, ran = result(status=Status.SKIPPED, started_at=None), result(started_at=T1)
    assert merge_results([ran, timeless]) == merge_results([timeless, ran]) == [ran]


def test_time_zones_compare_as_instants() -> None:
    utc = result(status=Status.FAILED, started_at="2025-01-01T10:00:00+00:00")
    later = result(started_at="2025-01-01T11:30:00+01:00")  # 10:30 UTC
    assert merge_results([later, utc]) == [later]


def test_tie_prefers_the_worse_status() -> None:
    ok, bad = result(started_at=T1), result(status=Status.FAILED, started_at=T1)
    assert merge_results([ok, bad]) == merge_results([bad, ok]) == [bad]


SAME_KEY = [result(started_at=T1), result(status=Status.FAILED, started_at=T1),
            result(started_at=T1, attempts=3), result(started_at=T2), result(started_at=T3),
            result(started_at="2025-01-01T12:00:00+00:00"), result(started_at=None),
            result(status=Status.SKIPPED, started_at=None, ended_at=T2)]


def test_merge_is_commutative_and_associative() -> None:
    expected = merge_results(SAME_KEY)
    for order in itertools.permutations(SAME_KEY[:6]):
        assert merge_results(order) == merge_results(SAME_KEY[:6])
    for cut in range(len(SAME_KEY)):
        left, right = merge_results(SAME_KEY[:cut]), merge_results(SAME_KEY[cut:])
        assert merge_results([*right, *left]) == expected
    folded: list[JobResult] = []
    for record in reversed(SAME_KEY):  # one at a time, as a store records them
        folded = merge_results([*folded, record])
    assert folded == expected


def test_merging_files_in_any_order(tmp_path: Path) -> None:
    a = write_leg(tmp_path / "a.json", result("x", started_at=T1, status=Status.FAILED),
                  result("y", started_at=T2))
    b = write_leg(tmp_path / "b.json", result("x", started_at=T2), result("y", started_at=T1),
                  result("z"))
    assert load_results([a, b]) == load_results([b, a]) == load_results([a, b, a])
    assert {(r.cluster, r.started_at) for r in load_results([a, b])} == {
        ("x", T2), ("y", T2), ("z", T1)}


def _write_many(path: Path, writer: int, count: int) -> None:
    """Record `count` records one by one, each through a fresh store (worst case for locks)."""
    for n in range(count):
        ResultsStore(path).record(result(f"w{writer:02d}", f"hub{n:03d}"))


def test_threads_lose_no_record(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda w: _write_many(path, w, 50), range(16)))
    assert len(ResultsStore(path).load()) == 16 * 50


def test_processes_lose_no_record(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_write_many, args=(path, w, 50)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [w.exitcode for w in workers] == [0] * 4
    assert len(ResultsStore(path).load()) == 4 * 50


# ---- bad files ------------------------------------------------------------------------------

VALID = dump_results([FULL]).encode()
BAD_FILES = {
    "truncated": (VALID[: len(VALID) // 2], "not valid JSON"),
    "empty": (b"", "not valid JSON"),
    "binary": (b"\xff\xfe\x00", "cannot read"),
    "foreign-list": (b"[1, 2]", "not a hubtasks results file"),
    "foreign-dict": (b'{"name": "package"}', "not a hubtasks results file"),
    "newer-version": (b'{"kind": "hubtasks-results", "version": 2, "records": []}',
                      "version 2"),
    "bad-status": (VALID.replace(b'"failed"', b'"exploded"'), "unknown status 'exploded'"),
    "bad-time": (VALID.replace(T1.encode(), b"yesterday"), "not an ISO 8601 time"),
    "bad-type": (VALID.replace(b'"attempts": 2', b'"attempts": "2"'), "attempts must be int"),
    "unknown-field": (VALID.replace(b'"attempts"', b'"attempt"'), "unknown fields"),
}


@pytest.mark.parametrize(("content", "message"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_file_is_reported_and_left_untouched(tmp_path: Path, content: bytes,
                                                 message: str) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(content)
    attempts: list[Callable[[], object]] = [
        lambda: ResultsStore(path), lambda: load_results([path]), lambda: load_results([tmp_path])]
    for attempt in attempts:
        with pytest.raises(HubtasksError, match=message) as caught:
            attempt()
        assert str(path) in str(caught.value)
    with pytest.raises(HubtasksError, match="move the file away"):
        ResultsStore(path)
    assert path.read_bytes() == content


def test_bad_file_is_not_overwritten_by_a_later_record(tmp_path: Path) -> None:
    path = write_leg(tmp_path / "r.json", FULL)
    store = ResultsStore(path)
    path.write_bytes(b"{oops")  # corrupted after the store checked it
    with pytest.raises(HubtasksError, match="not valid JSON"):
        store.record(SUPPORT)
    assert path.read_bytes() == b"{oops"


def test_missing_file_loads_empty_but_missing_argument_is_an_error(tmp_path: Path) -> None:
    assert ResultsStore(tmp_path / "nope.json").load() == []
    assert not (tmp_path / "nope.json").exists()
    with pytest.raises(HubtasksError, match="not found"):
        load_results([tmp_path / "nope.json"])


# ---- crashes --------------------------------------------------------------------------------

def test_write_interrupted_before_rename_keeps_previous_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_leg(tmp_path / "r.json", FULL)
    before = path.read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(HubtasksError, match="cannot write results file"):
        ResultsStore(path).record(SUPPORT)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert ResultsStore(path).load() == [FULL]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.json.lock"]


def test_leftover_temp_file_is_ignored_then_removed(tmp_path: Path) -> None:
    path = write_leg(tmp_path / "r.json", FULL)
    leftover = tmp_path / ".r.json.abc_123x.hubtasks-tmp"
    leftover.write_text('{"kind": "hubtasks-res')  # a write killed halfway
    other = tmp_path / ".r.json.x.abc_123x.hubtasks-tmp"  # belongs to another file: r.json.x
    other.write_text("")
    assert load_results([tmp_path]) == ResultsStore(path).load() == [FULL]
    ResultsStore(path).record(SUPPORT)
    assert not leftover.exists() and other.exists()
    assert ResultsStore(path).load() == [SUPPORT, FULL]


# ---- folders --------------------------------------------------------------------------------

def test_load_results_merges_a_tree_of_leg_artifacts(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    write_leg(artifacts / "canary-a" / "results.json", result("a", None, stage=Stage.SUPPORT))
    write_leg(artifacts / "canary-b" / "nested" / "results.json",
              result("b", "staging", stage=Stage.STAGING, status=Status.FAILED))
    write_leg(artifacts / "prod-a" / "results.json", result("a", "prod", status=Status.FAILED,
                                                            started_at=T1))
    rerun = write_leg(tmp_path / "rerun.json", result("a", "prod", started_at=T2))
    (artifacts / "prod-a" / "helm.log").write_text("not json, not searched")
    merged = load_results([artifacts, rerun])
    assert [r.name for r in merged] == ["support:a/support", "staging:b/staging", "prod:a/prod"]
    assert merged[-1].started_at == T2
    assert [r.status for r in merged] == [Status.SUCCEEDED, Status.FAILED, Status.SUCCEEDED]


def test_foreign_json_in_a_tree_is_named(tmp_path: Path) -> None:
    write_leg(tmp_path / "leg" / "results.json", FULL)
    stray = tmp_path / "leg" / "package.json"
    stray.write_text("{}")
    with pytest.raises(HubtasksError, match=r"package\.json.*must be a hubtasks results file"):
        load_results([tmp_path])


def test_record_many_of_nothing_writes_nothing(tmp_path: Path) -> None:
    ResultsStore(tmp_path / "r.json").record_many([])
    assert list(tmp_path.iterdir()) == []


def test_records_are_values() -> None:
    assert dataclasses.replace(FULL, status=Status.SUCCEEDED)
    assert not FULL
