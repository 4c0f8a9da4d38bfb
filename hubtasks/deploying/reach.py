"""Whether helm's or kubectl's output says the cluster's API server could not be reached."""

from __future__ import annotations

import re
from collections.abc import Sequence

# helm (at start or during --wait) and kubectl ("The connection to the server H was refused",
# "Unable to connect to the server") when they could not talk to the API server.
UNREACHABLE_RE = re.compile(r"cluster unreachable|connection refused|no such host|"
                            r"dial tcp|connection reset by peer|connection to the server .* "
                            r"was refused|unable to connect to the server", re.IGNORECASE)


def unreachable_note(lines: Sequence[str]) -> str:
    """`the cluster's API server was unreachable (...)` when the output says so, else ""."""
    seen = next((line.strip() for line in lines if UNREACHABLE_RE.search(line)), "")
    return f"the cluster's API server was unreachable ({seen[:200]})" if seen else ""
