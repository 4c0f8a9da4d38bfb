"""check-config's values-file checks: every values file parses as YAML, and every file whose
name says `secret` is sops-encrypted. Both would otherwise fail only at deploy time, after a
canary already ran."""

from __future__ import annotations

from hubtasks.config.model import RepoConfig
from hubtasks.config.yamlfiles import ConfigError, read_yaml
from hubtasks.secrets import is_secret_path, is_sops_encrypted


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
                    problems += _file_problems(config, rel)
    return problems


def _file_problems(config: RepoConfig, rel: str) -> list[str]:
    if is_sops_encrypted(config.root / rel):
        return []
    if is_secret_path(rel):
        return [f"{rel}: not sops-encrypted, but its name says it holds secrets: encrypt it "
                f"with `sops --encrypt --in-place {rel}`"]
    try:
        read_yaml(config.root, rel)
    except ConfigError as err:
        return list(err.problems)
    return []


def check_values(config: RepoConfig) -> None:
    """Raise a ConfigError listing every bad values file."""
    problems = values_problems(config)
    if problems:
        raise ConfigError(problems)
