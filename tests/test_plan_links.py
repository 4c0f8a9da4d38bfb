"""What git names when a release's input is reached through links or jsonnet's library path:
a symlinked jsonnet library (git names the target on an edit), an import jsonnet finds in the
top file's folder, and a link in the middle of a chain pointed elsewhere."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from gitrepo import GitRepo
from test_plan import base_files, job_ids

from hubtasks.options import PlanOptions
from hubtasks.planning.repo import plan_repo

C = "config/clusters"


def with_research_values(files: dict[str, Any], values: list[str]) -> dict[str, Any]:
    gamma = copy.deepcopy(files[f"{C}/gamma/cluster.yaml"])
    next(h for h in gamma["hubs"] if h["name"] == "research")["helm_chart_values_files"] = values
    return {**files, f"{C}/gamma/cluster.yaml": gamma}


def planned_after(tmp_path: Path, files: dict[str, Any], links: dict[str, str],
                  change: dict[str, Any], relink: dict[str, str] | None = None) -> set[str]:
    base = GitRepo(tmp_path / "origin", None)
    base.write(files)
    for link, target in links.items():
        os.symlink(target, base.root / link)
    base.commit("base")
    repo = GitRepo.clone(base.root, tmp_path / "repo")
    repo.write(change)
    for link, target in (relink or {}).items():
        (repo.root / link).unlink()
        os.symlink(target, repo.root / link)
    repo.commit("change")
    _, plan = plan_repo(repo.root, PlanOptions(base="main"))
    return job_ids(plan)


def test_editing_the_target_of_a_symlinked_jsonnet_library_plans_its_importer(
        tmp_path: Path) -> None:
    files = with_research_values(base_files(), ["research.jsonnet"])
    files[f"{C}/gamma/research.jsonnet"] = "import './common.libsonnet'\n"
    files["config/lib/common.libsonnet"] = "{ a: 1 }\n"
    planned = planned_after(tmp_path, files,
                            {f"{C}/gamma/common.libsonnet": "../../lib/common.libsonnet"},
                            {"config/lib/common.libsonnet": "{ a: 2 }\n"})
    assert "prod:gamma/research" in planned


def test_an_import_found_in_the_top_files_folder_is_an_input(tmp_path: Path) -> None:
    files = with_research_values(base_files(), ["research.jsonnet"])
    files[f"{C}/gamma/research.jsonnet"] = "import '../../lib/a.libsonnet'\n"
    files["config/lib/a.libsonnet"] = "import 'helper.libsonnet'\n"  # not beside a.libsonnet
    files[f"{C}/gamma/helper.libsonnet"] = "{ a: 1 }\n"  # jsonnet finds it on the library path
    planned = planned_after(tmp_path, files, {}, {f"{C}/gamma/helper.libsonnet": "{ a: 2 }\n"})
    assert "prod:gamma/research" in planned


def test_pointing_a_link_in_the_middle_of_a_chain_elsewhere_plans_the_values_file(
        tmp_path: Path) -> None:
    files = with_research_values(base_files(), ["research.values.yaml"])
    files.pop(f"{C}/gamma/research.values.yaml", None)
    files["config/shared/c.yaml"] = "x: 1\n"
    files["config/shared/d.yaml"] = "x: 2\n"
    links = {f"{C}/gamma/research.values.yaml": "../../shared/b.yaml",
             "config/shared/b.yaml": "c.yaml"}
    planned = planned_after(tmp_path, files, links, {},
                            relink={"config/shared/b.yaml": "d.yaml"})
    assert "prod:gamma/research" in planned
