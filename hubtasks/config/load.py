"""Loading and validating a config repo into the records of config/model.py.

The input format is 2i2c-org/infrastructure's: `config/clusters/<cluster>/cluster.yaml`
lists a cluster's hubs and the helm values files of each; charts live in `helm-charts/`.
Loading collects *every* problem before raising, so a user fixes them in one go.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from hubtasks.config.before import before_from_doc
from hubtasks.config.chartload import (
    ChartProblems,
    chart_document_imports,
    chart_links,
    dangling_chart_links,
    load_charts,
    missing_chart_values,
)
from hubtasks.config.charts import (
    CHART_FILE,
    Chart,
    chart_closure,
    chart_doc_problems,
    file_dependencies,
)
from hubtasks.config.health import health_check_from_doc
from hubtasks.config.jsonnetdeps import ImportCache, jsonnet_imports
from hubtasks.config.model import (
    CLUSTER_FILE,
    PROVIDERS_WITH_BLOCK,
    SETTINGS_FILE,
    Cluster,
    Hub,
    RepoConfig,
    Settings,
    Support,
    is_staging,
)
from hubtasks.config.paths import FileChecker, FsCache, override_path, repo_path
from hubtasks.config.yamlfiles import (
    ConfigError,
    SchemaError,
    key_path,
    read_yaml,
    schema_definition,
    schema_errors,
    schema_problems,
)
from hubtasks.model import SUPPORT_RELEASE, HubtasksError, gc_paused

# Helm release names are DNS-1123 labels of at most 53 characters.
RELEASE_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RELEASE_NAME_MAX = 53

# ---------------------------------------------------------------------------- settings


def load_settings(root: Path) -> Settings:
    """Read `hubtasks.yaml` when present; defaults otherwise."""
    if not (root / SETTINGS_FILE).is_file():
        return Settings()
    return settings_from_doc(read_yaml(root, SETTINGS_FILE), SETTINGS_FILE)


def settings_from_doc(doc: Any, rel: str) -> Settings:
    """Validate a parsed `hubtasks.yaml` (named `rel` in errors) into Settings."""
    if doc is None:
        return Settings()
    problems = schema_problems("settings.schema.json", doc, rel)
    if not isinstance(doc, dict):
        raise ConfigError(problems or [f"{rel}: must be a mapping of settings"])
    for key in ("clusters_dir", "charts_dir", "kubeconfig_dir"):
        if isinstance(doc.get(key), str) and repo_path(".", doc[key]) is None:
            problems.append(f"{rel}: {key}: {doc[key]!r} escapes the repository")
    health = health_check_from_doc(doc.get("health_check"), rel, problems)
    before = before_from_doc(doc.get("before"), rel, problems)
    if problems:
        raise ConfigError(problems)
    problems += chart_values_problems(doc.get("chart_values") or {}, rel)
    if problems:
        raise ConfigError(problems)
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()}
    values["health_check"] = health
    values["before"] = before
    values["chart_values"] = {k: tuple(map(posixpath.normpath, v))  # one spelling a file
                              for k, v in (doc.get("chart_values") or {}).items()}
    for key in ("clusters_dir", "charts_dir"):
        if key in values:
            values[key] = posixpath.normpath(values[key])
    return Settings(**values)


def chart_values_problems(chart_values: Mapping[str, list[str]], rel: str) -> list[str]:
    """chart_values entries must stay inside their chart folder."""
    return [f"{rel}: chart_values.{chart}: {path!r} escapes the chart folder"
            for chart, paths in chart_values.items() for path in paths
            if repo_path(".", path) is None]


# ---------------------------------------------------------------------------- clusters


def cluster_folders(root: Path, settings: Settings) -> list[str]:
    """Cluster folder names, sorted, minus `exclude_clusters`."""
    base = root / settings.clusters_dir
    if not base.is_dir():
        raise ConfigError([f"{settings.clusters_dir}: no such folder in {root} (set "
                           f"clusters_dir in {SETTINGS_FILE}, or pass --repo)"])
    excluded = set(settings.exclude_clusters)
    return sorted(p.name for p in base.iterdir() if p.is_dir() and p.name not in excluded)


def release_name_problem(name: str) -> str | None:
    """Why `name` can't be a helm release / namespace name, or None."""
    if len(name) > RELEASE_NAME_MAX:
        return f"{name!r} is longer than {RELEASE_NAME_MAX} characters (helm's release limit)"
    if not RELEASE_NAME_RE.match(name):
        return (f"{name!r} is not a valid release/namespace name: use lower-case letters, "
                "digits and '-', starting and ending with a letter or digit (DNS-1123 label)")
    return None


