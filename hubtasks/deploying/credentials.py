"""Cluster credentials: the kubeconfig (and context) each helm call names explicitly.

`provider: kubeconfig` clusters name their file in cluster.yaml (sops-encrypted ones are
decrypted into a private folder for the run); every other provider's kubeconfig is
`<kubeconfig_dir>/<cluster>.yaml`, written by a credentials step before the deploy.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from hubtasks.config.model import Cluster, RepoConfig
from hubtasks.files import write_private
from hubtasks.model import HubtasksError
from hubtasks.secrets import decrypt, is_secret_path, is_sops_encrypted, private_prefix


class Credentials:
    """Per-cluster kubeconfig paths, resolved once per run (thread-safe); `close` cleans up."""

    def __init__(self, config: RepoConfig, *, kubeconfig_dir: Path | None, sops: Path | None,
                 env: Mapping[str, str]) -> None:
        self.config, self.sops, self.env = config, sops, env
        folder = kubeconfig_dir or Path(config.settings.kubeconfig_dir)
        self.kubeconfig_dir = folder if folder.is_absolute() else config.root / folder
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[Path, str | None]] = {}
        self._private: Path | None = None

    def for_cluster(self, cluster: Cluster) -> tuple[Path, str | None]:
        """(kubeconfig, context) of a cluster; raises HubtasksError naming the cluster."""
        with self._lock:
            if cluster.name not in self._cache:
                self._cache[cluster.name] = self._resolve(cluster)
            return self._cache[cluster.name]

    def _resolve(self, cluster: Cluster) -> tuple[Path, str | None]:
        if cluster.provider == "kubeconfig" and cluster.credential_files:
            path = self.config.root / cluster.credential_files[0]
            if is_secret_path(path) or is_sops_encrypted(path):
                path = self._decrypt(path)
            return path, cluster.kube_context
        path = self.kubeconfig_dir / f"{cluster.name}.yaml"
        if not path.is_file():
            raise HubtasksError(
                f"cluster {cluster.name!r} ({cluster.provider}): no kubeconfig at {path}; "
                "write it in your credentials step (see README, 'Cluster credentials'), or "
                "pass --kubeconfig-dir")
        return path, None

    def _decrypt(self, path: Path) -> Path:
        if self.sops is None:
            raise HubtasksError(f"{path}: sops-encrypted kubeconfig but sops is not installed "
                                "(run `hubtasks install-tools`)")
        if self._private is None:
            self._private = Path(tempfile.mkdtemp(prefix=private_prefix()))
        target = self._private / f"{len(self._cache)}-{path.name}"
        write_private(target, decrypt(path, sops=self.sops, env=self.env))
        return target

    def close(self) -> None:
        """Remove decrypted kubeconfigs."""
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None
