"""Planning: which releases need `helm upgrade`, and why. Pure functions over data.

A release's inputs are its values files, its entry in cluster.yaml, its chart folder
with local `file://` dependencies (and its chart_override), the files its chart's own jsonnet
documents import, the cluster's connection
settings and the `deploy_all_*` globs. A release is planned when an input changed or
when it is new. Nothing here opens a file or runs git: loading happens before.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from hubtasks.config.charts import folder_uses, outside_folders, reaches_helm
from hubtasks.config.jsonnet import is_jsonnet
from hubtasks.config.model import CLUSTER_FILE, SETTINGS_FILE, Cluster, Hub, RepoConfig, Settings
from hubtasks.model import Job, Plan, Removed, Stage, gc_paused
from hubtasks.planning.changes import ChangedFile
from hubtasks.planning.semantics import ClusterDiff, diff_cluster, release_names, summarize

LABEL_SKIP = "deployer:skip-deploy"
LABEL_SKIP_HUBS = "deployer:skip-deploy-hubs"
LABEL_DEPLOY_HUBS = "deployer:deploy-hubs"
LABEL_DEPLOY_SUPPORT = "deployer:deploy-support"
KNOWN_LABELS = frozenset({LABEL_SKIP, LABEL_SKIP_HUBS, LABEL_DEPLOY_HUBS, LABEL_DEPLOY_SUPPORT})
Key = tuple[str, str | None]  # (cluster, hub or None for support)


@dataclass(frozen=True, kw_only=True)
class PlanRequest:
    """Everything the planner needs besides the head config.

    `base_docs` maps a cluster folder name to its parsed cluster.yaml at base: a dict,
    None when absent at base, or UNKNOWN. It only holds clusters whose cluster.yaml
    changed; the others are known to be equal at base and head.
    """

    changes: tuple[ChangedFile, ...] = ()
    base_docs: Mapping[str, Any] = field(default_factory=dict)
    base: str | None = None
    head: str | None = None
    labels: frozenset[str] = frozenset()
    everything: bool = False
    base_settings: Settings | None = None  # hubtasks.yaml at base, when it changed


# ---------------------------------------------------------------------------- globs


@cache
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a glob with `**` (any depth), `*` and `?` (within a segment)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        else:
            char = pattern[i]
            out.append("[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char))
            i += 1
    return re.compile("".join(out) + r"\Z")


# ---------------------------------------------------------------------------- change index


def chart_input_folders(config: RepoConfig) -> set[str]:
    """Every folder a release can render from: the charts, what their `file://` dependencies
    and chart_overrides' point at, the hubs' and the support chart's (a broken chart's too),
    and the folders symlinks inside a chart reach."""
    charts = {h.chart for h in config.hubs()}  # a few charts, thousands of hubs
    overrides = {h.override_deps for h in config.hubs() if h.override_deps}
    return {*config.charts, *(d for c in config.charts.values() for d in c.file_deps),
            *(d for deps in overrides for d in deps), *config.chart_problems,
            *(config.settings.chart_folder(c) for c in {*charts, config.settings.support_chart}),
            *(target for links in config.chart_links.values() for _, target in links)}


class ChangeIndex:
    """Changed paths indexed by file, chart folder and glob, built once per plan."""

    def __init__(self, changes: Iterable[ChangedFile], config: RepoConfig) -> None:
        self.by_path: dict[str, ChangedFile] = {}
        for change in changes:
            for path in change.paths():
                self.by_path[path] = change
        self.by_folder: dict[str, list[str]] = defaultdict(list)
        folders = chart_input_folders(config)
        for path in sorted(self.by_path):
            parts = path.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder in folders:
                    self.by_folder[folder].append(path)
        self._chart_reasons: dict[tuple[str, str], str | None] = {}
        self.charts = config.charts

    def describe(self, path: str) -> str | None:
        change = self.by_path.get(path)
        return change.describe(path) if change else None

    def chart_folder_reason(self, folder: str, use: str) -> str | None:
        """One reason summarising the changed files of a chart folder that reach helm when a
        release uses the folder so (charts.reaches_helm; cached)."""
        key = (folder, use)
        if key not in self._chart_reasons:
            chart, cut = self.charts.get(folder), len(folder) + 1
            paths = [p for p in self.by_folder.get(folder, [])
                     if reaches_helm(p[cut:], chart, use)]
            described = [self.by_path[p].describe(p).replace(f"{folder}/", "") for p in paths]
            label = f"chart {posixpath.basename(folder)}"
            self._chart_reasons[key] = summarize(label, described) if paths else None
        return self._chart_reasons[key]

    def glob_reasons(self, globs: Sequence[str], setting: str) -> list[str]:
        """One reason per glob that some changed path matches."""
        reasons = []
        for glob in globs:
            regex = glob_regex(glob)
            hits = [p for p in self.by_path if regex.match(p)]
            if hits:
                reasons.append(summarize(f"{setting} {glob!r} matched", sorted(hits)))
        return reasons


@dataclass(frozen=True)
class SettingsReasons:
    """Reasons from hubtasks.yaml keys that change what is rendered or run for a release."""

    hubs: tuple[str, ...] = ()  # every hub
    support: tuple[str, ...] = ()  # every support release
    jsonnet: tuple[str, ...] = ()  # every release that renders a jsonnet document
    by_chart: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # a chart's releases
    new_documents: frozenset[str] = frozenset()  # charts whose own documents changed


def settings_reasons(base: Settings | None, head: Settings,
                     default: Callable[[str], tuple[str, ...]] = lambda chart: ()
                     ) -> SettingsReasons:
    """What an edit of hubtasks.yaml changes for the releases.

    `charts_dir` moves every chart; `support_chart` swaps the support releases' chart;
    `jsonnet_ext_var_prefix` renames the variables every jsonnet document reads;
    `chart_values.X` changes chart X's own documents (compared as the documents they mean:
    `default` gives a chart's when the key names none, so naming the default changes
    nothing), `before.X` what runs before each of its releases. The other keys (globs,
    exclusions, kubeconfig_dir, health_check) change how we plan, connect or check, not what
    is deployed.
    """
    if base is None:
        return SettingsReasons()
    every = (f"{SETTINGS_FILE}: charts_dir changed",) if base.charts_dir != head.charts_dir \
        else ()
    support = (f"{SETTINGS_FILE}: support_chart changed",) \
        if base.support_chart != head.support_chart else ()
    jsonnet = (f"{SETTINGS_FILE}: jsonnet_ext_var_prefix changed",) \
        if base.jsonnet_ext_var_prefix != head.jsonnet_ext_var_prefix else ()
    views: dict[str, Callable[[Settings, str], Any]] = {
        "chart_values": lambda s, chart: _chart_values_view(s, chart, default),
        "before": lambda s, chart: s.before.get(chart)}
    changed = {key: {chart for chart in {*getattr(base, key), *getattr(head, key)}
                     if view(base, chart) != view(head, chart)}
               for key, view in views.items()}
    by_chart: dict[str, tuple[str, ...]] = {}
    for key, charts in changed.items():
        for chart in sorted(charts):
            by_chart[chart] = (*by_chart.get(chart, ()), f"{SETTINGS_FILE}: {key}.{chart} changed")
    return SettingsReasons(hubs=every, support=(*every, *support), jsonnet=jsonnet,
                           by_chart=by_chart, new_documents=frozenset(changed["chart_values"]))


def _chart_values_view(settings: Settings, chart: str,
                       default: Callable[[str], tuple[str, ...]]) -> tuple[str, ...]:
    """The documents a chart's chart_values means (loading spells each one way)."""
    names = settings.chart_values.get(chart)
    return default(chart) if names is None else names


