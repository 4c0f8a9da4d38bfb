"""The config records: settings, clusters, hubs, charts, and the loaded repo.

Paths in these records are repo-relative POSIX paths; loading (load.py) checks them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubtasks.config.before import BeforeStep
from hubtasks.config.charts import Chart, chart_closure
from hubtasks.config.health import HealthCheck
from hubtasks.model import HubtasksError, Stage

SETTINGS_FILE = "hubtasks.yaml"
CLUSTER_FILE = "cluster.yaml"
PROVIDERS_WITH_BLOCK = ("gcp", "aws", "azure", "kubeconfig")
DEFAULT_CHART_VALUES = "values.jsonnet"


def is_staging(entry: Mapping[str, Any]) -> bool:
    """`staging: true/false` when given; otherwise 2i2c's rule: the name contains 'staging'."""
    flag = entry.get("staging")
    if isinstance(flag, bool):
        return flag
    return "staging" in str(entry.get("name", ""))


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Repository settings from the optional `hubtasks.yaml` at the repo root."""

    clusters_dir: str = "config/clusters"
    charts_dir: str = "helm-charts"
    exclude_clusters: tuple[str, ...] = ("templates",)
    deploy_all_hubs_on: tuple[str, ...] = ()
    deploy_all_support_on: tuple[str, ...] = ()
    support_chart: str = "support"
    kubeconfig_dir: str = ".hubtasks/kubeconfigs"
    health_check: HealthCheck | None = field(default_factory=HealthCheck)  # None: off
    jsonnet_ext_var_prefix: str = "HUBTASKS_"
    # chart name -> its own values documents, relative to the chart folder (None: default).
    chart_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # chart name -> commands run before its releases (config/before.py).
    before: Mapping[str, tuple[BeforeStep, ...]] = field(default_factory=dict)

    def cluster_file(self, cluster: str) -> str:
        return f"{self.clusters_dir}/{cluster}/{CLUSTER_FILE}"

    def chart_folder(self, chart: str) -> str:
        return f"{self.charts_dir}/{chart}"


@dataclass(frozen=True, kw_only=True)
class Hub:
    """One JupyterHub release. Paths are repo-relative POSIX paths."""

    name: str
    cluster: str
    chart: str
    domain: str
    values_files: tuple[str, ...]
    staging: bool
    chart_override: str | None = None
    domain_override_file: str | None = None
    display_name: str = ""
    override_deps: tuple[str, ...] | None = None
    override_chart: str | None = None  # folder of the chart whose Chart.yaml the override replaces
    jsonnet_imports: tuple[str, ...] = ()  # files its jsonnet values files import (inputs)
    linked_values: tuple[tuple[str, str], ...] = ()  # (values file, file it links to) (inputs)
    # (chart_override or domain_override_file, file it links to) (inputs, as linked_values)
    linked_files: tuple[tuple[str, str], ...] = ()
    entry: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def stage(self) -> Stage:
        """The stage it deploys in: staging (the canary) or prod."""
        return Stage.STAGING if self.staging else Stage.PROD


@dataclass(frozen=True, kw_only=True)
class Support:
    """A cluster's support release."""

    values_files: tuple[str, ...]
    jsonnet_imports: tuple[str, ...] = ()  # files its jsonnet values files import (inputs)
    linked_values: tuple[tuple[str, str], ...] = ()  # (values file, file it links to) (inputs)


@dataclass(frozen=True, kw_only=True)
class Cluster:
    """One cluster folder: its connection, support release and hubs."""

    name: str
    provider: str
    folder: str
    hubs: tuple[Hub, ...]
    support: Support | None = None
    credential_files: tuple[str, ...] = ()
    kube_context: str | None = None
    doc: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def config_file(self) -> str:
        return f"{self.folder}/{CLUSTER_FILE}"

    def hub(self, name: str) -> Hub:
        for hub in self.hubs:
            if hub.name == name:
                return hub
        raise HubtasksError(f"cluster {self.name!r} has no hub {name!r} (see {self.config_file})")


@dataclass(frozen=True, kw_only=True)
class RepoConfig:
    """Everything loaded from one checkout."""

    root: Path
    settings: Settings
    clusters: Mapping[str, Cluster]
    charts: Mapping[str, Chart]
    # tolerant loads only (planning): problems of one release's own inputs, keyed by
    # (cluster, hub or None for support), and clusters whose cluster.yaml can't be used
    invalid: Mapping[tuple[str, str | None], tuple[str, ...]] = field(default_factory=dict)
    broken: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    chart_problems: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # by folder
    # chart name -> files its own jsonnet documents import: inputs of its releases, like
    # its folder (most are inside it; one outside is an input only through this)
    chart_imports: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # chart folder -> (symlink inside it, repo file or folder it reaches): inputs of the
    # releases rendering from the folder (helm's loader follows links; git names the target)
    chart_links: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def cluster(self, name: str) -> Cluster:
        try:
            return self.clusters[name]
        except KeyError:
            known = ", ".join(sorted(self.clusters)) or "none"
            raise HubtasksError(f"unknown cluster {name!r} (known: {known})") from None

    def release_values(self, cluster: str, hub: str | None) -> tuple[str, ...]:
        """A release's values files, in order (hub None: the cluster's support release)."""
        found = self.cluster(cluster)
        if hub is not None:
            return found.hub(hub).values_files
        return found.support.values_files if found.support else ()

    def chart_values(self, chart: str) -> tuple[str, ...]:
        """A chart's own values documents (repo-relative), in order, after its values.yaml.

        `chart_values` in hubtasks.yaml when it names the chart; else `values.jsonnet` when
        the chart folder has one (2i2c's convention); else none.
        """
        folder = self.settings.chart_folder(chart)
        names = self.settings.chart_values.get(chart)
        return tuple(f"{folder}/{rel}" for rel in (
            self.default_chart_values(chart) if names is None else names))

    def default_chart_values(self, chart: str) -> tuple[str, ...]:
        """A chart's own documents when hubtasks.yaml names none (relative to its folder)."""
        default = f"{self.settings.chart_folder(chart)}/{DEFAULT_CHART_VALUES}"
        return (DEFAULT_CHART_VALUES,) if (self.root / default).is_file() else ()

    def release_chart(self, cluster: str, hub: str | None) -> str:
        """The chart (name) of a release: the hub's helm_chart, or the support chart."""
        return self.cluster(cluster).hub(hub).chart if hub else self.settings.support_chart

    def release_documents(self, cluster: str, hub: str | None) -> tuple[str, ...]:
        """Every values document of a release, in helm's order: chart's, then the release's."""
        return (self.chart_values(self.release_chart(cluster, hub))
                + self.release_values(cluster, hub))

    def hubs(self) -> Iterator[Hub]:
        for cluster in self.clusters.values():
            yield from cluster.hubs

    def releases(self) -> Iterator[tuple[tuple[str, str | None], Hub | None, Hub | Support]]:
        """((cluster, hub or None), hub or None, the release's record) of every release."""
        for name, cluster in self.clusters.items():
            if cluster.support is not None:
                yield (name, None), None, cluster.support
            for hub in cluster.hubs:
                yield (name, hub.name), hub, hub

    def chart_closure(self, chart: str, override_deps: tuple[str, ...] | None = None,
                      replaced: str | None = None) -> list[str]:
        """The chart folder and its local dependency folders, recursively, in order."""
        return chart_closure(self.charts, self.settings.chart_folder(chart), override_deps,
                             replaced)
