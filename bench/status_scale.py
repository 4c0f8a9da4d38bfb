"""`status` over many clusters: is its time bounded by the slowest cluster, not the sum?

Writes a synthetic config repo (deploy_makespan's writer: N clusters x H hubs + support) and
reads its deployed state through the real code, `hubtasks.deploying.converge.status`: one
`helm list` per cluster and one `helm history` per release, each a real subprocess through
run_helm, clusters in parallel under --jobs. helm is an `sh` stand-in that reads a per-cluster
delay from the kubeconfig it is given and sleeps that long for `list` (a tenth of it for each
`history`), so clusters are unequal: delays spread from 0.1 s to --slowest.

Printed: wall time, the slowest cluster's own time (list + its histories, run alone), the sum
over clusters (what reading them one after another costs), and the ratios. Nothing asserts.

usage: python bench/status_scale.py [--clusters 40 --hubs 3 --jobs 8 --slowest 1.0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _makespan_repo import KUBECONFIG_DIR, write_repo

from hubtasks.deploying.converge import status
from hubtasks.options import DeployOptions, Limits, RunOptions, environment

FAKE_HELM = r"""#!/bin/sh
# helm stand-in: `version`, `list` (sleeps the kubeconfig's delay) and `history`.
kubeconfig=""
prev=""
for arg in "$@"; do
  [ "$prev" = "--kubeconfig" ] && kubeconfig="$arg"
  prev="$arg"
done
delay=$(sed -n 's/^# delay: //p' "$kubeconfig" 2>/dev/null)
case "$1" in
  version) echo "v3.17.3+gfake" ;;
  list)
    sleep "$delay"
    sed -n 's/^# releases: //p' "$kubeconfig" ;;
  history)
    sleep "$(echo "$delay" | awk '{print $1 / 10}')"
    echo '[{"revision": 1, "status": "deployed", "updated": "2026-01-01",
           "description": "hubtasks head=abc digest=0000"}]' ;;
  *) echo "fake helm: $1 not supported" >&2; exit 1 ;;
esac
"""


def delays(clusters: list[str], slowest: float) -> dict[str, float]:
    """From 0.1 s up to `slowest`, spread evenly (the last cluster is the slowest)."""
    step = (slowest - 0.1) / max(1, len(clusters) - 1)
    return {c: round(0.1 + i * step, 3) for i, c in enumerate(clusters)}


def write_kubeconfigs(root: Path, clusters: list[str], hubs: int,
                      delay: dict[str, float]) -> None:
    names = ["support", "staging", *(f"hub-{i}" for i in range(1, hubs))]
    listed = ", ".join(f'{{"name": "{n}", "namespace": "{n}", "revision": "1", '
                       f'"status": "deployed", "updated": "2026-01-01"}}' for n in names)
    for cluster in clusters:
        path = root / KUBECONFIG_DIR / f"{cluster}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# delay: {delay[cluster]}\n# releases: [{listed}]\n"
                        "apiVersion: v1\nkind: Config\n")


def options(root: Path, helm: Path, jobs: int) -> RunOptions:
    return RunOptions(repo=root, plan=root / "plan.json", results=root / "results.json",
                      deploy=DeployOptions(env=environment()), limits=Limits(jobs=jobs),
                      helm=helm)


def timed(opts: RunOptions, clusters: list[str]) -> tuple[float, int]:
    clock = time.monotonic()
    states = status(opts, clusters)
    return time.monotonic() - clock, len(states)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clusters", type=int, default=40)
    parser.add_argument("--hubs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--slowest", type=float, default=1.0)
    args = parser.parse_args()
    clusters = [f"c{i:03d}" for i in range(args.clusters)]
    with tempfile.TemporaryDirectory(prefix="status-bench-") as tmp:
        root = Path(tmp)
        write_repo(root, clusters, args.hubs, health_url=None)
        delay = delays(clusters, args.slowest)
        write_kubeconfigs(root, clusters, args.hubs, delay)
        helm = root / "helm"
        helm.write_text(FAKE_HELM)
        helm.chmod(0o755)
        opts = options(root, helm, args.jobs)
        slowest, _ = timed(opts, [clusters[-1]])
        wall, count = timed(opts, [])
        alone = options(root, helm, 1)
        summed, _ = timed(alone, [])
    print(f"status: {args.clusters} clusters, {count} releases, --jobs {args.jobs}")
    print(f"  wall time (parallel)      {wall:7.2f} s")
    print(f"  slowest cluster alone     {slowest:7.2f} s   wall/slowest = {wall / slowest:.2f}")
    print(f"  sum (--jobs 1)            {summed:7.2f} s   wall/sum     = {wall / summed:.2f}")
    print(f"  bound for --jobs {args.jobs}: max(slowest, sum/jobs) = "
          f"{max(slowest, summed / args.jobs):.2f} s")


if __name__ == "__main__":
    main()