class _ClusterLoader:
    """Builds one Cluster from its parsed cluster.yaml, collecting problems."""

    def __init__(self, fs: FsCache, root: Path, settings: Settings,
                 charts: Mapping[str, Chart], folder_name: str, problems: list[str],
                 tolerant: bool = False, chart_problems: ChartProblems | None = None,
                 values_problems: ChartProblems | None = None) -> None:
        self.root, self.settings, self.charts = root, settings, charts
        self.chart_problems = chart_problems or {}  # of each folder's Chart.yaml
        self.values_problems = values_problems or {}  # of each chart's chart_values
        self.name = folder_name
        self.folder = f"{settings.clusters_dir}/{folder_name}"
        self.rel = f"{self.folder}/{CLUSTER_FILE}"
        self.problems = problems
        self.check = FileChecker(fs, self.rel, problems, keep_missing=tolerant)
        self.invalid: dict[tuple[str, str | None], tuple[str, ...]] = {}
        self.imports = ImportCache()  # what jsonnet files import (hubs share libraries)

    def load(self, doc: Any) -> Cluster | None:
        if not isinstance(doc, dict):
            self.problems.append(f"{self.rel}: expected a mapping at the top level")
            return None
        errors = schema_errors("cluster.schema.json", doc)
        cluster_wide, per_hub = shed_hub_errors(doc, errors)
        if cluster_wide:
            self.problems.extend(error.describe(self.rel, doc) for error in errors)
            return None
        if doc["name"] != self.name:
            self.problems.append(f"{self.rel}: name: {doc['name']!r} does not match its folder "
                                 f"name {self.name!r}")
        start = len(self.problems)
        creds, context = self.connection(doc)
        common = self.problems[start:]
        hubs = self.hubs(doc.get("hubs") or [], doc, common, per_hub)
        mark = len(self.problems)
        support = self.support(doc)
        if common or len(self.problems) > mark:
            self.invalid[(self.name, None)] = (*common, *self.problems[mark:])
        return Cluster(name=self.name, provider=doc["provider"], folder=self.folder, hubs=hubs,
                       support=support, credential_files=creds, kube_context=context, doc=doc)

    def support(self, doc: Mapping[str, Any]) -> Support | None:
        if "support" not in doc:
            return None
        files = doc["support"]["helm_chart_values_files"]
        values = self.check.files(self.folder, files, "support.helm_chart_values_files")
        folder = self.settings.chart_folder(self.settings.support_chart)
        if not (self.root / folder).is_dir():
            self.problems.append(f"{self.rel}: support: chart folder {folder} does not exist "
                                 "(see support_chart in hubtasks.yaml)")
        self.problems.extend(self.problems_of_charts(folder))
        return Support(values_files=values, linked_values=self.check.links(values),
                       jsonnet_imports=jsonnet_imports(self.root, values, self.imports))

    def connection(self, doc: Mapping[str, Any]) -> tuple[tuple[str, ...], str | None]:
        provider = doc["provider"]
        block = doc.get(provider) if provider in PROVIDERS_WITH_BLOCK else None
        if not isinstance(block, dict):
            return (), None
        key = "file" if provider == "kubeconfig" else "key"
        path = self.check.file(self.folder, block[key], f"{provider}.{key}")
        context = block.get("context") if provider == "kubeconfig" else None
        return ((path,) if path else ()), context

    def hubs(self, entries: list[dict[str, Any]], doc: Any, common: list[str],
             shed: Mapping[int, tuple[list[SchemaError], set[Any]]]) -> tuple[Hub, ...]:
        seen: set[str] = set()
        hubs = []
        for index, entry in enumerate(entries):
            where = key_path(["hubs", index], doc)
            mark = len(self.problems)
            errors, drop = shed.get(index, ([], set()))
            self.problems.extend(error.describe(self.rel, doc) for error in errors)
            hub = self.hub(entry, where, drop)
            if entry["name"] in seen:  # the first entry is the hub (its own problems stay);
                # the duplicate's problems and the duplicate itself mark the whole cluster
                self.problems.append(f"{self.rel}: {where}: duplicate hub name {entry['name']!r}")
                continue
            if common or len(self.problems) > mark:
                self.invalid[(self.name, entry["name"])] = (*common, *self.problems[mark:])
            seen.add(entry["name"])
            if hub is not None:
                hubs.append(hub)
        return tuple(hubs)

    def hub(self, original: dict[str, Any], where: str, drop: set[Any]) -> Hub | None:
        """A hub from its entry, without the keys `drop` names, nor the (key, index) items of
        its lists (they failed the schema)."""
        entry = _without(original, drop) if drop else original
        name = entry["name"]
        problem = release_name_problem(name)
        if problem:
            self.problems.append(f"{self.rel}: {where}.name: {problem}")
        if name == SUPPORT_RELEASE:
            self.problems.append(f"{self.rel}: {where}.name: {name!r} is reserved for the "
                                 "cluster's support release")
        chart = entry["helm_chart"]
        folder = self.settings.chart_folder(chart)
        if folder not in self.charts and folder not in self.chart_problems:
            self.problems.append(f"{self.rel}: {where}.helm_chart: chart {folder} does not "
                                 "exist")
        values = self.check.files(self.folder, entry["helm_chart_values_files"],
                                  f"{where}.helm_chart_values_files")
        override = self.optional(entry, "chart_override", where, override_path)
        domain_file = self.optional(entry, "domain_override_file", where, repo_path)
        deps, replaced = self.override_deps(override, chart)
        self.problems.extend(self.problems_of_charts(folder, deps, replaced))
        return Hub(name=name, cluster=self.name, chart=chart, domain=entry["domain"],
                   values_files=values, staging=is_staging(entry), chart_override=override,
                   domain_override_file=domain_file, display_name=entry.get("display_name", ""),
                   override_deps=deps, override_chart=replaced, entry=original,
                   jsonnet_imports=jsonnet_imports(self.root, values, self.imports),
                   linked_values=self.check.links(values),
                   linked_files=self.check.links(tuple(filter(None, (override, domain_file)))))

    def problems_of_charts(self, folder: str, deps: tuple[str, ...] | None = None,
                           replaced: str | None = None) -> list[str]:
        """The problems of what a release renders from: the Chart.yaml of each folder in its
        chart's closure but the one its chart_override replaces, its chart's chart_values."""
        if not self.chart_problems and not self.values_problems:  # nearly always
            return []
        overridden = (replaced or folder) if deps is not None else None
        closure = chart_closure(self.charts, folder, deps, replaced)
        return [*(p for f in closure if f != overridden for p in self.chart_problems.get(f, ())),
                *self.values_problems.get(folder, ())]

    def override_deps(self, override: str | None,
                      chart: str) -> tuple[tuple[str, ...] | None, str | None]:
        """(local dependencies, replaced chart folder) of a chart_override.

        The override replaces the Chart.yaml of the chart its `name` names (the hub's own
        chart when it names none); its `file://` paths resolve in that chart's folder.
        """
        if override is None:
            return None, None
        try:
            doc = read_yaml(self.root, override)
        except ConfigError as err:
            self.problems.extend(err.problems)
            return None, None
        name = doc.get("name") if isinstance(doc, dict) else None
        folder = self.settings.chart_folder(name) if isinstance(name, str) else ""
        replaced = folder if folder in self.charts else self.settings.chart_folder(chart)
        self.problems.extend(chart_doc_problems(doc, override, replaced))
        deps = file_dependencies(doc, replaced)
        self.problems.extend(
            f"{override}: dependency on {dep} (file://), which holds no {CHART_FILE}; fix the "
            "repository path" for dep in deps
            if dep not in self.charts and not (self.root / dep / CHART_FILE).is_file())
        return deps, replaced

    def optional(self, entry: Mapping[str, Any], key: str, where: str,
                 join: Callable[[str, str], str | None]) -> str | None:
        if key not in entry:
            return None
        return self.check.file(self.folder, entry[key], f"{where}.{key}", join=join)


