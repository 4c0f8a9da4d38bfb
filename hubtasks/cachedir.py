"""The one hubtasks cache folder (tools from `install-tools`, compiled schema validators)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def cache_dir(env: Mapping[str, str]) -> Path:
    """`$HUBTASKS_CACHE`, `$XDG_CACHE_HOME/hubtasks` or `~/.cache/hubtasks` (not created)."""
    if env.get("HUBTASKS_CACHE"):
        return Path(env["HUBTASKS_CACHE"]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "hubtasks"
    return Path(env.get("HOME") or Path.home()).expanduser() / ".cache" / "hubtasks"
