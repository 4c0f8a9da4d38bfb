"""Reading what is deployed: per cluster `helm list -a -A` and each release's latest revision.

Clusters are read in parallel (at most `jobs` at once), each with its own kubeconfig; a
cluster that cannot be read gives `unreachable` states with the reason, never an error for
the others. The repo digests come from `release_digest`, which decrypts nothing (only a
cluster's encrypted kubeconfig is decrypted; its secrets are redacted from helm's output).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubtasks.binaries import find_helm, find_sops
from hubtasks.config.model import RepoConfig
from hubtasks.deploying.credentials import Credentials
from hubtasks.deploying.values import release_digest
from hubtasks.helm import HelmInfo, cluster_args, run_helm
from hubtasks.model import HubtasksError
from hubtasks.options import RunOptions
from hubtasks.planning.deployed import (
    Expected,
    Observed,
    ReleaseState,
    cluster_states,
    repo_releases,
)
from hubtasks.secrets import NO_SECRETS, Redactor, is_secret_path, is_sops_encrypted

READ_TIMEOUT = 60.0
READ_RETRIES = 1
LIST_MAX = "100000"  # helm list returns 256 releases unless told otherwise


@dataclass(frozen=True, kw_only=True)
class ClusterAccess:
    """What a read or an uninstall needs: helm, the cluster's flags and the env, and what
    to hide in helm's output (the cluster's decrypted credentials)."""

    helm: HelmInfo
    args: tuple[str, ...]
    env: Mapping[str, str]
    redactor: Redactor = NO_SECRETS

    def run(self, *argv: str) -> tuple[bool, str]:
        """(ok, stdout or error) of one helm command against this cluster: stdout whole and
        apart from stderr (a warning there, or a long list, would break its JSON)."""
        run = run_helm([str(self.helm.path), *argv, *self.args], env=self.env,
                       timeout=READ_TIMEOUT, retries=READ_RETRIES, backoff=1.0,
                       redactor=self.redactor, keep_stdout=True)
        return (True, self.redactor(run.stdout)) if run else \
            (False, run.error or run.outcome.describe())


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text or "null")
    except json.JSONDecodeError as err:
        raise HubtasksError(f"{what}: helm printed invalid JSON ({err})") from None


def _revision(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def list_all_flags(helm: HelmInfo) -> list[str]:
    """helm 3 lists only deployed and failed releases without `-a`; helm 4 lists all (no `-a`)."""
    return ["-a"] if helm.major < 4 else []


def read_cluster(access: ClusterAccess, cluster: str) -> list[Observed] | str:
    """Every release of one cluster with its latest revision; a string says why not."""
    ok, out = access.run("list", *list_all_flags(access.helm), "-A", "--max", LIST_MAX,
                         "-o", "json")
    if not ok:
        return out
    try:
        listed = _json(out, f"cluster {cluster!r}: helm list") or []
        found = []
        for item in listed:
            name, namespace = str(item["name"]), str(item["namespace"])
            ok, out = access.run("history", name, "--namespace", namespace, "--max", "1",
                                 "-o", "json")
            if not ok:
                return f"helm history {namespace}/{name}: {out}"
            latest = (_json(out, f"cluster {cluster!r}: helm history {name}") or [{}])[-1]
            found.append(Observed(
                release=name, namespace=namespace,
                revision=_revision(latest.get("revision", item.get("revision"))),
                status=str(latest.get("status") or item.get("status") or ""),
                updated=str(latest.get("updated") or item.get("updated") or "") or None,
                description=str(latest.get("description") or "")))
    except (HubtasksError, KeyError, TypeError, IndexError, AttributeError) as err:
        return f"unexpected helm output: {err}"
    return found


def credential_sops(config: RepoConfig, clusters: Sequence[str],
                    env: Mapping[str, str]) -> Path | None:
    """sops, only when a cluster's kubeconfig file is encrypted (values are never read)."""
    files = [config.root / f for c in clusters for f in config.cluster(c).credential_files]
    return find_sops(env) if any(is_secret_path(f) or is_sops_encrypted(f)
                                 for f in files if f.is_file()) else None


def _access(credentials: Credentials, config: RepoConfig, cluster: str, helm: HelmInfo,
            env: Mapping[str, str]) -> ClusterAccess | str:
    try:
        kubeconfig, context = credentials.for_cluster(config.cluster(cluster))
    except HubtasksError as err:
        return str(err)
    return ClusterAccess(helm=helm, args=tuple(cluster_args(kubeconfig, context, cluster)),
                         env=env, redactor=credentials.redactor(cluster))


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """Every release's state, and how to reach each readable cluster (for `--prune`)."""

    states: list[ReleaseState]
    access: dict[str, ClusterAccess]


@contextlib.contextmanager
def cluster_credentials(config: RepoConfig, options: RunOptions) -> Iterator[Credentials]:
    """Credentials for reading clusters; decrypted kubeconfigs are removed afterwards."""
    credentials = Credentials(config, kubeconfig_dir=options.deploy.kubeconfig_dir,
                              sops=credential_sops(config, sorted(config.clusters),
                                                   options.env), env=options.env)
    try:
        yield credentials
    finally:
        credentials.close()


def read_states(config: RepoConfig, options: RunOptions, credentials: Credentials,
                clusters: Sequence[str] = ()) -> Snapshot:
    """The state of every release of `clusters` (default: all), clusters in parallel."""
    names = list(clusters) or sorted(config.clusters)
    unknown = sorted(set(names) - set(config.clusters))
    if unknown:
        raise HubtasksError(f"unknown cluster(s): {', '.join(unknown)}")
    helm = find_helm(options.env, explicit=options.helm)
    expected: dict[str, list[Expected]] = {n: [] for n in names}
    for job in repo_releases(config):
        if job.cluster in expected:
            expected[job.cluster].append(Expected(job=job, digest=release_digest(config, job)))
    access = {n: _access(credentials, config, n, helm, options.env) for n in names}

    def one(name: str) -> list[ReleaseState]:
        found = access[name]
        seen = found if isinstance(found, str) else read_cluster(found, name)
        return cluster_states(name, expected[name], seen)

    with ThreadPoolExecutor(max_workers=max(1, options.limits.jobs)) as pool:
        states = [s for part in pool.map(one, names) for s in part]
    return Snapshot(states=states, access={n: a for n, a in access.items()
                                           if not isinstance(a, str)})
