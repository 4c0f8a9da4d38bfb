"""`validate`: config errors stop before helm; every release is linted and rendered, for real."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubtasks.config.load import load_config
from hubtasks.config.yamlfiles import ConfigError
from hubtasks.deploying.charts import RUNS_DIR
from hubtasks.deploying.validate import (
    Check,
    ValidationResult,
    exit_code,
    failure_message,
    validate_command,
    validate_repo,
)
from hubtasks.dev.install import install_sops
from hubtasks.helm import HelmRun, probe
from hubtasks.model import HubtasksError
from hubtasks.output.validation import render_validation
from hubtasks.proc import Outcome

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ("config", "helm-charts", "hubtasks.yaml", ".sops.yaml")
DEMO_KEY = "config/demo-age-key.txt"
SECRET_HUBS = {("edu-cloud", "workshop"), ("geo-cloud", "glacier")}
# Rendering fails when a secret reaches the chart still encrypted.
DECRYPTED_GUARD = """\
{{- if hasPrefix "ENC[" (toString .Values.jupyterhub.hub.apiToken) }}
{{- fail "secret values reached the chart encrypted" }}
{{- end }}
"""
FAKE_HELM = """#!/bin/sh
touch "{marker}"
echo v3.17.3+gfake
"""

Row = tuple[str, str | None, str]


@pytest.fixture()
def example(tmp_path: Path) -> Path:
    """A copy of the example config and charts, with a guard against undecrypted secrets."""
    repo = tmp_path / "repo"
    for name in EXAMPLE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name,
                            ignore=shutil.ignore_patterns("charts", "Chart.lock"))
        else:
            shutil.copy2(source, repo / name)
    (repo / "helm-charts/basehub/templates/zz-decrypted-guard.yaml").write_text(DECRYPTED_GUARD)
    return repo


def helm_env(tmp_path: Path, *, key: Path | None) -> dict[str, str]:
    """An env that never touches the user's helm or sops setup; the age key only if given."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SOPS_", "HELM_")) and k != "KUBECONFIG"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")  # no default sops age key
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(tmp_path / "helm-home" / var.lower())
    if key is not None:
        env["SOPS_AGE_KEY_FILE"] = str(key)
    return env


def run(repo: Path, helm: Path, tmp_path: Path, *, key: bool = True,
        clusters: tuple[str, ...] = ()) -> list[ValidationResult]:
    """validate_repo on `repo` with real helm and sops, 4 checks at a time."""
    env = helm_env(tmp_path, key=repo / DEMO_KEY if key else None)
    return validate_repo(load_config(repo), helm=probe(helm, env=env),
                         sops=install_sops(env), env=env, jobs=4,
                         work_dir=repo / ".hubtasks/work", clusters=clusters)


def releases(repo: Path) -> list[tuple[str, str | None]]:
    """Every release of the config: support, then hubs, by cluster."""
    config = load_config(repo)
    return [(c.name, hub) for c in sorted(config.clusters.values(), key=lambda c: c.name)
            for hub in [None, *sorted(h.name for h in c.hubs)]]


def rows(results: list[ValidationResult]) -> list[Row]:
    return [(r.cluster, r.hub, r.check) for r in results]


def failed(results: list[ValidationResult]) -> set[Row]:
    return {(r.cluster, r.hub, r.check) for r in results if not r}


def write_yaml(path: Path, doc: Any) -> None:
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")


# ---------------------------------------------------------------------------- real helm


def test_every_release_passes(helm: Path, example: Path, tmp_path: Path) -> None:
    results = run(example, helm, tmp_path)

    assert rows(results) == [(c, h, check) for c, h in releases(example) for check in Check]
    assert len(results) == 26 and all(results), render_validation(results)
    assert exit_code(results) == 0
    assert render_validation(results).endswith("13 releases, 26 checks: 26 passed, 0 failed\n")
    assert not (example / "helm-charts/basehub/charts").exists()  # no deps: nothing built
    assert (example / "helm-charts/daskhub/charts").is_dir()  # built once, in place


