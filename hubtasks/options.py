"""The options of a run, built once from task flags and the `hubtasks` invoke config.

Each task hands its flags here (`run_options(c, locals())`) and passes the one record on;
nothing downstream reads flags, invoke config or `os.environ` again. A flag left unset falls
back to the invoke config (`invoke.yaml` under `hubtasks:`, or `INVOKE_HUBTASKS_*`
variables), then to DEFAULTS.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hubtasks.config.model import SETTINGS_FILE, Settings
from hubtasks.duration import parse_duration, positive_duration
from hubtasks.model import HubtasksError


@dataclass(frozen=True, kw_only=True)
class PlanOptions:
    """What the user asked `plan` for."""

    base: str = "main"
    head: str = "HEAD"
    worktree: bool = False
    files: tuple[str, ...] | None = None
    labels: tuple[str, ...] = ()
    everything: bool = False

DEFAULTS: dict[str, Any] = {
    "repo": ".",
    "base": "main",
    "results": ".hubtasks/results.json",
    "plan": ".hubtasks/plan.json",
    "log_dir": ".hubtasks/logs",
    "work_dir": ".hubtasks/work",
    "jobs": 8,
    "per_cluster": 4,
    "canary_workers": 8,
    "timeout": "10m",
    "kill_grace": "60s",
    "retries": 2,
    "backoff": "5s",
    "history_max": 10,
    "lock_timeout": "5m",
}


@dataclass(frozen=True, kw_only=True)
class DeployOptions:
    """How each release is deployed."""

    timeout: float = 600.0  # helm's --timeout, seconds
    kill_grace: float = 60.0  # after helm's own timeout, before hubtasks kills it
    atomic: bool = True
    history_max: int = 10
    retries: int = 2
    backoff: float = 5.0
    dry_run: bool = False
    health_check: bool = True  # False: --no-health-check for this run
    log_dir: Path = Path(".hubtasks/logs")
    work_dir: Path = Path(".hubtasks/work")
    kubeconfig_dir: Path | None = None
    repair: bool = True  # roll back / uninstall a release stuck in pending-* first
    lock: bool = True  # hold a Lease per release while upgrading it
    lock_timeout: float = 300.0  # how long to wait for another run's Lease
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, kw_only=True)
class Limits:
    """How many helm processes run at once."""

    jobs: int = 8  # prod upgrades at once, in all
    per_cluster: int = 4  # prod upgrades at once on one cluster
    canary_workers: int = 8  # clusters whose canary runs at once

    def __post_init__(self) -> None:
        for name in ("jobs", "per_cluster", "canary_workers"):
            if getattr(self, name) < 1:
                raise HubtasksError(f"--{name.replace('_', '-')} must be at least 1, "
                                    f"not {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Everything a deploy task needs, resolved: paths absolute, times in seconds."""

    repo: Path
    plan: Path
    results: Path
    deploy: DeployOptions
    limits: Limits
    helm: Path | None = None
    verbose: bool = False

    @property
    def env(self) -> Mapping[str, str]:
        return self.deploy.env


