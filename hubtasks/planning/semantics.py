"""What a cluster.yaml means for its releases: the keys that reach helm, and semantic diffs.

cluster.yaml is compared by meaning, not as a file: editing one hub's entry concerns that hub;
editing the connection (`provider` and its block) concerns every release of the cluster;
purely descriptive keys (`display_name`, `uptime_check`, `metadata`, `provider_url`,
`tenancy`, a provider's `billing`) concern none; reordering hubs concerns none.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hubtasks.config.model import PROVIDERS_WITH_BLOCK, Cluster, Hub, is_staging

# Keys that describe a cluster or hub but never reach helm: editing them plans nothing.
DESCRIPTIVE_PROVIDER_KEYS = frozenset({"billing"})
DESCRIPTIVE_HUB_KEYS = frozenset({"display_name", "uptime_check"})
# besides helm_chart_values_files; not chart_override, whose `x.yaml` is the cluster folder's
# and `./x.yaml` the repo root's (config/paths.override_path): two files
PATH_KEYS = ("domain_override_file",)
SUMMARY_LIMIT = 3


class _Unknown:
    """Marks a cluster.yaml whose base version can't be read (e.g. --files without git)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


def summarize(label: str, items: Sequence[str]) -> str:
    """`label: a, b, c and N more` — bounded, so one reason never grows with the repo."""
    shown = ", ".join(items[:SUMMARY_LIMIT])
    more = len(items) - SUMMARY_LIMIT
    return f"{label}: {shown}" + (f" and {more} more" if more > 0 else "")


def connection_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a cluster.yaml that decide how to reach the cluster."""
    view: dict[str, Any] = {"provider": doc.get("provider")}
    for key in PROVIDERS_WITH_BLOCK:
        block = doc.get(key)
        if isinstance(block, dict):
            view[key] = {k: v for k, v in block.items() if k not in DESCRIPTIVE_PROVIDER_KEYS}
        elif block is not None:
            view[key] = block
    return view


def _same_path(value: Any) -> Any:
    """A path as the file it names: `./a.yaml` and `a.yaml` are one file."""
    return posixpath.normpath(value) if isinstance(value, str) and value else value


def paths_view(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A release entry with the files it names spelled one way."""
    view = dict(entry)
    files = view.get("helm_chart_values_files")
    if isinstance(files, list):
        view["helm_chart_values_files"] = [_same_path(f) for f in files]
    for key in PATH_KEYS:
        if key in view:
            view[key] = _same_path(view[key])
    return view


def support_view(support: Any) -> Any:
    return paths_view(support) if isinstance(support, Mapping) else support


def hub_view(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A hub entry without its descriptive keys, with the effective staging flag and the
    files it names spelled one way. A malformed flag (`staging: "yes"`) stays as written: it
    is a change (the hub is invalid for it), though the name rule gives the same stage."""
    view = paths_view({k: v for k, v in entry.items() if k not in DESCRIPTIVE_HUB_KEYS})
    flag = entry.get("staging")
    view["staging"] = is_staging(entry) if flag is None or isinstance(flag, bool) else flag
    return view


def hub_entries(doc: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """Hub entries of a raw cluster.yaml document by name (tolerates malformed docs)."""
    if not isinstance(doc, Mapping):
        return {}
    hubs = doc.get("hubs")
    entries = hubs if isinstance(hubs, list) else []
    found: dict[str, Mapping[str, Any]] = {}
    for e in entries:  # the first entry of a name is the hub, as the loader takes it
        if isinstance(e, dict) and isinstance(e.get("name"), str):
            found.setdefault(e["name"], e)
    return found


def release_names(doc: Any) -> list[str | None]:
    """Releases a raw cluster.yaml declares: None for support (when present), then hubs."""
    support = [None] if isinstance(doc, Mapping) and doc.get("support") is not None else []
    return [*support, *sorted(hub_entries(doc))]


def diff_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted key paths whose values differ between two YAML documents."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        keys = sorted(set(old) | set(new), key=str)
        out: list[str] = []
        for key in keys:
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(path)
            else:
                out.extend(diff_keys(old[key], new[key], path))
        return out
    return [] if old == new else [prefix or "(document)"]


@dataclass(frozen=True, kw_only=True)
class ClusterDiff:
    """What a cluster.yaml change means for each of the cluster's releases."""

    all_releases: tuple[str, ...] = ()
    support: tuple[str, ...] = ()
    hubs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    removed_hubs: tuple[str, ...] = ()
    support_removed: bool = False


def diff_cluster(cluster: Cluster, base_doc: Any) -> ClusterDiff:
    """Compare a cluster's base and head cluster.yaml semantically."""
    rel = cluster.config_file
    if base_doc is UNKNOWN:
        return ClusterDiff(all_releases=(f"{rel} changed (base version unknown: "
                                         "planning every release)",))
    if base_doc is None:
        return ClusterDiff(all_releases=("new cluster",))
    if not isinstance(base_doc, Mapping):
        return ClusterDiff(all_releases=(f"{rel} was unreadable at base",))
    conn = diff_keys(connection_view(base_doc), connection_view(cluster.doc))
    all_reasons = (summarize(f"{rel}: connection changed", conn),) if conn else ()
    if base_doc.get("name") != cluster.doc.get("name"):  # the cluster's identity (and, as
        # the folder's name stays, a mismatch that makes every release invalid)
        all_reasons = (*all_reasons, f"{rel}: name changed")
    old_support, new_support = base_doc.get("support"), cluster.doc.get("support")
    support: tuple[str, ...] = ()
    if old_support is None and new_support is not None:
        support = ("new support release",)
    elif old_support != new_support:
        keys = diff_keys(support_view(old_support), support_view(new_support))
        support = (summarize(f"{rel}: support changed", keys),) if keys else ()
    old_hubs = hub_entries(base_doc)
    hubs = {h.name: _hub_diff(rel, h, old_hubs.get(h.name)) for h in cluster.hubs}
    for name, reason in _renamed_twice(rel, base_doc, cluster.doc).items():
        hubs[name] = (*hubs.get(name, ()), reason)
    removed = tuple(sorted(set(old_hubs) - {h.name for h in cluster.hubs}))
    return ClusterDiff(all_releases=all_reasons, support=support,
                       hubs={k: v for k, v in hubs.items() if v}, removed_hubs=removed,
                       support_removed=old_support is not None and new_support is None)


def _name_counts(doc: Any) -> Counter[str]:
    hubs = doc.get("hubs") if isinstance(doc, Mapping) else None
    return Counter(e["name"] for e in hubs if isinstance(e, dict)
                   and isinstance(e.get("name"), str)) if isinstance(hubs, list) else Counter()


def _renamed_twice(rel: str, base_doc: Any, doc: Any) -> dict[str, str]:
    """Hubs whose name now appears more than once (or another number of times than at
    base): a change of that hub, which the name-keyed view of the entries can't see (a
    copied entry is identical), so the duplicate-name problem shows on a planned job."""
    old, new = _name_counts(base_doc), _name_counts(doc)
    return {name: f"{rel}: hubs[{name}] named {count} times"
            for name, count in sorted(new.items()) if count > 1 and count != old[name]}


def _hub_diff(rel: str, hub: Hub, old: Mapping[str, Any] | None) -> tuple[str, ...]:
    if old is None:
        return ("new hub",)
    keys = diff_keys(hub_view(old), hub_view(hub.entry))
    return (summarize(f"{rel}: hubs[{hub.name}] changed", keys),) if keys else ()