# ---------------------------------------------------------------------------- release inputs


class _Planner:
    """Accumulates reasons per release for one plan."""

    def __init__(self, config: RepoConfig, request: PlanRequest) -> None:
        self.config, self.request = config, request
        self.settings: Settings = config.settings
        self.index = ChangeIndex(request.changes, config)
        # keyed by (cluster, hub) tuples: hashing a dataclass per lookup costs 3x more
        self.reasons: dict[Key, list[str]] = defaultdict(list)
        self.meta: dict[Key, tuple[Stage, str]] = {}
        self._charts: dict[tuple[str, str | None, tuple[str, ...] | None, str | None],
                           list[str]] = {}
        self.removed: list[Removed] = []
        self._chart_jsonnet: dict[str, bool] = {}
        self.all_hubs = self._global(self.settings.deploy_all_hubs_on, "deploy_all_hubs_on",
                                     LABEL_DEPLOY_HUBS)
        self.all_support = self._global(self.settings.deploy_all_support_on,
                                        "deploy_all_support_on", LABEL_DEPLOY_SUPPORT)
        self.by_settings = settings_reasons(request.base_settings, self.settings,
                                            config.default_chart_values)
        self.all_hubs += self.by_settings.hubs
        self.all_support += self.by_settings.support

    def _global(self, globs: Sequence[str], setting: str, label: str) -> list[str]:
        """Reasons that plan every hub (or every support release) at once."""
        reasons = self.index.glob_reasons(globs, setting)
        if label in self.request.labels:
            reasons.append(f"label {label}")
        if self.request.everything:
            reasons.append("everything requested")
        return reasons

    def files(self, paths: Iterable[str], what: str) -> list[str]:
        out = []
        for path in paths:
            described = self.index.describe(path)
            if described:
                out.append(f"{what} {described}")
        return out

    def links(self, linked: Iterable[tuple[str, str]], what: str = "values") -> list[str]:
        """Reasons from the files symlinked values files (or other files of a release) reach
        (git names only those)."""
        out = []
        for path, target in linked:
            described = self.index.describe(target)
            if described:
                out.append(f"{what} {path} -> {described}")
        return out

    def chart(self, hub_or_chart: Hub | str) -> list[str]:
        """Reasons from a chart's folders (cached: thousands of hubs share a few charts)."""
        if isinstance(hub_or_chart, str):
            key: tuple[str, str | None, tuple[str, ...] | None, str | None] = (
                hub_or_chart, None, None, None)
        else:
            hub = hub_or_chart
            key = (hub.chart, hub.chart_override, hub.override_deps, hub.override_chart)
        if key not in self._charts:
            self._charts[key] = self._chart(*key)
        return self._charts[key]

    def _chart(self, chart: str, override: str | None, deps: tuple[str, ...] | None,
               replaced: str | None) -> list[str]:
        """A chart_override's target keeps its templates/values but not its Chart.yaml."""
        folders = self.config.chart_closure(chart, deps, replaced)
        uses = folder_uses(folders, override is not None, replaced)
        found = [self.index.chart_folder_reason(f, use) for f, use in uses.items()]
        reasons = [r for r in found if r]
        if self.config.chart_links:
            reasons += self.chart_links(uses)
        outside = outside_folders(self.config.chart_imports.get(chart, ()), folders)
        reasons += self.files(outside, f"chart {chart} jsonnet import")
        if override:
            reasons += self.files([override], "chart_override")
        return reasons

    def chart_links(self, uses: Mapping[str, str]) -> list[str]:
        """Reasons from what symlinks inside a chart's folders reach outside them: a file
        (git names it) or a folder (git names the files under it)."""
        out = []
        for folder, use in uses.items():
            chart, cut = self.config.charts.get(folder), len(folder) + 1
            name = posixpath.basename(folder)
            for link, target in self.config.chart_links.get(folder, ()):
                if not reaches_helm(link[cut:], chart, use) or not outside_folders([target],
                                                                                   uses):
                    continue
                described = self.index.describe(target)
                if described:
                    out.append(f"chart {name} {link[cut:]} -> {described}")
                changed = self.index.by_folder.get(target)
                if changed:
                    out.append(summarize(f"chart {name} {link[cut:]} -> {target}",
                                         [self.index.by_path[p].describe(p).replace(
                                             f"{target}/", "") for p in changed]))
        return out

    def cluster(self, cluster: Cluster) -> None:
        base_doc = self.request.base_docs.get(cluster.name, cluster.doc)
        diff = diff_cluster(cluster, base_doc) if cluster.name in self.request.base_docs \
            else ClusterDiff()
        common = [*diff.all_releases, *self.credentials(cluster)]
        self.removed += [Removed(cluster=cluster.name, hub=h) for h in diff.removed_hubs]
        if diff.support_removed:
            self.removed.append(Removed(cluster=cluster.name))
        if cluster.support is not None:
            key: Key = (cluster.name, None)
            self.meta[key] = (Stage.SUPPORT, self.settings.support_chart)
            self.reasons[key] += [*common, *diff.support, *self.all_support,
                                  *self.files(cluster.support.values_files, "values"),
                                  *self.files(cluster.support.jsonnet_imports, "jsonnet import"),
                                  *self.links(cluster.support.linked_values),
                                  *self.chart(self.settings.support_chart),
                                  *self.from_settings(self.settings.support_chart,
                                                      cluster.support.values_files)]
        for hub in cluster.hubs:
            key = (cluster.name, hub.name)
            self.meta[key] = (hub.stage, hub.chart)
            self.reasons[key] += [*common, *diff.hubs.get(hub.name, ()), *self.all_hubs,
                                  *self.hub_files(hub), *self.chart(hub),
                                  *self.from_settings(hub.chart, hub.values_files)]

    def from_settings(self, chart: str, values_files: Sequence[str]) -> list[str]:
        """Reasons from hubtasks.yaml keys about this release's chart, or its jsonnet."""
        found = self.by_settings
        if not found.by_chart and not found.jsonnet:
            return []
        reasons = list(found.by_chart.get(chart, ()))
        if found.jsonnet and (self._chart_has_jsonnet(chart)
                              or any(map(is_jsonnet, values_files))):
            reasons += found.jsonnet
        return reasons

    def _chart_has_jsonnet(self, chart: str) -> bool:
        if chart not in self._chart_jsonnet:
            self._chart_jsonnet[chart] = any(map(is_jsonnet, self.config.chart_values(chart)))
        return self._chart_jsonnet[chart]

    def credentials(self, cluster: Cluster) -> list[str]:
        """A credentials file's content is no release input (a rotated deployer key deploys
        nothing; its path is, in connection_view), but its appearing, disappearing or moving
        is: it makes every release of the cluster deployable, or not."""
        changes = [(p, self.index.by_path.get(p)) for p in cluster.credential_files]
        return [f"credentials {c.describe(p)}" for p, c in changes if c and c.status != "M"]

    def hub_files(self, hub: Hub) -> list[str]:
        """Reasons from a hub's own files, asking only for the kinds it has (20,000 hubs)."""
        found = self.files(hub.values_files, "values")
        if hub.jsonnet_imports:
            found += self.files(hub.jsonnet_imports, "jsonnet import")
        if hub.linked_values:
            found += self.links(hub.linked_values)
        if hub.domain_override_file:
            found += self.files([hub.domain_override_file], "domain_override_file")
        for path, target in hub.linked_files:
            what = "chart_override" if path == hub.chart_override else "domain_override_file"
            found += self.links([(path, target)], what)
        return found

    def removed_clusters(self) -> None:
        """Clusters whose cluster.yaml went: also when their folder stays behind (files git
        ignores, such as decrypted credentials, outlive `git rm -r`), which loads as broken."""
        for name, doc in sorted(self.request.base_docs.items()):
            gone = name not in self.config.broken or self._deleted(
                self.settings.cluster_file(name))
            if name not in self.config.clusters and gone and isinstance(doc, Mapping):
                self.removed += [Removed(cluster=name, hub=hub, cluster_removed=True)
                                 for hub in release_names(doc)]

    def _deleted(self, path: str) -> bool:
        change = self.index.by_path.get(path)
        return change is not None and change.status == "D"


