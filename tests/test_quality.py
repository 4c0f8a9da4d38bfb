"""The code stays lint-clean (ruff) and type-clean (mypy --strict: package, tests, benches)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True,
                          text=True, check=False)


def test_ruff() -> None:
    proc = run("ruff", "check", "hubtasks", "tests", "bench", ".github")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict() -> None:
    proc = run("mypy", "hubtasks", "tests", "bench")  # a bench that no longer runs fails here
    assert proc.returncode == 0, proc.stdout + proc.stderr
