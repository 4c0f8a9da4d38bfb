"""What the per-release Lease costs a job: take + release through kubectl on a local cluster.

Prints the median seconds per take+release (the renewal thread runs beside helm and adds no
wall time). Multiply by a cluster's releases to get its cost; jobs run in parallel, so the
makespan grows by about one take+release per job chain, not per job.
`compare` is the same cost measured in whole deploys (bench/deploy_makespan.py's real case):
runs with Leases interleaved with `--no-lock` runs on the same clusters.

    .venv/bin/python bench/lease_cost.py [ROUNDS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hubtasks.binaries import find_kubectl
from hubtasks.deploying import lease
from hubtasks.deploying.identity import run_identity
from hubtasks.dev.localk8s import LocalClusters
from hubtasks.model import HubtasksError, Job
from hubtasks.options import environment

Deploy = Callable[[bool], tuple[float, list[float]]]  # lock? -> (wall, job durations)


def main(rounds: int) -> None:
    env = environment()
    with tempfile.TemporaryDirectory() as folder:
        clusters = LocalClusters(["bench"], Path(folder) / "clusters")
        try:
            clusters.start()
            clusters.write_kubeconfigs(Path(folder) / "kc")
            kubeconfig = Path(folder) / "kc/bench.yaml"
            target = lease.Target(kubectl=find_kubectl(env), kubeconfig=kubeconfig,
                                  context=None, cluster="bench", release="hub", env=env)
            me, times = run_identity(env), list[float]()
            for _ in range(rounds):
                clock = time.monotonic()
                ours = lease.acquire(target, me, timeout=10, cancel=threading.Event(),
                                     note=lambda _: None)
                lease.release(target, me, ours)
                times.append(time.monotonic() - clock)
        finally:
            clusters.stop()
    print(f"lease take+release: median {statistics.median(times):.3f}s, "
          f"max {max(times):.3f}s over {rounds} rounds (per job; 3 kubectl calls)")


def compare(deploy: Deploy, jobs: Sequence[Job], *, repeat: int) -> str:
    """The Lease's cost per job, per cluster and on the makespan, from `repeat` deploys
    with Leases interleaved with `repeat` without (--no-lock), in this one session."""
    try:
        find_kubectl(environment())
    except HubtasksError as err:
        return f"lease cost: skipped ({err})"
    runs: dict[bool, list[tuple[float, list[float]]]] = {True: [], False: []}
    for _ in range(repeat):
        for lock in (False, True):
            runs[lock].append(deploy(lock))
    wall = {lock: statistics.median(w for w, _ in rs) for lock, rs in runs.items()}
    job = {lock: statistics.mean(d for _, ds in rs for d in ds) for lock, rs in runs.items()}
    clusters = len({j.cluster for j in jobs})
    added = job[True] - job[False]
    return (f"lease cost (pipelined, a Lease per release vs --no-lock, {repeat} runs each, "
            f"interleaved): +{1000 * added:.0f}ms per job = +{added * len(jobs) / clusters:.2f}s "
            f"of job time per cluster ({len(jobs) // clusters} releases); makespan "
            f"{wall[True]:.2f}s vs {wall[False]:.2f}s = x{wall[True] / wall[False]:.2f}, "
            f"+{(wall[True] - wall[False]) / clusters:.2f}s per cluster")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
