"""Jsonnet renders in a deploy session: once per file and context, counted at the evaluator.

A `deploy-all --everything --dry-run` of the example (a helm stand-in, no clusters): six basehub
hubs share `helm-charts/basehub/values.jsonnet`, four daskhub hubs `helm-charts/daskhub/
values.jsonnet` (which imports basehub's). Each hub's context differs (HUB_NAME, HUB_DOMAIN),
so every hub costs one evaluation, and nothing (digest, argv, helm retries, logs) evaluates
again; a later session in the same process deploying the same releases evaluates nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import _jsonnet
import pytest
from invoke import Context

from hubtasks.config import jsonnet
from hubtasks.config.load import load_config
from hubtasks.deploying import stages
from hubtasks.dev.demo import DEMO_KEY, copy_example
from hubtasks.model import Status
from hubtasks.options import PlanOptions, run_options

ROOT = Path(__file__).resolve().parents[1]
# Succeeds at everything a dry run asks of it; fails the first template of each release once
# ("connection refused" is transient: helm is retried, the documents are not rendered again).
STAND_IN = """#!/bin/sh
[ "$1" = version ] && { echo v3.17.3+gfake; exit 0; }
[ "$1" = template ] || exit 0
mark="$STATE/$(echo "$@" | cksum | cut -d' ' -f1)"
[ -e "$mark" ] && exit 0
touch "$mark"
echo "Error: Kubernetes cluster unreachable: connection refused" >&2
exit 1
"""

Key = tuple[str, tuple[tuple[str, str], ...]]


@pytest.fixture()
def evaluations(monkeypatch: pytest.MonkeyPatch) -> Counter[Key]:
    """Every call into the jsonnet evaluator, by (file, context); the process cache emptied."""
    calls: Counter[Key] = Counter()
    real = _jsonnet.evaluate_snippet

    def counting(filename: str, src: str, **kwargs: Any) -> str:
        ext_vars: Mapping[str, str] = kwargs.get("ext_vars") or {}
        calls[filename, tuple(sorted(ext_vars.items()))] += 1
        return str(real(filename, src, **kwargs))

    monkeypatch.setattr(_jsonnet, "evaluate_snippet", counting)
    monkeypatch.setattr(jsonnet.RENDERER, "_done", {})
    monkeypatch.setattr(jsonnet.RENDERER, "renders", 0)
    return calls


def deploy(repo: Path, **flags: Any) -> stages.StageRun:
    options = run_options(Context(), {"repo": str(repo), "dry_run": True, "retries": 1,
                                      "backoff": "0s", "jobs": 4, **flags})
    return stages.deploy_all(options, PlanOptions(everything=True), pipelined=True)


def test_renders_once_per_file_and_context_in_a_session(
        evaluations: Counter[Key], sops: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    repo = copy_example(ROOT, tmp_path / "repo")
    helm = tmp_path / "helm"
    helm.write_text(STAND_IN)
    helm.chmod(0o755)
    (tmp_path / "state").mkdir()
    for name, value in {"HUBTASKS_HELM": helm, "HUBTASKS_SOPS": sops, "STATE": tmp_path / "state",
                        "SOPS_AGE_KEY_FILE": repo / DEMO_KEY}.items():
        monkeypatch.setenv(name, str(value))
    hubs = list(load_config(repo).hubs())

    first = deploy(repo)

    assert [r.status for r in first.results] == [Status.SUCCEEDED] * len(first.results)
    assert {r.attempts for r in first.results} == {2}  # every helm call was retried once
    files = Counter(Path(name).relative_to(repo).as_posix() for name, _ in evaluations)
    assert files == {"helm-charts/basehub/values.jsonnet": 6,
                     "helm-charts/daskhub/values.jsonnet": 4}
    assert len(evaluations) == len(hubs) and set(evaluations.values()) == {1}
    assert jsonnet.RENDERER.renders == len(hubs)

    again = deploy(repo)  # the same releases later in the process: only cache hits

    assert all(r.status is Status.SUCCEEDED for r in again.results)
    assert set(evaluations.values()) == {1} and len(evaluations) == len(hubs)
    assert jsonnet.RENDERER.renders == len(hubs)
