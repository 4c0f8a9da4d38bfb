"""The local workflow runner that later tests use to run deploy-hubs.yaml's job graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from actions_runner import (
    JobRun,
    Step,
    WorkflowError,
    condition,
    evaluate,
    expand,
    job_steps,
    matrix_legs,
    parse_env_file,
    run_workflow,
)

SHA = "0" * 40
WORKFLOW = f"""
name: tiny
on: push
env:
  TOP: top
jobs:
  plan:
    runs-on: ubuntu-latest
    env:
      JOBV: job
    outputs:
      matrix: ${{{{ steps.gen.outputs.matrix }}}}
      any: ${{{{ steps.gen.outputs.any }}}}
    steps:
      - uses: actions/checkout@{SHA}
      - id: gen
        env:
          SHA: ${{{{ github.sha }}}}
        run: |
          echo 'matrix={{"include":[{{"name":"a","items":"x y"}},{{"name":"b","items":"z"}}]}}' \\
            >> "$GITHUB_OUTPUT"
          printf 'any<<EOF\\ntrue\\nEOF\\n' >> "$GITHUB_OUTPUT"
          echo "$TOP $JOBV $SHA $GITHUB_SHA" > plan.txt
          echo "EXPORTED=yes" >> "$GITHUB_ENV"
      - run: test "$EXPORTED" = yes
      - uses: actions/upload-artifact@{SHA}
        with:
          name: plan
          path: plan.txt
  work:
    needs: plan
    if: needs.plan.outputs.any == 'true'
    strategy:
      fail-fast: false
      matrix: ${{{{ fromJSON(needs.plan.outputs.matrix) }}}}
    steps:
      - uses: actions/download-artifact@{SHA}
        with:
          name: plan
          path: in
      - name: work
        env:
          ITEMS: ${{{{ matrix.items }}}}
          NAME: ${{{{ matrix.name }}}}
          INDEX: ${{{{ strategy.job-index }}}}
        run: |
          mkdir -p out/.hidden
          {{ cat in/plan.txt; echo "$ITEMS $INDEX"; }} > "out/$NAME.txt"
          touch out/.hidden/x
          [ "$NAME" != b ]
      - name: after a failure
        run: echo never
      - if: always()
        uses: actions/upload-artifact@{SHA}
        with:
          name: out-${{{{ matrix.name }}}}
          path: out/
  blocked:
    needs: work
    steps:
      - run: echo never
  report:
    needs: [plan, work, blocked]
    if: ${{{{ !cancelled() }}}}
    steps:
      - uses: actions/download-artifact@{SHA}
        with:
          pattern: out-*
          path: all
      - env:
          RESULTS: ${{{{ join(needs.*.result, ' ') }}}}
        run: |
          find all -type f | sort > listing.txt
          echo "$RESULTS" > results.txt
