"""Changed files as data: git's raw diff entries, or a list CI passed. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hubtasks.config.model import SETTINGS_FILE

STATUS_WORDS = {"A": "added", "M": "modified", "D": "deleted", "T": "changed type",
                "R": "renamed", "C": "copied", "U": "unmerged", "X": "changed"}


@dataclass(frozen=True, kw_only=True, order=True)
class ChangedFile:
    """One entry of `git diff -M`: a status letter and the path(s)."""

    path: str
    status: str = "M"
    old_path: str | None = None

    def describe(self, path: str | None = None) -> str:
        """A reason fragment such as `a/b.yaml modified` or `a.yaml renamed to b.yaml`."""
        if self.old_path is not None and path == self.old_path:
            return f"{self.old_path} {STATUS_WORDS.get(self.status, 'changed')} to {self.path}"
        if self.old_path is not None:
            return f"{self.path} {STATUS_WORDS.get(self.status, 'changed')} from {self.old_path}"
        return f"{path or self.path} {STATUS_WORDS.get(self.status, 'changed')}"

    def paths(self) -> tuple[str, ...]:
        """Every path this change touches (both sides of a rename)."""
        return (self.path,) if self.old_path is None else (self.old_path, self.path)


@dataclass(frozen=True, kw_only=True)
class ChangeSet:
    """What changed between `base` (the merge-base) and `head`."""

    files: tuple[ChangedFile, ...]
    base: str | None = None
    head: str | None = None


def parse_raw(text: str) -> list[ChangedFile]:
    """Parse `git diff --raw -z --no-abbrev` output, leaving out a change of mode alone
    (`chmod +x` of a values file: the same blob, nothing helm reads is different)."""
    fields = text.split("\0")
    out: list[ChangedFile] = []
    i = 0
    while i < len(fields) and fields[i]:
        _, _, old_sha, new_sha, status = fields[i].lstrip(":").split()[:5]
        if status[0] in "RC":
            change = ChangedFile(status=status[0], old_path=fields[i + 1], path=fields[i + 2])
            i += 3
        else:
            change = ChangedFile(status=status[0], path=fields[i + 1])
            i += 2
        if not (change.status == "M" and old_sha == new_sha and old_sha.strip("0")):
            out.append(change)
    return out


def files_from_list(paths: Iterable[str]) -> tuple[ChangedFile, ...]:
    """Changed files given by CI: plain paths, or `STATUS<TAB>path[<TAB>new]` lines."""
    out: set[ChangedFile] = set()
    for raw in paths:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0][:1] in STATUS_WORDS and len(parts[0]) <= 4:
            if parts[0][0] in "RC" and len(parts) == 3:
                out.add(ChangedFile(status=parts[0][0], old_path=parts[1], path=parts[2]))
            else:
                out.add(ChangedFile(status=parts[0][0], path=parts[1]))
        else:
            out.add(ChangedFile(status="M", path=line.removeprefix("./")))
    return tuple(sorted(out))


def untracked_but_no_change(untracked: str) -> bool:
    """An untracked file that is no change of the config: what `helm dependency build`
    writes into a chart (`charts/*.tgz`, `Chart.lock`), in a repo that doesn't ignore it,
    and a hubtasks.yaml added beside a checkout that commits none (a 2i2c one): that one is
    the checkout's setting, read also from a commit's tree (checkout.tree_of)."""
    parts = untracked.split("/")
    return untracked == SETTINGS_FILE or parts[-1] == "Chart.lock" or (
        len(parts) >= 2 and parts[-2] == "charts" and parts[-1].endswith(".tgz"))
