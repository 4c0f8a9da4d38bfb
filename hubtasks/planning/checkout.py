"""Which files a plan of a commit reads: the checkout's, or the commit's own tree.

Loading reads files from disk, which are the planned commit's only when the checkout *is*
that commit: `--head REF` naming another commit, or uncommitted changes to the config (not
counted without `--worktree`), would shape the plan with files the diff does not describe.
Then the plan reads the commit's tree, written to a private temporary folder through a
temporary index (`read-tree` + `checkout-index --prefix`; the repo's own index and work tree
are untouched). The common case, a clean checkout of HEAD, costs one `git status`, run
beside the load. An untracked `hubtasks.yaml` (one added to a repo that commits none, such
as a 2i2c checkout) is the checkout's setting, not a change: it is used with any tree.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hubtasks.config.model import SETTINGS_FILE, RepoConfig
from hubtasks.planning.changes import untracked_but_no_change
from hubtasks.planning.git import Git

STATE_DIR = ".hubtasks"  # what hubtasks writes in a checkout: never a change of the config


class DirtyScan:
    """`git status` of the checkout, started now (in a thread: git runs beside the load)
    and read when needed. A plain thread: concurrent.futures would import logging (~6 ms of
    a 2i2c plan)."""

    def __init__(self, repo: Path) -> None:
        self._found: list[str] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._scan, args=(repo,), daemon=True,
                                        name="git-status")
        self._thread.start()

    def _scan(self, repo: Path) -> None:
        try:
            self._found = uncommitted(repo)
        except BaseException as err:  # handed to the reader, in its thread
            self._error = err

    def paths(self) -> list[str]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._found


def uncommitted(repo: Path) -> list[str]:
    """Paths whose checkout differs from HEAD: modified, staged, deleted or untracked (not
    ignored), but for hubtasks' own state folder. Empty outside a git checkout."""
    done = Git(repo).run("status", "--porcelain=v1", "-z", "--untracked-files=all",
                         "--no-renames", "--ignore-submodules", "--", ".",
                         f":(exclude){STATE_DIR}", check=False)
    if done.returncode != 0:
        return []
    entries = [entry for entry in done.stdout.split("\0") if len(entry) > 3]
    return sorted(entry[3:] for entry in entries
                  if not (entry.startswith("?? ") and untracked_but_no_change(entry[3:])))


def config_inputs(config: RepoConfig, paths: Sequence[str]) -> list[str]:
    """The paths that can change what the config loads or renders: hubtasks.yaml, anything
    under the clusters or charts folders, and the files releases name or read elsewhere."""
    if not paths:  # a clean checkout, nearly always: no walk over every release
        return []
    settings = config.settings
    linked = {target for links in config.chart_links.values() for _, target in links}
    folders = (f"{settings.clusters_dir}/", f"{settings.charts_dir}/",
               *(f"{folder}/" for folder in [*config.charts, *linked]))
    named = _named_files(config) | linked
    return [p for p in paths if p == SETTINGS_FILE or p.startswith(folders) or p in named]


def _named_files(config: RepoConfig) -> set[str]:
    found: set[str] = {p for files in config.chart_imports.values() for p in files}
    for cluster in config.clusters.values():
        found.update(cluster.credential_files)
    for _, hub, release in config.releases():
        found.update(release.values_files, release.jsonnet_imports,
                     (target for _, target in release.linked_values))
        if hub is not None:
            found.update(p for p in (hub.chart_override, hub.domain_override_file) if p)
            found.update(target for _, target in hub.linked_files)
    return found


def uncommitted_note(paths: list[str]) -> str:
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    return (f"uncommitted changes are not planned ({shown}): the plan read the committed "
            "files; pass --worktree to plan the checkout as it is")


@contextmanager
def tree_of(repo: Path, commit: str) -> Iterator[Path]:
    """A private folder holding `commit`'s files, removed on exit."""
    import tempfile  # here: ~1 ms of imports that only this rare case needs
    with tempfile.TemporaryDirectory(prefix="hubtasks-tree-") as tmp:
        index, tree = Path(tmp) / "index", Path(tmp) / "tree"
        git = Git(repo, env={**os.environ, "GIT_INDEX_FILE": str(index)})
        git.run("read-tree", commit)
        git.run("checkout-index", "--all", "--force", f"--prefix={tree}/")
        tree.mkdir(exist_ok=True)  # an empty commit writes nothing
        settings = repo / SETTINGS_FILE
        if not (tree / SETTINGS_FILE).exists() and settings.is_file():  # untracked: ours
            shutil.copyfile(settings, tree / SETTINGS_FILE)
        yield tree
