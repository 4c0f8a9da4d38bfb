"""Config paths: joining them onto cluster folders, and checking they exist inside the repo."""

from __future__ import annotations

import functools
import os
import posixpath
from collections.abc import Callable
from pathlib import Path

OK, ESCAPES, MISSING, LOOP = "ok", "escapes", "missing", "loop"  # what FsCache.check finds
_normpath = functools.lru_cache(maxsize=4096)(posixpath.normpath)  # folders repeat a lot


def repo_path(folder: str, value: str) -> str | None:
    """Join a config-relative path onto `folder`; None when it escapes the repo."""
    if value.startswith("/") or "\\" in value:
        return None
    if "/" not in value and value not in ("", ".", ".."):  # a plain file name: no normpath
        base = _normpath(folder)
        joined = value if base == "." else f"{base}/{value}"
    else:
        joined = posixpath.normpath(posixpath.join(folder, value))
    if joined == ".." or joined.startswith("../"):
        return None
    return joined


def override_path(folder: str, value: str) -> str | None:
    """`chart_override` is relative to the cluster folder, or to the root if it has a '/'."""
    return repo_path("." if "/" in value else folder, value)


def link_chain(root: Path | str, rel: str) -> list[str]:
    """The paths (relative to `root`, POSIX) a symlink at `rel` passes through and reaches,
    hop by hop: pointing any link of the chain elsewhere changes what `rel` holds, and git
    names only that link. Empty when `rel` is no symlink."""
    out: list[str] = []
    path = os.path.join(root, rel)
    for _ in range(40):  # the kernel's own limit on a chain
        if not os.path.islink(path):
            break
        path = os.path.normpath(os.path.join(os.path.realpath(os.path.dirname(path)),
                                             os.readlink(path)))
        out.append(Path(os.path.relpath(path, root)).as_posix())
    return out


class FsCache:
    """Directory listings and resolved folders, read once per load.

    Listing a folder once instead of stat-ing each values file, and resolving folders
    instead of every file, keeps loading 20,000 hubs fast. Only a file that is itself a
    symlink is resolved on its own.
    """

    def __init__(self, root: Path) -> None:
        self.base = os.path.realpath(root)
        self._real: dict[str, str] = {}
        self._inside: dict[str, bool] = {}
        self._moved: dict[str, bool] = {}  # folder -> whether a symlink lies on its path
        # checked path -> the repo file it reaches through a symlink (see inside)
        self.link_targets: dict[str, tuple[str, ...]] = {}
        self._listing: dict[str, dict[str, os.DirEntry[str]]] = {}
        self._checked: dict[tuple[str, str, Callable[[str, str], str | None]],
                            tuple[str | None, str]] = {}

    def check(self, folder: str, value: str,
              join: Callable[[str, str], str | None]) -> tuple[str | None, str]:
        """(path, OK / ESCAPES / MISSING) of a config path, worked out once per load:
        hubs of a cluster share files such as common.values.yaml."""
        key = (folder, value, join)
        found = self._checked.get(key)
        if found is None:
            found = self._checked[key] = self._check(join(folder, value))
        return found

    def _check(self, path: str | None) -> tuple[str | None, str]:
        entry = self.entry(path) if path is not None else None
        if path is None or (entry is not None and not self.inside(path, entry)):
            return path, ESCAPES
        if entry is None:
            self._note_missing(path)
        if entry is not None and entry_is_file(entry) is None:
            return path, LOOP
        if entry is None or not entry_is_file(entry):
            return path, MISSING
        return path, OK

    def _note_missing(self, rel: str) -> None:
        """A missing file in a symlinked folder: what it would be (its deletion is a change
        git names there, not here)."""
        parent, name = posixpath.split(rel)
        if self._moved_folder(parent) and self._within(self.real_dir(parent)):
            self._note_link(rel, os.path.join(self.real_dir(parent), name))

    def _moved_folder(self, rel: str) -> bool:
        """Whether a symlink lies on the folder's path (it resolves elsewhere)."""
        if rel not in self._moved:
            self._moved[rel] = self.real_dir(rel) != os.path.normpath(
                os.path.join(self.base, rel))
        return self._moved[rel]

    def real_dir(self, rel: str) -> str:
        if rel not in self._real:
            self._real[rel] = os.path.realpath(os.path.join(self.base, rel))
        return self._real[rel]

    def entry(self, rel: str) -> os.DirEntry[str] | None:
        parent, name = posixpath.split(rel)
        if parent not in self._listing:
            try:
                with os.scandir(os.path.join(self.base, parent)) as it:
                    self._listing[parent] = {e.name: e for e in it}
            except OSError:
                self._listing[parent] = {}
        return self._listing[parent].get(name)

    def inside(self, rel: str, entry: os.DirEntry[str]) -> bool:
        """True when `rel` (possibly via symlinks) stays inside the repo. On the way, notes
        the repo file `rel` reaches through a symlink (itself or a folder above it) when that
        is another path (a dangling link's target too): `link_targets`."""
        parent, name = posixpath.split(rel)
        if not entry.is_symlink():  # inside exactly when its (resolved) folder is
            if parent not in self._inside:
                self._inside[parent] = self._within(self.real_dir(parent))
            if self._inside[parent] and self._moved_folder(parent):  # nearly never moved
                self._note_link(rel, os.path.join(self.real_dir(parent), name))
            return self._inside[parent]
        real = os.path.realpath(os.path.join(self.real_dir(parent), name))
        if not self._within(real):
            return False
        self._note_link(rel, real)
        return True

    def _note_link(self, rel: str, real: str) -> None:
        """`rel` reaches `real`: that file is an input, and so is each symlinked folder on the
        way (pointing one at another folder changes what `rel` holds; git names the link)."""
        target = Path(os.path.relpath(real, self.base)).as_posix()
        if target == rel:
            return
        parts = rel.split("/")[:-1]
        folders = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
        links = [f for f in folders if os.path.islink(os.path.join(self.base, f))]
        hops = [hop for hop in link_chain(self.base, rel)[:-1] if not hop.startswith("../")]
        self.link_targets[rel] = tuple(dict.fromkeys((target, *links, *hops)))

    def _within(self, real: str) -> bool:
        return real == self.base or real.startswith(self.base + os.sep)


