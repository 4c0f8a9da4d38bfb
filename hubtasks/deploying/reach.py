"""Whether helm's or kubectl's output says the cluster's API server could not be reached."""

from __future__ import annotations

import re
from collections.abc import Sequence

from hubtasks.helm import WEBHOOK_RE

# helm (at start or during --wait) and kubectl ("The connection to the server H was refused",
# "Unable to connect to the server") when they could not talk to the API server.
UNREACHABLE_RE = re.compile(r"cluster unreachable|connection refused|no such host|"
                            r"dial tcp|connection reset by peer|connection to the server .* "
                            r"was refused|unable to connect to the server|"
                            r"TLS handshake timeout|i/o timeout", re.IGNORECASE)
UNREACHABLE = "the cluster's API server was unreachable"


def unreachable_note(lines: Sequence[str]) -> str:
    """`the cluster's API server was unreachable (...)` when the output says so, else "".
    A line about an admission webhook that could not be called is not that (the API server
    answered): `webhook_note`."""
    seen = next((line.strip() for line in lines if UNREACHABLE_RE.search(line)
                 and not WEBHOOK_RE.search(line)), "")
    return f"{UNREACHABLE} ({seen[:200]})" if seen else ""


def webhook_note(lines: Sequence[str]) -> str:
    """`admission webhook "W" could not be called (...)` when the output says so, else ""."""
    for line in lines:
        found = WEBHOOK_RE.search(line)
        if found:
            return (f"admission webhook {found.group(1)!r} could not be called: the API server "
                    f"answered, the webhook did not ({line.strip()[:200]})")
    return ""
