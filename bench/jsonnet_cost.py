"""What rendering jsonnet values costs a deploy, per release, on 2i2c's real repo.

Copies the 2i2c fixture (../shared/fixtures/2i2c-infrastructure; symlinks kept) with the
`hubtasks.yaml` README.md documents for 2i2c repos, then renders every release's jsonnet
documents (chart values first, then its values files) through the renderer a deploy uses
(`hubtasks.config.jsonnet.JsonnetRenderer`) with the release's context:
- misses: a fresh renderer, each release once, one at a time (what one deploy run pays);
- hits: the same renderer again, each release once (the cache: file + text + context);
- misses with 8 threads, as a deploy's workers render (x cores when the evaluator
  runs beside other threads, x1 if it held the GIL).
Each pass is repeated `--repeat` times (fresh renderers for misses); the best is printed.
Domains come from cluster.yaml: the fixture's `domain_override_file`s are encrypted for 2i2c's
cloud keys (a real run decrypts them first, which costs a sops call, not a render). It prints
per-release and per-render times, the hit/miss ratio, and the share of a helm upgrade
(`--helm-seconds`, default 0.56 s: the median upgrade + check of bench/deploy_makespan.py's
real-helm run). When the `gojsonnet` bindings are installed too, it renders the same documents
with them (no cache) and says whether every output equals the `jsonnet` bindings'. Nothing
asserts timings.

usage: python bench/jsonnet_cost.py [--fixture PATH] [--repeat 3] [--helm-seconds 0.56]
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubtasks.config.jsonnet import (
    JsonnetRenderer,
    is_jsonnet,
    jsonnet_source,
    release_context,
)
from hubtasks.config.load import load_config
from hubtasks.config.model import RepoConfig

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT.parent / "shared" / "fixtures" / "2i2c-infrastructure"
sys.path.insert(0, str(ROOT / "tests"))
from twoi2c import documented_settings  # noqa: E402  (the README's 2i2c hubtasks.yaml)


@dataclass(frozen=True)
class Release:
    """One release's jsonnet work: its documents (absolute, unresolved) and its context."""

    name: str
    files: tuple[Path, ...]
    context: dict[str, str]


def releases(config: RepoConfig) -> list[Release]:
    out = []
    for cluster in config.clusters.values():
        hubs = [None, *(h.name for h in cluster.hubs)] if cluster.support else \
            [h.name for h in cluster.hubs]
        for hub in hubs:
            domain = cluster.hub(hub).domain if hub else None
            files = tuple(config.root / rel for rel in config.release_documents(cluster.name, hub)
                          if is_jsonnet(rel))
            out.append(Release(f"{cluster.name}/{hub or 'support'}", files,
                               release_context(config, cluster.name, hub, domain)))
    return out


def render_all(renderer: JsonnetRenderer, work: list[Release], threads: int = 1) -> float:
    """Seconds to render every release's documents, `threads` releases at a time."""
    def one(release: Release) -> None:
        for path in release.files:
            renderer.render(path, release.context, rel=path.name)

    clock = time.perf_counter()
    if threads == 1:
        for release in work:
            one(release)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, work))
    return time.perf_counter() - clock


def best(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", type=Path, default=FIXTURE)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--helm-seconds", type=float, default=0.56)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        repo = Path(folder) / "infrastructure"
        shutil.copytree(args.fixture, repo, symlinks=True)
        for path in [repo, *repo.rglob("*")]:  # the fixture is read-only; the copy must go
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        (repo / "hubtasks.yaml").write_text(documented_settings(), encoding="utf-8")
        work = releases(load_config(repo))
        report(work, args.repeat, args.helm_seconds)


def report(work: list[Release], repeat: int, helm_seconds: float) -> None:
    documents = sum(len(r.files) for r in work)
    probe = JsonnetRenderer()
    render_all(probe, work)  # warms the OS cache; counts the distinct renders; then all hits
    miss = best(repeat, lambda: render_all(JsonnetRenderer(), work))
    hit = best(repeat, lambda: render_all(probe, work))
    threaded = best(repeat, lambda: render_all(JsonnetRenderer(), work, threads=8))
    n = len(work)
    print(f"{n} releases, {documents} jsonnet documents, {probe.renders} distinct renders "
          f"(file + context); best of {repeat}")
    print(f"misses (one run):  {miss:7.3f}s in all, {miss / n * 1e3:7.2f} ms/release, "
          f"{miss / probe.renders * 1e3:6.2f} ms/render")
    print(f"hits (cached):     {hit:7.3f}s in all, {hit / n * 1e6:7.1f} us/release")
    print(f"8 threads, misses: {threaded:7.3f}s in all (x{miss / threaded:.2f} of one thread)")
    print(f"a miss costs x{miss / hit:.0f} a hit; a release's renders are "
          f"{miss / n / helm_seconds:.1%} of a {helm_seconds:.2f}s helm upgrade")
    try:
        other = importlib.import_module("_gojsonnet")
    except ImportError:
        return
    seconds, same = compare(other, work, probe)
    print(f"gojsonnet: {seconds:.3f}s in all, {seconds / probe.renders * 1e3:.2f} ms/render "
          f"(x{miss / seconds:.1f} faster); outputs equal to jsonnet's: {same}")


def compare(module: Any, work: list[Release], cached: JsonnetRenderer) -> tuple[float, bool]:
    """Seconds to render everything with another binding, and whether outputs agree."""
    same, clock = True, time.perf_counter()
    for release in work:
        for path in release.files:
            out = module.evaluate_snippet(str(path), jsonnet_source(path),
                                          jpathdir=[str(path.parent)], ext_vars=release.context)
            same &= json.loads(out) == json.loads(cached.render(path, release.context,
                                                                rel=path.name))
    return time.perf_counter() - clock, same


if __name__ == "__main__":
    main()
