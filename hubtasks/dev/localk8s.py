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
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any

from hubtasks import proc
from hubtasks.dev.apiserver import LocalCluster, kubeconfig_text
from hubtasks.dev.envtest import envtest_assets, etcd_path
from hubtasks.dev.podready import PodReadiness
from hubtasks.dev.processes import Component, free_ports, stop_components, wait_ready
from hubtasks.files import write_atomic
from hubtasks.model import HubtasksError

START_ATTEMPTS = 3
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
CONTROLLERS = (
    "*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route,-attachdetach,"
    "-persistentvolume-binder,-persistentvolume-expander"
)
# Popen objects of detached processes, kept so they are never garbage-collected while running
# (which warns) and so stop_detached() can reap them when it runs in the same process.
DETACHED: list[subprocess.Popen[bytes]] = []


def _write_secret(path: Path, text: str) -> None:
    """Write a file readable by its owner only (it holds a token)."""
    write_atomic(path, text)


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
        keep_alive: bool = False,
    ) -> None:
        bad = [n for n in names if not NAME_RE.match(n)] + (
            ["(duplicates)"] if len(set(names)) != len(names) else []
        )
        if bad or not names:
            raise HubtasksError(f"local cluster names must be unique DNS labels, got {list(names)}")
        self.names, self.workdir = list(names), workdir.resolve()
        self.fail_marker, self.assets, self.ready_timeout = fail_marker, assets, ready_timeout
        self.sweep_interval = sweep_interval
        # Control planes die with this process unless they may be detached (`demo --keep`).
        self.keep_alive = keep_alive
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
        assets = self.assets or envtest_assets()
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
        comp.start(self.workdir, die_with_parent=not self.keep_alive)
        return comp

    def _start_etcd(self, client_port: int, peer_port: int) -> str:
        """Start the shared etcd; return its client URL once healthy."""
        client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
        argv = [
            str(etcd_path()),
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
                proc.checked(proc.run(argv, env=os.environ, timeout=60), " ".join(argv[:2]))

    def _start_apiserver(self, name: str, assets: Path, etcd: str, port: int) -> Component:
        """Start one cluster's apiserver (not yet ready) and record the cluster."""
        folder = self.workdir / name
        token = secrets.token_hex(16)
        _write_secret(folder / "tokens.csv", f'{token},admin,admin-uid,"system:masters"\n')
        server = f"https://127.0.0.1:{port}"
        _write_secret(folder / "kubeconfig.yaml", kubeconfig_text(name, server, token))
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
            _write_secret(directory / f"{cluster.name}.yaml", text)

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
        if not self.keep_alive:
            raise HubtasksError("these local clusters die with this process: create them with "
                                "keep_alive=True to detach them")
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
        _write_secret(state_file, json.dumps(state, indent=2))
        sweeper = self._launch_sweeper(state_file)
        processes.append({"label": "pod-readiness", "pid": sweeper.pid,
                          "exe": "hubtasks.dev.detached"})
        _write_secret(state_file, json.dumps(state, indent=2))
        DETACHED.extend([sweeper, *(c.proc for c in self.components if c.proc is not None)])
        self.components = []  # no longer ours to stop, here or at exit
        atexit.unregister(self.stop)

    def _launch_sweeper(self, state_file: Path) -> subprocess.Popen[bytes]:
        """Run the pod-readiness loop as its own process, so it outlives this one."""
        package_root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        # absolute: the sweeper runs in the work folder, not in our current folder
        argv = [sys.executable, "-m", "hubtasks.dev.detached", "readiness",
                str(state_file.resolve())]
        return proc.spawn(argv, env={**os.environ, "PYTHONPATH": path},
                          log=self.workdir / "pod-readiness.log", cwd=self.workdir,
                          die_with_parent=False)
