"""The files a jsonnet values file imports: release inputs the values list doesn't name.

2i2c's history has hub values files such as `noaa-only.jsonnet` doing
`import './common.libsonnet'`: editing the library changes what those hubs render, so the
planner must see it. Imports are found by a scan of the text (`import`, `importstr`,
`importbin` with a literal path), resolved against the importing file's folder (the library
path hubtasks renders with), followed through `.jsonnet`/`.libsonnet` files, and kept when they
stay inside the repo. A scan can only over-list (an import-like string in a comment adds an
input), never miss a literal import.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from pathlib import Path

# Files whose imports are followed (config/jsonnet.is_jsonnet is the narrower question of
# which values documents are rendered: `.jsonnet` only).
IMPORTING_SUFFIXES = (".jsonnet", ".libsonnet")
_IMPORT = re.compile(r"""\bimport(?:str|bin)?\s*(?:@?'([^'\n]+)'|@?"([^"\n]+)")""")


def _imports_followed(rel: str) -> bool:
    return rel.endswith(IMPORTING_SUFFIXES)


def _imports_of(root: Path, rel: str) -> list[str]:
    try:
        text = (root / rel).read_text(encoding="utf-8", errors="replace")
    except OSError:  # missing or unreadable: the release's own check reports it
        return []
    folder = posixpath.dirname(rel)
    out = []
    for match in _IMPORT.finditer(text):
        target = posixpath.normpath(posixpath.join(folder, match.group(1) or match.group(2)))
        if not target.startswith("../") and target != ".." and not posixpath.isabs(target):
            out.append(target)
    return out


def jsonnet_imports(root: Path, values_files: Iterable[str],
                    cache: dict[str, list[str]] | None = None) -> tuple[str, ...]:
    """Every repo file the jsonnet files among `values_files` import, recursively, sorted."""
    todo = [f for f in values_files if _imports_followed(f)]
    if not todo:  # nearly every release
        return ()
    cache = {} if cache is None else cache
    found: set[str] = set()
    seen = set(todo)
    while todo:
        rel = todo.pop()
        if rel not in cache:
            cache[rel] = _imports_of(root, rel)
        for target in cache[rel]:
            found.add(target)
            if _imports_followed(target) and target not in seen:
                seen.add(target)
                todo.append(target)
    return tuple(sorted(found - set(values_files)))
