"""Who is deploying: the one identity of a run, used as the holder of its Leases.

In GitHub Actions it is the workflow run (`GITHUB_RUN_ID` + `GITHUB_RUN_ATTEMPT`), which
every matrix leg of the run shares, so legs of one run never block each other. Elsewhere it
is this process: host, pid and start time.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from hubtasks.model import utc_now


@dataclass(frozen=True, kw_only=True)
class RunIdentity:
    """`holder` goes into the Lease's holderIdentity; `run` and `host` into messages."""

    holder: str
    run: str
    host: str
    pid: int | None = None  # a local run's process; None for a CI run (legs share it)


def run_identity(env: Mapping[str, str], *, pid: int | None = None,
                 started: str | None = None) -> RunIdentity:
    """The identity of the run whose environment is `env`."""
    host = socket.gethostname() or "unknown-host"
    run_id, attempt = env.get("GITHUB_RUN_ID", ""), env.get("GITHUB_RUN_ATTEMPT", "1") or "1"
    if run_id:
        repo = env.get("GITHUB_REPOSITORY", "")
        return RunIdentity(holder=f"github-run-{run_id}-{attempt}",
                           run=f"workflow run {run_id} attempt {attempt}"
                               + (f" of {repo}" if repo else ""), host=host)
    pid = os.getpid() if pid is None else pid
    started = started or _STARTED
    return RunIdentity(holder=f"{host}-{pid}-{started}", run=f"pid {pid} (started {started})",
                       host=host, pid=pid)


def holder_gone(host: str | None, pid: str | None) -> bool:
    """True when a holder ran on this host as a process that no longer exists (`kill -9`):
    its Lease need not be waited out. Unknown hosts and CI runs are never judged here."""
    if host != socket.gethostname() or not pid or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


_STARTED = utc_now()
