"""What a plan reads of the changed release inputs, so a broken one is marked before deploying.

Loading checks that every listed file exists; it does not read them. A plan reads the
*changed* values files of each release (a plan costs in proportion to its change, not its
repo): malformed YAML, a secret-named file that is not sops-encrypted, and a release's own
`.jsonnet` document that fails to render (rendered again when a file it imports changed)
make the release invalid, as a missing file does (planner.py then plans it with its
problems, and its deploy job fails without calling helm). Encrypted files are not decrypted:
a plan needs no keys. A chart's own documents (its values.jsonnet) are checked the same way
for every release of the chart when they, or a file they import, changed: a jsonnet one is
rendered with the first release's context, and only when that fails with each release's own
(so a sound edit costs one render, and an error that depends on the context marks only the
releases it breaks; a parse error, which no context changes, is every release's without
rendering again). An error that spares the first release is found at deploy, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from functools import partial

from hubtasks.config.domains import hub_domain
from hubtasks.config.jsonnet import RENDERER, STATIC_ERROR, is_jsonnet, release_context
from hubtasks.config.model import Hub, RepoConfig, Settings, Support
from hubtasks.config.valuefiles import values_file_problems
from hubtasks.model import HubtasksError
from hubtasks.planning.changes import ChangedFile
from hubtasks.planning.planner import Key, settings_reasons
from hubtasks.secrets import is_sops_encrypted, needs_decrypting


def _caught(check: Callable[[], object]) -> list[str]:
    """The error a check raises, as a problem list (empty when it passes)."""
    try:
        check()
    except HubtasksError as err:
        return [str(err)]
    return []


class _Checks:
    """Each file checked once, each jsonnet document rendered once per release context."""

    def __init__(self, config: RepoConfig) -> None:
        self.config = config
        self.files: dict[str, list[str]] = {}

    def file(self, rel: str) -> list[str]:
        if rel not in self.files:
            self.files[rel] = values_file_problems(self.config.root, rel)
        return self.files[rel]

    def render(self, key: Key, hub: Hub | None, rel: str) -> list[str]:
        path = self.config.root / rel
        if not path.is_file() or is_sops_encrypted(path):
            return []  # missing: load's problem; encrypted: rendered at deploy, with keys
        return _caught(lambda: RENDERER.render(
            path, release_context(self.config, key[0], key[1], self.domain(hub)), rel=rel))

    def changed_documents(self, files: tuple[str, ...], imports: tuple[str, ...],
                          changed: set[str], linked: tuple[tuple[str, str], ...] = ()
                          ) -> tuple[list[str], list[str]] | None:
        """(problems of the changed files, jsonnet documents to render again) of a list of
        documents, a release's or a chart's; None when neither they nor what they read
        changed."""
        touched = [rel for rel in files if rel in changed]
        if linked:  # a symlinked file changed when the file it reaches did
            touched += [rel for rel, target in linked if target in changed]
        imported = bool(imports) and any(rel in changed for rel in imports)
        if not touched and not imported:
            return None
        problems = [p for rel in touched for p in self.file(rel)]
        rerender = [rel for rel in files if is_jsonnet(rel) and (imported or rel in touched)
                    and not self.file(rel)]
        return problems, rerender

    def release(self, key: Key, hub: Hub | None, release: Hub | Support,
                changed: set[str]) -> list[str]:
        """Problems of a release's own changed documents (none read when none changed)."""
        found = self.changed_documents(release.values_files, release.jsonnet_imports, changed,
                                       release.linked_values)
        problems, rerender = found or ([], [])
        if hub is not None and hub.domain_override_file and self._domain_changed(hub, changed):
            problems += _caught(partial(self.domain, hub))
        return problems + [p for rel in rerender for p in self.render(key, hub, rel)]

    @staticmethod
    def _domain_changed(hub: Hub, changed: set[str]) -> bool:
        """Whether a hub's domain_override_file, or the file a symlink there reaches, changed."""
        override = hub.domain_override_file
        return override in changed or any(target in changed for path, target
                                          in hub.linked_files if path == override)

    def domain(self, hub: Hub | None) -> str | None:
        """The hub's domain; an encrypted override stays unread (its entry's domain)."""
        if hub is None:
            return None
        override = hub.domain_override_file
        if override and needs_decrypting(self.config.root / override):
            return hub.domain
        return hub_domain(self.config, hub, sops=None, env={})