def canary(cluster: Cluster, planned: Mapping[Key, list[str]]) -> tuple[dict[str, str], bool]:
    """Staging hubs to add as canaries, and whether the cluster has no canary at all."""
    prod = [h.name for h in cluster.hubs
            if not h.staging and planned.get((cluster.name, h.name))]
    if not prod:
        return {}, False
    reason = summarize("canary for prod hubs", prod)
    staging = {h.name: reason for h in cluster.hubs if h.staging}
    has_support = bool(planned.get((cluster.name, None)))
    return staging, not staging and not has_support


@gc_paused
def build_plan(config: RepoConfig, request: PlanRequest) -> Plan:
    """Decide which releases to upgrade; the same inputs always give the same plan."""
    if LABEL_SKIP in request.labels:
        return Plan(base=request.base, head=request.head,
                    notes=(f"label {LABEL_SKIP}: nothing is deployed",))
    planner = _Planner(config, request)
    for cluster in config.clusters.values():
        planner.cluster(cluster)
    planner.removed_clusters()
    reasons = planner.reasons
    no_canary = []
    for cluster in config.clusters.values():
        staging, flagged = canary(cluster, reasons)
        for hub, reason in staging.items():
            reasons[(cluster.name, hub)].append(reason)
        if flagged:
            no_canary.append(cluster.name)
    if LABEL_SKIP_HUBS in request.labels:
        reasons = defaultdict(list, {k: v for k, v in reasons.items() if k[1] is None})
    jobs = [Job(stage=planner.meta[key][0], cluster=key[0], hub=key[1],
                chart=planner.meta[key][1], reasons=tuple(dict.fromkeys(why)),
                invalid=config.invalid.get(key, ()))
            for key, why in reasons.items() if why]
    notes = tuple(f"unknown label {label!r} ignored" for label in sorted(request.labels)
                  if label.startswith("deployer:") and label not in KNOWN_LABELS)
    gone = {r.cluster for r in planner.removed if r.cluster_removed}
    notes += tuple(f"cluster {name!r} not planned: {problem}"
                   for name, problems in sorted(config.broken.items()) if name not in gone
                   for problem in problems)
    notes += tuple(f"chart {folder} is broken (its releases are invalid): {problem}"
                   for folder, problems in sorted(config.chart_problems.items())
                   for problem in problems)
    return Plan(base=request.base, head=request.head,
                jobs=tuple(sorted(jobs, key=Job.sort_key)),
                removed=tuple(sorted(planner.removed, key=lambda r: (r.cluster, r.hub or ""))),
                no_canary=tuple(sorted(no_canary)), notes=notes)


def changed_cluster_files(changes: Iterable[ChangedFile], settings: Settings) -> dict[str, str]:
    """Cluster folder name -> cluster.yaml path, for every changed cluster.yaml (both sides)."""
    prefix = f"{settings.clusters_dir}/"
    out: dict[str, str] = {}
    for change in changes:
        for path in change.paths():
            rest = path[len(prefix):] if path.startswith(prefix) else ""
            name, _, tail = rest.partition("/")
            if name and tail == CLUSTER_FILE and name not in settings.exclude_clusters:
                out[name] = path
    return out
