"""A release's values: its files in helm's order, decrypted privately, and their digest.

The digest covers every input of a release (connection, cluster.yaml entry, values files, the
chart closure); it is recorded in helm's `--description`, so `helm history` shows what each
revision deployed. Paths enter it repo-relative, so it is the same in every checkout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from hubtasks.config.charts import (
    BUILD_ARTIFACTS,
    folder_uses,
    is_build_output,
    outside_folders,
    reaches_helm,
)
from hubtasks.config.model import RepoConfig
from hubtasks.config.paths import dir_entries, entry_is_dir, entry_is_file
from hubtasks.deploying.documents import release_documents
from hubtasks.model import Job
from hubtasks.planning.git import tracked_files
from hubtasks.planning.semantics import connection_view, hub_view, support_view
from hubtasks.secrets import Redactor, is_secret_path, is_sops_encrypted

DIGEST_CHARS = 16


def _file_digest(root: Path, rel: str, digest: Any) -> None:
    digest.update(rel.encode())
    digest.update(b"\0")
    try:
        digest.update((root / rel).read_bytes())
    except OSError:
        digest.update(b"<missing>")
    digest.update(b"\0")


def _files_under(base: str, rel: str, seen: set[str], out: list[str]) -> None:
    """The files under `base`/`rel` (relative to `base`), following symlinks as helm's
    loader does (a linked folder of templates is rendered), each real folder once."""
    for entry in dir_entries(os.path.join(base, rel)):
        path = f"{rel}/{entry.name}" if rel else entry.name
        if entry_is_dir(entry):
            real = os.path.realpath(entry.path) if entry.is_symlink() else entry.path
            if real not in seen:
                seen.add(real)
                _files_under(base, path, seen, out)
        elif entry_is_file(entry):
            out.append(path)


def _folder_files(config: RepoConfig, folder: str, use: str) -> list[str]:
    """A chart folder's files that reach helm (repo-relative; charts.reaches_helm), in the
    order Path.rglob sorted them before links were followed (digests stay as they were).
    Build output (Chart.lock, charts/) counts only when git tracks it: the checkout holds
    what `helm dependency build` wrote besides."""
    base = os.path.realpath(config.root / folder)
    found: list[str] = []
    _files_under(base, "", {base}, found)
    chart = config.charts.get(folder)
    tracked = _tracked_build_output(config)
    out = [rel for rel in found if reaches_helm(rel, chart, use)
           and (not is_build_output(rel) or f"{folder}/{rel}" in tracked)]
    return [f"{folder}/{rel}" for rel in sorted(out, key=lambda rel: rel.split("/"))]


_TRACKED: list[tuple[RepoConfig, frozenset[str]]] = []  # the last config's (one git call)


def _tracked_build_output(config: RepoConfig) -> frozenset[str]:
    """The Chart.lock files and files under charts/ of every chart folder that git tracks
    (none outside a git checkout), asked once per loaded config."""
    if _TRACKED and _TRACKED[0][0] is config:
        return _TRACKED[0][1]
    specs = [f"{folder}/{name}" for folder in config.charts for name in BUILD_ARTIFACTS]
    found = tracked_files(config.root, specs)
    _TRACKED[:] = [(config, found)]
    return found


def release_digest(config: RepoConfig, job: Job) -> str:
    """A digest of every input of a release, the same on every machine and checkout."""
    digest = hashlib.sha256()
    cluster = config.cluster(job.cluster)
    entry: Any = connection_view(cluster.doc)
    files: list[str] = list(config.release_documents(job.cluster, job.hub))
    deps: tuple[str, ...] | None = None
    replaced: str | None = None
    override = False
    if job.hub is None:
        entry = [entry, support_view(cluster.doc.get("support"))]
        files += cluster.support.jsonnet_imports if cluster.support else ()
    else:
        hub = cluster.hub(job.hub)
        files += filter(None, [hub.chart_override, hub.domain_override_file])
        files += hub.jsonnet_imports
        entry, deps = [entry, hub_view(hub.entry)], hub.override_deps
        replaced, override = hub.override_chart, hub.chart_override is not None
    # The jsonnet context's inputs: the prefix (the rest is in the entries and files).
    entry = [entry, config.settings.jsonnet_ext_var_prefix]
    steps = config.settings.before.get(job.chart)
    if steps:  # before-steps are release inputs (absent: digests stay as they were)
        entry = [entry, [step.view() for step in steps]]
    digest.update(json.dumps(entry, sort_keys=True, default=str).encode())
    folders = config.chart_closure(job.chart, deps, replaced)
    files += outside_folders(config.chart_imports.get(config.release_chart(job.cluster, job.hub),
                                                      ()), folders)
    for rel in files:
        _file_digest(config.root, rel, digest)
    for folder, use in folder_uses(folders, override, replaced).items():
        for rel in _folder_files(config, folder, use):
            _file_digest(config.root, rel, digest)
    return digest.hexdigest()[:DIGEST_CHARS]


def needs_sops(config: RepoConfig, jobs: Iterable[Job], *, credentials: bool = False) -> bool:
    """Whether any values file (or, with `credentials`, credentials file) must be decrypted."""
    for job in jobs:
        files = list(config.release_documents(job.cluster, job.hub))
        if job.hub is not None:
            files += filter(None, [config.cluster(job.cluster).hub(job.hub).domain_override_file])
        if credentials:
            files += config.cluster(job.cluster).credential_files
        if any(is_secret_path(f) or is_sops_encrypted(config.root / f) for f in files):
            return True
    return False


@contextlib.contextmanager
def release_values(config: RepoConfig, job: Job, *, sops: Path | None,
                   env: Mapping[str, str]) -> Iterator[tuple[tuple[Path, ...], Redactor]]:
    """A release's values files for helm, in order (decrypted, jsonnet rendered), and a
    redactor of their secrets. See deploying/documents.py for the order."""
    with release_documents(config, job, sops=sops, env=env) as (docs, redactor):
        yield tuple(doc.path for doc in docs), redactor
