"""duration.py: the one grammar of every time option and setting."""

from __future__ import annotations

import pytest

from hubtasks.duration import go_duration, parse_duration, positive_duration
from hubtasks.model import HubtasksError


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("1h30m", 5400), ("10", 10), ("5m", 300), ("2.5", 2.5), ("1m30.5s", 90.5),
    ("500ms", 0.5), (" 10m ", 600), (12, 12), (0.25, 0.25), ("0", 0),
], ids=["seconds", "hours-minutes", "bare", "minutes", "fraction", "mixed", "millis", "spaces",
        "int", "float", "zero"])
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "", "m", "10 minutes", "30m1h", "1h1h", "-5", "5x",
                                  True], ids=str)
def test_invalid_durations_name_what_they_are(text: str | bool) -> None:
    with pytest.raises(HubtasksError, match="invalid --timeout"):
        parse_duration(text, what="--timeout")


def test_positive_duration_refuses_zero() -> None:
    with pytest.raises(HubtasksError, match="must be more than 0"):
        positive_duration("0s", what="interval")


@pytest.mark.parametrize(("seconds", "text"), [(600, "600s"), (600.0, "600s"), (90.5, "90.5s"),
                                               (0.25, "250ms")])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
    assert parse_duration(text) == seconds
