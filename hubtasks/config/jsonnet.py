"""Jsonnet values documents: a release's context as external variables, rendered in process.

2i2c's deployer (src/deployer/utils/jsonnet.py `render_jsonnet`, called from
infra_components/cluster.py `Cluster.render_jsonnet`) runs `jsonnet --jpath <file's folder>
--ext-str VARS_2I2C_...` on the file's absolute path *without resolving symlinks*: its
basehub values.jsonnet reads `std.thisFile` to tell whether it is evaluated as daskhub's
(a symlink to it). We do the same through the `jsonnet` bindings; a checkout that turned the
symlink into a one-line text file naming the target (git without symlink support) reads
the target's text, still evaluated under the link's own path.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hubtasks.config.jsonnetdeps import imported_digests
from hubtasks.config.model import Cluster, RepoConfig
from hubtasks.model import HubtasksError

JSONNET_SUFFIX = ".jsonnet"
_LINK_MAX = 256  # a text "symlink" is one short line
STATIC_ERROR = "STATIC ERROR:"  # the evaluator's word for a parse error (context-free)


def is_jsonnet(path: Path | str) -> bool:
    return str(path).endswith(JSONNET_SUFFIX)


def cluster_context(cluster: Cluster, prefix: str) -> dict[str, str]:
    """The cluster part of the ext vars, as `Cluster.render_jsonnet` builds them.

    CLUSTER_NAME: aws.clusterName on aws, else the cluster's name. ACCOUNT_ID: aws.account,
    gcp.project, else Python's None passed through an f-string: the string "None".
    REGION (aws.region, gcp.zone) only when set, as the deployer passes it.
    """
    doc, provider = cluster.doc, cluster.provider
    block: Mapping[str, Any] = doc.get(provider) or {} if provider in ("aws", "gcp") else {}
    name = block.get("clusterName", cluster.name) if provider == "aws" else cluster.name
    account = {"aws": block.get("account"), "gcp": block.get("project")}.get(provider)
    region = {"aws": block.get("region"), "gcp": block.get("zone")}.get(provider)
    out = {f"{prefix}CLUSTER_NAME": str(name), f"{prefix}PROVIDER": str(provider),
           f"{prefix}ACCOUNT_ID": str(account)}
    if region:
        out[f"{prefix}REGION"] = str(region)
    return out


def release_context(config: RepoConfig, cluster: str, hub: str | None,
                    domain: str | None) -> dict[str, str]:
    """Every ext var of one release: the cluster's, plus HUB_NAME and HUB_DOMAIN for hubs."""
    prefix = config.settings.jsonnet_ext_var_prefix
    out = cluster_context(config.cluster(cluster), prefix)
    if hub is not None:
        out[f"{prefix}HUB_NAME"] = hub
        if domain is not None:
            out[f"{prefix}HUB_DOMAIN"] = domain
    return out


def _text_link(path: Path, text: str) -> Path | None:
    """The target a text "symlink" names (one short line naming a jsonnet file), else None."""
    line = text.strip()
    if len(line) > _LINK_MAX or "\n" in line or not line or not is_jsonnet(line):
        return None
    target = path.parent / line
    return target if target.is_file() else None


def jsonnet_source(path: Path) -> str:
    """The text to evaluate: the file's, or its target's when it is a text "symlink"."""
    text = path.read_text(encoding="utf-8")
    target = None if path.is_symlink() else _text_link(path, text)
    return target.read_text(encoding="utf-8") if target else text


def source_file(path: Path) -> Path:
    """The file whose text is evaluated: a symlink's or a text "symlink"'s target, else `path`
    (a release input when it lies elsewhere: editing it changes what renders)."""
    if path.is_symlink():
        return Path(os.path.realpath(path))
    target = _text_link(path, path.read_text(encoding="utf-8", errors="replace"))
    return Path(os.path.realpath(target)) if target else path


def _error(path: Path, rel: str, err: Exception) -> HubtasksError:
    """The evaluator's message, first lines, with the checkout's folder cut from the paths it
    names (`helm-charts/x/values.jsonnet:3:1`, the same on every machine)."""
    text = str(err).strip()
    absolute = str(path)
    if absolute.endswith(rel) and len(absolute) > len(rel):
        text = text.replace(absolute[:-len(rel)], "")
    first = text.splitlines()
    return HubtasksError(f"{rel}: jsonnet render failed: {first[0] if first else err}"
                         + ("\n" + "\n".join(first[1:6]) if len(first) > 1 else ""))


class JsonnetRenderer:
    """Renders jsonnet files to JSON text, each (file, source, imports, context) once per run.

    Thread-safe: workers share one renderer; a render runs outside the lock (the bindings
    release nothing global), a second request for the same key waits for the first.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[str, str] = {}
        self._busy: dict[str, threading.Lock] = {}
        self.renders = 0
        self.seconds = 0.0

    def render(self, path: Path, context: Mapping[str, str], *, rel: str,
               source: str | None = None) -> str:
        """The JSON `path` evaluates to (`source` overrides its text, e.g. once decrypted).

        `path` is absolute and unresolved (std.thisFile); `rel` names it in errors.
        """
        text = jsonnet_source(path) if source is None else source
        key = hashlib.sha256(json.dumps([str(path), text, sorted(context.items()),
                                         imported_digests(path, text)]).encode()).hexdigest()
        with self._lock:
            if key in self._done:
                return self._done[key]
            gate = self._busy.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._done:
                    return self._done[key]
            out = self._evaluate(path, text, context, rel)
            with self._lock:
                self._done[key] = out
                self._busy.pop(key, None)
        return out

    def _evaluate(self, path: Path, text: str, context: Mapping[str, str], rel: str) -> str:
        import _jsonnet  # ~10 ms: only a run that renders pays for it

        clock = time.perf_counter()
        try:
            out: str = _jsonnet.evaluate_snippet(str(path), text, jpathdir=[str(path.parent)],
                                                 ext_vars=dict(context))
        except RuntimeError as err:
            raise _error(path, rel, err) from None
        finally:
            with self._lock:
                self.renders += 1
                self.seconds += time.perf_counter() - clock
        return out


# One renderer per process: renders are keyed by file, text, imported files and context, so
# sharing is safe.
RENDERER = JsonnetRenderer()