def test_every_broken_release_is_reported(helm: Path, example: Path, tmp_path: Path) -> None:
    """A wrong type the chart rejects, and invalid YAML: both hubs named, nothing else."""
    stats = example / "config/clusters/edu-cloud/stats-101.values.yaml"
    doc = yaml.safe_load(stats.read_text(encoding="utf-8"))
    doc["jupyterhub"]["ingress"] = {"hosts": "not-a-list"}  # over values.jsonnet's list
    write_yaml(stats, doc)
    (example / "config/clusters/geo-cloud/ocean-lab.values.yaml").write_text("basehub: [\n")

    results = run(example, helm, tmp_path)

    broken = {("edu-cloud", "stats-101"), ("geo-cloud", "ocean-lab")}
    assert failed(results) == {(c, h, check) for c, h in broken for check in Check}
    assert len(results) == 26 and exit_code(results) == 1
    by_row = {(r.cluster, r.hub, r.check): r.message for r in results}
    for check in Check:
        assert "range can't iterate over not-a-list" in by_row["edu-cloud", "stats-101", check]
        assert "yaml" in by_row["geo-cloud", "ocean-lab", check].lower()
    text = render_validation(results)
    assert "edu-cloud/stats-101 template:\n    " in text
    assert "geo-cloud/ocean-lab lint:\n    " in text
    assert text.endswith("26 checks: 22 passed, 4 failed\n")


def test_secrets_are_decrypted_into_private_temp_dirs_then_removed(
        helm: Path, example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Path] = []
    private_root = tmp_path / "tmp"
    private_root.mkdir()
    real_mkdtemp = tempfile.mkdtemp

    def spy(*args: Any, **kwargs: Any) -> str:
        if not str(kwargs.get("prefix")).startswith("hubtasks-values-") or \
                Path(str(kwargs.get("dir"))).name == RUNS_DIR:  # the run's chart copies
            return str(real_mkdtemp(*args, **kwargs))
        folder = str(real_mkdtemp(*args, **{**kwargs, "dir": private_root}))
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        made.append(Path(folder))
        return folder

    monkeypatch.setattr(tempfile, "mkdtemp", spy)
    results = run(example, helm, tmp_path)

    assert all(results), render_validation(results)
    # one private folder per release with secrets, one per release with rendered jsonnet
    # (every hub: the hub charts have a values.jsonnet)
    hubs = sum(len(c.hubs) for c in load_config(example).clusters.values())
    assert len(made) == len(SECRET_HUBS) + hubs
    assert not any(path.exists() for path in made)
    assert list(private_root.iterdir()) == []


def test_undecryptable_secrets_fail_only_their_hubs(helm: Path, example: Path,
                                                    tmp_path: Path) -> None:
    results = run(example, helm, tmp_path, key=False)

    assert failed(results) == {(c, h, check) for c, h in SECRET_HUBS for check in Check}
    messages = [r.message for r in results if not r]
    assert all("`sops --decrypt` failed" in m and "SOPS_AGE_KEY_FILE" in m for m in messages)


def test_only_the_chosen_clusters(helm_bins: dict[int, Path], example: Path,
                                  tmp_path: Path) -> None:
    results = run(example, helm_bins[4], tmp_path, clusters=("bio-cloud",))

    assert rows(results) == [("bio-cloud", h, check) for h in (None, "genomics", "neuro")
                             for check in Check]
    assert all(results), render_validation(results)
    # neuro's chart_override copy lived in the run's own folder, removed at the end
    runs = example / ".hubtasks/work" / RUNS_DIR
    assert runs.is_dir() and not list(runs.iterdir())
    with pytest.raises(HubtasksError, match=r"unknown cluster.*nowhere"):
        run(example, helm_bins[4], tmp_path, clusters=("nowhere",))


def test_a_chart_that_cannot_be_built_fails_only_its_releases(
        helm_bins: dict[int, Path], example: Path, tmp_path: Path) -> None:
    chart = example / "helm-charts/daskhub/Chart.yaml"
    doc = yaml.safe_load(chart.read_text(encoding="utf-8"))
    doc["dependencies"][0]["version"] = "9.9.9"  # basehub is 0.1.0
    write_yaml(chart, doc)

    results = run(example, helm_bins[4], tmp_path)

    config = load_config(example)
    daskhubs = {(h.cluster, h.name) for h in config.hubs() if h.chart == "daskhub"}
    assert len(daskhubs) == 4
    assert failed(results) == {(c, h, check) for c, h in daskhubs for check in Check}
    assert all(r.message.startswith("chart not prepared: chart ") for r in results if not r)


