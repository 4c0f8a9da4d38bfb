"""Changed files from git: the one place that runs git for planning."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .model import HubtasksError

STATUS_WORDS = {"A": "added", "M": "modified", "D": "deleted", "T": "changed type",
                "R": "renamed", "C": "copied", "U": "unmerged", "X": "changed"}


@dataclass(frozen=True, kw_only=True, order=True)
class ChangedFile:
    """One entry of `git diff --name-status -M`: a status letter and the path(s)."""

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


class Git:
    """Runs git in one repository, turning failures into HubtasksError."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(["git", "-C", str(self.repo), *args], capture_output=True,
                                  text=True, check=False)
        except FileNotFoundError:
            raise HubtasksError("git is not installed (needed to find changed files; or pass "
                                "--files)") from None
        if check and proc.returncode != 0:
            raise HubtasksError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.strip()

    def is_shallow(self) -> bool:
        proc = self.run("rev-parse", "--is-shallow-repository", check=False)
        return proc.stdout.strip() == "true"

    def try_resolve(self, ref: str) -> str | None:
        """The commit SHA of `ref`, or None when git doesn't know it (or no repo)."""
        proc = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def resolve(self, ref: str, role: str) -> str:
        """The commit SHA of `ref`, or an error that says how to make it available."""
        sha = self.try_resolve(ref)
        if sha is not None:
            return sha
        if self.run("rev-parse", "--git-dir", check=False).returncode != 0:
            raise HubtasksError(f"{self.repo} is not a git repository (pass --repo, or --files)")
        hint = (f"fetch it first, e.g. `git fetch origin {ref}:{ref}`, or check out with full "
                "history (actions/checkout with fetch-depth: 0)")
        if self.is_shallow():
            hint = ("this is a shallow clone: check out with full history (actions/checkout "
                    f"with fetch-depth: 0) or `git fetch --unshallow`, and fetch {ref}")
        raise HubtasksError(f"{role} {ref!r} is not a known commit in {self.repo}: {hint}")

    def merge_base(self, base: str, head: str, base_ref: str) -> str:
        proc = self.run("merge-base", base, head, check=False)
        if proc.returncode == 0:
            return proc.stdout.strip()
        hint = "the two commits share no history"
        if self.is_shallow():
            hint = ("this is a shallow clone without their common ancestor: check out with full "
                    "history (actions/checkout with fetch-depth: 0) or `git fetch --unshallow`")
        raise HubtasksError(f"cannot find a merge-base of {base_ref!r} and HEAD: {hint}")

    def show(self, rev: str, path: str) -> str | None:
        """A file's text at `rev`, or None when it does not exist there."""
        proc = self.run("show", f"{rev}:{path}", check=False)
        return proc.stdout if proc.returncode == 0 else None


def parse_name_status(text: str) -> list[ChangedFile]:
    """Parse `git diff --name-status -z` output (NUL-separated fields)."""
    fields = text.split("\0")
    out: list[ChangedFile] = []
    i = 0
    while i < len(fields) and fields[i]:
        status = fields[i][0]
        if status in "RC":
            out.append(ChangedFile(status=status, old_path=fields[i + 1], path=fields[i + 2]))
            i += 3
        else:
            out.append(ChangedFile(status=status, path=fields[i + 1]))
            i += 2
    return out


def changed_files(repo: Path, *, base: str, head: str = "HEAD",
                  worktree: bool = False) -> ChangeSet:
    """Files changed from the merge-base of `base` and `head` to `head` (or the work tree)."""
    git = Git(repo)
    base_sha = git.resolve(base, "base")
    head_sha = git.resolve(head, "head")
    merge_base = git.merge_base(base_sha, head_sha, base)
    args = ["diff", "--name-status", "-z", "-M", merge_base]
    if not worktree:
        args.append(head_sha)
    files = parse_name_status(git.run(*args).stdout)
    if worktree:
        untracked = git.run("ls-files", "-z", "--others", "--exclude-standard").stdout
        files += [ChangedFile(status="A", path=p) for p in untracked.split("\0") if p]
    return ChangeSet(files=tuple(sorted(set(files))), base=merge_base,
                     head=None if worktree else head_sha)


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


def base_texts(repo: Path, rev: str | None, paths: Sequence[str]) -> dict[str, str | None]:
    """The text of each path at `rev` (None where absent); empty when there's no rev."""
    if rev is None:
        return {}
    git = Git(repo)
    return {p: git.show(rev, p) for p in paths}
