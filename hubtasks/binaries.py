"""Which helm, sops and kubectl to run: found, never downloaded.

Each tool is looked up in this order: an explicit path (`--helm`), its environment variable
(`HUBTASKS_HELM`, `HUBTASKS_SOPS`, `HUBTASKS_KUBECTL`), `PATH`, then the cache that
`hubtasks install-tools` fills (`$HUBTASKS_CACHE`, `$XDG_CACHE_HOME/hubtasks` or
`~/.cache/hubtasks`). Deploys never download anything: a missing tool fails at once with a
hint to run `hubtasks install-tools`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hubtasks.cachedir import cache_dir as cache_dir
from hubtasks.helm import HelmInfo, probe
from hubtasks.model import HubtasksError

Env = Mapping[str, str]
INSTALL_HINT = "run `hubtasks install-tools` (or `./dev setup` in a hubtasks checkout)"


@dataclass(frozen=True, kw_only=True)
class Tool:
    """A tool hubtasks runs: its name, the variable that forces a path, its cache folders."""

    name: str
    variable: str
    cached: tuple[str, ...]  # cache folder labels, most preferred first


HELM_CACHE = {4: "helm-v4.1.4", 3: "helm-v3.17.3"}
HELM = Tool(name="helm", variable="HUBTASKS_HELM", cached=tuple(HELM_CACHE.values()))
SOPS = Tool(name="sops", variable="HUBTASKS_SOPS", cached=("sops-3.11.0",))
KUBECTL = Tool(name="kubectl", variable="HUBTASKS_KUBECTL", cached=("kubectl-v1.35",))


class ToolMissing(HubtasksError):
    """A tool hubtasks needs is not installed."""


def cached_path(tool: Tool, label: str, env: Env) -> Path:
    """Where `install-tools` puts one version of a tool."""
    return cache_dir(env) / "tools" / label / tool.name


def which(name: str, env: Env) -> Path | None:
    """`name` on the PATH of `env`, or None."""
    found = shutil.which(name, path=env.get("PATH", os.defpath))
    return Path(found) if found else None


def candidates(tool: Tool, env: Env, explicit: Path | None = None) -> list[Path]:
    """Every place the tool may be, in lookup order, that holds an executable."""
    forced = env.get(tool.variable)
    if explicit is not None or forced:
        chosen = explicit or Path(forced or "")
        if not os.access(chosen, os.X_OK) or not chosen.is_file():
            source = "--" + tool.name if explicit is not None else tool.variable
            raise ToolMissing(f"{source}={chosen} is not an executable file; fix the path")
        return [chosen]
    found = [which(tool.name, env)]
    found += [cached_path(tool, label, env) for label in tool.cached]
    return [p for p in found if p is not None and os.access(p, os.X_OK)]


def find(tool: Tool, env: Env, explicit: Path | None = None) -> Path:
    """The tool to run, or ToolMissing with the install hint."""
    found = candidates(tool, env, explicit)
    if not found:
        raise ToolMissing(f"{tool.name} is not installed (not on PATH, no {tool.variable}, "
                          f"not in {cache_dir(env) / 'tools'}): {INSTALL_HINT}")
    return found[0]


def find_helm(env: Env, *, explicit: Path | None = None, major: int | None = None) -> HelmInfo:
    """The helm to run (of `major` when given), probed once for its version."""
    found = []
    for path in candidates(HELM, env, explicit):
        info = probe(path, env=env)
        if major is None or info.major == major:
            return info
        found.append(info)
    wanted = f"helm {major}" if major else "helm"
    seen = ", ".join(f"{h.path} ({h.version})" for h in found) or "none"
    raise ToolMissing(f"{wanted} is not installed (found: {seen}): {INSTALL_HINT}")


def find_sops(env: Env, explicit: Path | None = None) -> Path:
    return find(SOPS, env, explicit)


def find_kubectl(env: Env, explicit: Path | None = None) -> Path:
    return find(KUBECTL, env, explicit)
