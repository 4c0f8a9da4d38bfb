"""helm.py: argv builders, the version probe, real helm 3 and 4, and run_helm with a fake helm."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hubtasks.deploying.charts import first_build_error
from hubtasks.helm import (
    HelmInfo,
    HelmOptions,
    HelmRun,
    ReleaseDescription,
    ReleaseSpec,
    dependency_build_argv,
    describe_release,
    error_excerpt,
    helm_env,
    is_transient,
    lint_argv,
    parse_description,
    parse_version,
    probe,
    run_helm,
    template_argv,
    upgrade_argv,
)
from hubtasks.model import HubtasksError
from hubtasks.output.logs import JobLog
from hubtasks.secrets import Redactor

FAKE_HELM = Path(__file__).parent / "fakes" / "helm"
H3 = HelmInfo(path=Path("/opt/helm3"), major=3, version="v3.17.3")
H4 = HelmInfo(path=Path("/opt/helm4"), major=4, version="v4.1.4")
SPEC = ReleaseSpec(
    release="staging", namespace="staging-ns", chart_dir=Path("/repo/helm-charts/basehub"),
    values_files=(Path("/repo/common.values.yaml"), Path("/tmp/x/01-enc-staging.secret.yaml")),
    kubeconfig=Path("/creds/leap.yaml"), kube_context="leap-ctx")
DESCRIPTION = "hubtasks head=abc123 digest=0011aa"
WAIT_TIMEOUT = 60.0  # generous: only reached when something is broken


# ---------------------------------------------------------------------------- builders


def test_upgrade_argv_full_command_helm3() -> None:
    opts = HelmOptions(timeout=600, atomic=True, history_max=5)
    assert upgrade_argv(H3, SPEC, opts, description=DESCRIPTION) == [
        "/opt/helm3", "upgrade", "--install", "staging", "/repo/helm-charts/basehub",
        "--namespace", "staging-ns", "--create-namespace",
        "--kubeconfig", "/creds/leap.yaml", "--kube-context", "leap-ctx",
        "-f", "/repo/common.values.yaml", "-f", "/tmp/x/01-enc-staging.secret.yaml",
        "--wait", "--atomic", "--timeout", "600s", "--history-max", "5",
        "--description", DESCRIPTION,
    ]


@pytest.mark.parametrize(("helm", "opts", "present", "absent"), [
    (H3, HelmOptions(atomic=True), ["--atomic", "--wait"],
     ["--rollback-on-failure", "--wait=watcher"]),
    (H4, HelmOptions(atomic=True), ["--rollback-on-failure", "--wait=watcher"],
     ["--atomic", "--wait"]),
    (H3, HelmOptions(force=True), ["--force"], ["--force-replace"]),
    (H4, HelmOptions(force=True), ["--force-replace"], ["--force"]),
    (H3, HelmOptions(wait=False), [], ["--wait", "--atomic", "--force"]),
    (H4, HelmOptions(wait=False), [], ["--wait=watcher", "--rollback-on-failure"]),
    (H4, HelmOptions(extra_args=("--cleanup-on-fail",)), ["--cleanup-on-fail"], []),
], ids=["v3-atomic", "v4-atomic", "v3-force", "v4-force", "v3-nowait", "v4-nowait", "extra"])
def test_upgrade_argv_version_flags(helm: HelmInfo, opts: HelmOptions, present: list[str],
                                    absent: list[str]) -> None:
    argv = upgrade_argv(helm, SPEC, opts, description=DESCRIPTION)
    assert argv[0] == str(helm.path)
    assert all(flag in argv for flag in present)
    assert not any(flag in argv for flag in absent)


@pytest.mark.parametrize(("context", "expected"), [
    ("leap-ctx", ["--kubeconfig", "/creds/leap.yaml", "--kube-context", "leap-ctx"]),
    (None, ["--kubeconfig", "/creds/leap.yaml"]),
], ids=["context", "no-context"])
def test_upgrade_argv_kube_context(context: str | None, expected: list[str]) -> None:
    spec = ReleaseSpec(release="a", namespace="a", chart_dir=Path("c"),
                       kubeconfig=Path("/creds/leap.yaml"), kube_context=context)
    argv = upgrade_argv(H4, spec, HelmOptions(), description=DESCRIPTION)
    start = argv.index("--kubeconfig")
    assert argv[start:start + len(expected)] == expected
    assert ("--kube-context" in argv) is (context is not None)


def test_upgrade_argv_keeps_values_order() -> None:
    files = tuple(Path(f"/v/{n}.yaml") for n in ("z", "a", "m"))
    spec = ReleaseSpec(release="a", namespace="a", chart_dir=Path("c"), values_files=files,
                       kubeconfig=Path("k"))
    argv = upgrade_argv(H3, spec, HelmOptions(), description=DESCRIPTION)
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-f"] == [str(f) for f in files]


def test_upgrade_argv_needs_a_kubeconfig() -> None:
    spec = ReleaseSpec(release="prod", namespace="prod", chart_dir=Path("c"))
    with pytest.raises(HubtasksError, match="release 'prod': no kubeconfig"):
        upgrade_argv(H4, spec, HelmOptions(), description=DESCRIPTION)


def test_template_lint_and_dependency_argv_need_no_cluster() -> None:
    values = ["-f", "/repo/common.values.yaml", "-f", "/tmp/x/01-enc-staging.secret.yaml"]
    assert template_argv(H4, SPEC) == [
        "/opt/helm4", "template", "staging", "/repo/helm-charts/basehub",
        "--namespace", "staging-ns", *values]
    assert lint_argv(H3, SPEC, strict=True) == [
        "/opt/helm3", "lint", "/repo/helm-charts/basehub", "--namespace", "staging-ns",
        *values, "--strict"]
    assert dependency_build_argv(H3, Path("/c/daskhub"), skip_refresh=True) == [
        "/opt/helm3", "dependency", "build", "/c/daskhub", "--skip-refresh"]


@pytest.mark.parametrize("timeout", [0, -5], ids=["zero", "negative"])
def test_invalid_timeout_fails_when_options_are_built(timeout: float) -> None:
    with pytest.raises(HubtasksError, match="timeout"):
        HelmOptions(timeout=timeout)


@pytest.mark.parametrize(("head", "digest"), [
    ("0f051fc2a8c0e0b9d7", "9f86d081884c7d65"), ("worktree", "abc"),
], ids=["sha", "worktree"])
def test_description_round_trip(head: str, digest: str) -> None:
    text = describe_release(head, digest)
    assert text == f"hubtasks head={head} digest={digest}"
    assert parse_description(text) == ReleaseDescription(head=head, digest=digest)


@pytest.mark.parametrize("text", ["Upgrade complete", "Rollback to 3", "Install complete", ""],
                         ids=["upgrade", "rollback", "install", "empty"])
def test_parse_description_of_other_revisions(text: str) -> None:
    assert parse_description(text) is None


def test_describe_release_refuses_spaces() -> None:
    with pytest.raises(ValueError, match="head"):
        describe_release("a b", "00")


@pytest.mark.parametrize(("text", "major", "version"), [
    ("v3.17.3+ge4da497\n", 3, "v3.17.3+ge4da497"), ("v4.1.4+g05fa379", 4, "v4.1.4+g05fa379"),
], ids=["v3", "v4"])
def test_parse_version(text: str, major: int, version: str) -> None:
    assert parse_version(Path("h"), text) == HelmInfo(path=Path("h"), major=major,
                                                      version=version)


@pytest.mark.parametrize("text", ["v2.17.0+g1", "Client: garbage"], ids=["helm2", "garbage"])
def test_parse_version_refuses(text: str) -> None:
    with pytest.raises(HubtasksError, match="helm"):
        parse_version(Path("h"), text)


# ---------------------------------------------------------------------------- charts


def make_chart(root: Path, name: str, deps: dict[str, str] | None = None,
               version: str = "0.1.0") -> Path:
    """A tiny chart; `deps` maps dependency names to their file:// folders (relative)."""
    folder = root / name
    (folder / "templates").mkdir(parents=True)
    lines = ["apiVersion: v2", f"name: {name}", f"version: {version}"]
    if deps:
        lines.append("dependencies:")
        for dep, rel in deps.items():
            lines += [f"  - name: {dep}", "    version: 0.1.0", f"    repository: file://{rel}"]
    (folder / "Chart.yaml").write_text("\n".join(lines) + "\n")
    (folder / "values.yaml").write_text(f"greeting: hello from {name}\n")
    (folder / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        f"  name: {{{{ .Release.Name }}}}-{name}\n"
        "  namespace: {{ .Release.Namespace }}\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n")
    return folder