def _without(entry: Mapping[str, Any], drop: set[Any]) -> dict[str, Any]:
    """`entry` without the keys and the (key, index) list items of `drop`."""
    items = {item for item in drop if isinstance(item, tuple)}
    return {key: [v for i, v in enumerate(value) if (key, i) not in items]
            if isinstance(value, list) and any(k == key for k, _ in items) else value
            for key, value in entry.items() if key not in drop}


def shed_hub_errors(doc: Mapping[str, Any], errors: Sequence[SchemaError]
                    ) -> tuple[list[SchemaError], dict[int, tuple[list[SchemaError], set[Any]]]]:
    """Split schema errors into the cluster's and those a hub entry can shed.

    A hub entry with an unknown key, a malformed optional one, or a malformed item of a
    required list (an empty values file name) is still a hub: it loads without the
    offending keys or items and is marked invalid, so the cluster's other releases plan and
    deploy. Any other error (a required key missing or malformed, a problem outside
    the hubs) leaves the whole cluster.yaml unusable. Returns (the cluster's errors,
    hub index -> (its errors, keys to drop)).
    """
    if not errors:  # nearly always
        return [], {}
    definition = schema_definition("cluster.schema.json", "hub")
    known, required = set(definition["properties"]), set(definition["required"])
    hubs = doc.get("hubs")
    entries = hubs if isinstance(hubs, list) else []
    cluster_wide: list[SchemaError] = []
    per_hub: dict[int, tuple[list[SchemaError], set[Any]]] = {}
    for error in errors:
        path = error.path
        index = path[1] if len(path) >= 2 and path[0] == "hubs" else None
        entry = entries[index] if isinstance(index, int) and index < len(entries) else None
        drop: set[Any] = set()
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry["name"]:
            if len(path) == 2 and error.rule == "additionalProperties":
                drop = set(entry) - known
            elif len(path) > 2 and path[2] not in required:
                drop = {path[2]}
            elif len(path) > 3 and isinstance(path[3], int) and \
                    isinstance(entry.get(path[2]), list):
                drop = {(path[2], path[3])}  # one bad item of a required list (`""`)
        if not drop or not isinstance(index, int):
            cluster_wide.append(error)
            continue
        owned, keys = per_hub.setdefault(index, ([], set()))
        owned.append(error)
        keys |= drop
    return cluster_wide, per_hub


