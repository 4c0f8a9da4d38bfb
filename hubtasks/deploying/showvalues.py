"""`hubtasks values`: the documents a release gets, in order, with sources, secrets redacted.

`--merged` folds them the way helm merges `--values` files: mappings deep-merged, a later
document winning, lists (and any non-mapping) replaced whole, a `null` deleting the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hubtasks.binaries import find_sops
from hubtasks.config.load import load_config
from hubtasks.config.yamlfiles import ConfigError, parse_yaml
from hubtasks.deploying.documents import ValuesDocument, release_documents
from hubtasks.deploying.values import needs_sops
from hubtasks.model import HubtasksError, Job, Stage
from hubtasks.secrets import redacted_leaves


def helm_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """One `--values` document over another, as helm does (null deletes the key)."""
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = helm_merge(out[key], value)
        else:
            out[key] = value
    return out


def _shown(doc: ValuesDocument, value: Any) -> Any:
    return redacted_leaves(value) if doc.secret else value


def _parsed(doc: ValuesDocument) -> Any:
    """A document's value, read as the plan reads values files (a key named twice is an
    error); a HubtasksError naming its source when it can't be read. A decrypted one's
    YAML problem is not quoted (only where it is): it may show a value."""
    try:
        text = doc.path.read_text(encoding="utf-8")
        return parse_yaml(text, doc.source)
    except UnicodeDecodeError as err:
        raise HubtasksError(f"{doc.source}: not valid UTF-8 (byte {err.start}): save it as "
                            "UTF-8") from None
    except RecursionError:
        raise HubtasksError(f"{doc.source}: nested too deeply to read") from None
    except ConfigError as err:
        if not doc.secret:
            raise
        where = err.problems[0].split(": invalid YAML", 1)[0] if err.problems else doc.source
        raise HubtasksError(f"{where}: invalid YAML (decrypted: the problem is not shown, it "
                            "may quote a value)") from None


def show_values(repo: Path, cluster: str, hub: str | None, *, merged: bool,
                env: Mapping[str, str]) -> str:
    """The text `hubtasks values` prints (secrets already redacted)."""
    config = load_config(repo, clusters=[cluster])
    job = Job(stage=Stage.PROD, cluster=cluster, hub=hub,
              chart=config.release_chart(cluster, hub))
    sops = find_sops(env) if needs_sops(config, [job]) else None
    with release_documents(config, job, sops=sops, env=env) as (docs, redactor):
        # A decrypted document's every value is replaced before it is dumped: text redaction
        # misses what yaml.safe_dump makes of a value (escaped, folded, 0777 -> 511) and the
        # values too short to redact anywhere. The redactor still runs over the text, for
        # secrets other documents hold (a domain read from an encrypted file, in jsonnet).
        parsed = [(d, _shown(d, _parsed(d) or {})) for d in docs]
    if merged:
        total: dict[str, Any] = {}
        for _doc, value in parsed:
            if isinstance(value, Mapping):
                total = helm_merge(total, value)
        return redactor(yaml.safe_dump(total, sort_keys=False))
    parts = [f"# {i}. {d.describe()}\n{redactor(yaml.safe_dump(v, sort_keys=False))}"
             for i, (d, v) in enumerate(parsed, 1)]
    return "---\n".join(parts) if parts else "# no values documents\n"

