"""A corpus of nasty secrets deployed with real helm to a real API server: no output holds
any form of any of them (raw, each line, JSON/Go-escaped, base64 standard and URL-safe).

One hub renders the secrets into a Secret (and succeeds); another puts one into a label the
API server rejects, so the server echoes it (escaped) in its error. Then `--dry-run`,
`report --format github` and `filter --format github` run too, and every file hubtasks wrote
(results, job logs, combined log, $GITHUB_OUTPUT, step summary) and all console output is
searched.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hubtasks.dev.demo import DEMO_KEY, copy_example
from hubtasks.dev.localk8s import LocalClusters
from hubtasks.model import Status
from hubtasks.results import load_results

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
HUBTASKS = [sys.executable, "-c", "from hubtasks.cli import main; main()"]
CLUSTER = "bio-cloud"
PEM = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCPemLine1Xq\n"
       "qZ9xT3kLmN0pQ7rS2uV4wX6yZ8aB1cD3PemLine2Zr\n-----END PRIVATE KEY-----\n")
CORPUS = {
    "pem": PEM,
    "quote": 'Bad"Quote!Secret-Q7x',
    "backslash": "back\\slash\\Secret-K2p",
    "unicode": "ünïcødé-Sécret-Ж9w",
    "json": '{"token": "json-inner-Secret-Z5", "n": 1}',
}
ECHOED = 'Bad"Label!Secret-E3w'  # an invalid label value: the API server echoes it
CHART = {
    "Chart.yaml": "apiVersion: v2\nname: nasty\nversion: 0.1.0\n",
    "templates/secret.yaml": (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: nasty\n"
        "stringData:\n{{- range $k, $v := .Values.secrets }}\n"
        "  {{ $k }}: {{ $v | quote }}\n{{- end }}\n"),
    "templates/cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nasty-cm\n"
        "{{- if .Values.badLabel }}\n  labels:\n    bad: {{ .Values.badLabel | quote }}\n"
        "{{- end }}\ndata:\n  ok: \"yes\"\n"),
}


def forms(secret: str) -> set[str]:
    """Every form a leak could take; lines of multi-line values too (long enough to be ours)."""
    found = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    for coder in (base64.b64encode, base64.urlsafe_b64encode):
        found.add(coder(secret.encode()).decode().rstrip("="))
    found |= {line for line in secret.splitlines() if "PemLine" in line}
    return found


def write_repo(repo: Path, sops: Path) -> None:
    for rel, text in CHART.items():
        (repo / "helm-charts/nasty" / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / "helm-charts/nasty" / rel).write_text(text)
    folder = repo / "config/clusters" / CLUSTER
    doc = yaml.safe_load((folder / "cluster.yaml").read_text())
    for name, values in (("nasty", {"secrets": CORPUS}),
                         ("nasty-echo", {"secrets": CORPUS, "badLabel": ECHOED})):
        file = folder / f"enc-{name}.secret.values.yaml"
        file.write_text(yaml.safe_dump(values, allow_unicode=True))
        subprocess.run([str(sops), "--encrypt", "--in-place", str(file)], cwd=repo,
                       check=True, capture_output=True)
        doc["hubs"].append({"name": name, "display_name": name,
                            "domain": f"{name}.example.org", "helm_chart": "nasty",
                            "helm_chart_values_files": [file.name]})
    (folder / "cluster.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam",
                    "nasty", "--allow-empty"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm",
                    "nasty files"], cwd=repo, check=True)


def test_no_output_holds_any_form_of_any_secret(helm: Path, sops: Path, tmp_path: Path) -> None:
    repo = copy_example(ROOT, tmp_path / "repo")
    write_repo(repo, sops)
    gh_out, summary = tmp_path / "github_output", tmp_path / "summary.md"
    env = {**os.environ, "HUBTASKS_HELM": str(helm), "SOPS_AGE_KEY_FILE": str(repo / DEMO_KEY),
           "GITHUB_OUTPUT": str(gh_out), "GITHUB_STEP_SUMMARY": str(summary)}
    console: list[str] = []

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*HUBTASKS, *args], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=600, check=False)
        console.extend([done.stdout, done.stderr])
        return done

    clusters = LocalClusters([CLUSTER], tmp_path / "clusters")
    try:
        clusters.start()
        clusters.write_kubeconfigs(repo / ".hubtasks/kubeconfigs")
        fast = ("--timeout", "60s", "--retries", "0")
        assert run("deploy-hub", "--cluster", CLUSTER, "--hub", "nasty", *fast).returncode == 0
        echo = run("deploy-hub", "--cluster", CLUSTER, "--hub", "nasty-echo", *fast)
        assert echo.returncode == 1
        assert run("deploy-hub", "--cluster", CLUSTER, "--hub", "nasty", "--dry-run",
                   "--results", ".hubtasks/dry.json").returncode == 0
        assert run("plan", "--everything", "--out", ".hubtasks/plan.json").returncode == 0
        run("report", "--format", "github")
        run("filter", "--format", "github")
    finally:
        clusters.stop()
    records = {r.hub: r for r in load_results([repo / ".hubtasks/results.json"])}
    assert records["nasty"].status is Status.SUCCEEDED
    failed = records["nasty-echo"]
    assert failed.status is Status.FAILED
    echo_log = Path(failed.log or "").read_text()
    assert "Invalid value" in echo_log and "labels" in echo_log  # the API server echoed it
    dry_log = (repo / ".hubtasks/logs/prod" / CLUSTER / "nasty.log").read_text()
    assert "kind: Secret" in dry_log and "secret data not logged" in dry_log
    outputs = {"console": "\n".join(console)}
    for path in [*(repo / ".hubtasks").rglob("*"), gh_out, summary]:
        if path.is_file() and "kubeconfigs" not in path.parts and path.suffix != ".lock":
            outputs[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    assert any("hubtasks.log" in name for name in outputs)
    leaks = [(name, form) for secret in [*CORPUS.values(), ECHOED] for form in forms(secret)
             for name, text in outputs.items() if form in text]
    assert leaks == []
    logs = repo / ".hubtasks/logs"
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    for log in logs.rglob("*.log"):
        assert stat.S_IMODE(log.stat().st_mode) & 0o077 == 0 or log.name == "hubtasks.log"
    assert stat.S_IMODE((repo / ".hubtasks/results.json").stat().st_mode) == 0o600
