"""Running git for planning: resolving refs, diffs and files at a base. The one git caller."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hubtasks import proc
from hubtasks.model import HubtasksError
from hubtasks.planning.changes import (
    ChangedFile,
    ChangeSet,
    parse_raw,
    untracked_but_no_change,
)

GIT_TIMEOUT = 300.0
# A ref that names a commit relative to another (HEAD~1, main^2, @{u}): nothing to fetch by name.
RELATIVE_REF_RE = re.compile(r"[~^@]|^[0-9a-f]{7,40}$")
SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # a full SHA-1 or SHA-256 object name


@dataclass(frozen=True, kw_only=True)
class GitResult:
    """What one git command printed and how it exited."""

    returncode: int
    stdout: str
    stderr: str


def fetch_hint(ref: str) -> str:
    """How to make `ref` available: fetch a branch by name, or deepen for relative refs."""
    if not ref or ref.startswith("-") or any(c.isspace() or c in "\\:?*[" for c in ref):
        return "that is not a git ref name (a branch, tag or commit)"
    if RELATIVE_REF_RE.search(ref):
        return ("fetch more history first (`git fetch --unshallow`, or actions/checkout with "
                "fetch-depth: 0), or pass a ref that exists here")
    return (f"fetch it first, e.g. `git fetch origin {ref}:{ref}`, or check out with full "
            "history (actions/checkout with fetch-depth: 0)")


class Git:
    """Runs git in one repository, turning failures into HubtasksError."""

    def __init__(self, repo: Path, env: Mapping[str, str] | None = None) -> None:
        self.repo = repo
        # No optional locks: `git status`/`git diff` would refresh the index under
        # .git/index.lock, and a run that ends early (an error, Ctrl-C) kills them mid-write,
        # leaving the lock behind for the user's next git command. hubtasks only reads.
        self.env = {**(os.environ if env is None else env), "GIT_OPTIONAL_LOCKS": "0"}

    def run(self, *args: str, check: bool = True) -> GitResult:
        outcome = proc.run(["git", "-C", str(self.repo), *args], env=self.env,
                           timeout=GIT_TIMEOUT, keep_stdout=True)
        if outcome.start_error:
            raise HubtasksError("git is not installed (needed to find changed files; or pass "
                                "--files)")
        if check and not outcome:
            raise HubtasksError(f"git {' '.join(args)} {outcome.describe()}: "
                                f"{outcome.output.strip()}")
        return GitResult(returncode=-1 if outcome.exit_code is None else outcome.exit_code,
                         stdout=outcome.stdout.decode("utf-8", "replace"),
                         stderr=outcome.output)

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.strip()

    def is_shallow(self) -> bool:
        done = self.run("rev-parse", "--is-shallow-repository", check=False)
        return done.stdout.strip() == "true"

    def try_resolve(self, ref: str) -> str | None:
        """The commit SHA of `ref`, or None when git doesn't know it (or no repo)."""
        done = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    def resolve(self, ref: str, role: str) -> str:
        """The commit SHA of `ref`, or an error that says how to make it available."""
        sha = self.try_resolve(ref)
        if sha is not None:
            return sha
        if self.run("rev-parse", "--git-dir", check=False).returncode != 0:
            raise HubtasksError(f"{self.repo} is not a git repository (pass --repo, or --files)")
        hint = fetch_hint(ref)
        if self.is_shallow():
            hint = ("this is a shallow clone: check out with full history (actions/checkout "
                    f"with fetch-depth: 0) or `git fetch --unshallow`, and fetch {ref}")
        raise HubtasksError(f"{role} {ref!r} is not a known commit in {self.repo}: {hint}")

    def resolve_both(self, base: str, head: str) -> tuple[str, str]:
        """Both SHAs with one git call; on any doubt `resolve` each (for its message)."""
        done = self.run("rev-parse", "--quiet", f"{base}^{{commit}}", f"{head}^{{commit}}",
                        check=False)
        shas = done.stdout.split()
        if done.returncode == 0 and len(shas) == 2 and all(map(SHA_RE.fullmatch, shas)):
            return shas[0], shas[1]
        return self.resolve(base, "base"), self.resolve(head, "head")

    def refs_and_merge_base(self, base: str, head: str) -> tuple[str, str, str] | None:
        """(base, head, merge-base) SHAs with one git call: rev-parse prints `base...head` as
        the two tips and `^<merge-base>`. None on any doubt (an unknown ref, no common
        history, several merge-bases): the caller then asks one question at a time."""
        done = self.run("rev-parse", "--quiet", f"{base}^{{commit}}", f"{head}^{{commit}}",
                        f"{base}...{head}", check=False)
        lines = done.stdout.split()
        bases = [line[1:] for line in lines[2:] if line.startswith("^")]
        if done.returncode != 0 or len(lines) != 5 or len(bases) != 1 \
                or not all(map(SHA_RE.fullmatch, [*lines[:2], *bases])):
            return None
        return lines[0], lines[1], bases[0]

    def try_merge_base(self, base: str, head: str) -> str | None:
        """The merge-base of two commits, or None when they share no history (here)."""
        done = self.run("merge-base", base, head, check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    def merge_base(self, base: str, head: str, base_ref: str, head_ref: str = "HEAD") -> str:
        found = self.try_merge_base(base, head)
        if found is not None:
            return found
        hint = "the two commits share no history"
        if self.is_shallow():
            hint = ("this is a shallow clone without their common ancestor: check out with full "
                    "history (actions/checkout with fetch-depth: 0) or `git fetch --unshallow`")
        raise HubtasksError(f"cannot find a merge-base of {base_ref!r} and {head_ref!r}: {hint}")

    def show(self, rev: str, path: str) -> str | None:
        """A file's text at `rev`, or None when it does not exist there."""
        done = self.run("show", f"{rev}:{path}", check=False)
        return done.stdout if done.returncode == 0 else None


def changed_files(repo: Path, *, base: str, head: str = "HEAD",
                  worktree: bool = False) -> ChangeSet:
    """Files changed from the merge-base of `base` and `head` to `head` (or the work tree)."""
    git = Git(repo)
    found = git.refs_and_merge_base(base, head)
    if found is None:
        base_sha, head_sha = git.resolve_both(base, head)
        merge_base = git.merge_base(base_sha, head_sha, base, head)
    else:
        base_sha, head_sha, merge_base = found
    args = ["diff", "--raw", "-z", "--no-abbrev", "-M", merge_base]
    if not worktree:
        args.append(head_sha)
    files = parse_raw(git.run(*args).stdout)
    if worktree:
        untracked = git.run("ls-files", "-z", "--others", "--exclude-standard").stdout
        files += [ChangedFile(status="A", path=p) for p in untracked.split("\0")
                  if p and not untracked_but_no_change(p)]
    return ChangeSet(files=tuple(sorted(set(files))), base=merge_base,
                     head=None if worktree else head_sha)


def tracked_files(repo: Path, pathspecs: Sequence[str]) -> frozenset[str]:
    """The files under `pathspecs` that git tracks (repo-relative); none when `repo` is no
    git checkout, or git is missing."""
    if not pathspecs:
        return frozenset()
    try:
        done = Git(repo).run("ls-files", "-z", "--", *pathspecs, check=False)
    except HubtasksError:
        return frozenset()
    return frozenset(p for p in done.stdout.split("\0") if p) if done.returncode == 0 \
        else frozenset()


def base_texts(repo: Path, rev: str | None, paths: Sequence[str]) -> dict[str, str | None]:
    """The text of each path at `rev` (None where absent); empty when there's no rev."""
    if rev is None:
        return {}
    git = Git(repo)
    return {p: git.show(rev, p) for p in paths}