def test_command_reports_config_summary(helm_bins: dict[int, Path], example: Path,
                                        tmp_path: Path) -> None:
    env = helm_env(tmp_path, key=example / DEMO_KEY)
    heard: list[str] = []
    found = validate_command(example, clusters=["edu-cloud"], jobs=2, helm=helm_bins[3],
                             env=env, on_start=heard.append)
    assert len(found.results) == 8 and all(found.results)
    assert (found.clusters, found.hubs, found.helm.major) == (1, 3, 3)
    [line] = heard
    assert line.startswith("config OK: 1 cluster, 3 hubs; helm v3.")
    assert line.endswith(": lint + template of 4 releases")


def test_config_errors_are_all_reported_before_any_helm(example: Path, tmp_path: Path) -> None:
    marker = tmp_path / "helm-ran"
    fake = tmp_path / "bin" / "helm"
    fake.parent.mkdir()
    fake.write_text(FAKE_HELM.format(marker=marker))
    fake.chmod(0o755)
    (example / "config/clusters/edu-cloud/sandbox.values.yaml").unlink()
    (example / "config/clusters/bio-cloud/support.values.yaml").unlink()

    with pytest.raises(ConfigError) as err:
        validate_command(example, helm=fake, env=helm_env(tmp_path, key=None))

    problems = "\n".join(err.value.problems)
    assert len(err.value.problems) == 2
    assert "sandbox.values.yaml" in problems and "bio-cloud" in problems
    assert not marker.exists()


def test_jobs_must_be_positive(helm_bins: dict[int, Path], example: Path, tmp_path: Path) -> None:
    env = helm_env(tmp_path, key=None)
    with pytest.raises(HubtasksError, match="--jobs must be at least 1"):
        validate_repo(load_config(example), helm=probe(helm_bins[4], env=env), sops=None,
                      env=env, jobs=0, work_dir=tmp_path / "work")


# ---------------------------------------------------------------------------- pure helpers


HELM3_LINT = """==> Linting /x/basehub
[INFO] Chart.yaml: icon is recommended
[ERROR] templates/: template: basehub/templates/ingress.yaml:19:18: range can't iterate over x

Error: 1 chart(s) linted, 1 chart(s) failed
"""
HELM4_TEMPLATE = """Error: basehub/templates/ingress.yaml:19:18
  executing "basehub/templates/ingress.yaml" at <$ing.hosts>:
    range can't iterate over x

Use --debug flag to render out invalid YAML
"""


@pytest.mark.parametrize(("output", "expected"), [
    (HELM3_LINT, "[ERROR] templates/: template: basehub/templates/ingress.yaml:19:18: "
                 "range can't iterate over x"),
    (HELM4_TEMPLATE, "Error: basehub/templates/ingress.yaml:19:18\n"
                     '  executing "basehub/templates/ingress.yaml" at <$ing.hosts>:\n'
                     "    range can't iterate over x"),
    ("", "helm exited 1"),
], ids=["helm3-lint", "helm4-template", "silent"])
def test_failure_message(output: str, expected: str) -> None:
    assert failure_message(helm_run(output)) == expected


def helm_run(output: str) -> HelmRun:
    return HelmRun(outcome=Outcome(argv=("helm",), exit_code=1, output=output), attempts=1)


def test_failure_message_caps_lines() -> None:
    output = "Error: first\n" + "".join(f"  line {i}\n" for i in range(20))
    message = failure_message(helm_run(output))
    assert message.splitlines() == ["Error: first", *(f"  line {i}" for i in range(5))]


def test_render_validation() -> None:
    results = [
        ValidationResult(cluster="a", hub=None, check=Check.LINT, ok=True),
        ValidationResult(cluster="a", hub=None, check=Check.TEMPLATE, ok=True),
        ValidationResult(cluster="a", hub="x", check=Check.LINT, ok=True),
        ValidationResult(cluster="a", hub="x", check=Check.TEMPLATE, ok=False,
                         message="Error: boom\n  at line 3"),
    ]
    text = render_validation(results)
    lines = text.splitlines()
    assert lines[0].split() == ["cluster", "release", "lint", "template"]
    assert lines[2].split() == ["a", "(support)", "ok", "ok"]
    assert lines[3].split() == ["a", "x", "ok", "FAILED"]
    assert "Failures (1)\n\na/x template:\n    Error: boom\n      at line 3\n" in text
    assert text.endswith("2 releases, 4 checks: 3 passed, 1 failed\n")
    assert exit_code(results) == 1 and exit_code(results[:3]) == 0 and exit_code([]) == 0
