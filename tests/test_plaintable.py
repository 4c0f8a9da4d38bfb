"""The plain "simple" table renderer prints exactly what tabulate prints, or declines."""

from __future__ import annotations

import random
import string

import pytest
from tabulate import tabulate

from hubtasks.output.plaintable import simple_table

HEADERS = ["cluster", "hub", "chart", "reasons"]
SPECIAL = ["", "True", "False", "None", "0x1f", "1_0", "1e3", "nan", "inf", "-", " x", "a\nb",
           "values a.yaml modified\ncanary for prod hubs: x", "a\n\nb", "1\n2", "x\n", "\nx",
           "a\n" + "y" * 81, "one\ntwo\nthree",
           "\x1b[1mbold\x1b[0m", "42"]


def _cell(rng: random.Random) -> str:
    alpha = string.ascii_letters + string.digits + "-_:./ é()[]"
    if rng.random() < 0.4:
        return rng.choice(SPECIAL)
    return "".join(rng.choice(alpha) for _ in range(rng.randint(0, 30)))


@pytest.mark.parametrize("seed", range(5))
def test_same_as_tabulate_or_declines(seed: int) -> None:
    rng = random.Random(seed)
    used = multiline = 0
    for _ in range(2000):
        cols = rng.choice([3, 4])
        rows = [[_cell(rng) for _ in range(cols)] for _ in range(rng.randint(0, 5))]
        widths = [None] * (cols - 1) + [rng.choice([None, 10, 80])]
        mine = simple_table(rows, HEADERS[:cols], widths)
        if mine is not None:
            used += 1
            multiline += "\n" in mine.split("\n", 2)[-1] and any("\n" in c for r in rows
                                                                for c in r)
            assert mine == tabulate(rows, headers=HEADERS[:cols], tablefmt="simple",
                                    maxcolwidths=widths), rows
    assert used > 100 and multiline > 10  # the fast path is really taken


def test_declines_what_tabulate_changes() -> None:
    for cell in ("12", "True", "a\n\nb", "a\n", " padded", "x" * 81, "a\n 2"):
        assert simple_table([["c", cell]], ["cluster", "reasons"], [None, 80]) is None
    assert simple_table([["c", "plain"]], ["cluster", "reasons"], [None, 80]) is not None
    assert simple_table([["c", "a\nb"]], ["cluster", "reasons"], [None, 80]) is not None