class FileChecker:
    """Resolves config paths and records problems about them."""

    def __init__(self, fs: FsCache, rel: str, problems: list[str], *,
                 keep_missing: bool = False) -> None:
        self.fs, self.rel, self.problems = fs, rel, problems
        # planning keeps a missing file's path: its disappearance is a change of the release
        self.keep_missing = keep_missing

    def file(self, folder: str, value: str, key: str, *,
             join: Callable[[str, str], str | None] = repo_path) -> str | None:
        path, state = self.fs.check(folder, value, join)
        return path if state == OK else self._problem(path, state, value, key)

    def files(self, folder: str, values: list[str], key: str) -> tuple[str, ...]:
        out = []
        for index, value in enumerate(values):
            path, state = self.fs.check(folder, value, repo_path)
            if state != OK:
                path = self._problem(path, state, value, f"{key}[{index}]")
            if path is not None:
                out.append(path)
        return tuple(out)

    def links(self, paths: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        """(path, the repo file it reaches) of each path that reaches another through a
        symlink: editing that file changes what the path holds, though git names only it."""
        targets = self.fs.link_targets
        if not targets:  # nearly every repo
            return ()
        return tuple((path, target) for path in paths for target in targets.get(path, ()))

    def _problem(self, path: str | None, state: str, value: str, key: str) -> str | None:
        if state == ESCAPES:
            self.problems.append(f"{self.rel}: {key}: {value!r} escapes the repository")
            # a repo path that became a symlink leading out: planning keeps it, as a missing
            # file's (what git names changed is that path); one written as ../.. has none
            return path if self.keep_missing else None
        what = "is a loop of symlinks" if state == LOOP else "is a folder, not a file" \
            if path is not None and os.path.isdir(os.path.join(self.fs.base, path)) \
            else "does not exist"
        self.problems.append(f"{self.rel}: {key}: file {path} {what}")
        return path if self.keep_missing else None


def dir_entries(folder: str) -> list[os.DirEntry[str]]:
    """The entries of a folder (one `scandir`); none when it can't be listed."""
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError:
        return []


def entry_is_file(entry: os.DirEntry[str]) -> bool | None:
    """Whether an entry is (or links to) a file; None for a loop of symlinks (ELOOP)."""
    try:
        return entry.is_file()
    except OSError:
        return None


def entry_is_dir(entry: os.DirEntry[str]) -> bool:
    """Whether an entry is (or links to) a folder; False for a loop of symlinks."""
    try:
        return entry.is_dir()
    except OSError:
        return False