# ---------------------------------------------------------------------------- text helpers


@pytest.mark.parametrize(("line", "transient"), [
    ('Error: Kubernetes cluster unreachable: Get "https://127.0.0.1:1/version": dial tcp '
     "127.0.0.1:1: connect: connection refused", True),
    ("Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress", False),
    ("read tcp 10.0.0.2:5000->10.0.0.1:443: read: connection reset by peer", True),
    ("net/http: TLS handshake timeout", True),
    ("dial tcp 34.1.2.3:443: i/o timeout", True),
    ("Error: UPGRADE FAILED: template: x.yaml:3: nil pointer evaluating", False),
    ("Error: INSTALLATION FAILED: context deadline exceeded", False),
], ids=["refused", "in-progress", "reset", "tls", "io-timeout", "template", "deadline"])
def test_is_transient(line: str, transient: bool) -> None:
    assert is_transient([line]) is transient


def test_error_excerpt_prefers_error_lines_and_is_capped() -> None:
    lines = ["noise\n"] * 50 + ["Error: boom\n"] + ["more noise\n"]
    assert error_excerpt(lines) == "Error: boom"
    assert error_excerpt(["a\n", "b\n"]) == "a\nb"
    big = [f"Error: {'x' * 5000} {n}\n" for n in range(100)]
    assert len(error_excerpt(big)) <= 4000