def load_cluster(fs: FsCache, root: Path, settings: Settings, charts: Mapping[str, Chart],
                 name: str, problems: list[str],
                 invalid: dict[tuple[str, str | None], tuple[str, ...]] | None = None,
                 chart_problems: ChartProblems | None = None,
                 values_problems: ChartProblems | None = None) -> Cluster | None:
    """Load and check one cluster folder; problems are appended, never raised.

    With `invalid` (a tolerant load), each release's own problems are recorded there too.
    """
    rel = settings.cluster_file(name)
    if not (root / rel).is_file():
        problems.append(f"{rel}: missing (add it, or list {name!r} under exclude_clusters in "
                        f"{SETTINGS_FILE})")
        return None
    try:
        doc = read_yaml(root, rel)
    except ConfigError as err:
        problems.extend(err.problems)
        return None
    loader = _ClusterLoader(fs, root, settings, charts, name, problems,
                            tolerant=invalid is not None, chart_problems=chart_problems,
                            values_problems=values_problems)
    cluster = loader.load(doc)
    if invalid is not None:
        invalid.update(loader.invalid)
    return cluster


def _mark_cluster_wide(invalid: dict[tuple[str, str | None], tuple[str, ...]],
                      cluster: Cluster, problems: list[str]) -> None:
    """Problems no single release owns (a folder/name mismatch, a duplicate hub name) mark
    every release of the cluster."""
    owned = {p for key, ps in invalid.items() if key[0] == cluster.name for p in ps}
    rest = tuple(p for p in problems if p not in owned)
    if not rest:
        return
    keys = [*([(cluster.name, None)] if cluster.support else []),
            *((cluster.name, h.name) for h in cluster.hubs)]
    for key in keys:
        invalid[key] = (*invalid.get(key, ()), *rest)


