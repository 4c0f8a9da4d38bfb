"""The files jsonnet values files import (release inputs the values list doesn't name)."""

from __future__ import annotations

from pathlib import Path

from hubtasks.config.jsonnetdeps import jsonnet_imports


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")


def test_imports_are_followed_resolved_and_kept_inside_the_repo(tmp_path: Path) -> None:
    write(tmp_path, {
        "c/x/hub.jsonnet": "local a = import './lib/a.libsonnet';\n"
                           'local t = importstr "notes.txt";\nlocal o = import "../../../out";\n',
        "c/x/lib/a.libsonnet": "local b = import 'b.libsonnet'; local s = importbin 'k.bin'; {}",
        "c/x/lib/b.libsonnet": "local a = import 'a.libsonnet'; {}",  # a cycle ends
        "c/x/plain.yaml": "import: 'ignored.libsonnet'\n",
    })
    found = jsonnet_imports(tmp_path, ["c/x/plain.yaml", "c/x/hub.jsonnet"])
    assert found == ("c/x/lib/a.libsonnet", "c/x/lib/b.libsonnet", "c/x/lib/k.bin",
                     "c/x/notes.txt")


def test_a_missing_jsonnet_file_has_no_imports(tmp_path: Path) -> None:
    assert jsonnet_imports(tmp_path, ["gone.jsonnet"]) == ()
