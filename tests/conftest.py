"""Shared fixtures: real helm binaries (v3 and v4), installed into the cache when missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubtasks import tools

HELM_MAJORS = (3, 4)


@pytest.fixture(scope="session")
def helm_bins() -> dict[int, Path]:
    """Every supported helm major mapped to its binary."""
    return {major: tools.ensure_helm(major) for major in HELM_MAJORS}


@pytest.fixture(params=HELM_MAJORS, ids=[f"helm{major}" for major in HELM_MAJORS])
def helm(request: pytest.FixtureRequest, helm_bins: dict[int, Path]) -> Path:
    """A helm binary; tests using this run once with helm 3 and once with helm 4."""
    major: int = request.param
    return helm_bins[major]