class _ChartDocuments:
    """A chart's own documents, checked once for all its releases (see the module docstring)."""

    def __init__(self, checks: _Checks, changed: set[str]) -> None:
        self.checks, self.changed = checks, changed
        self.charts: dict[str, tuple[list[str], list[str]]] = {}
        self.sound: dict[str, bool] = {}  # rendered once: passed (True) or failed (False)
        self.static: dict[str, list[str]] = {}  # a parse error: every context's, unrendered

    def problems(self, chart: str, key: Key, hub: Hub | None) -> list[str]:
        if chart not in self.charts:
            self.charts[chart] = self._examine(chart)
        found, rerender = self.charts[chart]
        out = list(found)
        for rel in rerender:
            if self.sound.get(rel):
                continue
            if rel in self.static:
                out += self.static[rel]
                continue
            problems = self.checks.render(key, hub, rel)
            self.sound.setdefault(rel, not problems)
            if any(STATIC_ERROR in p for p in problems):
                self.static[rel] = problems
            out += problems
        return out

    def _examine(self, chart: str) -> tuple[list[str], list[str]]:
        """(problems of the changed files, jsonnet documents to render) of a chart."""
        config = self.checks.config
        docs = config.chart_values(chart)
        linked = tuple(pair for pair in config.chart_links.get(
            config.settings.chart_folder(chart), ()) if pair[0] in docs)
        found = self.checks.changed_documents(docs, config.chart_imports.get(chart, ()),
                                              self.changed, linked)
        return found or ([], [])


def changed_input_problems(config: RepoConfig, changes: Iterable[ChangedFile],
                           base_settings: Settings | None = None
                           ) -> dict[Key, tuple[str, ...]]:
    """Problems of the changed values documents, per release whose documents changed.

    `base_settings` (hubtasks.yaml at base, when it changed): a new jsonnet_ext_var_prefix
    reaches every jsonnet document, a chart's new chart_values its own documents."""
    changed = {c.path for c in changes if c.status != "D"}
    if not changed:
        return {}
    if base_settings is not None:
        changed |= _documents_settings_reach(config, base_settings)
    checks = _Checks(config)
    charts = _ChartDocuments(checks, changed)
    out: dict[Key, tuple[str, ...]] = {}
    for key, hub, release in config.releases():
        chart = hub.chart if hub else config.settings.support_chart
        problems = [*charts.problems(chart, key, hub), *checks.release(key, hub, release, changed)]
        if problems:
            out[key] = tuple(dict.fromkeys(problems))
    return out


def _documents_settings_reach(config: RepoConfig, base: Settings) -> set[str]:
    """The documents an edit of hubtasks.yaml makes render differently (planner's
    settings_reasons says which keys changed): with a new jsonnet_ext_var_prefix every
    jsonnet one (the charts' and the releases'); with a chart's new chart_values, that
    chart's own."""
    changed = settings_reasons(base, config.settings, config.default_chart_values)
    charts = {*(h.chart for h in config.hubs()), config.settings.support_chart}
    if changed.jsonnet:
        found = {rel for chart in charts for rel in config.chart_values(chart)}
        found |= {rel for _, _, release in config.releases() for rel in release.values_files}
        return {rel for rel in found if is_jsonnet(rel)}
    return {rel for chart in charts & changed.new_documents
            for rel in config.chart_values(chart)}


def with_input_problems(config: RepoConfig,
                        problems: Mapping[Key, tuple[str, ...]]) -> RepoConfig:
    """The config with `problems` added to its releases' invalid marks."""
    if not problems:
        return config
    invalid = dict(config.invalid)
    for key, found in problems.items():
        invalid[key] = tuple(dict.fromkeys((*invalid.get(key, ()), *found)))
    return replace(config, invalid=invalid)

