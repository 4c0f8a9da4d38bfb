"""`hubtasks plan` without invoke prints what the invoke task prints; unsure → invoke."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gitrepo import GitRepo
from test_cli_plan import hubtasks, repo  # noqa: F401 - the fixture

from hubtasks.fastcli import fast_plan, invoke_config_may_apply, parse_plan_flags

VIA_INVOKE = {"INVOKE_HUBTASKS_JOBS": "8"}  # any INVOKE_* variable sends plan to invoke


def test_parse_plain_flags() -> None:
    flags = parse_plan_flags(["--base", "main", "--files=a", "--files", "b", "--strict",
                              "--files-from", "-", "--format=json"])
    assert flags == {"base": "main", "files": ["a", "b"], "label": [], "strict": True,
                     "files_from": "-", "format": "json"}


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--against", "deployed"], ["--base"],
                                  ["--base", "a", "--base", "b"], ["status"], ["--jobs", "2"],
                                  ["--base", "--strict"], ["--bogus"]])
def test_unsure_goes_to_invoke(args: list[str]) -> None:
    assert parse_plan_flags(args) is None


def test_other_tasks_and_invoke_config_go_to_invoke() -> None:
    assert fast_plan(["status"]) is None and fast_plan([]) is None
    assert invoke_config_may_apply({"INVOKE_HUBTASKS_BASE": "x"})


@pytest.mark.parametrize("args", [["plan", "--base", "main"],
                                  ["plan", "--base=main", "--label", "deployer:deploy-hubs"],
                                  ["plan", "--format", "github"],
                                  ["plan", "--base", "nosuchref"],
                                  ["plan", "--format", "yaml"]])
def test_same_output_as_invoke(repo: GitRepo, args: list[str]) -> None:  # noqa: F811
    fast, slow = hubtasks(repo.root, *args), hubtasks(repo.root, *args, env=VIA_INVOKE)
    assert (fast.returncode, fast.stdout, fast.stderr) == \
        (slow.returncode, slow.stdout, slow.stderr)


def test_same_json_as_invoke(repo: GitRepo, tmp_path: Path) -> None:  # noqa: F811
    docs = []
    for env in ({}, VIA_INVOKE):
        proc = hubtasks(repo.root, "plan", "--format", "json", env=env)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        doc.pop("plan_id")
        docs.append(doc)
    assert docs[0] == docs[1]


def test_a_user_invoke_file_goes_to_invoke(repo: GitRepo, tmp_path: Path) -> None:  # noqa: F811
    home = tmp_path / "home"
    home.mkdir()
    (home / ".invoke.yaml").write_text("hubtasks:\n  base: nosuchref\n")
    proc = hubtasks(repo.root, "plan", env={"HOME": str(home)})
    assert proc.returncode == 2 and "nosuchref" in proc.stderr  # invoke read the file


def test_the_current_folders_invoke_file_goes_to_invoke(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert not invoke_config_may_apply({})
    (tmp_path / "invoke.yaml").write_text("hubtasks: {base: other}\n")
    assert invoke_config_may_apply({})  # the console script reads it (cli.py)


def test_a_file_the_fast_path_cannot_write_is_exit_2(repo: GitRepo) -> None:  # noqa: F811
    proc = hubtasks(repo.root, "plan", "--out", "/proc/version/plan.json")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "hubtasks: error: /proc/version" in proc.stderr
