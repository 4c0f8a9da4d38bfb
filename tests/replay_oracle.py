"""An independent oracle for replayed 2i2c commits: the planning rules, written from README.

Nothing here calls hubtasks: it reads the raw cluster.yaml and Chart.yaml files of a checkout
with PyYAML and answers "which releases does this kind of commit touch". A release is a
`(cluster, hub)` pair, `hub` None for the support release.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

C = "config/clusters"
CHARTS = "helm-charts"
Key = tuple[str, str | None]
Docs = dict[str, dict[str, Any]]


@dataclass
class Expect:
    """What a commit must plan: releases, removals `(cluster, hub, cluster_removed)`, invalid."""

    planned: set[Key] = field(default_factory=set)
    removed: set[tuple[str, str | None, bool]] = field(default_factory=set)
    invalid: set[Key] = field(default_factory=set)


def cluster_docs(root: Path) -> Docs:
    """Every cluster folder's parsed cluster.yaml (`templates` has none at its top)."""
    return {p.parent.name: yaml.safe_load(p.read_text(encoding="utf-8"))
            for p in sorted((root / C).glob("*/cluster.yaml"))}


def is_staging(entry: Mapping[str, Any]) -> bool:
    flag = entry.get("staging")
    return flag if isinstance(flag, bool) else "staging" in entry["name"]


def hubs(docs: Docs) -> Iterable[tuple[str, dict[str, Any]]]:
    for cluster, doc in docs.items():
        for entry in doc.get("hubs") or []:
            yield cluster, entry


def support_keys(docs: Docs, clusters: Iterable[str] | None = None) -> set[Key]:
    names = docs if clusters is None else clusters
    return {(c, None) for c in names if docs[c].get("support")}


def releases(docs: Docs, cluster: str) -> set[Key]:
    return support_keys(docs, [cluster]) | {(cluster, e["name"])
                                            for e in docs[cluster].get("hubs") or []}


def hub_keys(docs: Docs, pred: Callable[[str, dict[str, Any]], bool]) -> set[Key]:
    return {(c, e["name"]) for c, e in hubs(docs) if pred(c, e)}


def users_of(docs: Docs, cluster: str, filename: str) -> set[Key]:
    """Releases of `cluster` listing `filename` among their values files."""
    doc = docs[cluster]
    found = hub_keys(docs, lambda c, e: c == cluster
                     and filename in e.get("helm_chart_values_files", []))
    if filename in ((doc.get("support") or {}).get("helm_chart_values_files") or []):
        found.add((cluster, None))
    return found


def with_canary(docs: Docs, planned: set[Key]) -> set[Key]:
    """A cluster with a planned prod hub gets all its staging hubs planned."""
    entries = {(c, e["name"]): e for c, e in hubs(docs)}
    prod_clusters = {c for c, h in planned if h is not None and not is_staging(entries[(c, h)])}
    return planned | hub_keys(docs, lambda c, e: c in prod_clusters and is_staging(e))


def local_deps(root: Path, chart: str) -> list[str]:
    doc = yaml.safe_load((root / CHARTS / chart / "Chart.yaml").read_text(encoding="utf-8"))
    return [posixpath.basename(d["repository"].removeprefix("file://").rstrip("/"))
            for d in doc.get("dependencies") or [] if d.get("repository", "").startswith("file://")]


def closure(root: Path, chart: str) -> set[str]:
    """A chart and its local `file://` dependencies, recursively (2i2c's overrides add none)."""
    seen: set[str] = set()
    todo = [chart]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += local_deps(root, name)
    return seen


def override_target(root: Path, cluster: str, entry: Mapping[str, Any]) -> str | None:
    """The chart whose Chart.yaml a hub's `chart_override` replaces (by the override's name)."""
    override = entry.get("chart_override")
    if not override:
        return None
    doc = yaml.safe_load((root / C / cluster / override).read_text(encoding="utf-8"))
    return str(doc["name"])


def chart_users(root: Path, docs: Docs, chart: str, *, meta: bool = False) -> set[Key]:
    """Hubs whose chart closure holds `chart`; with `meta`, not those overriding its Chart.yaml."""
    return hub_keys(docs, lambda c, e: chart in closure(root, e["helm_chart"])
                    and not (meta and override_target(root, c, e) == chart))


def releases_by_clusters(docs: Docs, clusters: Iterable[str]) -> set[Key]:
    return set().union(*(releases(docs, c) for c in clusters))


def broken_releases(root: Path, docs: Docs) -> set[Key]:
    """Releases with a listed file missing: a values file or chart_override, or the cluster's
    deployer credentials file (which marks every release of its cluster)."""
    broken: set[Key] = set()
    for cluster, doc in docs.items():
        folder = root / C / cluster
        block = doc.get(doc.get("provider", ""))
        creds = [block.get(k) for k in ("key", "file")] if isinstance(block, dict) else []
        if any(c and not (folder / c).is_file() for c in creds):
            broken |= releases(docs, cluster)
        for key, entry in [((cluster, None), doc.get("support") or {}),
                           *(((cluster, e["name"]), e) for e in doc.get("hubs") or [])]:
            files = [*entry.get("helm_chart_values_files", []), entry.get("chart_override")]
            if any(f and not (folder / f).is_file() for f in files):
                broken.add(key)
    return broken
