"""tabulate's "simple" table for plain text cells, without importing tabulate (~40 ms).

`hubtasks plan` prints its tables on every PR push; most cells are plain names. Multi-line
cells (a job's reasons) are printed line by line, as tabulate does. For anything tabulate
treats specially (numbers, empty lines, wrapping, escapes, padding spaces) `simple_table`
returns None and the caller uses tabulate itself, so the output is the same either way
(tests/test_plaintable.py compares the two).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

HEADER_PADDING = 2  # tabulate's MIN_PADDING: a header is this much wider than its name
SEP = "  "
NUMBERISH = re.compile(r"[+-]?(?:\d|\.\d|inf|nan)", re.IGNORECASE)  # how floats start
BOOLS = ("True", "False")  # tabulate parses these as booleans


def _plain(cell: str, width: int | None) -> bool:
    """A cell tabulate prints as-is: no number, bool, break, escape, edge space, wrap."""
    if not cell:
        return True
    if cell in BOOLS or cell != cell.strip() or not cell.isprintable():
        return False
    if width and len(cell) > width:
        return False
    if not NUMBERISH.match(cell):  # float() would fail: skip the costly exception
        return True
    try:
        float(cell)
    except ValueError:
        return True
    return False


def simple_table(rows: Sequence[Sequence[str]], headers: Sequence[str],
                 maxcolwidths: Sequence[int | None] | None = None) -> str | None:
    """The table as `tabulate(rows, headers, tablefmt="simple")` prints it, or None."""
    limits = list(maxcolwidths or [None] * len(headers))
    if any(len(row) != len(headers) for row in rows) or len(limits) != len(headers):
        return None
    cells = [[str(c).split("\n") for c in row] for row in rows]
    for row in cells:
        if not all(_plain_lines(c, w) for c, w in zip(row, limits, strict=True)):
            return None
    if not all(_plain(h, None) and h for h in headers):
        return None
    widths = [max([len(h) + HEADER_PADDING, *(len(ln) for row in cells for ln in row[i])])
              for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return SEP.join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    body = [line([c[k] if k < len(c) else "" for c in row])
            for row in cells for k in range(max(len(c) for c in row))]
    return "\n".join([line(headers), SEP.join("-" * w for w in widths), *body])


def _plain_lines(lines: Sequence[str], width: int | None) -> bool:
    """A cell's lines (tabulate prints a multi-line cell line by line): none empty but a lone
    one, each plain."""
    return all(_plain(ln, width) for ln in lines) and (len(lines) == 1 or all(lines))
