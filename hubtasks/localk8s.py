"""Local Kubernetes control planes on loopback, for tests and the demo.

One etcd serves every cluster; each cluster is its own kube-apiserver (separated by
`--etcd-prefix`) plus a kube-controller-manager, so Deployments get ReplicaSets and Pods. There is
no kubelet: a background thread marks pods Running/Ready, except pods whose image contains a
marker, which stay Pending so a test can make a rollout fail. See shared/envtest/README.md.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from hubtasks import tools
from hubtasks.model import HubtasksError
from hubtasks.podready import PodReadiness, is_ready

START_ATTEMPTS = 3
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
CONTROLLERS = (
    "*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route,-attachdetach,"
    "-persistentvolume-binder,-persistentvolume-expander"
)
@dataclass(frozen=True, kw_only=True)
class LocalCluster:
    """One running local cluster and how to reach it."""

    name: str
    kubeconfig: Path
    server: str
    context: str
    token: str


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held together so they differ)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def kubeconfig_text(name: str, server: str, token: str) -> str:
    """A kubeconfig with one cluster, user and context, all named `name`."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    return yaml.safe_dump(config, sort_keys=False)


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (it holds a token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


# ---------------------------------------------------------------- processes


class Component:
    """One control-plane process in its own session, logging to a file."""

    def __init__(self, label: str, argv: Sequence[str], log: Path) -> None:
        self.label, self.argv, self.log = label, list(argv), log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, cwd: Path) -> None:
        """Start the process detached from our terminal's signals."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={"PATH": os.defpath, "HOME": str(cwd)},
            )

    def check_alive(self) -> None:
        """Raise with the log's tail if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise HubtasksError(
                f"{self.label} exited with {self.proc.returncode}; log {self.log}:\n"
                + log_tail(self.log)
            )

    def signal(self, sig: int) -> None:
        """Send `sig` to the process group, ignoring one that is already gone."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> bool:
        """Wait for exit; whether it exited in time."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False


def stop_components(components: Sequence[Component], grace: float = 10.0) -> None:
    """SIGTERM every group, then SIGKILL what is left after `grace` seconds, and reap."""
    for comp in components:
        comp.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for comp in components:
        if not comp.wait(max(0.0, deadline - time.monotonic())):
            comp.signal(signal.SIGKILL)
            comp.wait(30.0)


def wait_ready(comp: Component, url: str, token: str | None, timeout: float) -> None:
    """Poll `url` until ready; raise with the log's tail if the process dies or times out."""
    deadline = time.monotonic() + timeout
    while not is_ready(url, token):
        comp.check_alive()
        if time.monotonic() > deadline:
            raise HubtasksError(
                f"{comp.label} not ready at {url} after {timeout:.0f}s; log {comp.log}:\n"
                + log_tail(comp.log)
            )
        time.sleep(0.3)


# ---------------------------------------------------------------- the clusters


