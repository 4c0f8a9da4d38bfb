"""The one duration grammar, for every option and setting that takes a time.

A duration is either a plain number of seconds (`90`, `2.5`) or a sequence of numbers with
units, largest first, as Go writes them: `h`, `m`, `s`, `ms` (`10m`, `90s`, `1h30m`, `1m30.5s`,
`500ms`). Helm's `--timeout` takes the Go form, which `go_duration` writes.
"""

from __future__ import annotations

import re

from hubtasks.model import HubtasksError

UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
HINT = "use seconds (90) or Go units h, m, s, ms (10m, 90s, 1h30m)"


def parse_duration(value: str | float | int, *, what: str = "duration") -> float:
    """Seconds from a duration (see the module docstring); an error names `what`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value.strip(), what)
    else:  # a bool, a list or null from an invoke config
        raise HubtasksError(f"invalid {what} {value!r}: {HINT}")
    if seconds < 0:
        raise HubtasksError(f"invalid {what} {value!r}: must not be negative")
    return seconds


def _parse_text(text: str, what: str) -> float:
    if _NUMBER.fullmatch(text):
        return float(text)
    parts = list(_PART.finditer(text))
    units = [UNITS[p.group(2)] for p in parts]
    joined = "".join(p.group(0) for p in parts)
    if not parts or joined != text or units != sorted(set(units), reverse=True):
        raise HubtasksError(f"invalid {what} {text!r}: {HINT}")
    return sum(float(p.group(1)) * UNITS[p.group(2)] for p in parts)


def positive_duration(value: str | float | int, *, what: str = "duration") -> float:
    """Like `parse_duration`, but zero is refused too (timeouts, intervals)."""
    seconds = parse_duration(value, what=what)
    if seconds <= 0:
        raise HubtasksError(f"invalid {what} {value!r}: must be more than 0")
    return seconds


def go_duration(seconds: float) -> str:
    """Seconds as a Go duration for helm: `600s`, `1.5s`, `250ms`."""
    if seconds < 1 and not float(seconds).is_integer():
        return f"{round(seconds * 1000)}ms"
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds:g}s"
