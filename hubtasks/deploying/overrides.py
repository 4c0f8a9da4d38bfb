"""Private chart copies for a hub's `chart_override` (2i2c's semantics).

The override replaces one Chart.yaml of the hub's chart closure: the hub's own chart's,
or, when its `name` names another chart (a daskhub hub overriding basehub:
`Hub.override_chart`), that chart's. For the latter both folders are copied side by side
under their own names (<run folder>/charts/<cluster>--<release>/{basehub,daskhub}), so the top
chart's `file://../basehub` finds the copy that carries the override.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from hubtasks.config.charts import (
    BUILD_ARTIFACTS,
    CHART_FILE,
    FILE_SCHEME,
    Chart,
    chart_from_doc,
    with_absolute_file_deps,
)
from hubtasks.config.model import Hub, RepoConfig
from hubtasks.config.yamlfiles import ConfigError, read_yaml
from hubtasks.files import write_atomic
from hubtasks.model import HubtasksError, JobKey


def _copy(source: Path, target: Path, doc: Any, folder: str) -> tuple[Path, Chart]:
    """`source` copied to `target` with `doc` as its Chart.yaml."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*BUILD_ARTIFACTS))
    write_atomic(target / CHART_FILE, yaml.safe_dump(doc), mode=0o644)
    return target, chart_from_doc(doc, folder)


def _chart_doc(config: RepoConfig, rel: str) -> dict[str, Any]:
    """A Chart.yaml document (an override or a chart's own) as a mapping; a HubtasksError
    naming the file when it can't be read, is not YAML or is not a mapping."""
    try:
        doc = read_yaml(config.root, rel)
    except ConfigError as err:
        raise HubtasksError("; ".join(err.problems)) from None
    if not isinstance(doc, dict):
        raise HubtasksError(f"{rel}: not a chart (a YAML mapping), but {type(doc).__name__}")
    return doc


def override_copies(config: RepoConfig, key: JobKey, hub: Hub,
                    work_dir: Path) -> list[tuple[Path, Chart]]:
    """The copied chart folders to build, dependencies first; the last is the hub's chart.

    A problem with the override (unreadable, not YAML, replacing what can't be replaced) is a
    HubtasksError naming it: chart preparation fails only this hub with it."""
    assert hub.chart_override is not None
    top = config.settings.chart_folder(hub.chart)
    replaced = hub.override_chart or top
    base = config.root / work_dir / "charts" / f"{key.cluster}--{key.release}"
    override = _chart_doc(config, hub.chart_override)
    source = config.root / replaced
    copy = _copy(source, base / Path(replaced).name, with_absolute_file_deps(override, source),
                 replaced)
    if replaced == top:
        return [copy]
    if Path(replaced).name == Path(top).name:
        raise HubtasksError(f"{hub.chart_override}: overrides {replaced}, whose folder name "
                            f"is that of the hub's chart {top}: cannot copy both")
    top_source = config.root / top
    doc = with_absolute_file_deps(_chart_doc(config, f"{top}/{CHART_FILE}"), top_source)
    target = base / Path(top).name
    if not _point_at(doc, source.resolve(), f"{FILE_SCHEME}{os.path.relpath(copy[0], target)}"):
        raise HubtasksError(f"cluster {key.cluster}, hub {key.release}: {hub.chart_override} "
                            f"overrides {replaced}, which {top} does not depend on directly "
                            "(file://); only a direct dependency can be overridden")
    return [copy, _copy(top_source, target, doc, top)]


def _point_at(doc: Any, folder: Path, repository: str) -> bool:
    """Point the dependencies on `folder` (absolute file:// by now) at `repository`."""
    found = False
    for dep in doc.get("dependencies") or () if isinstance(doc, dict) else ():
        if isinstance(dep, dict) and dep.get("repository") == f"{FILE_SCHEME}{folder}":
            dep["repository"] = repository
            found = True
    return found
