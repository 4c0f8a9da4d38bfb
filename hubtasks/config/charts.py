"""Local charts: the one reader of Chart.yaml dependencies, and the one walk of their graph.

A chart's `file://` dependencies (2i2c: daskhub -> `file://../basehub`) make the charts a
graph. Planning follows it to find every folder a release renders from (`chart_closure`);
deploying builds dependencies first (`build_order`); loading refuses cycles (`find_cycle`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHART_FILE = "Chart.yaml"
FILE_SCHEME = "file://"
LOCK_FILE = "Chart.lock"
BUILD_ARTIFACTS = ("charts", LOCK_FILE)  # written by `helm dependency build`
IN_PLACE, COPIED, REPLACED = "", "copied", "replaced"  # how a release uses a chart folder


@dataclass(frozen=True, kw_only=True)
class Chart:
    """A local chart folder and what it depends on."""

    name: str
    folder: str
    file_deps: tuple[str, ...] = ()
    has_deps: bool = False  # any dependency at all, local or remote
    remote_count: int = 0

    @property
    def all_local(self) -> bool:
        """Whether every dependency is a `file://` one (helm needs no repo refresh)."""
        return self.has_deps and self.remote_count == 0


def _dependencies(doc: Any) -> Iterator[dict[str, Any]]:
    deps = doc.get("dependencies") if isinstance(doc, dict) else None
    for dep in deps if isinstance(deps, list) else ():
        if isinstance(dep, dict):
            yield dep


def _file_target(dep: Mapping[str, Any]) -> str | None:
    repo = dep.get("repository")
    if isinstance(repo, str) and repo.startswith(FILE_SCHEME):
        return repo[len(FILE_SCHEME):]
    return None


def file_dependencies(doc: Any, folder: str) -> tuple[str, ...]:
    """Repo-relative folders of a Chart.yaml document's `file://` dependencies.

    `folder` is the repo-relative folder the document's relative paths start from; a target
    that leaves the repository is dropped.
    """
    found = []
    for dep in _dependencies(doc):
        target = _file_target(dep)
        if target is not None:
            joined = posixpath.normpath(posixpath.join(folder, target))
            if not (joined == ".." or joined.startswith("../") or target.startswith("/")):
                found.append(joined)
    return tuple(found)


def chart_doc_problems(doc: Any, rel: str, folder: str) -> list[str]:
    """What helm would refuse in a Chart.yaml document (named `rel`; its relative paths start
    at `folder`), and a `file://` dependency outside the repository (no plan could see it)."""
    if not isinstance(doc, dict):
        return [f"{rel}: not a chart (a YAML mapping)"]
    problems = []
    if doc.get("apiVersion") not in ("v1", "v2"):
        problems.append(f"{rel}: apiVersion must be v2 (or v1), not {doc.get('apiVersion')!r}")
    for key in ("name", "version"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            problems.append(f"{rel}: {key} is required (a string), got {doc.get(key)!r}")
    deps = doc.get("dependencies")
    if deps is not None and not (isinstance(deps, list)
                                 and all(isinstance(d, dict) for d in deps)):
        problems.append(f"{rel}: dependencies must be a list of mappings")
    for dep in _dependencies(doc):
        target = _file_target(dep)
        if target is None:
            continue
        joined = posixpath.normpath(posixpath.join(folder, target))
        if joined == ".." or joined.startswith("../") or target.startswith("/"):
            problems.append(f"{rel}: dependency {dep.get('name')!r} ({FILE_SCHEME}{target}) "
                            "lies outside the repository")
    return problems


def chart_from_doc(doc: Any, folder: str) -> Chart:
    """A Chart record from its parsed Chart.yaml."""
    deps = list(_dependencies(doc))
    local = file_dependencies(doc, folder)
    return Chart(name=posixpath.basename(folder), folder=folder, file_deps=local,
                 has_deps=bool(deps), remote_count=sum(_file_target(d) is None for d in deps))


def with_absolute_file_deps(doc: Any, folder: Path) -> Any:
    """The document with its `file://` dependencies pointed at absolute paths under `folder`.

    A chart_override copied elsewhere keeps resolving its dependencies where they are.
    """
    for dep in _dependencies(doc):
        target = _file_target(dep)
        if target is not None:
            dep["repository"] = f"{FILE_SCHEME}{(folder / target).resolve()}"
    return doc


# ---------------------------------------------------------------------------- the graph


def chart_closure(charts: Mapping[str, Chart], start: str,
                  override_deps: tuple[str, ...] | None = None,
                  replaced: str | None = None) -> list[str]:
    """`start` and its local dependency folders, recursively, depth-first, each once.

    `override_deps` replaces the dependencies of the folder `replaced` (default `start`)
    wherever it occurs in the closure: a hub's chart_override replaces the Chart.yaml of the
    chart it names (2i2c: basehub, also under daskhub's `file://../basehub`).
    """
    replaced = start if replaced is None else replaced
    seen: list[str] = []
    pending = [start]
    while pending:
        folder = pending.pop()
        if folder in seen:
            continue
        seen.append(folder)
        deps = override_deps if folder == replaced and override_deps is not None else None
        if deps is None:
            known = charts.get(folder)
            deps = known.file_deps if known else ()
        pending.extend(reversed(deps))
    return seen


def build_order(charts: Mapping[str, Chart], folders: Sequence[str]) -> list[str]:
    """`folders` and their local dependencies, dependencies first, each folder once."""
    order: list[str] = []

    def visit(folder: str, stack: tuple[str, ...]) -> None:
        if folder in order or folder in stack:  # cycles are refused when loading
            return
        for dep in charts[folder].file_deps if folder in charts else ():
            visit(dep, (*stack, folder))
        order.append(folder)

    for folder in folders:
        visit(folder, ())
    return order


def find_cycle(charts: Mapping[str, Chart]) -> list[str] | None:
    """A dependency cycle among local charts (`[a, b, a]`), or None."""
    done: set[str] = set()

    def visit(folder: str, stack: list[str]) -> list[str] | None:
        if folder in stack:
            return [*stack[stack.index(folder):], folder]
        if folder in done or folder not in charts:
            return None
        for dep in charts[folder].file_deps:
            cycle = visit(dep, [*stack, folder])
            if cycle:
                return cycle
        done.add(folder)
        return None

    for folder in sorted(charts):
        cycle = visit(folder, [])
        if cycle:
            return cycle
    return None


def is_build_output(rel: str) -> bool:
    """Whether a chart folder's file (`rel`, relative to it) is where `helm dependency build`
    writes: `Chart.lock` or under `charts/`. Such a file is an input only when git tracks it."""
    return rel == LOCK_FILE or rel.startswith("charts/")


def reaches_helm(rel: str, chart: Chart | None, use: str = IN_PLACE) -> bool:
    """Whether a chart folder's file (`rel`, relative to it) is part of what helm renders.

    `use` is how the release uses the folder: IN_PLACE (built where it is), COPIED (a
    chart_override's private copy, made without build output) or REPLACED (a copy whose
    Chart.yaml the override replaces). Built in place, a tracked Chart.lock pins what the
    build fetches; an archive `charts/x.tgz` is rebuilt or deleted by `helm dependency build`
    when the chart has dependencies, and rendered as it is when it has none (no build runs).
    """
    if use == REPLACED and rel in (CHART_FILE, LOCK_FILE):
        return False
    if not is_build_output(rel) or rel == LOCK_FILE:
        return not (use and rel == LOCK_FILE)
    if use:
        return False
    name = rel[len("charts/"):]
    archive = "/" not in name and name.endswith(".tgz")
    return not (archive and chart is not None and chart.has_deps)


def folder_uses(folders: Sequence[str], override: bool,
                replaced: str | None) -> dict[str, str]:
    """How a release uses each folder of its chart closure (see `reaches_helm`): with a
    chart_override, the folder it replaces (default the top one) and the top one are copies
    (deploying/overrides.py)."""
    uses = dict.fromkeys(folders, IN_PLACE)
    if override:
        uses[folders[0]] = COPIED
        uses[replaced or folders[0]] = REPLACED
    return uses


def outside_folders(paths: Iterable[str], folders: Iterable[str]) -> list[str]:
    """The paths that lie in none of `folders` (a chart closure's files are inputs already)."""
    prefixes = tuple(f"{folder}/" for folder in folders)
    return [p for p in paths if not p.startswith(prefixes)]
