"""What the per-release Lease costs a job: take + release through kubectl on a local cluster.

Prints the median seconds per take+release (the renewal thread runs beside helm and adds no
wall time). Multiply by a cluster's releases to get its cost; jobs run in parallel, so the
makespan grows by about one take+release per job chain, not per job.

    .venv/bin/python bench/lease_cost.py [ROUNDS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from hubtasks.binaries import find_kubectl
from hubtasks.deploying import lease
from hubtasks.deploying.identity import run_identity
from hubtasks.dev.localk8s import LocalClusters
from hubtasks.options import environment


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
                lease.acquire(target, me, timeout=10, cancel=threading.Event(),
                              note=lambda _: None)
                lease.release(target, me)
                times.append(time.monotonic() - clock)
        finally:
            clusters.stop()
    print(f"lease take+release: median {statistics.median(times):.3f}s, "
          f"max {max(times):.3f}s over {rounds} rounds (per job; ~4 kubectl calls)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
