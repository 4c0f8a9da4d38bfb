"""The `health_check:` setting of `hubtasks.yaml`: how a hub is checked after its upgrade.

`health_check: false` turns checks off (None); a mapping overrides the defaults key by key.
Every problem names its key (`hubtasks.yaml: health_check.attempts: ...`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hubtasks.duration import parse_duration, positive_duration
from hubtasks.model import HubtasksError

DEFAULT_URL = "https://{domain}/hub/health"
PLACEHOLDERS = ("cluster", "hub", "domain", "namespace")


@dataclass(frozen=True, kw_only=True)
class HealthCheck:
    """How hubs are checked: `attempts` tries, `interval` apart, each within `timeout`."""

    url: str = DEFAULT_URL
    attempts: int = 3
    interval: float = 10.0
    timeout: float = 30.0
    skip: tuple[str, ...] = ()
    command: tuple[str, ...] | None = None
    insecure: bool = False

    def skips(self, cluster: str, hub: str) -> bool:
        """Whether `cluster/hub` matches a `skip` glob (such hubs are never probed)."""
        return any(fnmatch.fnmatchcase(f"{cluster}/{hub}", glob) for glob in self.skip)


def health_check_from_doc(value: Any, rel: str, problems: list[str]) -> HealthCheck | None:
    """The HealthCheck of a `health_check:` value (missing: `{}`); problems are appended."""
    if value is False:
        return None
    if value is None or value is True:
        return HealthCheck()
    if not isinstance(value, Mapping):
        problems.append(f"{rel}: health_check: must be a mapping or false, not {value!r}")
        return None
    before = len(problems)
    fields = {key: _field(key, value[key], f"{rel}: health_check.{key}", problems)
              for key in value}
    return HealthCheck(**fields) if len(problems) == before else None


def _field(key: str, value: Any, where: str, problems: list[str]) -> Any:
    try:
        return _PARSERS[key](value, where)
    except KeyError:
        known = ", ".join(_PARSERS)
        problems.append(f"{where}: unknown key (known: {known})")
    except HubtasksError as err:
        problems.append(f"{where}: {err}")
    return None


def _url(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise HubtasksError(f"must be an http:// or https:// URL, not {value!r}")
    try:
        value.format(**{name: "x" for name in PLACEHOLDERS})
    except (KeyError, IndexError, ValueError) as err:
        raise HubtasksError(f"bad placeholder {err} in {value!r} (known: "
                            f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)})") from None
    return value


def _attempts(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HubtasksError(f"must be a whole number of at least 1, not {value!r}")
    return value


def _globs(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise HubtasksError(f"must be a list of \"cluster/hub\" globs, not {value!r}")
    return tuple(value)


def argv_command(value: Any, where: str = "") -> tuple[str, ...] | None:
    """An argv list setting (no shell), or None for null; shared by health checks and steps."""
    if value is None:
        return None
    if isinstance(value, str):
        raise HubtasksError("must be an argv list (no shell), e.g. [./check.sh, --quick]")
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise HubtasksError(f"must be a non-empty list of strings or null, not {value!r}")
    return tuple(value)


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise HubtasksError(f"must be true or false, not {value!r}")
    return value


_PARSERS: dict[str, Any] = {
    "url": _url,
    "attempts": _attempts,
    "interval": lambda v, where: parse_duration(v, what="duration"),
    "timeout": lambda v, where: positive_duration(v, what="duration"),
    "skip": _globs,
    "command": argv_command,
    "insecure": _flag,
}
