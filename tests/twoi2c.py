"""A writable copy of the 2i2c fixture with age-encrypted stand-ins for its cloud-KMS secrets.

Each secret file is replaced, at its own path, by `{"standin": "<repo-relative path>"}`
encrypted for a test age key, so a decrypted document names the file it came from. The copy's
`hubtasks.yaml` is the one README.md documents for 2i2c repos.

`expected` is the independent expectation: the values documents 2i2c's deployer
(2i2c-org/infrastructure, src/deployer) passes each release, read from cluster.yaml directly:
- `Hub.deploy` (infra_components/hub.py): `--values` = the rendered `<chart_dir>/values.jsonnet`,
  then each of the hub's `helm_chart_values_files` (decrypted; `.jsonnet` ones rendered); before
  that, a `domain_override_file`'s `domain` replaces `spec["domain"]`.
- `Cluster.deploy_support` (infra_components/cluster.py): support/enc-support.secret.values.yaml,
  support/enc-cryptnono.secret.values.yaml, support/values.jsonnet, then the cluster's support
  `helm_chart_values_files`.
- `Cluster.render_jsonnet` + utils/jsonnet.py `render_jsonnet`: ext vars VARS_2I2C_CLUSTER_NAME
  (aws: aws.clusterName, else name), VARS_2I2C_PROVIDER, VARS_2I2C_ACCOUNT_ID (aws.account,
  gcp.project, else None formatted by an f-string: "None"), VARS_2I2C_REGION when set,
  VARS_2I2C_HUB_NAME and VARS_2I2C_HUB_DOMAIN for hubs; `--jpath` the file's folder; the file's
  absolute path unresolved (a symlink keeps its own path as std.thisFile).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import _jsonnet
import yaml

from hubtasks.dev import envtest
from hubtasks.secrets import is_secret_path, is_sops_encrypted

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Adopting hubtasks in a 2i2c repo"
SUPPORT_CHART_DOCS = ["enc-support.secret.values.yaml", "enc-cryptnono.secret.values.yaml",
                      "values.jsonnet"]


def documented_settings() -> str:
    """The `hubtasks.yaml` of README.md's 2i2c section (the first yaml block after it)."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"```yaml\n(.*?)```", text[text.index(SECTION):], re.S)
    assert found, f"README.md: no yaml block under {SECTION!r}"
    return found.group(1)


def age_keypair(folder: Path) -> tuple[Path, str]:
    """A new age key file in `folder` and its public key (the stand-ins' recipient)."""
    keygen = envtest.ensure_age()
    key = folder / "key.txt"
    subprocess.run([str(keygen), "-o", str(key)], check=True, capture_output=True, timeout=60)
    public = subprocess.run([str(keygen), "-y", str(key)], check=True, capture_output=True,
                            text=True, timeout=60).stdout.strip()
    return key, public


def standin(rel: str) -> str:
    doc = {"standin": rel}
    return json.dumps(doc) if rel.endswith(".json") else f"standin: {rel}\n"


def _encrypt(path: Path, recipient: str, sops: Path) -> None:
    subprocess.run([str(sops), "--encrypt", "--age", recipient, "--in-place", path.name],
                   cwd=path.parent, check=True, capture_output=True, timeout=60)


def standin_copy(fixture: Path, dest: Path, *, sops: Path, recipient: str) -> Path:
    """Copy `fixture` to `dest` (symlinks kept), swap its secrets, add hubtasks.yaml."""
    shutil.copytree(fixture, dest, symlinks=True)
    for folder, _dirs, files in os.walk(dest):
        os.chmod(folder, 0o755)
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(0o644)
    secrets = [p for p in sorted(dest.rglob("*")) if p.is_file() and not p.is_symlink()
               and (is_secret_path(p) or is_sops_encrypted(p))]
    for path in secrets:
        path.write_text(standin(path.relative_to(dest).as_posix()), encoding="utf-8")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda p: _encrypt(p, recipient, sops), secrets))
    (dest / "hubtasks.yaml").write_text(documented_settings(), encoding="utf-8")
    return dest


# ---------------------------------------------------------------- the deployer's rules


def deployer_vars(spec: dict[str, Any], hub: dict[str, Any] | None) -> dict[str, str]:
    provider = spec["provider"]
    out = {"VARS_2I2C_CLUSTER_NAME": spec["aws"]["clusterName"] if provider == "aws"
           else spec["name"], "VARS_2I2C_PROVIDER": provider}
    account, region = None, None
    if provider == "aws":
        account, region = spec["aws"]["account"], spec["aws"]["region"]
    elif provider == "gcp":
        account, region = spec["gcp"]["project"], spec["gcp"].get("zone")
    out["VARS_2I2C_ACCOUNT_ID"] = f"{account}"
    if region:
        out["VARS_2I2C_REGION"] = region
    if hub is not None:
        out["VARS_2I2C_HUB_NAME"] = hub["name"]
        out["VARS_2I2C_HUB_DOMAIN"] = hub["domain"]
    return out


def render_like_deployer(root: Path, rel: str, ext_vars: dict[str, str], scratch: Path) -> Any:
    """`jsonnet --jpath <folder> <abs path>`; a text "symlink" made a real one, as git would."""
    path = root / rel
    text = path.read_text()
    if len(text.strip().splitlines()) == 1 and (path.parent / text.strip()).is_file():
        link = scratch / rel
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((path.parent / text.strip()).resolve())
        path = link
    return yaml.safe_load(_jsonnet.evaluate_file(str(path), jpathdir=[str(path.parent)],
                                                 ext_vars=ext_vars))


def expected(root: Path, cluster: str, hub: str | None, scratch: Path,
             ) -> list[tuple[str, Any]]:
    """(source, parsed document) of each `--values`, in the deployer's order."""
    spec = yaml.safe_load((root / "config/clusters" / cluster / "cluster.yaml").read_text())
    folder = f"config/clusters/{cluster}"
    if hub is None:
        entry = None
        rels = [f"helm-charts/support/{f}" for f in SUPPORT_CHART_DOCS]
        rels += [f"{folder}/{f}" for f in spec["support"]["helm_chart_values_files"]]
    else:
        entry = next(h for h in spec["hubs"] if h["name"] == hub)
        rels = [f"helm-charts/{entry['helm_chart']}/values.jsonnet"]
        rels += [f"{folder}/{f}" for f in entry["helm_chart_values_files"]]
    out = []
    for rel in rels:
        if "secret" in os.path.basename(rel):
            out.append((rel, {"standin": rel}))
        elif rel.endswith(".jsonnet"):
            out.append((rel, render_like_deployer(root, rel, deployer_vars(spec, entry),
                                                  scratch)))
        else:
            out.append((rel, yaml.safe_load((root / rel).read_text())))
    return out
