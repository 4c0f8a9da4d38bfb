"""The files jsonnet values files import (release inputs the values list doesn't name)."""

from __future__ import annotations

import json
from pathlib import Path

from hubtasks.config.jsonnet import JsonnetRenderer
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


def test_a_render_is_not_reused_once_a_file_it_imports_changed(tmp_path: Path) -> None:
    """The renderer's cache keys each render by the files it imports too, found as jsonnet
    finds them: next to the importing file, else in the rendered file's folder."""
    write(tmp_path, {"c/hub.jsonnet": "(import 'lib/a.libsonnet') + (import 'top.libsonnet')",
                     "c/lib/a.libsonnet": "{ a: import 'b.libsonnet' }",
                     "c/lib/b.libsonnet": "1", "c/top.libsonnet": "{ t: 1 }"})
    renderer, hub = JsonnetRenderer(), tmp_path / "c/hub.jsonnet"

    def render() -> object:
        return json.loads(renderer.render(hub, {}, rel="c/hub.jsonnet"))

    assert render() == {"a": 1, "t": 1}
    assert render() == {"a": 1, "t": 1} and renderer.renders == 1  # cached
    write(tmp_path, {"c/lib/b.libsonnet": "22"})  # another size: mtimes can be coarse
    assert render() == {"a": 22, "t": 1}
    (tmp_path / "c/lib/top.libsonnet").write_text("{ t: 'shadowing' }", encoding="utf-8")
    assert render() == {"a": 22, "t": 1} and renderer.renders == 2  # jsonnet takes c/top's
    write(tmp_path, {"c/top.libsonnet": "{ t: 333 }"})
    assert render() == {"a": 22, "t": 333} and renderer.renders == 3


def test_an_import_like_comment_never_breaks_a_render(tmp_path: Path) -> None:
    """The key's import scan reads comments too: a name too long for the OS, a folder, a NUL
    byte are no files, and the render goes on."""
    write(tmp_path, {"c/hub.jsonnet": "// import '" + "x" * 300 + "' and import 'lib'\n"
                                      "// importstr 'a\\u0000b'\n{ ok: true }\n"})
    (tmp_path / "c/lib").mkdir()
    renderer = JsonnetRenderer()
    out = renderer.render(tmp_path / "c/hub.jsonnet", {}, rel="c/hub.jsonnet")
    assert json.loads(out) == {"ok": True}
