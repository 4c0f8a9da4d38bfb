"""`values.schema.json` for charts that ship only `values.schema.yaml` (2i2c's convention).

helm validates values only against `values.schema.json`. 2i2c's deployer (`commands/validate/
config.py` `_generate_values_schema_json`) writes the JSON form into the chart folder before
`helm dep up`, so the packaged basehub of daskhub carries it too. We never write into a chart
folder: a chart that needs it (itself or any subchart under `charts/`) is copied, keeping its
folder name, into a private folder, the JSON written beside each YAML form, and each packaged
subchart that needs one unpacked there (helm reads unpacked subcharts in `charts/` the same).
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import yaml

from hubtasks.files import write_atomic
from hubtasks.model import HubtasksError

SCHEMA_YAML, SCHEMA_JSON = "values.schema.yaml", "values.schema.json"
SUBCHARTS = "charts"
PACKAGE_SUFFIX = ".tgz"


def _folder_needs(folder: Path) -> bool:
    return (folder / SCHEMA_YAML).is_file() and not (folder / SCHEMA_JSON).exists()


def _package_needs(package: Path) -> bool:
    """Whether a packaged chart has a `values.schema.yaml` without its JSON form anywhere."""
    try:
        with tarfile.open(package) as tar:
            names = set(tar.getnames())
    except (OSError, tarfile.TarError):
        return False  # not ours to judge: helm reports a broken package itself
    return any(name.endswith(f"/{SCHEMA_YAML}")
               and f"{name[:-len(SCHEMA_YAML)]}{SCHEMA_JSON}" not in names for name in names)


def needs_json_schema(chart_dir: Path) -> bool:
    """Whether the chart or any subchart under `charts/` has only the YAML schema."""
    if _folder_needs(chart_dir):
        return True
    subcharts = chart_dir / SUBCHARTS
    for entry in sorted(subcharts.iterdir()) if subcharts.is_dir() else ():
        if entry.is_dir() and needs_json_schema(entry):
            return True
        if entry.name.endswith(PACKAGE_SUFFIX) and _package_needs(entry):
            return True
    return False


def _write_json(folder: Path, shown: str) -> None:
    source = folder / SCHEMA_YAML
    try:
        schema = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise HubtasksError(f"{shown}/{SCHEMA_YAML}: cannot read the schema: {err}") from None
    write_atomic(folder / SCHEMA_JSON, json.dumps(schema), mode=0o644)


def _unpack(package: Path) -> Path:
    """Unpack a subchart package beside itself (its folder is the chart's name); drop it."""
    with tarfile.open(package) as tar:
        tops = {name.split("/", 1)[0] for name in tar.getnames()}
        if len(tops) != 1:
            raise HubtasksError(f"{package.name}: a chart package holds one folder, not {tops}")
        tar.extractall(package.parent, filter="data")
    package.unlink()
    return package.parent / tops.pop()


def _fill(folder: Path, shown: str) -> None:
    """Write the JSON schemas of `folder` (a private copy) and of its subcharts."""
    if _folder_needs(folder):
        _write_json(folder, shown)
    subcharts = folder / SUBCHARTS
    for entry in sorted(subcharts.iterdir()) if subcharts.is_dir() else ():
        if entry.name.endswith(PACKAGE_SUFFIX) and _package_needs(entry):
            entry = _unpack(entry)
        if entry.is_dir():
            _fill(entry, f"{shown}/{SUBCHARTS}/{entry.name}")


class SchemaCopies:
    """Chart folders as helm should validate them: the folder itself, or a private copy
    carrying `values.schema.json`; one copy (or one error) per chart folder."""

    def __init__(self, root: Path) -> None:
        self.root = root  # a private folder the caller removes
        self._copies: dict[Path, Path | HubtasksError] = {}

    def chart(self, chart_dir: Path, *, shown: str) -> Path:
        """The folder to pass helm for `chart_dir` (built); `shown` names it in errors."""
        if chart_dir not in self._copies:
            try:
                self._copies[chart_dir] = self._copy(chart_dir, shown)
            except (HubtasksError, OSError, tarfile.TarError) as err:
                self._copies[chart_dir] = err if isinstance(err, HubtasksError) \
                    else HubtasksError(f"{shown}: cannot copy the chart: {err}")
        found = self._copies[chart_dir]
        if isinstance(found, HubtasksError):
            raise found
        return found

    def _copy(self, chart_dir: Path, shown: str) -> Path:
        if not needs_json_schema(chart_dir):
            return chart_dir
        # The chart keeps its folder name (helm lint and 2i2c's jsonnet read it).
        target = self.root / f"{len(self._copies):03d}" / chart_dir.name
        shutil.copytree(chart_dir, target, ignore_dangling_symlinks=True)
        _fill(target, shown)
        return target