def test_helm_env_drops_ambient_cluster_selection() -> None:
    base = {"PATH": "/bin", "KUBECONFIG": "/other", "HELM_KUBECONTEXT": "prod",
            "HELM_KUBEAPISERVER": "https://x", "HELM_NAMESPACE": "default", "HOME": "/h"}
    env = helm_env(base, extra={"HELM_CACHE_HOME": "/c"})
    assert env == {"PATH": "/bin", "HOME": "/h", "HELM_CACHE_HOME": "/c"}
    assert base["KUBECONFIG"] == "/other"


# ---------------------------------------------------------------------------- real helm


@pytest.fixture
def helm_vars(tmp_path: Path) -> dict[str, str]:
    """The test's environment with helm's cache/config/data kept inside tmp_path."""
    dirs = {f"HELM_{kind}_HOME": str(tmp_path / "helm-home" / kind.lower())
            for kind in ("CACHE", "CONFIG", "DATA")}
    return {**os.environ, **dirs}


def test_probe_reports_each_major(helm_bins: dict[int, Path]) -> None:
    for major, path in helm_bins.items():
        info = probe(path, env=os.environ)
        assert (info.path, info.major) == (path, major)
        assert info.version.startswith(f"v{major}.")
        assert probe(path, env=os.environ) is info  # cached


def test_probe_names_a_broken_binary(tmp_path: Path) -> None:
    with pytest.raises(HubtasksError, match=r"missing-helm: `helm version --short` could not"):
        probe(tmp_path / "missing-helm", env=os.environ)


def test_template_renders_chart_with_values_in_order(helm: Path, tmp_path: Path,
                                                     helm_vars: dict[str, str]) -> None:
    chart = make_chart(tmp_path, "hub")
    first, second = tmp_path / "common.values.yaml", tmp_path / "hub.values.yaml"
    first.write_text("greeting: from common\n")
    second.write_text("greeting: from hub\n")
    spec = ReleaseSpec(release="r1", namespace="ns1", chart_dir=chart,
                       values_files=(first, second))
    run = run_helm(template_argv(probe(helm, env=os.environ), spec), env=helm_vars,
                   timeout=WAIT_TIMEOUT, retries=0)
    assert run, run.error
    assert "name: r1-hub" in run.output
    assert "namespace: ns1" in run.output
    assert 'greeting: "from hub"' in run.output


def test_first_build_error_with_file_dependencies(helm: Path, tmp_path: Path,
                                                   helm_vars: dict[str, str]) -> None:
    make_chart(tmp_path, "common")
    make_chart(tmp_path, "basehub", {"common": "../common"})
    daskhub = make_chart(tmp_path, "daskhub", {"basehub": "../basehub"})
    info = probe(helm, env=os.environ)
    ordered = [(tmp_path / "basehub", True), (daskhub, True)]
    assert first_build_error(info, ordered, env=helm_vars) is None
    assert (tmp_path / "basehub" / "charts" / "common-0.1.0.tgz").is_file()
    assert (daskhub / "charts" / "basehub-0.1.0.tgz").is_file()
    spec = ReleaseSpec(release="dask", namespace="dask", chart_dir=daskhub)
    run = run_helm(template_argv(info, spec), env=helm_vars, timeout=WAIT_TIMEOUT, retries=0)
    assert run, run.error
    # common reached daskhub through basehub's packaged charts/ only if basehub was built first
    assert "name: dask-common" in run.output
    assert "name: dask-basehub" in run.output


