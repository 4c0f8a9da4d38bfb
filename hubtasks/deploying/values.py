"""A release's values: its files in helm's order, decrypted privately, and their digest.

The digest covers every input of a release (connection, cluster.yaml entry, values files, the
chart closure); it is recorded in helm's `--description`, so `helm history` shows what each
revision deployed. Paths enter it repo-relative, so it is the same in every checkout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from hubtasks.config.charts import BUILD_ARTIFACTS, outside_folders
from hubtasks.config.model import RepoConfig
from hubtasks.deploying.documents import release_documents
from hubtasks.model import Job
from hubtasks.planning.semantics import connection_view, hub_view
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


def _folder_files(root: Path, folder: str) -> list[str]:
    """A chart folder's source files (repo-relative), without `helm dependency build` output."""
    base = root / folder
    out = []
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if path.is_file() and rel.parts[0] not in BUILD_ARTIFACTS:
            out.append(f"{folder}/{rel.as_posix()}")
    return out


def release_digest(config: RepoConfig, job: Job) -> str:
    """A digest of every input of a release, the same on every machine and checkout."""
    digest = hashlib.sha256()
    cluster = config.cluster(job.cluster)
    entry: Any = connection_view(cluster.doc)
    files: list[str] = list(config.release_documents(job.cluster, job.hub))
    deps: tuple[str, ...] | None = None
    replaced: str | None = None
    if job.hub is None:
        entry = [entry, cluster.doc.get("support")]
        files += cluster.support.jsonnet_imports if cluster.support else ()
    else:
        hub = cluster.hub(job.hub)
        files += filter(None, [hub.chart_override, hub.domain_override_file])
        files += hub.jsonnet_imports
        entry, deps = [entry, hub_view(hub.entry)], hub.override_deps
        replaced = hub.override_chart
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
    for folder in folders:
        for rel in _folder_files(config.root, folder):
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
