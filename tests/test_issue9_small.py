"""Issue 9, item 6: the smaller defects, each checked through the CLI where it shows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hubtasks.dev.demo import copy_example
from hubtasks.planning.git import fetch_hint

ROOT = Path(__file__).resolve().parents[1]
HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]


def run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HUBTASKS, *args], cwd=repo, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture()
def example(tmp_path: Path) -> Path:
    return copy_example(ROOT, tmp_path / "repo")


@pytest.mark.parametrize("rel", ["config/clusters/bio-cloud/cluster.yaml", "hubtasks.yaml"])
def test_invalid_utf8_is_a_clean_error_naming_the_file(example: Path, rel: str) -> None:
    (example / rel).write_bytes(b"name: \xff\xfe\n")
    done = run(example, "check-config")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert rel in done.stderr and "UTF-8" in done.stderr


def test_check_config_rejects_malformed_values_and_plain_secrets(example: Path) -> None:
    folder = example / "config/clusters/bio-cloud"
    (folder / "neuro.values.yaml").write_text("a: [\n")
    doc = yaml.safe_load((folder / "cluster.yaml").read_text())
    doc["hubs"][0]["helm_chart_values_files"].append("plain.secret.values.yaml")
    (folder / "cluster.yaml").write_text(yaml.safe_dump(doc))
    (folder / "plain.secret.values.yaml").write_text("password: hunter2\n")
    done = run(example, "check-config")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "neuro.values.yaml" in done.stderr and "plain.secret.values.yaml" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


def test_a_relative_ref_gets_a_sensible_fetch_hint() -> None:
    for ref in ("HEAD~1", "main^2", "@{u}"):
        hint = fetch_hint(ref)
        assert f"{ref}:{ref}" not in hint and "fetch-depth: 0" in hint
    assert "git fetch origin main:main" in fetch_hint("main")


def test_kill_grace_is_an_option_of_every_deploy_task(example: Path) -> None:
    for name in ("canary", "prod", "deploy-all", "deploy-hub", "deploy-support"):
        done = run(example, "--help", name)
        assert "--kill-grace" in done.stdout, name
    bad = run(example, "canary", "--kill-grace", "soon")
    assert bad.returncode == 2 and "--kill-grace" in bad.stderr


@pytest.mark.parametrize("ref", ["main with spaces", "--all", "a:b", ""])
def test_a_string_that_is_no_ref_name_is_not_told_to_be_fetched(ref: str) -> None:
    assert fetch_hint(ref) == "that is not a git ref name (a branch, tag or commit)"