"""


def workflow() -> dict[str, Any]:
    doc = yaml.safe_load(WORKFLOW)
    doc["on"] = doc.pop(True)
    return dict(doc)


def test_run_the_job_graph(tmp_path: Path) -> None:
    spaces: dict[str, Path] = {}

    def workspace(job: str, leg: int) -> Path:
        spaces[f"{job}-{leg}"] = path = tmp_path / "ws" / f"{job}-{leg}"
        path.mkdir(parents=True)
        return path

    context = {"github": {"sha": SHA, "repository": "o/r", "token": "t"},
               "runner": {"temp": str(tmp_path)}}
    outcomes = run_workflow(workflow(), context, workspace=workspace,
                            artifacts=tmp_path / "artifacts",
                            env={"PATH": "/usr/bin:/bin"},
                            handlers={"actions/checkout": lambda step, run: None})
    assert {j: o.result for j, o in outcomes.items()} == {
        "plan": "success", "work": "failure", "blocked": "skipped", "report": "success"}
    assert outcomes["plan"].outputs["any"] == "true"
    assert (spaces["report-0"] / "results.txt").read_text() == "success failure skipped\n"
    assert (spaces["report-0"] / "listing.txt").read_text().split() == [
        "all/out-a/a.txt", "all/out-b/b.txt"]
    assert (spaces["work-0"] / "out" / "a.txt").read_text() == f"top job {SHA} {SHA}\nx y 0\n"
    assert outcomes["work"].legs[1] == [
        (f"actions/download-artifact@{SHA}", "success"), ("work", "failure"),
        ("after a failure", "skipped"), (f"actions/upload-artifact@{SHA}", "success")]


def test_steps_listing_with_a_leg() -> None:
    context = {"matrix": {"name": "a", "items": "x y"}, "strategy": {"job-index": 3},
               "needs": {"plan": {"outputs": {"matrix": "{}"}}}}
    steps = job_steps(workflow(), "work", context)
    assert steps[1].env == {"TOP": "top", "ITEMS": "x y", "NAME": "a", "INDEX": "3"}
    assert steps[1].run is not None and steps[1].run.startswith("mkdir -p out")
    artifact = steps[3].artifact
    assert artifact is not None and (artifact.kind, artifact.name, artifact.path) == (
        "upload", "out-a", "out/")
    assert steps[0].artifact is not None and steps[0].artifact.kind == "download"
    assert steps[1].artifact is None and steps[3].condition == "always()"


def test_matrix_legs() -> None:
    doc = {"jobs": {"j": {"strategy": {"matrix": {"os": ["a", "b"], "py": [1],
                                                  "include": [{"extra": True}]}}}}}
    assert matrix_legs(doc, "j", {}) == [{"os": "a", "py": 1}, {"os": "b", "py": 1},
                                         {"extra": True}]
    assert matrix_legs({"jobs": {"j": {}}}, "j", {}) == [{}]


@pytest.mark.parametrize(("expr", "value"), [
    ("matrix.name == 'A'", True),
    ("needs.x.outputs.n == 2", True),
    ("!cancelled() && needs.x.result == 'success'", True),
    ("needs.x.outputs.missing || 'default'", "default"),
    ("fromJSON('{\"a\": [1, 2]}').a[1]", 2),
    ("contains(needs.*.result, 'failure')", False),
    ("format('{0}-{1}', matrix.name, 'it''s')", "a-it's"),
    ("startsWith(github.ref, 'refs/heads/')", True),
    ("toJSON(matrix)", '{\n  "name": "a"\n}'),
], ids=lambda v: str(v)[:30])
def test_evaluate(expr: str, value: Any) -> None:
    context = {"matrix": {"name": "a"}, "github": {"ref": "refs/heads/main"},
               "needs": {"x": {"result": "success", "outputs": {"n": "2"}}}}
    assert evaluate(expr, context) == value


def test_expand_and_condition() -> None:
    context = {"matrix": {"n": 1, "flag": False}}
    assert expand("${{ matrix.n }}", context) == 1
    assert expand("n=${{ matrix.n }} f=${{ matrix.flag }}", context) == "n=1 f=false"
    assert expand({"a": ["${{ matrix.n }}"]}, context) == {"a": [1]}
    assert condition(None, context) and condition("${{ matrix.n == 1 }}", context)
    failed = {**context, "__status__": {"failure": True}}
    assert not condition("matrix.n == 1", failed) and condition("always()", failed)
    with pytest.raises(WorkflowError, match="unsupported function"):
        evaluate("hashFiles('x')", context)


def test_parse_env_file(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_text("a=1\nb<<EOF\nline 1\nline=2\nEOF\nc=x=y\n")
    assert parse_env_file(path) == {"a": "1", "b": "line 1\nline=2", "c": "x=y"}


def test_unhandled_action_is_an_error(tmp_path: Path) -> None:
    doc = {"jobs": {"j": {"steps": [{"uses": f"some/action@{SHA}"}]}}}
    run = JobRun(workflow=doc, job="j", context={}, workspace=tmp_path / "ws",
                 artifacts=tmp_path / "a")
    run.workspace.mkdir()
    with pytest.raises(WorkflowError, match="no handler"):
        run.run()


def test_handler_outputs_feed_later_steps(tmp_path: Path) -> None:
    doc = {"jobs": {"j": {"outputs": {"v": "${{ steps.h.outputs.v }}"},
                          "steps": [{"id": "h", "uses": "$/.github/actions/x"}]}}}

    def handler(step: Step, run: JobRun) -> dict[str, str]:
        return {"v": step.action}

    run = JobRun(workflow=doc, job="j", context={}, workspace=tmp_path, artifacts=tmp_path,
                 handlers={"$/.github/actions/x": handler})
    assert run.run() == ("success", {"v": "$/.github/actions/x"})