class LocalClusters:
    """Start and stop local clusters; use as a context manager so they always stop."""

    def __init__(
        self,
        names: Sequence[str],
        workdir: Path,
        *,
        fail_marker: str = "hubtasks-fail",
        assets: Path | None = None,
        ready_timeout: float = 90.0,
        sweep_interval: float = 0.5,
    ) -> None:
        bad = [n for n in names if not NAME_RE.match(n)] + (
            ["(duplicates)"] if len(set(names)) != len(names) else []
        )
        if bad or not names:
            raise HubtasksError(f"local cluster names must be unique DNS labels, got {list(names)}")
        self.names, self.workdir = list(names), workdir.resolve()
        self.fail_marker, self.assets, self.ready_timeout = fail_marker, assets, ready_timeout
        self.sweep_interval = sweep_interval
        self.clusters: dict[str, LocalCluster] = {}
        self.components: list[Component] = []
        self.readiness: PodReadiness | None = None

    def __enter__(self) -> LocalClusters:
        self.start()
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        """Process ids of every component started (running or not)."""
        return [c.proc.pid for c in self.components if c.proc is not None]

    def start(self) -> dict[str, LocalCluster]:
        """Start etcd, then every apiserver in parallel, then controller managers and readiness."""
        if self.components:
            raise HubtasksError("LocalClusters.start() was already called; create a new one")
        for attempt in range(1, START_ATTEMPTS + 1):
            atexit.register(self.stop)  # a crashed test run must not leave control planes behind
            try:
                self._start()
                return dict(self.clusters)
            except BaseException as exc:
                self.stop()
                # Free ports are picked before the binaries bind them; another run may win one.
                if attempt == START_ATTEMPTS or "address already in use" not in str(exc):
                    raise
                self.components, self.clusters = [], {}
                shutil.rmtree(self.workdir / "etcd-data", ignore_errors=True)
        raise AssertionError("unreachable")

    def _start(self) -> None:
        """Start everything; the caller stops what started if this raises."""
        assets = self.assets or tools.envtest_assets()
        self.workdir.mkdir(parents=True, exist_ok=True)
        ports = iter(free_ports(2 + 2 * len(self.names)))
        etcd_url = self._start_etcd(next(ports), next(ports))
        self._make_service_account_keys()
        apiservers = {
            name: self._start_apiserver(name, assets, etcd_url, next(ports)) for name in self.names
        }
        # All apiservers boot at once (~6 s each); waiting on them in turn costs nothing extra.
        for comp in apiservers.values():
            self._wait_apiserver(comp)
        managers = [
            self._start_controller_manager(self.clusters[name], assets, next(ports))
            for name in self.names
        ]
        for comp, url in managers:
            wait_ready(comp, url, None, self.ready_timeout)
        log = self.workdir / "pod-readiness.log"
        self.readiness = PodReadiness(
            list(self.clusters.values()), self.fail_marker, log, self.sweep_interval
        )
        self.readiness.start()

    def _launch(self, label: str, argv: Sequence[str], log: Path) -> Component:
        """Start one component and remember it for stop()."""
        comp = Component(label, argv, log)
        self.components.append(comp)
        comp.start(self.workdir)
        return comp

    def _start_etcd(self, client_port: int, peer_port: int) -> str:
        """Start the shared etcd; return its client URL once healthy."""
        client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
        argv = [
            str(tools.etcd_path()),
            "--data-dir",
            str(self.workdir / "etcd-data"),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"default={peer}",
            "--log-level",
            "warn",
        ]
        comp = self._launch("etcd", argv, self.workdir / "etcd.log")
        wait_ready(comp, f"{client}/health", None, self.ready_timeout)
        return client

    def _make_service_account_keys(self) -> None:
        """An RSA key pair for service-account tokens (openssl, one pair for all clusters)."""
        key, pub = self.workdir / "sa.key", self.workdir / "sa.pub"
        if not pub.exists():
            for argv in (
                ["openssl", "genrsa", "-out", str(key), "2048"],
                ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
            ):
                proc = subprocess.run(argv, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    raise HubtasksError(f"{' '.join(argv[:2])} failed: {proc.stderr.strip()}")

    def _start_apiserver(self, name: str, assets: Path, etcd: str, port: int) -> Component:
        """Start one cluster's apiserver (not yet ready) and record the cluster."""
        folder = self.workdir / name
        token = secrets.token_hex(16)
        write_private(folder / "tokens.csv", f'{token},admin,admin-uid,"system:masters"\n')
        server = f"https://127.0.0.1:{port}"
        write_private(folder / "kubeconfig.yaml", kubeconfig_text(name, server, token))
        self.clusters[name] = LocalCluster(
            name=name,
            kubeconfig=folder / "kubeconfig.yaml",
            server=server,
            context=name,
            token=token,
        )
        key, pub = self.workdir / "sa.key", self.workdir / "sa.pub"
        argv = [
            str(assets / "kube-apiserver"),
            f"--etcd-servers={etcd}",
            f"--etcd-prefix=/{name}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={folder / 'certs'}",
            f"--token-auth-file={folder / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pub}",
            f"--service-account-signing-key-file={key}",
            "--api-audiences=api",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--disable-admission-plugins=ServiceAccount",
            "--endpoint-reconciler-type=none",
        ]
        return self._launch(f"{name} kube-apiserver", argv, folder / "kube-apiserver.log")

    def _wait_apiserver(self, comp: Component) -> None:
        """Wait until the apiserver of `comp` answers /readyz."""
        cluster = self.clusters[comp.label.split()[0]]
        wait_ready(comp, f"{cluster.server}/readyz", cluster.token, self.ready_timeout)

    def _start_controller_manager(
        self, cluster: LocalCluster, assets: Path, port: int
    ) -> tuple[Component, str]:
        """Start one cluster's controller manager (Deployments -> ReplicaSets -> Pods)."""
        argv = [
            str(assets / "kube-controller-manager"),
            f"--kubeconfig={cluster.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--port=0",
            f"--service-account-private-key-file={self.workdir / 'sa.key'}",
            "--use-service-account-credentials=false",
            f"--controllers={CONTROLLERS}",
        ]
        log = self.workdir / cluster.name / "kube-controller-manager.log"
        comp = self._launch(f"{cluster.name} kube-controller-manager", argv, log)
        return comp, f"https://127.0.0.1:{port}/healthz"

    def write_kubeconfigs(self, directory: Path) -> None:
        """Write `<directory>/<cluster>.yaml` (mode 0600) for every started cluster."""
        for cluster in self.clusters.values():
            text = kubeconfig_text(cluster.name, cluster.server, cluster.token)
            write_private(directory / f"{cluster.name}.yaml", text)

    def _stop_readiness(self) -> None:
        """Stop the in-process pod-readiness thread."""
        if self.readiness is not None:
            self.readiness.stopping.set()
            self.readiness.join(timeout=10)
            self.readiness = None

    def stop(self) -> None:
        """Stop the readiness thread and every process; safe to call more than once."""
        self._stop_readiness()
        # Reverse start order: controller managers, apiservers, then etcd.
        stop_components(list(reversed(self.components)))
        atexit.unregister(self.stop)

    def detach(self, state_file: Path) -> None:
        """Leave the clusters running after this process exits; `stop_detached` stops them."""
        if not self.clusters:
            raise HubtasksError("no local clusters to detach: call start() first")
        self._stop_readiness()
        processes: list[dict[str, Any]] = [
            {"label": c.label, "pid": c.proc.pid, "exe": c.argv[0]}
            for c in self.components
            if c.proc is not None
        ]
        state: dict[str, Any] = {
            "clusters": [
                {**asdict(c), "kubeconfig": str(c.kubeconfig)} for c in self.clusters.values()
            ],
            "fail_marker": self.fail_marker,
            "interval": self.sweep_interval,
            "processes": processes,
        }
        write_private(state_file, json.dumps(state, indent=2))
        sweeper = self._launch_sweeper(state_file)
        processes.append({"label": "pod-readiness", "pid": sweeper.pid, "exe": "hubtasks.localk8s"})
        write_private(state_file, json.dumps(state, indent=2))
        _DETACHED.extend([sweeper, *(c.proc for c in self.components if c.proc is not None)])
        self.components = []  # no longer ours to stop, here or at exit
        atexit.unregister(self.stop)

    def _launch_sweeper(self, state_file: Path) -> subprocess.Popen[bytes]:
        """Run the pod-readiness loop as its own process, so it outlives this one."""
        package_root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        argv = [sys.executable, "-m", "hubtasks.localk8s", "readiness", str(state_file)]
        with (self.workdir / "pod-readiness.log").open("ab") as out:
            return subprocess.Popen(
                argv,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONPATH": path},
            )


# Popen objects of detached processes, kept so they are never garbage-collected while running
# (which warns) and so stop_detached() can reap them when it runs in the same process.
_DETACHED: list[subprocess.Popen[bytes]] = []


# ---------------------------------------------------------------- detached clusters


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
            for child in _DETACHED:
                child.poll()  # reap our own children, or they linger as zombies
            alive = [p for p in alive if is_running(p["pid"], p["exe"])]
            time.sleep(0.1)
    _DETACHED[:] = [child for child in _DETACHED if child.poll() is None]
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
        sys.exit("usage: python -m hubtasks.localk8s readiness STATE_FILE")
    run_detached_readiness(Path(sys.argv[2]))
