"""Base, head and merge-base from one `git rev-parse`, and the fallback when it can't say."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitrepo import GitRepo

from hubtasks.model import HubtasksError
from hubtasks.planning.git import Git, changed_files


def history(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "r", {"a.txt": "a\n"})
    repo.git("checkout", "-q", "-b", "topic")
    repo.write({"b.txt": "b\n"})
    repo.commit("b")
    repo.git("checkout", "-q", "main")
    repo.write({"c.txt": "c\n"})
    repo.commit("c")
    return repo


@pytest.mark.parametrize(("base", "head"), [("main", "topic"), ("topic", "main"),
                                            ("topic~1", "topic"), ("main", "main")])
def test_one_call_agrees_with_git_merge_base(tmp_path: Path, base: str, head: str) -> None:
    repo = history(tmp_path)
    sha = {ref: repo.git("rev-parse", ref) for ref in (base, head)}
    assert Git(repo.root).refs_and_merge_base(base, head) == (
        sha[base], sha[head], repo.git("merge-base", base, head))


def test_several_merge_bases_fall_back_to_git_merge_base(tmp_path: Path) -> None:
    repo = history(tmp_path)  # criss-cross: each branch merges the other's old tip
    repo.git("checkout", "-q", "topic")
    repo.git("merge", "-q", "--no-edit", "main~0")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-edit", "topic~1")
    for branch in ("main", "topic"):
        repo.git("checkout", "-q", branch)
        repo.write({f"{branch}.txt": "x\n"})
        repo.commit(branch)
    assert len(repo.git("merge-base", "--all", "main", "topic").split()) == 2
    assert Git(repo.root).refs_and_merge_base("main", "topic") is None
    changes = changed_files(repo.root, base="main", head="topic")
    assert changes.base == repo.git("merge-base", "main", "topic")


def test_unrelated_histories_keep_their_message(tmp_path: Path) -> None:
    repo = history(tmp_path)
    repo.git("checkout", "-q", "--orphan", "other")
    repo.commit("orphan")
    assert Git(repo.root).refs_and_merge_base("main", "other") is None
    with pytest.raises(HubtasksError, match="share no history"):
        changed_files(repo.root, base="main", head="other")
