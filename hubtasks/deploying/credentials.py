"""Cluster credentials: the kubeconfig (and context) each helm call names explicitly.

`provider: kubeconfig` clusters name their file in cluster.yaml (sops-encrypted ones are
decrypted into a private folder for the run); every other provider's kubeconfig is
`<kubeconfig_dir>/<cluster>.yaml`, written by a credentials step before the deploy.
The secrets of a decrypted file (a kubeconfig's user credentials: tokens, keys, passwords)
are remembered per cluster, so every job on that cluster redacts them (`redactor`).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hubtasks.config.model import Cluster, RepoConfig
from hubtasks.files import write_private
from hubtasks.model import HubtasksError
from hubtasks.secrets import (
    NO_SECRETS,
    Redactor,
    decrypt,
    needs_decrypting,
    private_prefix,
    scalar_strings,
    text_secrets,
    unparsed_secrets,
)

# Keys of a kubeconfig `exec` credential plugin that say how to run it, not who you are.
_EXEC_PUBLIC = frozenset({"apiVersion", "command", "installHint", "interactiveMode",
                          "provideClusterInfo"})


def credential_secrets(plaintext: bytes) -> set[str]:
    """The secret scalars of a decrypted credentials file.

    A kubeconfig's secrets are its users' credentials (token, client key and certificate,
    password, auth-provider tokens, exec plugin args and env values); its cluster, context
    and user names and server URLs appear in ordinary messages and are kept. Any other
    document (a cloud key file) is secret through and through: every scalar. A file that
    does not parse gives what `unparsed_secrets` finds, so whatever it holds is still hidden.
    """
    text = plaintext.decode("utf-8", "replace")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return unparsed_secrets(text)
    if not _is_kubeconfig(doc):
        return text_secrets(text)
    found: set[str] = set()
    for entry in doc.get("users") or []:
        user = entry.get("user") if isinstance(entry, dict) else None
        if isinstance(user, dict):
            found |= _user_secrets(user)
    return found


def _is_kubeconfig(doc: Any) -> bool:
    return isinstance(doc, dict) and (doc.get("kind") == "Config" or
                                      isinstance(doc.get("users"), list))


def _user_secrets(user: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for key, value in user.items():
        if key == "exec" and isinstance(value, dict):
            found |= scalar_strings({k: v for k, v in value.items()
                                     if k not in _EXEC_PUBLIC and k != "env"})
            for item in value.get("env") or []:
                if isinstance(item, dict):
                    found |= scalar_strings(item.get("value"))
        else:
            found |= scalar_strings(value)
    return found


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
        self._redactors: dict[str, Redactor] = {}

    def for_cluster(self, cluster: Cluster) -> tuple[Path, str | None]:
        """(kubeconfig, context) of a cluster; raises HubtasksError naming the cluster."""
        with self._lock:
            if cluster.name not in self._cache:
                self._cache[cluster.name] = self._resolve(cluster)
            return self._cache[cluster.name]

    def _resolve(self, cluster: Cluster) -> tuple[Path, str | None]:
        if cluster.provider == "kubeconfig" and cluster.credential_files:
            path = self.config.root / cluster.credential_files[0]
            if needs_decrypting(path):  # a plain secret-named file is an error naming it
                path = self._decrypt(path, cluster.name)
            return path, cluster.kube_context
        path = self.kubeconfig_dir / f"{cluster.name}.yaml"
        if not path.is_file():
            raise HubtasksError(
                f"cluster {cluster.name!r} ({cluster.provider}): no kubeconfig at {path}; "
                "write it in your credentials step (see README, 'Cluster credentials'), or "
                "pass --kubeconfig-dir")
        return path, None

    def redactor(self, cluster: str) -> Redactor:
        """Hides the secrets of the cluster's decrypted credentials (none until resolved, or
        when its kubeconfig is a plain file): merge it into every redactor of its jobs.
        Written under the lock; one dict read needs none, so no job waits on a decrypt."""
        return self._redactors.get(cluster, NO_SECRETS)

    def _decrypt(self, path: Path, cluster: str) -> Path:
        if self.sops is None:
            raise HubtasksError(f"{path}: sops-encrypted kubeconfig but sops is not installed "
                                "(run `hubtasks install-tools`)")
        if self._private is None:
            self._private = Path(tempfile.mkdtemp(prefix=private_prefix()))
        target = self._private / f"{len(self._cache)}-{path.name}"
        plaintext = decrypt(path, sops=self.sops, env=self.env)
        self._redactors[cluster] = Redactor(credential_secrets(plaintext))
        write_private(target, plaintext)
        return target

    def close(self) -> None:
        """Remove decrypted kubeconfigs."""
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None