@gc_paused
def load_config(root: Path | str, *, clusters: Iterable[str] | None = None,
                tolerant: bool = False) -> RepoConfig:
    """Load and validate a config repo; raise ConfigError listing every problem.

    `clusters` limits loading to some cluster folders (CI legs only need their own).
    `tolerant` (planning) raises only for repo-wide problems: a release's own problems go
    to `RepoConfig.invalid` (a broken chart's to every release rendering from it), a
    cluster whose cluster.yaml can't be used to `broken`.
    """
    root = Path(root).resolve()
    settings = load_settings(root)
    names = cluster_folders(root, settings)
    if clusters is not None:
        wanted = set(clusters)
        missing = sorted(wanted - set(names))
        if missing:
            raise HubtasksError(f"unknown cluster(s): {', '.join(missing)} "
                                f"(no folder under {settings.clusters_dir})")
        names = [n for n in names if n in wanted]
    config, problems = _load(root, settings, names, tolerant=tolerant)
    extra = _unloaded_override_charts(config)
    if extra:  # a chart_override reaches a chart no chart folder does: load it, and again
        config, problems = _load(root, settings, names, tolerant=tolerant, also=extra)
    if problems and not tolerant:
        raise ConfigError(dict.fromkeys(problems))  # a chart's problems once, not per release
    return replace(config, chart_imports=chart_document_imports(config))


def _load(root: Path, settings: Settings, names: Sequence[str], *, tolerant: bool,
          also: Iterable[str] = ()) -> tuple[RepoConfig, list[str]]:
    """The charts (with `also`, folders only chart_overrides reach) and the clusters `names`,
    and every problem found."""
    charts, chart_problems = load_charts(root, settings, also)
    values_problems = missing_chart_values(root, settings)
    links = chart_links(root, [*charts, *chart_problems])
    for source in (dangling_chart_links(root, links),):
        for folder, found in source.items():
            chart_problems.setdefault(folder, []).extend(found)
    by_folder: ChartProblems = {}
    for source in (chart_problems, values_problems):
        for folder, found in source.items():
            by_folder.setdefault(folder, []).extend(found)
    problems = [p for found in by_folder.values() for p in found]
    loaded: dict[str, Cluster] = {}
    fs = FsCache(root)
    invalid: dict[tuple[str, str | None], tuple[str, ...]] | None = {} if tolerant else None
    broken: dict[str, tuple[str, ...]] = {}
    for name in names:
        mark = len(problems)
        cluster = load_cluster(fs, root, settings, charts, name, problems, invalid,
                               chart_problems, values_problems)
        if cluster is not None:
            loaded[name] = cluster
            if invalid is not None:
                _mark_cluster_wide(invalid, cluster, problems[mark:])
        elif len(problems) > mark:
            broken[name] = tuple(problems[mark:])
    config = RepoConfig(root=root, settings=settings, clusters=loaded, charts=charts,
                        invalid=invalid or {}, broken=broken,
                        chart_problems={k: tuple(v) for k, v in by_folder.items()},
                        chart_links=links)
    return config, problems


def _unloaded_override_charts(config: RepoConfig) -> list[str]:
    """Chart folders a chart_override's `file://` dependencies point at that loading the
    charts did not reach (their own dependencies are inputs too); nearly always none."""
    found = {dep for hub in config.hubs() for dep in hub.override_deps or ()
             if dep not in config.charts and dep not in config.chart_problems}
    return sorted(d for d in found if (config.root / d / CHART_FILE).is_file())
