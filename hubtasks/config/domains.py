"""A hub's effective domain: cluster.yaml's `domain`, or its `domain_override_file`'s.

2i2c's `Hub.deploy` (src/deployer/infra_components/hub.py) decrypts the hub's
`domain_override_file` and replaces `spec["domain"]` with its `domain` before anything uses
it. This is the one place hubtasks does that: jsonnet values use it, the health check will.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from hubtasks.config.model import Hub, RepoConfig
from hubtasks.model import HubtasksError
from hubtasks.secrets import decrypt, needs_decrypting

DOMAIN_KEY = "domain"


def hub_domain(config: RepoConfig, hub: Hub, *, sops: Path | None,
               env: Mapping[str, str]) -> str:
    """The domain a hub is served on (its override file decrypted when encrypted)."""
    if hub.domain_override_file is None:
        return hub.domain
    rel = hub.domain_override_file
    path = config.root / rel
    raw = decrypt(path, sops=sops or Path("sops"), env=env) if needs_decrypting(path) \
        else path.read_bytes()
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise HubtasksError(f"{rel}: domain_override_file of hub {hub.name!r} on cluster "
                            f"{hub.cluster!r} is not YAML ({type(err).__name__})") from None
    domain = doc.get(DOMAIN_KEY) if isinstance(doc, dict) else None
    if not isinstance(domain, str) or not domain:
        raise HubtasksError(f"{rel}: domain_override_file of hub {hub.name!r} on cluster "
                            f"{hub.cluster!r} has no string key {DOMAIN_KEY!r}")
    return domain
