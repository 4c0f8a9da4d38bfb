"""A tiny git repo builder for tests: write files, commit, and edit."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin"}


class GitRepo:
    """A git repository in a temporary folder."""

    def __init__(self, root: Path, files: dict[str, Any] | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        if files:
            self.write(files)
            self.commit("base")

    @classmethod
    def clone(cls, source: Path, root: Path, branch: str = "change") -> GitRepo:
        """A clone of `source` on a new branch, with main as the base."""
        subprocess.run(["git", "clone", "-q", str(source), str(root)], env=GIT_ENV, check=True)
        repo = cls.__new__(cls)
        repo.root = root
        repo.git("checkout", "-q", "-b", branch)
        repo.git("branch", "-q", "-f", "main", "origin/main")
        return repo

    def git(self, *args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=self.root, env=GIT_ENV, capture_output=True,
                              text=True, check=True)
        return proc.stdout.strip()

    def write(self, files: dict[str, Any]) -> None:
        """Write files; dicts/lists are dumped as YAML, None deletes the file."""
        for rel, content in files.items():
            path = self.root / rel
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
            path.write_text(text)

    def read_yaml(self, rel: str) -> Any:
        return yaml.safe_load((self.root / rel).read_text())

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")
