"""The I/O around the pure planner: load config, find changes, read base cluster.yaml files."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from hubtasks.config.load import load_config, settings_from_doc
from hubtasks.config.model import SETTINGS_FILE, RepoConfig, Settings
from hubtasks.config.yamlfiles import ConfigError, parse_yaml
from hubtasks.model import READS_CHECKOUT, READS_COMMIT, HubtasksError, Plan
from hubtasks.options import PlanOptions
from hubtasks.planning.changes import ChangedFile, ChangeSet, files_from_list
from hubtasks.planning.checkout import DirtyScan, config_inputs, tree_of, uncommitted_note
from hubtasks.planning.git import Git, base_texts, changed_files
from hubtasks.planning.inputs import changed_input_problems, with_input_problems
from hubtasks.planning.planfile import new_plan_id
from hubtasks.planning.planner import PlanRequest, build_plan, changed_cluster_files
from hubtasks.planning.semantics import UNKNOWN


def find_changes(repo: Path, options: PlanOptions) -> ChangeSet:
    """Changed files from git, or from the list CI passed (--files / --files-from)."""
    if options.everything and options.files is None:
        head = resolve_ref(repo, options.head)
        return ChangeSet(files=(), base=None, head=head)
    if options.files is not None:  # git may not know the refs (a list from elsewhere)
        git = Git(repo)
        base, head = git.try_resolve(options.base), git.try_resolve(options.head)
        if base is not None and head is not None:  # what the list is compared against
            base = git.try_merge_base(base, head) or base
        return ChangeSet(files=files_from_list(options.files), base=base, head=head)
    return changed_files(repo, base=options.base, head=options.head, worktree=options.worktree)


def resolve_ref(repo: Path, ref: str) -> str | None:
    """A ref's SHA when the repo is a git checkout that knows it; else None."""
    return Git(repo).try_resolve(ref)


def read_base_docs(repo: Path, config: RepoConfig, changes: Iterable[ChangedFile],
                   base: str | None) -> dict[str, Any]:
    """Parsed base cluster.yaml of each cluster whose cluster.yaml changed."""
    paths = changed_cluster_files(changes, config.settings)
    if base is None:
        return {name: UNKNOWN for name in paths}
    texts = base_texts(repo, base, sorted(paths.values()))
    docs: dict[str, Any] = {}
    for name, path in paths.items():
        text = texts.get(path)
        try:
            docs[name] = None if text is None else parse_yaml(text, f"{base[:12]}:{path}")
        except ConfigError:
            docs[name] = "unreadable"
    return docs


def read_base_settings(repo: Path, changes: Iterable[ChangedFile],
                       base: str | None) -> Settings | None:
    """`hubtasks.yaml` at base when it changed; None when unchanged or unreadable."""
    if base is None or not any(SETTINGS_FILE in c.paths() for c in changes):
        return None
    text = base_texts(repo, base, [SETTINGS_FILE]).get(SETTINGS_FILE)
    try:
        doc = parse_yaml(text, f"{base[:12]}:{SETTINGS_FILE}") if text else None
        return settings_from_doc(doc, f"{base[:12]}:{SETTINGS_FILE}")
    except ConfigError:
        return None


def invalid_problems(config: RepoConfig) -> list[str]:
    """Every problem a tolerant load recorded (for `plan --strict`)."""
    found = [*(p for ps in config.chart_problems.values() for p in ps),
             *(p for ps in config.broken.values() for p in ps),
             *(p for ps in config.invalid.values() for p in ps)]
    return list(dict.fromkeys(found))


def plan_repo(repo: Path | str, options: PlanOptions, config: RepoConfig | None = None, *,
              deploying: bool = False) -> tuple[RepoConfig, Plan]:
    """Load, diff and plan one checkout.

    A diff plans a commit: when the checkout is not that commit (another `--head`, or
    uncommitted changes to the config without `--worktree`), the plan reads the commit's own
    files (planning/checkout.py), and a deploy (`deploying`), which would upgrade the files
    on disk, is refused. `--everything` and `--files` plan the checkout as it is.
    """
    repo = Path(repo).resolve()
    by_diff = config is None and options.files is None and not options.everything \
        and not options.worktree
    scan = DirtyScan(repo) if by_diff else None
    config = config or load_config(repo, tolerant=True)
    changes = find_changes(repo, options)
    if scan is None or changes.head is None:
        return _plan(repo, config, options, changes)
    dirty = config_inputs(config, scan.paths())
    checkout = changes.head if options.head == "HEAD" else resolve_ref(repo, "HEAD")
    elsewhere = checkout != changes.head
    if not dirty and not elsewhere:
        return _plan(repo, config, options, changes)
    if deploying:
        raise HubtasksError(_not_the_planned_files(options.head, changes.head, dirty,
                                                   elsewhere))
    with tree_of(repo, changes.head) as tree:
        config, plan = _plan(repo, load_config(tree, tolerant=True), options, changes)
    if not elsewhere:
        plan = replace(plan, notes=(*plan.notes, uncommitted_note(dirty)))
    return config, plan


def _not_the_planned_files(ref: str, head: str, dirty: list[str], elsewhere: bool) -> str:
    if elsewhere:
        return (f"the checkout is not --head {ref} ({head[:12]}), and a deploy upgrades the "
                f"checkout's files: check out {ref} first")
    return f"{uncommitted_note(dirty)}; a deploy would upgrade them unplanned"


def _plan(repo: Path, config: RepoConfig, options: PlanOptions,
          changes: ChangeSet) -> tuple[RepoConfig, Plan]:
    base_settings = read_base_settings(repo, changes.files, changes.base)
    config = with_input_problems(config, changed_input_problems(config, changes.files,
                                                                base_settings))
    request = PlanRequest(changes=changes.files, base=changes.base, head=changes.head,
                          base_docs=read_base_docs(repo, config, changes.files, changes.base),
                          labels=frozenset(options.labels), everything=options.everything,
                          base_settings=base_settings)
    from_diff = options.files is None and not options.everything and not options.worktree
    return config, replace(build_plan(config, request), plan_id=new_plan_id(),
                           reads=READS_COMMIT if from_diff else READS_CHECKOUT)
