"""`hubtasks plan` end to end against its floor, both as subprocesses in the same run.

The floor is what no plan can skip: start Python, parse every cluster.yaml with PyYAML's
CLoader, run the git diff. Ratios (plan / floor, medians of interleaved runs) are printed
with the targets of issue 11: <= 3x on the 2i2c fixture with one changed file, <= 2x on
20,000 hubs with 5,000 changed values files.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "../shared/fixtures/2i2c-infrastructure"
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.org"}
FLOOR = """\
import subprocess, sys
from pathlib import Path
import yaml
root = Path(sys.argv[1])
subprocess.run(["git", "-C", str(root), "diff", "--name-status", "-M", "-z",
                sys.argv[2], "HEAD"], check=True, capture_output=True)
for path in sorted((root / "config/clusters").glob("*/cluster.yaml")):
    yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
"""
# Both run as an installed hubtasks does: with .pyc files (some shells set this variable).
RUN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
PLAN = [sys.executable, "-c", "from hubtasks.cli import main; main()", "plan"]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                   env={**os.environ, **GIT_ENV})


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-verify", "-m", message)


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=RUN_ENV)
    return time.perf_counter() - start


def ratio(root: Path, repeat: int, floor: Path) -> tuple[float, float]:
    """Median plan and floor times, interleaved so a noisy neighbour hits both."""
    plan_argv = [*PLAN, "--base", "HEAD~1"]
    floor_argv = [sys.executable, str(floor), str(root), "HEAD~1"]
    timed(plan_argv, root)  # warm the schema cache and the page cache
    plans, floors = [], []
    for _ in range(repeat):
        plans.append(timed(plan_argv, root))
        floors.append(timed(floor_argv, root))
    return statistics.median(plans), statistics.median(floors)


def fixture_repo(root: Path) -> Path:
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns(".git"))
    git(root, "init", "-q")
    commit_all(root, "fixture")
    values = sorted(root.glob("config/clusters/*/*.values.yaml"))[0]
    values.write_text(values.read_text(encoding="utf-8") + "\n# bench\n", encoding="utf-8")
    commit_all(root, "one change")
    return root


def synthetic_repo(root: Path, write_repo: Callable[[Path, int, int], None]) -> Path:
    write_repo(root, 1000, 20)
    git(root, "init", "-q")
    commit_all(root, "synthetic")
    values = sorted(root.glob("config/clusters/*/hub-*.values.yaml"))[:5000]
    for path in values:
        path.write_text("a: 2\n", encoding="utf-8")
    commit_all(root, "5000 changes")
    return root


def cli_ratios(repeat: int, write_repo: Callable[[Path, int, int], None]) -> None:
    print("\nend to end through the CLI (plan / floor, medians of interleaved runs):")
    with tempfile.TemporaryDirectory(prefix="hubtasks-bench-cli-") as tmp:
        floor = Path(tmp) / "floor.py"
        floor.write_text(FLOOR, encoding="utf-8")
        cases: list[tuple[str, float, Callable[[], Path]]] = [
            ("2i2c fixture, 1 changed file", 3.0, lambda: fixture_repo(Path(tmp) / "fx")),
            ("1000x20 hubs, 5000 changed", 2.0,
             lambda: synthetic_repo(Path(tmp) / "syn", write_repo))]
        for label, target, make in cases:
            if label.startswith("2i2c") and not FIXTURE.is_dir():
                print(f"  {label}: skipped ({FIXTURE} missing)")
                continue
            plan, base = ratio(make(), repeat, floor)
            verdict = "OK" if plan <= target * base else "OVER"
            print(f"  {label}: plan {plan:.3f}s, floor {base:.3f}s, "
                  f"ratio {plan / base:.2f} (target <= {target:.0f}x) {verdict}")
