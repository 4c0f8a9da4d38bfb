"""Loading the charts: every local chart folder, the problems each owns, and what a chart's
own values documents read (load.py builds the repo's records with these).

A chart's problems are kept per folder, so a broken chart marks only the releases that render
from it (load.py's tolerant loads).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from pathlib import Path

from hubtasks.config.charts import (
    CHART_FILE,
    Chart,
    chart_doc_problems,
    chart_from_doc,
    find_cycle,
)
from hubtasks.config.jsonnet import is_jsonnet, source_file
from hubtasks.config.jsonnetdeps import jsonnet_imports, repo_imports
from hubtasks.config.model import SETTINGS_FILE, RepoConfig, Settings
from hubtasks.config.paths import (
    ESCAPES,
    LOOP,
    MISSING,
    FsCache,
    dir_entries,
    entry_is_dir,
    link_chain,
    repo_path,
)
from hubtasks.config.yamlfiles import ConfigError, read_yaml

ChartProblems = dict[str, list[str]]  # chart folder -> the problems it owns


def load_charts(root: Path, settings: Settings, also: Iterable[str] = ()
                ) -> tuple[dict[str, Chart], ChartProblems]:
    """Every chart folder under charts_dir and in `also`, and every folder a `file://`
    dependency reaches from them (a library chart elsewhere in the repo is an input too),
    keyed by its repo-relative folder; with the problems each folder owns."""
    charts: dict[str, Chart] = {}
    problems: ChartProblems = {}
    base = root / settings.charts_dir
    pending = sorted(f"{settings.charts_dir}/{entry.name}" for entry in base.iterdir()
                     if (entry / CHART_FILE).is_file()) if base.is_dir() else []
    pending += [folder for folder in also if folder not in pending]
    seen = set(pending)
    while pending:
        rel = pending.pop(0)
        try:
            doc = read_yaml(root, f"{rel}/{CHART_FILE}")
        except ConfigError as err:
            problems.setdefault(rel, []).extend(err.problems)
            continue
        found = chart_doc_problems(doc, f"{rel}/{CHART_FILE}", rel)
        if found:
            problems.setdefault(rel, []).extend(found)
        charts[rel] = chart = chart_from_doc(doc, rel)
        for dep in chart.file_deps:
            if dep not in seen and (root / dep / CHART_FILE).is_file():
                seen.add(dep)
                pending.append(dep)
    for folder, found in chart_graph_problems(root, charts).items():
        problems.setdefault(folder, []).extend(found)
    return charts, problems


def chart_graph_problems(root: Path, charts: Mapping[str, Chart]) -> ChartProblems:
    """`file://` dependencies that point nowhere, and a dependency cycle (each of its
    charts owns it), by chart folder."""
    out: ChartProblems = {}
    for chart in charts.values():
        for dep in chart.file_deps:
            if dep not in charts and not (root / dep / CHART_FILE).is_file():
                out.setdefault(chart.folder, []).append(
                    f"{chart.folder}/{CHART_FILE}: dependency on {dep} (file://), which holds "
                    f"no {CHART_FILE}; fix the repository path")
    cycle = find_cycle(charts)
    if cycle:
        problem = (f"{cycle[0]}/{CHART_FILE}: chart dependency cycle: "
                   f"{' -> '.join(posixpath.basename(f) for f in cycle)}; remove one "
                   "file:// dependency")
        for folder in cycle[:-1]:
            out.setdefault(folder, []).append(problem)
    return out


def missing_chart_values(root: Path, settings: Settings) -> ChartProblems:
    """chart_values files that do not exist, or that a symlink takes out of the repository
    (named by their hubtasks.yaml key), by chart. A symlink to elsewhere in the repository
    is allowed, as for values files: the file it reaches is an input (chart_links)."""
    out: ChartProblems = {}
    fs = FsCache(root)
    for chart, rels in settings.chart_values.items():
        folder = settings.chart_folder(chart)
        for rel in rels:
            _, state = fs.check(folder, rel, repo_path)
            what = {ESCAPES: "escapes the repository (a symlink)", MISSING: "does not exist",
                    LOOP: "is a loop of symlinks"}.get(state)
            if what:
                out.setdefault(folder, []).append(
                    f"{SETTINGS_FILE}: chart_values.{chart}: {folder}/{rel} {what}")
    return out


def chart_links(root: Path, folders: Iterable[str]) -> dict[str, tuple[tuple[str, str], ...]]:
    """Each symlink inside each chart folder, with the repo paths it reaches: helm's loader
    follows links (a template linked from a shared folder, a linked folder of templates, a
    chart_values document kept elsewhere), and git names only the target on an edit.

    A file link reaches what paths.FsCache notes for a symlinked values file (the file, each
    link of a chain); a folder link, the folder (any file under it is an input) and each
    link of its chain. Only folders are listed (no file is stat-ed; a repo without links
    costs one listing per chart folder), and only a link is resolved.
    """
    fs = FsCache(root)
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for folder in folders:
        found: list[tuple[str, str]] = []
        for rel, is_dir in _symlinks(fs.base, folder):
            if is_dir:
                real = os.path.realpath(os.path.join(fs.base, rel))
                target = Path(os.path.relpath(real, fs.base)).as_posix()
                hops = [hop for hop in link_chain(fs.base, rel)[:-1] if not hop.startswith("..")]
                if not target.startswith(".."):
                    found += [(rel, t) for t in dict.fromkeys((target, *hops))]
                continue
            parent, name = posixpath.split(rel)
            fs.check(parent, name, repo_path)  # notes the link's targets
            found += [(rel, target) for target in fs.link_targets.get(rel, ())]
        if found:
            out[folder] = tuple(found)
    return out


def dangling_chart_links(root: Path, links: Mapping[str, tuple[tuple[str, str], ...]]
                         ) -> dict[str, list[str]]:
    """Symlinks in chart folders whose target is gone, by chart folder: helm refuses such a
    chart ("error evaluating symlink"), so each marks the releases that render from it."""
    out: dict[str, list[str]] = {}
    for folder, pairs in links.items():
        for link in dict.fromkeys(link for link, _ in pairs):
            if not os.path.exists(os.path.join(root, link)):
                target = os.readlink(os.path.join(root, link))
                out.setdefault(folder, []).append(
                    f"{link}: a symlink to {target}, which does not exist (helm refuses a "
                    "chart with a dangling symlink)")
    return out


def _symlinks(base: str, folder: str) -> Iterable[tuple[str, bool]]:
    """(repo path, whether it reaches a folder) of each symlink under `folder`, without
    following folder links."""
    pending = [folder]
    while pending:
        rel = pending.pop()
        for entry in dir_entries(os.path.join(base, rel)):
            path = f"{rel}/{entry.name}"
            if entry.is_symlink():
                yield path, entry_is_dir(entry)
            elif entry_is_dir(entry):
                pending.append(path)


def chart_document_imports(config: RepoConfig) -> dict[str, tuple[str, ...]]:
    """What each used chart's own jsonnet documents read besides themselves: their imports,
    and the file a symlinked one evaluates (daskhub's values.jsonnet is basehub's)."""
    root = config.root
    out: dict[str, tuple[str, ...]] = {}
    for chart in sorted({config.settings.support_chart, *(h.chart for h in config.hubs())}):
        docs = [rel for rel in config.chart_values(chart) if is_jsonnet(rel)]
        found = set(jsonnet_imports(root, docs))
        for rel in docs:
            path = root / rel
            if not path.is_file():
                continue
            source = source_file(path)
            target = Path(os.path.relpath(source, root)).as_posix()
            if target != rel and not target.startswith(".."):
                found.add(target)
            if source != path and not path.is_symlink():
                found.update(_text_link_imports(root, rel, source))
        if found:
            out[chart] = tuple(sorted(found))
    return out


def _text_link_imports(root: Path, rel: str, source: Path) -> set[str]:
    """What a text "symlink" imports: its target's text, evaluated at the link's path, so
    the imports resolve from the link's folder."""
    direct = set(repo_imports(rel, source.read_text(encoding="utf-8", errors="replace")))
    return direct | set(jsonnet_imports(root, sorted(direct)))
