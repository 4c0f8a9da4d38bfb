"""helm's JSON (list, history) is read from stdout alone and whole, with a fake helm that
prints a warning on stderr and a long list (real helm can't be made to warn on demand)."""

from __future__ import annotations

import sys
from pathlib import Path

from test_tools import write_exe

from hubtasks.deploying import repair
from hubtasks.deploying.deployed import ClusterAccess, read_cluster
from hubtasks.helm import ReleaseSpec, probe

FAKE_HELM = """#!{python}
import json, sys
args = sys.argv[1:]
if args[:2] == ["version", "--short"]:
    print("v3.17.3+gfake")
    sys.exit(0)
print("WARNING: Kubernetes configuration file is group-readable. This is insecure.",
      file=sys.stderr)
if args[0] == "list":
    print(json.dumps([{{"name": f"hub{{i}}", "namespace": f"hub{{i}}", "revision": "1",
                       "status": "deployed", "updated": "2026-01-01 00:00:00 +0000 UTC",
                       "chart": "basehub-0.1.0", "app_version": "x" * 40}}
                      for i in range(300)]))
elif args[0] == "history":
    print(json.dumps([{{"revision": 2, "status": "deployed", "updated": "now",
                       "description": "hubtasks head=abc digest=d1"}}]))
"""


def test_a_long_release_list_and_helms_warnings_are_read(tmp_path: Path) -> None:
    """helm's JSON is read from stdout alone and whole: a warning on stderr, or a list
    longer than the output tail kept for messages, once made the cluster unreachable."""
    helm = write_exe(tmp_path / "helm", FAKE_HELM.format(python=sys.executable))
    access = ClusterAccess(helm=probe(helm, env={}), args=("--kubeconfig", "/k"), env={})
    found = read_cluster(access, "c")
    assert not isinstance(found, str), found
    assert len(found) == 300 and found[299].release == "hub299"
    assert found[0].status == "deployed" and found[0].revision == 2
    assert found[0].description == "hubtasks head=abc digest=d1"


def test_a_stuck_release_is_found_through_helms_warnings(tmp_path: Path) -> None:
    helm = write_exe(tmp_path / "helm", FAKE_HELM.format(python=sys.executable).replace(
        '"status": "deployed", "updated": "now"', '"status": "pending-upgrade", "updated": "now"'))
    spec = ReleaseSpec(release="hub1", namespace="hub1", chart_dir=tmp_path,
                       kubeconfig=tmp_path / "k")
    stuck = repair.find_stuck(probe(helm, env={}), spec, {}, "here")
    assert stuck is not None and stuck.status == "pending-upgrade"
