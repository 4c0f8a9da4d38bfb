"""Shared fixtures and the test tiers.

Tiers, as markers (`-m "not cluster"` and so on):
- `cluster`: starts real local control planes (slow);
- `tools`: needs downloaded binaries (real helm 3 and 4, sops, kubectl): any test using the
  `helm`, `helm_bins`, `sops` or `kubectl` fixture gets it;
- `fixture`: reads 2i2c's real config from `../shared/fixtures`. A user's clone has no
  `../shared`: such tests skip, saying why, unless `CI` is set, where a missing fixture fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hubtasks.dev import install

HELM_MAJORS = (3, 4)
SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURE_2I2C = SHARED / "fixtures" / "2i2c-infrastructure"
TOOL_FIXTURES = frozenset({"helm", "helm_bins", "sops", "kubectl"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & TOOL_FIXTURES:
            item.add_marker(pytest.mark.tools)
        if "fixture_2i2c" in names:
            item.add_marker(pytest.mark.fixture)


@pytest.fixture(scope="session")
def fixture_2i2c() -> Path:
    """2i2c's real config (read-only): skipped outside CI when `../shared` is absent."""
    if not FIXTURE_2I2C.is_dir():
        message = f"the 2i2c fixture is missing: {FIXTURE_2I2C} (it lives in ../shared)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run fixture tests")
        pytest.skip(message)
    return FIXTURE_2I2C


@pytest.fixture(scope="session")
def helm_bins() -> dict[int, Path]:
    """Every supported helm major mapped to its binary (installed into the cache if missing)."""
    return {major: install.install_helm(major, os.environ) for major in HELM_MAJORS}


@pytest.fixture(params=HELM_MAJORS, ids=[f"helm{major}" for major in HELM_MAJORS])
def helm(request: pytest.FixtureRequest, helm_bins: dict[int, Path]) -> Path:
    """A helm binary; tests using this run once with helm 3 and once with helm 4."""
    major: int = request.param
    return helm_bins[major]


@pytest.fixture(scope="session")
def sops() -> Path:
    """sops (installed into the cache if missing)."""
    return install.install_sops(os.environ)


@pytest.fixture(scope="session")
def kubectl() -> Path:
    """The kubectl hubtasks finds (PATH, then the cache), installed into the cache if missing."""
    return install.install_kubectl(os.environ)