class Flags:
    """Flag values with the invoke-config fallback."""

    def __init__(self, config: Mapping[str, Any], flags: Mapping[str, Any]) -> None:
        self.config, self.flags = config, flags

    def get(self, name: str) -> Any:
        value = self.flags.get(name)
        if value is not None:
            return value
        return self.config.get(name, DEFAULTS.get(name))

    def given(self, name: str) -> bool:
        """Whether the user set the option: its flag, or an invoke config value other than
        the default (the defaults are in the invoke config too, tasks.ns.configure)."""
        if self.flags.get(name) is not None:
            return True
        value = self.config.get(name, DEFAULTS.get(name))
        return value is not None and str(value) != str(DEFAULTS.get(name))

    def path(self, name: str, root: Path) -> Path:
        """A path option: a flag's is relative to the current folder (as the user typed
        it), a default's or the invoke config's to the repo."""
        if self.flags.get(name) is not None:
            return given_path(self.flags[name])
        value = self.get(name)
        if not isinstance(value, str):
            raise HubtasksError(f"hubtasks.{name} in the invoke config must be a path, "
                                f"not {value!r}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else root / path

    def count(self, name: str) -> int:
        """A whole number of at least 0 (retries)."""
        value = self.integer(name)
        if value < 0:
            raise HubtasksError(f"--{name.replace('_', '-')} must be 0 or more, not {value}")
        return value

    def integer(self, name: str) -> int:
        value = self.get(name)
        try:
            if isinstance(value, bool | float):
                raise ValueError(value)  # int(True) is 1, int(2.9) is 2: neither was meant
            return int(value)
        except (TypeError, ValueError):
            raise HubtasksError(f"--{name.replace('_', '-')} must be a whole number, "
                                f"not {value!r}") from None


def given_path(value: str | Path) -> Path:
    """A path the user typed, relative to the current folder (every task's flags alike)."""
    return Path(value).expanduser().absolute()


def hubtasks_config(c: Any) -> Mapping[str, Any]:
    """The `hubtasks` tree of an invoke Context's config (empty outside invoke)."""
    config = getattr(c, "config", None)
    return dict(config.get("hubtasks", {})) if config is not None else {}


def repo_root(c: Any, flags: Mapping[str, Any]) -> Path:
    """The config repo a task works on: `--repo` (or the invoke config's), else the current
    folder or the nearest one above it holding hubtasks.yaml or the default clusters
    folder, as git finds its repository from a subfolder."""
    s = Flags(hubtasks_config(c), flags)
    repo = s.get("repo")
    if not isinstance(repo, str):
        raise HubtasksError(f"hubtasks.repo in the invoke config must be a path, not {repo!r}")
    root = Path(repo).resolve()
    if s.given("repo"):
        if not root.is_dir():
            raise HubtasksError(f"--repo {repo}: no such folder")
        return root
    return next((folder for folder in (root, *root.parents) if _is_config_repo(folder)), root)


def _is_config_repo(folder: Path) -> bool:
    return (folder / SETTINGS_FILE).is_file() or (folder / Settings.clusters_dir).is_dir()


def environment() -> dict[str, str]:
    """A snapshot of the environment, taken once in the main thread for subprocesses."""
    return dict(os.environ)


def run_options(c: Any, flags: Mapping[str, Any], *, jobs_means: str = "jobs",
                saves_plan: bool = False) -> RunOptions:
    """The RunOptions of a deploy task from its flags (`locals()` of the task).

    `jobs_means` says which limit a task's `--jobs` sets (canary: `canary_workers`).
    `saves_plan` (deploy-all, which writes its plan): with a results file of its own and no
    plan file named, the plan goes beside the results file (`R.json` -> `R.plan.json`), so
    two runs on different results files never write one plan file.
    """
    flags = dict(flags)
    if jobs_means != "jobs":
        flags[jobs_means], flags["jobs"] = flags.get("jobs") or flags.get(jobs_means), None
    s = Flags(hubtasks_config(c), flags)
    root = repo_root(c, flags)
    deploy = DeployOptions(
        timeout=positive_duration(s.get("timeout"), what="--timeout"),
        kill_grace=parse_duration(s.get("kill_grace"), what="--kill-grace"),
        atomic=bool(flags.get("atomic", True)), history_max=s.integer("history_max"),
        retries=s.count("retries"), backoff=parse_duration(s.get("backoff"), what="backoff"),
        dry_run=bool(flags.get("dry_run")), health_check=bool(flags.get("health_check", True)),
        log_dir=s.path("log_dir", root),
        work_dir=s.path("work_dir", root),
        kubeconfig_dir=s.path("kubeconfig_dir", root) if s.get("kubeconfig_dir") else None,
        repair=bool(flags.get("repair", True)), lock=bool(flags.get("lock", True)),
        lock_timeout=parse_duration(s.get("lock_timeout"), what="--lock-timeout"),
        env=environment())
    limits = Limits(jobs=s.integer("jobs"), per_cluster=s.integer("per_cluster"),
                    canary_workers=s.integer("canary_workers"))
    helm = flags.get("helm")
    results = s.path("results", root)
    plan = s.path("plan", root)
    if saves_plan and not s.given("plan") and s.given("results"):
        plan = results.with_name(f"{results.name.removesuffix('.json')}.plan.json")
    if saves_plan and plan.resolve() == results.resolve():
        raise HubtasksError(f"--plan and --results name one file ({plan}): the plan would "
                            "replace the results; choose another --plan")
    return RunOptions(repo=root, plan=plan, results=results,
                      deploy=deploy, limits=limits, helm=Path(helm) if helm else None,
                      verbose=bool(flags.get("verbose")))


def split_list(values: Iterable[str] | None) -> list[str]:
    """Flatten repeatable options whose values may also be comma/space separated."""
    out: list[str] = []
    for value in values or ():
        out.extend(v for v in value.replace(",", " ").split() if v)
    return out


def file_list(files: Iterable[str] | None, files_from: str | None,
              stdin: TextIO | None = None) -> tuple[str, ...] | None:
    """Changed files from `--files` (one per line) and `--files-from FILE` (`-`: stdin)."""
    if not files and files_from is None:
        return None
    lines = [line for value in files or () for line in value.splitlines()]
    if files_from == "-":
        lines += (stdin or sys.stdin).read().splitlines()
    elif files_from:
        try:
            lines += Path(files_from).read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise HubtasksError(f"cannot read --files-from {files_from}: {err.strerror}") from None
        except UnicodeDecodeError:
            raise HubtasksError(f"--files-from {files_from}: not UTF-8 text (one path per "
                                "line)") from None
    return tuple(lines)


def plan_options(c: Any, flags: Mapping[str, Any]) -> PlanOptions:
    """What to plan, from the flags of `plan` / `deploy-all`."""
    s = Flags(hubtasks_config(c), flags)
    return PlanOptions(base=s.get("base"), head=flags.get("head") or "HEAD",
                       worktree=bool(flags.get("worktree")),
                       files=file_list(flags.get("files"), flags.get("files_from")),
                       labels=tuple(flags.get("label") or ()),
                       everything=bool(flags.get("everything")))
