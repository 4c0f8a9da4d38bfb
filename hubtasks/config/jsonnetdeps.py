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

import hashlib
import os
import posixpath
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from hubtasks.config.paths import link_chain

# Files whose imports are followed (config/jsonnet.is_jsonnet is the narrower question of
# which values documents are rendered: `.jsonnet` only).
IMPORTING_SUFFIXES = (".jsonnet", ".libsonnet")
_IMPORT = re.compile(r"""\bimport(?:str|bin)?\s*(?:@?'([^'\n]+)'|@?"([^"\n]+)")""")


def _imports_followed(rel: str) -> bool:
    return rel.endswith(IMPORTING_SUFFIXES)


def import_literals(text: str) -> list[str]:
    """The paths a jsonnet text imports, as written."""
    return [match.group(1) or match.group(2) for match in _IMPORT.finditer(text)]


_READS: dict[tuple[str, int, int, int], tuple[str, str]] = {}  # by stat: (digest, text)


def _read(path: str) -> tuple[str, str] | None:
    """(digest of its bytes, its text) of a regular file, memoised by its stat (renders of
    20,000 hubs share a few libraries); None when it cannot be read, whatever the reason."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):  # missing, a name too long, no permission, a NUL byte
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    key = (path, info.st_mtime_ns, info.st_ctime_ns, info.st_size)
    found = _READS.get(key)
    if found is None:
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except (OSError, ValueError):
            return None
        found = _READS[key] = (hashlib.sha256(raw).hexdigest(),
                               raw.decode("utf-8", errors="replace"))
    return found


def imported_digests(path: Path, text: str) -> list[tuple[str, str | None]]:
    """Every file `text` (evaluated as `path`) imports, recursively, with a digest of its
    bytes (None: missing), resolved as jsonnet does: next to the importing file, else (when
    that cannot be read) in `path`'s folder, the library path hubtasks renders with. For a
    render cache's key: an edited library must not return the render of its old text."""
    found: dict[str, str | None] = {}
    todo = [(str(path.parent), text)]
    while todo:
        folder, body = todo.pop()
        for literal in import_literals(body):
            name = os.path.normpath(os.path.join(folder, literal))
            read = _read(name)
            if read is None:
                fallback = os.path.normpath(os.path.join(path.parent, literal))
                read = _read(fallback)
                name = fallback if read is not None else name
            if name in found:
                continue
            found[name] = read[0] if read else None
            if read and _imports_followed(name):
                todo.append((os.path.dirname(name), read[1]))
    return sorted(found.items())


def _in_repo(target: str) -> bool:
    return not target.startswith("../") and target != ".." and not posixpath.isabs(target)


def repo_imports(rel: str, text: str) -> list[str]:
    """The repo files `text`, evaluated as the repo file `rel`, imports directly (resolved
    from `rel`'s folder; one outside the repo is dropped)."""
    folder = posixpath.dirname(rel)
    targets = (posixpath.normpath(posixpath.join(folder, lit)) for lit in import_literals(text))
    return [target for target in targets if _in_repo(target)]


def _literals_of(root: Path, rel: str) -> list[str]:
    try:
        text = (root / rel).read_text(encoding="utf-8", errors="replace")
    except OSError:  # missing or unreadable: the release's own check reports it
        return []
    return import_literals(text)


def _resolve(root: Path, importer: str, literal: str, top_dir: str, in_top_dir: bool) -> str:
    """Where jsonnet finds `literal` imported by `importer` when rendering a file of
    `top_dir`: next to the importer, else in the top file's folder (the library path
    hubtasks renders with)."""
    near = posixpath.normpath(posixpath.join(posixpath.dirname(importer), literal))
    if in_top_dir or (root / near).exists():
        return near
    far = posixpath.normpath(posixpath.join(top_dir, literal))
    return far if (root / far).exists() else near


class ImportCache:
    """What a load learns once about jsonnet files (20,000 releases share a few libraries):
    each file's import literals, and the files reached from a library for a top folder."""

    def __init__(self) -> None:
        self.literals: dict[str, list[str]] = {}
        self.reached: dict[tuple[str, str], frozenset[str]] = {}  # (file, top folder)
        self.links: dict[str, tuple[str, ...]] = {}

    def literals_of(self, root: Path, rel: str) -> list[str]:
        if rel not in self.literals:
            self.literals[rel] = _literals_of(root, rel)
        return self.literals[rel]

    def links_of(self, root: Path, rel: str) -> tuple[str, ...]:
        if rel not in self.links:
            self.links[rel] = tuple(t for t in link_chain(root, rel) if _in_repo(t)) \
                if os.path.islink(os.path.join(root, rel)) else ()
        return self.links[rel]


def _reached(root: Path, rel: str, top_dir: str, cache: ImportCache,
             busy: set[str]) -> tuple[frozenset[str], bool]:
    """The files `rel` imports, recursively, when rendering a file of `top_dir` (a top file
    is one of its own folder: next to it and on the library path are one place); and
    whether an import cycle was cut on the way (then the answer is not memoised)."""
    key = (rel, top_dir)
    found = cache.reached.get(key)
    if found is not None:
        return found, False
    if rel in busy:
        return frozenset(), True
    busy.add(rel)
    out: set[str] = set()
    cut = False
    in_top_dir = posixpath.dirname(rel) == top_dir
    for literal in cache.literals_of(root, rel):
        target = _resolve(root, rel, literal, top_dir, in_top_dir)
        if not _in_repo(target):
            continue
        out.add(target)
        out.update(cache.links_of(root, target))
        if _imports_followed(target):
            more, was_cut = _reached(root, target, top_dir, cache, busy)
            out |= more
            cut = cut or was_cut
    busy.discard(rel)
    found = frozenset(out)
    if not cut:
        cache.reached[key] = found
    return found, cut


def jsonnet_imports(root: Path, values_files: Iterable[str],
                    cache: ImportCache | None = None) -> tuple[str, ...]:
    """Every repo file the jsonnet files among `values_files` import, recursively, sorted;
    for a symlinked import, also the files its link reaches. `cache` is shared by the
    releases of a load."""
    tops = [f for f in values_files if _imports_followed(f)]
    if not tops:  # nearly every release
        return ()
    cache = ImportCache() if cache is None else cache
    found: set[str] = set()
    for top in tops:
        found |= _reached(root, top, posixpath.dirname(top), cache, set())[0]
    return tuple(sorted(found - set(values_files)))
