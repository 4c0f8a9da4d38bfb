"""The `before:` setting of `hubtasks.yaml`: commands run before a chart's releases.

`before: {CHART: [{name, command, once, timeout}, ...]}`. `once: release` (the default) runs a
step before every release of the chart; `once: cluster` runs it once per cluster per run.
Every problem names its key (`hubtasks.yaml: before.daskhub[0].command: ...`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hubtasks.config.health import argv_command
from hubtasks.duration import positive_duration
from hubtasks.model import HubtasksError

ONCE = ("release", "cluster")
DEFAULT_TIMEOUT = 300.0


@dataclass(frozen=True, kw_only=True)
class BeforeStep:
    """One command run before a chart's release (or once per cluster)."""

    name: str
    command: tuple[str, ...]
    once: str = "release"
    timeout: float = DEFAULT_TIMEOUT

    def view(self) -> list[Any]:
        """What the release digest sees of the step."""
        return [self.name, list(self.command), self.once, self.timeout]


def before_from_doc(value: Any, rel: str,
                    problems: list[str]) -> dict[str, tuple[BeforeStep, ...]]:
    """The steps per chart of a `before:` value (missing: none); problems are appended."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"{rel}: before: must be a mapping of chart name to steps, not {value!r}")
        return {}
    out: dict[str, tuple[BeforeStep, ...]] = {}
    for chart, steps in value.items():
        where = f"{rel}: before.{chart}"
        if not isinstance(steps, list):
            problems.append(f"{where}: must be a list of steps, not {steps!r}")
            continue
        parsed = [_step(step, f"{where}[{i}]", problems) for i, step in enumerate(steps)]
        out[str(chart)] = tuple(step for step in parsed if step is not None)
    return out


def _step(doc: Any, where: str, problems: list[str]) -> BeforeStep | None:
    if not isinstance(doc, Mapping):
        problems.append(f"{where}: must be a mapping with name and command, not {doc!r}")
        return None
    before = len(problems)
    unknown = sorted(set(doc) - {"name", "command", "once", "timeout"})
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(map(str, unknown))} "
                        "(known: name, command, once, timeout)")
    fields: dict[str, Any] = {}
    for key, parse in _PARSERS.items():
        if key not in doc:
            if key in ("name", "command"):
                problems.append(f"{where}.{key}: missing")
            continue
        try:
            fields[key] = parse(doc[key])
        except HubtasksError as err:
            problems.append(f"{where}.{key}: {err}")
    return BeforeStep(**fields) if len(problems) == before else None


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise HubtasksError(f"must be a non-empty string, not {value!r}")
    return value


def _steps_command(value: Any) -> tuple[str, ...]:
    command = argv_command(value)
    if command is None:
        raise HubtasksError("must be a non-empty list of strings")
    return command


def _once(value: Any) -> str:
    if value not in ONCE:
        raise HubtasksError(f"must be one of {', '.join(ONCE)}, not {value!r}")
    return str(value)


_PARSERS: dict[str, Any] = {
    "name": _name,
    "command": _steps_command,
    "once": _once,
    "timeout": lambda v: positive_duration(v, what="duration"),
}
