"""How planning scales with hubs and changed files.

Builds synthetic config repos of 30x6, 300x20 and 1000x20 (clusters x hubs) in a temp
folder, then times, in one run: loading + validating the config, and the pure planner
(`build_plan`) with 1 and with 5,000 changed files. Prints absolute times and growth
ratios between sizes (time ratio / size ratio: 1.0 means linear). Target: 20,000 hubs
planned in under 2 s, time growing linearly in hubs + changed files.

Then, end to end through the CLI (bench/plan_cli.py): `hubtasks plan` as a subprocess
against a floor subprocess ("start Python, parse every cluster.yaml with CLoader, run the
git diff"), on a git copy of the 2i2c fixture with one changed file (target <= 3x) and on
1000x20 synthetic hubs with 5,000 changed values files (target <= 2x).

usage: python bench/plan_scale.py [--repeat N] [--skip-cli]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from hubtasks.config.load import load_config
from hubtasks.config.model import RepoConfig
from hubtasks.planning.changes import ChangedFile
from hubtasks.planning.planner import PlanRequest, build_plan

SIZES = [(30, 6), (300, 20), (1000, 20)]
CHANGED = [1, 5000]


def write_repo(root: Path, clusters: int, hubs: int) -> None:
    """A repo in 2i2c's layout: shared + per-hub values files, three local charts."""
    for name, deps in (("basehub", []), ("daskhub", ["basehub"]), ("support", [])):
        folder = root / "helm-charts" / name
        (folder / "templates").mkdir(parents=True)
        doc = {"apiVersion": "v2", "name": name, "version": "0.1.0",
               "dependencies": [{"name": d, "version": "0.1.0", "repository": f"file://../{d}"}
                                for d in deps]}
        (folder / "Chart.yaml").write_text(yaml.safe_dump(doc))
        for t in range(20):
            (folder / "templates" / f"t{t}.yaml").write_text("kind: ConfigMap\n")
    for c in range(clusters):
        folder = root / "config/clusters" / f"cluster-{c:04d}"
        folder.mkdir(parents=True)
        (folder / "common.values.yaml").write_text("a: 1\n")
        (folder / "support.values.yaml").write_text("a: 1\n")
        entries = []
        for h in range(hubs):
            name = "staging" if h == 0 else f"hub-{h:03d}"
            (folder / f"{name}.values.yaml").write_text("a: 1\n")
            entries.append({"name": name, "display_name": name, "domain": f"{name}.example.org",
                            "helm_chart": "daskhub" if h % 3 == 0 else "basehub",
                            "helm_chart_values_files": ["common.values.yaml",
                                                        f"{name}.values.yaml"]})
        cluster: dict[str, Any] = {"name": folder.name, "provider": "local",
                               "support": {"helm_chart_values_files": ["support.values.yaml"]},
                               "hubs": entries}
        (folder / "cluster.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))


def changed(config: RepoConfig, count: int, seed: int = 1) -> tuple[ChangedFile, ...]:
    """`count` changed files: mostly hub values files, some chart files, some unrelated."""
    rng = random.Random(seed)
    values = sorted({f for h in config.hubs() for f in h.values_files})
    picks = [ChangedFile(path=p) for p in rng.sample(values, min(count, len(values)))]
    extra = [ChangedFile(path=f"docs/page-{i}.md", status="A") for i in range(count)]
    files = (picks + extra)[:count]
    if count > 1:
        files[-1] = ChangedFile(path="helm-charts/support/templates/t1.yaml")
    return tuple(files)


def best_of(repeat: int, func: Callable[[], object]) -> float:
    """Median wall time of `repeat` runs (the median shrugs off a noisy neighbour)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-cli", action="store_true", help="skip the CLI ratios")
    args = parser.parse_args()
    rows: list[tuple[int, int, int, float, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="hubtasks-bench-") as tmp:
        for clusters, hubs in SIZES:
            root = Path(tmp) / f"{clusters}x{hubs}"
            write_repo(root, clusters, hubs)
            load = best_of(max(1, args.repeat // 2), functools.partial(load_config, root))
            config = load_config(root)
            for count in CHANGED:
                request = PlanRequest(changes=changed(config, count))
                plan_time = best_of(args.repeat, functools.partial(build_plan, config, request))
                jobs = len(build_plan(config, request).jobs)
                rows.append((clusters, hubs, count, load, plan_time, jobs))
    report(rows)
    if not args.skip_cli:
        from plan_cli import cli_ratios

        cli_ratios(args.repeat, write_repo)


def report(rows: list[tuple[int, int, int, float, float, int]]) -> None:
    print(f"{'size':>10} {'changed':>8} {'jobs':>7} {'load+validate':>14} {'plan':>9} "
          f"{'total':>9} {'us/(hub+file)':>14}")
    for clusters, hubs, count, load, plan, jobs in rows:
        units = clusters * hubs + count
        print(f"{clusters:>5}x{hubs:<4} {count:>8} {jobs:>7} {load:>13.3f}s {plan:>8.3f}s "
              f"{load + plan:>8.3f}s {1e6 * plan / units:>14.2f}")
    print("\ngrowth between sizes (time ratio / (hubs+changed) ratio; 1.0 = linear):")
    for count in CHANGED:
        sub = [r for r in rows if r[2] == count]
        for a, b in itertools.pairwise(sub):
            growth = (b[0] * b[1] + count) / (a[0] * a[1] + count)
            print(f"  {a[0]}x{a[1]} -> {b[0]}x{b[1]}, {count} changed: plan x{b[4] / a[4]:.1f} "
                  f"for x{growth:.1f} units = {b[4] / a[4] / growth:.2f}; load+plan "
                  f"{(b[3] + b[4]) / (a[3] + a[4]) / growth:.2f}")
    big = [r for r in rows if r[0] * r[1] >= 20000]
    for r in big:
        verdict = "OK" if r[3] + r[4] < 2 else "OVER"
        print(f"target 20,000 hubs < 2 s ({r[2]} changed): load+plan {r[3] + r[4]:.2f}s {verdict}")


if __name__ == "__main__":
    main()