def test_first_build_error_names_chart_and_shows_helm_message(
        helm: Path, tmp_path: Path, helm_vars: dict[str, str]) -> None:
    make_chart(tmp_path, "basehub", version="0.2.0")
    daskhub = make_chart(tmp_path, "daskhub", {"basehub": "../basehub"})
    message = first_build_error(probe(helm, env=os.environ), [(daskhub, True)], env=helm_vars)
    assert message is not None
    assert f"chart {daskhub}: `helm dependency build` failed" in message
    assert "can't get a valid version" in message


def long_flags(argv: list[str]) -> list[str]:
    return [arg.split("=")[0] for arg in argv if arg.startswith("--")]


@pytest.mark.parametrize("opts", [HelmOptions(atomic=True), HelmOptions(force=True)],
                         ids=["atomic", "force"])
def test_real_helm_knows_every_upgrade_flag(helm: Path, helm_vars: dict[str, str],
                                            opts: HelmOptions) -> None:
    info = probe(helm, env=os.environ)
    run = run_helm([str(helm), "upgrade", "--help"], env=helm_vars, timeout=WAIT_TIMEOUT)
    for flag in long_flags(upgrade_argv(info, SPEC, opts, description=DESCRIPTION)):
        assert f"{flag} " in run.output or f"{flag}=" in run.output, flag


def test_real_helm_accepts_upgrade_argv_then_fails_to_connect(
        helm: Path, tmp_path: Path, helm_vars: dict[str, str]) -> None:
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n"
        "clusters: [{name: nowhere, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: nobody, user: {token: not-a-token}}]\n"
        "contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]\n")
    spec = ReleaseSpec(release="hub", namespace="hub", chart_dir=make_chart(tmp_path, "hub"),
                       kubeconfig=kubeconfig, kube_context="nowhere")
    opts = HelmOptions(timeout=30, atomic=True, force=True)
    argv = upgrade_argv(probe(helm, env=os.environ), spec, opts, description=DESCRIPTION)
    run = run_helm(argv, env=helm_vars, timeout=WAIT_TIMEOUT, retries=0)
    assert not run and run.attempts == 1
    assert "unknown flag" not in run.output
    assert "connection refused" in run.error
    assert is_transient(run.error.splitlines())


# ---------------------------------------------------------------------------- fake helm


def fake(mode: str, tmp_path: Path, **extra: str) -> tuple[list[str], dict[str, str]]:
    """argv and env for one run of tests/fakes/helm in `mode`."""
    env = {**os.environ, "FAKE_HELM_MODE": mode, "FAKE_HELM_STATE": str(tmp_path / "calls"),
           "FAKE_HELM_PIDS": str(tmp_path / "pids"), **extra}
    return [sys.executable, str(FAKE_HELM), "upgrade", "--install", "hub", "chart"], env


def calls(tmp_path: Path) -> int:
    return int((tmp_path / "calls").read_text())


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone: it can do nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def hang_pids(tmp_path: Path) -> list[int]:
    wait_for(lambda: (tmp_path / "pids").exists() and
             (tmp_path / "pids").read_text().endswith("\n"), "the fake helm's pids")
    return [int(p) for p in (tmp_path / "pids").read_text().split()]


def in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    box: list[object] = []
    thread = threading.Thread(target=lambda: box.append(target()), daemon=True)
    thread.start()
    return thread, box


def test_success_logs_the_command_and_output(tmp_path: Path) -> None:
    argv, env = fake("ok", tmp_path)
    log = tmp_path / "logs" / "job.log"
    with JobLog(log) as job_log:
        run = run_helm(argv, env=env, timeout=WAIT_TIMEOUT, log=job_log)
    assert run and run.attempts == 1 and run.exit_code == 0
    text = log.read_text()
    assert f"attempt 1: $ {sys.executable} {FAKE_HELM} upgrade --install hub chart" in text
    assert "ok\n" in text and "exited 0 after" in text


def test_transient_failures_are_retried_with_exponential_backoff(tmp_path: Path) -> None:
    argv, env = fake("flaky", tmp_path, FAKE_HELM_FAILS="2")
    log, sleeps = tmp_path / "job.log", list[float]()
    with JobLog(log) as job_log:
        run = run_helm(argv, env=env, timeout=WAIT_TIMEOUT, log=job_log, retries=2,
                       backoff=0.5, sleep=sleeps.append)
    assert run and run.attempts == 3 and calls(tmp_path) == 3
    assert sleeps == [0.5, 1.0]
    assert [f"attempt {n}:" in log.read_text() for n in (1, 2, 3)] == [True] * 3
    assert run.error == ""


