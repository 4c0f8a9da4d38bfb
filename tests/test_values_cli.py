"""`hubtasks values CLUSTER [HUB]`: HUB positional (invoke has no optional positionals, so the
console script reads it as `--hub`), through the console script on a copy of the example."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hubtasks.cli import with_optional_positionals
from hubtasks.tasks import ns

ROOT = Path(__file__).resolve().parents[1]
HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]


@pytest.mark.parametrize(("argv", "expected"), [
    (["values", "c", "h"], ["values", "c", "--hub=h"]),
    (["values", "c"], ["values", "c"]),
    (["values", "c", "--hub", "h"], ["values", "c", "--hub", "h"]),
    (["values", "--repo", "r", "c", "h", "--merged"],
     ["values", "--repo", "r", "c", "--hub=h", "--merged"]),
    (["values", "--repo=r", "--merged", "c", "h"],
     ["values", "--repo=r", "--merged", "c", "--hub=h"]),
    (["values", "--cluster", "c", "h"], ["values", "--cluster", "c", "--hub=h"]),
    (["--echo", "values", "c", "h"], ["--echo", "values", "c", "--hub=h"]),
    (["plan", "values", "x"], ["plan", "values", "x"]),  # not the first task: invoke's rules
    (["values", "c", "--", "h"], ["values", "c", "--", "h"]),
], ids=repr)
def test_optional_positionals(argv: list[str], expected: list[str]) -> None:
    assert with_optional_positionals(["hubtasks", *argv], ns.to_contexts()) == \
        ["hubtasks", *expected]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("values") / "repo"
    for name in ("config", "helm-charts"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("charts"))
    shutil.copy2(ROOT / "hubtasks.yaml", repo / "hubtasks.yaml")
    return repo


def hubtasks(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HUBTASKS, *args], cwd=repo, capture_output=True, text=True,
                          timeout=120, check=False)


def test_hub_positional_equals_hub_flag(example: Path) -> None:
    positional = hubtasks(example, "values", "edu-cloud", "sandbox")
    flag = hubtasks(example, "values", "edu-cloud", "--hub", "sandbox")
    support = hubtasks(example, "values", "edu-cloud")

    assert positional.returncode == 0, positional.stderr
    assert positional.stdout == flag.stdout
    assert "config/clusters/edu-cloud/sandbox.values.yaml (values file)" in positional.stdout
    assert "config/clusters/edu-cloud/support.values.yaml (values file)" in support.stdout
    assert "sandbox.values.yaml" not in support.stdout


def test_merged_and_unknown_hub_positional(example: Path) -> None:
    merged = hubtasks(example, "values", "--merged", "edu-cloud", "sandbox")
    missing = hubtasks(example, "values", "edu-cloud", "nope")

    assert merged.returncode == 0 and not merged.stdout.startswith("#"), merged.stderr
    assert "displayName: Teaching Sandbox" in merged.stdout
    assert missing.returncode == 2
    assert "cluster 'edu-cloud' has no hub 'nope'" in missing.stderr
