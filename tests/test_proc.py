"""proc.py, the one way a process starts: outcomes, timeouts, cancel, redaction, parent death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_tools import write_exe

from hubtasks import proc
from hubtasks.model import HubtasksError
from hubtasks.secrets import Redactor

PY = sys.executable
WAIT = 60.0


def py(code: str) -> list[str]:
    return [PY, "-c", code]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_success_keeps_redacted_output_and_streams_it() -> None:
    seen: list[str] = []
    outcome = proc.run(py("print('hello hunter22'); import sys; print('err', file=sys.stderr)"),
                       env=os.environ, timeout=WAIT, redact=Redactor(["hunter22"]),
                       on_output=seen.append)
    assert outcome and outcome.exit_code == 0 and outcome.signal is None
    assert outcome.lines == ["hello ***", "err"] and seen == ["hello ***\n", "err\n"]
    assert outcome.describe() == "exited 0"


def test_keep_stdout_returns_bytes_and_never_logs_them() -> None:
    seen: list[str] = []
    outcome = proc.run(py("import sys; sys.stdout.write('plain'); sys.stderr.write('note')"),
                       env=os.environ, timeout=WAIT, keep_stdout=True, on_output=seen.append)
    assert outcome.stdout == b"plain" and outcome.output == "note\n" and seen == ["note\n"]


def test_stdin_is_fed() -> None:
    outcome = proc.run(py("import sys; print(sys.stdin.read().upper())"), env=os.environ,
                       timeout=WAIT, stdin=b"manifest")
    assert outcome.lines == ["MANIFEST"]


def test_env_is_the_whole_environment() -> None:
    outcome = proc.run(py("import os; print(sorted(k for k in os.environ if k.startswith('X_')))"),
                       env={"X_ONLY": "1", "PATH": os.defpath}, timeout=WAIT)
    assert outcome.lines == ["['X_ONLY']"]


def test_failures_say_how_the_process_ended() -> None:
    assert proc.run(py("raise SystemExit(3)"), env=os.environ, timeout=WAIT).describe() == \
        "exited 3"
    killed = proc.run(py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"),
                      env=os.environ, timeout=WAIT)
    assert not killed and killed.exit_code is None and killed.signal == signal.SIGKILL
    assert killed.describe() == "killed by signal 9 (SIGKILL)"
    missing = proc.run(["/nonexistent/tool"], env=os.environ, timeout=WAIT)
    assert not missing and missing.describe().startswith("could not start: /nonexistent/tool")


def test_checked_raises_a_user_error_with_the_output() -> None:
    outcome = proc.run(py("print('boom'); raise SystemExit(1)"), env=os.environ, timeout=WAIT)
    with pytest.raises(HubtasksError, match=r"(?s)frobnicate failed \(exited 1\):\nboom"):
        proc.checked(outcome, "frobnicate")


def test_timeout_kills_the_group_and_cancel_stops_it(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = ("import os, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)'])\n"
            f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
            "time.sleep(3600)\n")
    outcome = proc.run(py(code), env=os.environ, timeout=2, grace=0.5)
    assert outcome.timed_out and not outcome
    started = [int(p) for p in pids.read_text().split()]
    wait_for(lambda: not any(alive(pid) for pid in started), "the group to be gone")
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    cancelled = proc.run(py("import time; time.sleep(3600)"), env=os.environ, timeout=3600,
                         cancel=cancel, grace=0.5)
    assert cancelled.cancelled and cancelled.describe() == "cancelled"


def test_a_child_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """kill -9 of the parent: the child gets its parent-death signal instead of running on."""
    pid_file = tmp_path / "child"
    child_code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid()))" \
        "; time.sleep(3600)"
    script = tmp_path / "parent.py"
    script.write_text("import os, sys\nfrom hubtasks import proc\n"
                      f"proc.run([sys.executable, '-c', {child_code!r}], env=os.environ, "
                      "timeout=3600)\n")
    parent = script.read_text()
    started = subprocess.Popen([PY, "-c", parent], env={**os.environ,
                               "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text().isdigit(), "the child")
        child = int(pid_file.read_text())
        assert alive(child)
        started.kill()
        started.wait(WAIT)
        wait_for(lambda: not alive(child), "the child to die with its parent")
    finally:
        started.kill()


def test_output_survives_a_reader_that_stopped_reading(tmp_path: Path) -> None:
    """Output goes to a file, not a pipe: a program that writes after the end never gets
    SIGPIPE, and a detached grandchild holding the output does not block the caller."""
    code = ("import subprocess, sys\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3)'],"
            " start_new_session=True)\n"
            "print('parent done')\n")
    started = time.monotonic()
    outcome = proc.run(py(code), env=os.environ, timeout=WAIT)
    assert outcome and outcome.lines == ["parent done"]
    assert time.monotonic() - started < 3  # did not wait for the grandchild


def test_spawn_starts_a_daemon_in_its_own_group(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    child = proc.spawn(py("print('up', flush=True); import time; time.sleep(3600)"),
                       env=os.environ, log=log)
    try:
        wait_for(lambda: log.exists() and "up" in log.read_text(), "the daemon")
        assert os.getpgid(child.pid) == child.pid
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(WAIT)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_of_hubtasks_takes_what_its_program_started_too(tmp_path: Path) -> None:
    """The parent-death signal reaches only the child (a wrapper around helm); the reaper
    kills the child's whole group, so the wrapper's own child goes as well."""
    pidfile = tmp_path / "grandchild"
    wrapper = write_exe(tmp_path / "wrapper",
                        f"#!/bin/sh\nsleep 300 &\necho $! > {pidfile}\nwait\n")
    driver = ("import os; from hubtasks import proc; "
              f"proc.run([{str(wrapper)!r}], env=dict(os.environ), timeout=600)")
    hubtasks = subprocess.Popen([sys.executable, "-c", driver])
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text().strip()) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    assert _alive(grandchild)
    hubtasks.kill()
    hubtasks.wait()
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _alive(grandchild)
    if alive:
        os.kill(grandchild, 9)
    assert not alive
