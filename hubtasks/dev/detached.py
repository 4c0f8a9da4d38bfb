"""Local clusters left running by `demo --keep`: stopping them, and their readiness loop."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from hubtasks.dev.apiserver import LocalCluster
from hubtasks.dev.localk8s import DETACHED
from hubtasks.dev.podready import PodReadiness


def is_running(pid: int, exe: str) -> bool:
    """Whether `pid` is alive (not a zombie) and still runs `exe` (pids get reused)."""
    proc = Path(f"/proc/{pid}")
    try:
        if not proc.exists():
            os.kill(pid, 0)  # no /proc (not Linux): existence is all we can check
            return True
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
    except (ProcessLookupError, FileNotFoundError):
        return False
    except PermissionError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and Path(exe).name in cmdline


def _signal_group(pid: int, sig: int) -> None:
    """Signal a process group that may already be gone."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_detached(state_file: Path, grace: float = 10.0) -> str:
    """Stop clusters left running by `LocalClusters.detach(state_file)`; say what was done."""
    if not state_file.is_file():
        return f"no detached local clusters recorded in {state_file}"
    state = json.loads(state_file.read_text())
    alive = [p for p in state["processes"] if is_running(p["pid"], p["exe"])]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for process in alive:
            _signal_group(process["pid"], sig)
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            for child in DETACHED:
                child.poll()  # reap our own children, or they linger as zombies
            alive = [p for p in alive if is_running(p["pid"], p["exe"])]
            time.sleep(0.1)
    DETACHED[:] = [child for child in DETACHED if child.poll() is None]
    state_file.unlink()
    names = ", ".join(c["name"] for c in state["clusters"])
    left = f"; still running: {alive}" if alive else ""
    return f"stopped local clusters {names} ({len(state['processes'])} processes){left}"


def run_detached_readiness(state_file: Path) -> None:
    """The detached pod-readiness loop: until stopped, or no apiserver answers for a minute."""
    state = json.loads(state_file.read_text())
    clusters = [
        LocalCluster(**{**c, "kubeconfig": Path(c["kubeconfig"])}) for c in state["clusters"]
    ]
    log = state_file.parent / "pod-readiness-errors.log"
    PodReadiness(clusters, state["fail_marker"], log, state["interval"], give_up_after=60).run()


if __name__ == "__main__":
    if sys.argv[1:2] != ["readiness"] or len(sys.argv) != 3:
        sys.exit("usage: python -m hubtasks.dev.detached readiness STATE_FILE")
    run_detached_readiness(Path(sys.argv[2]))