def test_a_stuck_release_is_not_retried_blindly(tmp_path: Path) -> None:
    argv, env = fake("busy", tmp_path)  # "another operation is in progress": repair, not retry
    run = run_helm(argv, env=env, timeout=WAIT_TIMEOUT, retries=3, backoff=0.01)
    assert not run and run.attempts == 1 and calls(tmp_path) == 1 and run.exit_code == 1
    assert run.error == ("Error: UPGRADE FAILED: another operation (install/upgrade/rollback) "
                         "is in progress")


def test_non_transient_failure_is_not_retried(tmp_path: Path) -> None:
    argv, env = fake("fail", tmp_path)
    run = run_helm(argv, env=env, timeout=WAIT_TIMEOUT, retries=2, backoff=0.01)
    assert not run and run.attempts == 1 and calls(tmp_path) == 1
    assert "nil pointer evaluating" in run.error


@pytest.mark.parametrize("ignore_term", ["0", "1"], ids=["sigterm", "needs-sigkill"])
def test_timeout_kills_the_whole_process_group(tmp_path: Path, ignore_term: str) -> None:
    argv, env = fake("hang", tmp_path, FAKE_HELM_IGNORE_TERM=ignore_term)
    run = run_helm(argv, env=env, timeout=5, retries=2, backoff=0.01, grace=0.5)
    pids = hang_pids(tmp_path)
    assert run.timed_out and not run.cancelled and not run
    assert run.attempts == 1  # a timed-out helm is not retried
    assert run.exit_code is None and run.outcome.signal in (signal.SIGTERM, signal.SIGKILL)
    wait_for(lambda: not any(alive(pid) for pid in pids), "helm and its child to be gone")


def test_cancel_stops_a_running_helm_and_its_children(tmp_path: Path) -> None:
    argv, env = fake("hang", tmp_path)
    cancel = threading.Event()
    thread, box = in_thread(lambda: run_helm(argv, env=env, timeout=3600, cancel=cancel,
                                             retries=2, backoff=0.01, grace=0.5))
    pids = hang_pids(tmp_path)
    cancel.set()
    thread.join(WAIT_TIMEOUT)
    assert not thread.is_alive()
    [run] = box
    assert isinstance(run, HelmRun)
    assert run.cancelled and not run.timed_out and run.attempts == 1
    wait_for(lambda: not any(alive(pid) for pid in pids), "helm and its child to be gone")


def test_cancel_interrupts_the_backoff_sleep(tmp_path: Path) -> None:
    argv, env = fake("flaky", tmp_path, FAKE_HELM_FAILS="99")
    cancel, log = threading.Event(), tmp_path / "job.log"
    job_log = JobLog(log).__enter__()
    thread, box = in_thread(lambda: run_helm(argv, env=env, timeout=WAIT_TIMEOUT, log=job_log,
                                             cancel=cancel, retries=2, backoff=3600))
    wait_for(lambda: log.exists() and "retrying in 3600s" in log.read_text(), "the backoff")
    cancel.set()
    thread.join(WAIT_TIMEOUT)  # the backoff is an hour: returning at all shows it woke up
    assert not thread.is_alive()
    [run] = box
    assert isinstance(run, HelmRun)
    assert run.cancelled and run.attempts == 1 and run.exit_code == 1
    assert calls(tmp_path) == 1
    job_log.__exit__(None, None, None)
    assert "cancelled; no further attempt" in log.read_text()


def test_cancelled_before_start_runs_nothing(tmp_path: Path) -> None:
    argv, env = fake("ok", tmp_path)
    cancel = threading.Event()
    cancel.set()
    run = run_helm(argv, env=env, timeout=WAIT_TIMEOUT, cancel=cancel)
    assert run.cancelled and run.attempts == 0 and not run


def test_big_output_does_not_deadlock(tmp_path: Path) -> None:
    argv, env = fake("chatty", tmp_path, FAKE_HELM_BYTES=str(8 * 1024 * 1024))
    log = tmp_path / "job.log"
    with JobLog(log) as job_log:
        run = run_helm(argv, env=env, timeout=WAIT_TIMEOUT, log=job_log)
    assert run and run.output.endswith("done chatting\n")
    assert len(run.output) <= 16_000
    assert log.stat().st_size > 8 * 1024 * 1024


