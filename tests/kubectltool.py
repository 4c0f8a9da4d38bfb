"""The kubectl tests drive: the one hubtasks itself would run (PATH, then the tool cache)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from hubtasks.binaries import ToolMissing, find_kubectl


def installed_kubectl(env: Mapping[str, str]) -> Path:
    """kubectl, or a skip outside CI (in CI, `./dev test` installed it: missing is a failure)."""
    try:
        return find_kubectl(env)
    except ToolMissing as err:
        if os.environ.get("CI"):
            pytest.fail(f"{err}; CI must run the kubectl tests")
        pytest.skip(str(err))
