"""`hubtasks values CLUSTER [HUB]`: HUB positional (invoke has no optional positionals, so the
console script reads it as `--hub`), through the console script on a copy of the example."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hubtasks.cli import with_optional_positionals
from hubtasks.dev.demo import DEMO_KEY
from hubtasks.tasks import ns

ROOT = Path(__file__).resolve().parents[1]
HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]


@pytest.mark.parametrize(("argv", "expected"), [
    (["values", "c", "h"], ["values", "c", "--hub=h"]),
    (["values", "c"], ["values", "c"]),
    (["values", "c", "--hub", "h"], ["values", "c", "--hub", "h"]),
    (["values", "--repo", "r", "c", "h", "--merged"],
     ["values", "--repo", "r", "c", "--hub=h", "--merged"]),
    (["values", "--repo=r", "--merged", "c", "h"],
     ["values", "--repo=r", "--merged", "c", "--hub=h"]),
    (["values", "--cluster", "c", "h"], ["values", "--cluster", "c", "--hub=h"]),
    (["--echo", "values", "c", "h"], ["--echo", "values", "c", "--hub=h"]),
    (["plan", "values", "x"], ["plan", "values", "x"]),  # not the first task: invoke's rules
    (["values", "c", "--", "h"], ["values", "c", "--", "h"]),
], ids=repr)
def test_optional_positionals(argv: list[str], expected: list[str]) -> None:
    assert with_optional_positionals(["hubtasks", *argv], ns.to_contexts()) == \
        ["hubtasks", *expected]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("values") / "repo"
    for name in ("config", "helm-charts"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("charts"))
    shutil.copy2(ROOT / "hubtasks.yaml", repo / "hubtasks.yaml")
    return repo


def hubtasks(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HUBTASKS, *args], cwd=repo, capture_output=True, text=True,
                          timeout=120, check=False)


def test_hub_positional_equals_hub_flag(example: Path) -> None:
    positional = hubtasks(example, "values", "edu-cloud", "sandbox")
    flag = hubtasks(example, "values", "edu-cloud", "--hub", "sandbox")
    support = hubtasks(example, "values", "edu-cloud")

    assert positional.returncode == 0, positional.stderr
    assert positional.stdout == flag.stdout
    assert "config/clusters/edu-cloud/sandbox.values.yaml (values file)" in positional.stdout
    assert "config/clusters/edu-cloud/support.values.yaml (values file)" in support.stdout
    assert "sandbox.values.yaml" not in support.stdout


def test_merged_and_unknown_hub_positional(example: Path) -> None:
    merged = hubtasks(example, "values", "--merged", "edu-cloud", "sandbox")
    missing = hubtasks(example, "values", "edu-cloud", "nope")

    assert merged.returncode == 0 and not merged.stdout.startswith("#"), merged.stderr
    assert "displayName: Teaching Sandbox" in merged.stdout
    assert missing.returncode == 2
    assert "cluster 'edu-cloud' has no hub 'nope'" in missing.stderr


NASTY_CONFIG: dict[str, object] = {
    "unicode": "pässwörd-ünïcode-Ж",
    "folded": "correct horse battery staple " * 5 + "the-end",
    "short": "abc",
    "octal": "0777",
    "number": 123456,
    "flag": True,
    "pem": "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----\n",
}
NASTY_SECRETS = {"jupyterhub": {"hub": {"config": NASTY_CONFIG}},
                 "secretList": ["listed-secret-1", 42]}


@pytest.fixture(scope="module")
def secret_example(tmp_path_factory: pytest.TempPathFactory,
                   sops: Path) -> tuple[Path, dict[str, str]]:
    """The example with workshop's encrypted file holding values text redaction would miss."""
    repo = tmp_path_factory.mktemp("secret-values") / "repo"
    for name in ("config", "helm-charts"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("charts"))
    for name in ("hubtasks.yaml", ".sops.yaml"):
        shutil.copy2(ROOT / name, repo / name)
    file = repo / "config/clusters/edu-cloud/enc-workshop.secret.values.yaml"
    file.write_text(yaml.safe_dump(NASTY_SECRETS, allow_unicode=True))
    subprocess.run([str(sops), "--encrypt", "--in-place", str(file)], cwd=repo, check=True,
                   capture_output=True)
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(repo / DEMO_KEY), "HUBTASKS_SOPS": str(sops)}
    return repo, env


@pytest.mark.parametrize("merged", [False, True], ids=["documents", "merged"])
def test_values_shows_every_secret_value_as_the_marker(
        secret_example: tuple[Path, dict[str, str]], merged: bool) -> None:
    repo, env = secret_example
    args = ["values", "edu-cloud", "workshop", *(["--merged"] if merged else [])]
    done = subprocess.run([*HUBTASKS, *args], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    shown = yaml.safe_load(done.stdout.rpartition("(values file, decrypted)\n")[2])
    config = shown["jupyterhub"]["hub"]["config"]
    assert {config[key] for key in NASTY_CONFIG} == {"***"}
    assert shown["secretList"] == ["***", "***"]
    for leak in ("pässwörd", "p\\xE4ss", "horse", "the-end", "abc", "511", "0777", "123456",
                 "MIIEvQ", "listed-secret", "42"):
        assert leak not in done.stdout + done.stderr, leak
    assert "displayName: Carpentries Workshops" in done.stdout


@pytest.mark.parametrize(("text", "said"), [
    (b"a: [\n", "sandbox.values.yaml:2:1: invalid YAML"),
    (b"x: 1\nx: 2\n", "found duplicate key 'x'"),
    (b'a: "\xff"\n', "sandbox.values.yaml: not valid UTF-8"),
    (("a: " + "[" * 5000 + "]" * 5000 + "\n").encode(), "sandbox.values.yaml"),
], ids=["syntax", "duplicate-key", "not-utf8", "deep"])
def test_a_broken_values_file_is_a_clear_error(tmp_path: Path, text: bytes, said: str) -> None:
    repo = tmp_path / "repo"
    for name in ("config", "helm-charts"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("charts"))
    shutil.copy2(ROOT / "hubtasks.yaml", repo / "hubtasks.yaml")
    (repo / "config/clusters/edu-cloud/sandbox.values.yaml").write_bytes(text)
    shown = hubtasks(repo, "values", "edu-cloud", "sandbox")
    assert shown.returncode == 2, shown.stderr
    assert said in shown.stderr and "Traceback" not in shown.stderr, shown.stderr
