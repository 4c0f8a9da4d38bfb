"""Values-file checks: a file parses as YAML, and a file whose name says `secret` is
sops-encrypted. Both would otherwise fail only at deploy time, after a canary already ran.
check-config runs them on every values file; plan on the changed ones (planning/inputs.py).
Jsonnet documents are not YAML: they are rendered (by plan when changed, and by validate)."""

from __future__ import annotations

from pathlib import Path

from hubtasks.config.jsonnet import is_jsonnet
from hubtasks.config.model import RepoConfig
from hubtasks.config.yamlfiles import ConfigError, parse_yaml, read_text
from hubtasks.secrets import has_sops_metadata, is_secret_path, is_sops_encrypted


def values_problems(config: RepoConfig) -> list[str]:
    """One message per bad values file (each file once), naming it."""
    problems: list[str] = []
    seen: set[str] = set()
    for name, cluster in config.clusters.items():
        for hub in [None, *(h.name for h in cluster.hubs)]:
            if hub is None and cluster.support is None:
                continue
            for rel in config.release_values(name, hub):
                if rel not in seen:
                    seen.add(rel)
                    problems += values_file_problems(config.root, rel)
    return problems


def values_file_problems(root: Path, rel: str) -> list[str]:
    """Why one values file can't be deployed as it is (a missing file is load's concern).

    Each file is read and parsed once: sops' output is YAML (or JSON, which YAML reads)
    with its metadata at the top level.
    """
    plain_secret = [f"{rel}: not sops-encrypted, but its name says it holds secrets: encrypt "
                    f"it with `sops --encrypt --in-place {rel}`"]
    if is_jsonnet(rel):
        path = root / rel
        secret = is_secret_path(rel) and path.is_file()
        return plain_secret if secret and not is_sops_encrypted(path) else []
    try:
        doc = parse_yaml(read_text(root, rel), rel)
    except ConfigError as err:
        if not (root / rel).is_file():
            return []
        return [] if is_sops_encrypted(root / rel) else list(err.problems)
    return plain_secret if is_secret_path(rel) and not has_sops_metadata(doc) else []


def check_values(config: RepoConfig) -> None:
    """Raise a ConfigError listing every bad values file."""
    problems = values_problems(config)
    if problems:
        raise ConfigError(problems)