def test_missing_executable_is_a_failed_attempt(tmp_path: Path) -> None:
    run = run_helm([str(tmp_path / "no-helm"), "version"], env={}, timeout=WAIT_TIMEOUT)
    assert not run and run.exit_code is None and run.attempts == 1
    assert "could not start" in run.error


def test_env_is_per_process_and_secrets_are_redacted(tmp_path: Path) -> None:
    argv, env = fake("env", tmp_path, KUBECONFIG="/elsewhere", HUBTASKS_TEST_VALUE="hunter22")
    log = tmp_path / "job.log"
    with JobLog(log) as job_log:
        run = run_helm(argv, env=env, timeout=WAIT_TIMEOUT, log=job_log,
                       redactor=Redactor(["hunter22"]))
    assert "HUBTASKS_TEST_VALUE=***" in run.output
    assert "KUBECONFIG=" not in run.output
    assert "hunter22" not in log.read_text()


def test_a_detached_grandchild_holding_the_output_does_not_block(tmp_path: Path) -> None:
    argv, env = fake("detach", tmp_path)
    log = tmp_path / "job.log"
    try:
        with JobLog(log) as job_log:
            run = run_helm(argv, env=env, timeout=WAIT_TIMEOUT, log=job_log)
    finally:
        [pid] = hang_pids(tmp_path)
        os.kill(pid, signal.SIGKILL)
    assert run and run.output == "detached a child\n"
    assert "exited 0 after" in log.read_text()


def test_real_helm_lints_with_values(helm: Path, tmp_path: Path,
                                     helm_vars: dict[str, str]) -> None:
    chart = make_chart(tmp_path, "hub")
    broken = tmp_path / "broken.values.yaml"
    broken.write_text("greeting: [unclosed\n")
    spec = ReleaseSpec(release="hub", namespace="hub", chart_dir=chart)
    info = probe(helm, env=os.environ)
    assert run_helm(lint_argv(info, spec), env=helm_vars, timeout=WAIT_TIMEOUT, retries=0)
    bad = ReleaseSpec(release="hub", namespace="hub", chart_dir=chart, values_files=(broken,))
    run = run_helm(lint_argv(info, bad), env=helm_vars, timeout=WAIT_TIMEOUT, retries=0)
    assert not run and run.attempts == 1


def test_probe_runs_version_once_per_path(tmp_path: Path) -> None:
    fake_helm = tmp_path / "helm"
    fake_helm.write_text(f"#!/bin/sh\necho run >> {tmp_path / 'calls'}\nsleep 0.2\n"
                         "echo v3.99.1+gdeadbee\n")
    fake_helm.chmod(0o755)
    threads = [threading.Thread(target=probe, args=(fake_helm,),
                                kwargs={"env": os.environ}) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_TIMEOUT)
    assert probe(fake_helm, env=os.environ) == HelmInfo(path=fake_helm, major=3,
                 version="v3.99.1+gdeadbee")
    assert (tmp_path / "calls").read_text() == "run\n"


class CtrlC(threading.Event):
    """Stand-in for Ctrl-C: waiting on it raises KeyboardInterrupt once helm is running."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__()
        self.tmp_path = tmp_path

    def wait(self, timeout: float | None = None) -> bool:
        hang_pids(self.tmp_path)
        raise KeyboardInterrupt

    def is_set(self) -> bool:
        # with a pidfd the runner never waits on the event, but it asks it every poll
        pids = self.tmp_path / "pids"
        if pids.exists() and pids.read_text().endswith("\n"):
            raise KeyboardInterrupt
        return False


def test_an_interrupt_in_the_caller_stops_the_process_group(tmp_path: Path) -> None:
    argv, env = fake("hang", tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_helm(argv, env=env, timeout=3600, cancel=CtrlC(tmp_path), grace=0.5)
    pids = hang_pids(tmp_path)
    wait_for(lambda: not any(alive(pid) for pid in pids), "helm and its child to be gone")


def test_the_attempt_echo_is_redacted(tmp_path: Path) -> None:
    argv, env = fake("ok", tmp_path)
    log = tmp_path / "job.log"
    with JobLog(log) as job_log:
        run_helm([*argv, "--set", "token=abc", "--description", "hunter22-secret"], env=env,
                 timeout=WAIT_TIMEOUT, log=job_log, redactor=Redactor(["hunter22-secret"]))
    echo = next(line for line in log.read_text().splitlines() if "attempt 1: $" in line)
    assert "--set '***'" in echo or "--set ***" in echo
    assert "hunter22" not in echo and "token=abc" not in echo and "--description '***'" in echo
