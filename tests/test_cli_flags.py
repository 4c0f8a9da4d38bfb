"""The console script's flags and help: every documented flag shows its help text (also when
the flags are built twice, as cli.py does), no flag's short form is `--`, `TASK --help` works
for a task with a positional, a closed pipe is not a traceback, and deploy-all saves its plan
beside a results file of its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hubtasks.cli import help_of_positional_task
from hubtasks.options import run_options
from hubtasks.tasks import ns

ROOT = Path(__file__).resolve().parents[1]
HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]


def test_help_texts_survive_building_the_flags_twice() -> None:
    ns.to_contexts()  # cli.py builds them once itself, then invoke's Program again
    for context in ns.to_contexts():
        task = ns[context.name]
        for name in task.help:
            flag = context.flags[f"--{name.replace('_', '-')}"]
            assert flag.help, f"{context.name} --{flag.name} lost its help text"


def test_no_flag_has_a_dash_for_a_short_form() -> None:
    names = [(c.name, n) for c in ns.to_contexts() for a in c.flags.values() for n in a.names]
    assert not [found for found in names if found[1] == "-"]
    deploy_all = next(c for c in ns.to_contexts() if c.name == "deploy-all")
    # later flags keep the letters they had before `-` stopped being one
    assert deploy_all.flags["--canary-workers"].names == ("canary-workers", "c")
    assert deploy_all.flags["--lock-timeout"].names == ("lock-timeout", "m")


def test_every_flag_in_the_console_scripts_help_has_its_text() -> None:
    out = subprocess.run([*HUBTASKS, "deploy-all", "--help"], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert "--=" not in out
    lines = [line for line in out.splitlines() if line.strip().startswith("-")]
    assert lines and all(len(line.split(None, 2)) >= 2 for line in lines)
    assert "roll back a failed upgrade" in out
    assert "save the plan JSON to FILE" in out


@pytest.mark.parametrize(("argv", "expected"), [
    (["values", "--help"], ["--help", "values"]),
    (["values", "c", "--help"], ["--help", "values"]),
    (["--echo", "values", "--help"], ["--echo", "--help", "values"]),
    (["values", "c", "h"], ["values", "c", "h"]),
    (["values", "c", "--", "--help"], ["values", "c", "--", "--help"]),
    (["plan", "--help"], ["plan", "--help"]),  # no positional: invoke's own way works
], ids=repr)
def test_help_of_a_task_with_a_positional(argv: list[str], expected: list[str]) -> None:
    assert help_of_positional_task(["hubtasks", *argv], ns.to_contexts()) == \
        ["hubtasks", *expected]


def test_values_help_through_the_console_script() -> None:
    proc = subprocess.run([*HUBTASKS, "values", "--help"], capture_output=True, text=True,
                          check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "the hub, or as `hubtasks values CLUSTER HUB`" in proc.stdout


@pytest.mark.parametrize("args", [["--list"], ["values", "--help"], ["plan", "--everything"]],
                         ids=" ".join)
def test_a_reader_that_went_away_is_not_a_traceback(args: list[str], tmp_path: Path) -> None:
    with (tmp_path / "stderr").open("w+b") as stderr:
        proc = subprocess.Popen([*HUBTASKS, *args], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=stderr)
        assert proc.stdout is not None
        proc.stdout.close()  # `| head` that has read enough
        assert proc.wait(timeout=120) == 141
    err = (tmp_path / "stderr").read_text()
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_deploy_all_saves_its_plan_beside_its_own_results_file(tmp_path: Path) -> None:
    def plan_of(**flags: str | None) -> Path:
        return run_options(None, {"repo": str(tmp_path), **flags}, saves_plan=True).plan

    here = Path.cwd()  # a path typed as a flag is the current folder's, a default the repo's
    assert plan_of() == tmp_path / ".hubtasks/plan.json"
    assert plan_of(results=".hubtasks/a.json") == here / ".hubtasks/a.plan.json"
    assert plan_of(results="/x/leg") == Path("/x/leg.plan.json")
    assert plan_of(results="a.json", plan="p.json") == here / "p.json"
    assert run_options(None, {"repo": str(tmp_path), "results": "a.json"}).plan == \
        tmp_path / ".hubtasks/plan.json"  # canary/prod read the plan they are given


def test_a_file_hubtasks_cannot_write_is_a_user_error_not_a_traceback() -> None:
    from invoke import Exit

    from hubtasks.tasks import user_errors

    def write_under_a_file() -> None:
        raise FileExistsError(17, "File exists", "/repo/README.md")

    def a_bug() -> None:
        raise OSError("no file named: a bug, shown as one")

    with pytest.raises(Exit) as exited:
        user_errors(write_under_a_file)()
    assert exited.value.code == 2
    assert exited.value.message == "hubtasks: error: /repo/README.md: File exists"
    with pytest.raises(OSError, match="a bug"):
        user_errors(a_bug)()


def test_deploy_all_refuses_a_plan_file_that_is_its_results_file(tmp_path: Path) -> None:
    from hubtasks.model import HubtasksError

    with pytest.raises(HubtasksError, match="--plan and --results name one file"):
        run_options(None, {"repo": str(tmp_path), "plan": "r.json", "results": "r.json"},
                    saves_plan=True)


def test_a_settings_file_that_is_not_a_mapping_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config/clusters").mkdir(parents=True)
    (tmp_path / "hubtasks.yaml").write_text("- a\n")
    proc = subprocess.run([*HUBTASKS, "check-config", "--repo", str(tmp_path)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "hubtasks.yaml: (top level)" in proc.stderr


def test_paths_typed_as_flags_are_the_current_folders_in_every_task(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch
                                                                     ) -> None:
    """`plan --repo R --out p.json` writes ./p.json; `canary --repo R --plan p.json` must read
    that file, not R/p.json (an older plan there would be deployed)."""
    repo, here = tmp_path / "repo", tmp_path / "elsewhere"
    here.mkdir()
    repo.mkdir()
    monkeypatch.chdir(here)
    options = run_options(None, {"repo": str(repo), "plan": "p.json", "results": "r.json",
                                 "log_dir": "logs"})
    assert (options.plan, options.results) == (here / "p.json", here / "r.json")
    assert options.deploy.log_dir == here / "logs"
    defaults = run_options(None, {"repo": str(repo)})
    assert defaults.plan == repo / ".hubtasks/plan.json"
    assert defaults.results == repo / ".hubtasks/results.json"


def test_an_environment_number_that_is_not_one_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "INVOKE_HUBTASKS_JOBS": "abc"}
    proc = subprocess.run([*HUBTASKS, "deploy-all", "--everything", "--dry-run"], cwd=ROOT,
                          env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--jobs must be a whole number, not 'abc'" in proc.stderr


@pytest.mark.parametrize(("config", "message"), [
    ({"timeout": [1]}, "invalid --timeout [1]"),
    ({"timeout": None}, "invalid --timeout None"),
    ({"jobs": 2.9}, "--jobs must be a whole number, not 2.9"),
    ({"jobs": True}, "--jobs must be a whole number, not True"),
    ({"results": ["a"]}, "hubtasks.results in the invoke config must be a path"),
    ({"repo": 5}, "hubtasks.repo in the invoke config must be a path"),
    ({"retries": -3}, "--retries must be 0 or more, not -3"),
], ids=repr)
def test_invoke_config_values_of_the_wrong_type_are_clear_errors(
        config: dict[str, object], message: str) -> None:
    from hubtasks.model import HubtasksError

    class Context:
        def __init__(self) -> None:
            self.config = {"hubtasks": config}

    with pytest.raises(HubtasksError, match=re.escape(message)):
        run_options(Context(), {})


def test_the_console_script_reads_the_invoke_yaml_of_the_current_folder(tmp_path: Path) -> None:
    (tmp_path / "config/clusters").mkdir(parents=True)
    (tmp_path / "invoke.yaml").write_text("hubtasks:\n  jobs: 0\n")
    proc = subprocess.run([*HUBTASKS, "deploy-all", "--everything", "--dry-run"], cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "--jobs must be at least 1, not 0" in proc.stderr, \
        proc.stderr


def test_a_task_run_from_a_subfolder_finds_its_config_repo(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    from hubtasks.options import repo_root

    (tmp_path / "config/clusters/a").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "config/clusters/a")
    assert repo_root(None, {}) == tmp_path
    elsewhere = tmp_path.parent / f"{tmp_path.name}-no-repo"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert repo_root(None, {}) == elsewhere  # nothing above: the current folder, as before


def test_a_repo_that_is_not_there_is_named() -> None:
    from hubtasks.model import HubtasksError
    from hubtasks.options import repo_root

    with pytest.raises(HubtasksError, match="--repo /nonexistent/x: no such folder"):
        repo_root(None, {"repo": "/nonexistent/x"})


def test_a_flag_given_with_the_default_value_is_honoured(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from hubtasks.options import repo_root

    options = run_options(None, {"repo": str(tmp_path), "results": "r.json",
                                 "plan": ".hubtasks/plan.json"}, saves_plan=True)
    assert options.plan == Path.cwd() / ".hubtasks/plan.json"  # not r.plan.json
    (tmp_path / "config/clusters/a").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "config/clusters/a")
    assert repo_root(None, {"repo": "."}) == tmp_path / "config/clusters/a"  # no discovery


@pytest.mark.parametrize("args", [["prod", "--no-such-flag"], ["--no-such-flag"],
                                  ["no-such-task"]], ids=" ".join)
def test_a_command_line_that_cannot_be_parsed_is_a_user_error(args: list[str]) -> None:
    proc = subprocess.run([*HUBTASKS, *args], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 2 and "No idea what" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
