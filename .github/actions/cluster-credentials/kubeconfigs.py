"""Kubeconfigs for the clusters of one CI leg, driven by each cluster.yaml's provider.

    kubeconfigs.py providers CLUSTERS   write `gcp`, `aws`, `azure` (space-separated cluster
                                        names) and `aws-region` to $GITHUB_OUTPUT
    kubeconfigs.py write CLUSTERS       write <kubeconfig_dir>/<cluster>.yaml with the cloud CLI
                                        of each cluster (after the action's login steps)

CLUSTERS is one argument of space-separated names; `cluster/hub` ids are accepted (the hub
part is ignored), so a prod leg's job list can be passed as is. Clusters are loaded (and
validated) with hubtasks' own loader, so hubtasks.yaml's clusters_dir and kubeconfig_dir apply.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from hubtasks import proc
from hubtasks.config.load import load_config
from hubtasks.config.model import Cluster
from hubtasks.model import HubtasksError

CLOUDS = ("gcp", "aws", "azure")
CLI_TIMEOUT = 300.0


def cluster_names(arg: str) -> list[str]:
    """Unique cluster names, in order, from `a b c/hub`."""
    names = [item.split("/", 1)[0] for item in arg.split()]
    for name in names:
        if name in ("", ".", "..") or "\\" in name:
            raise HubtasksError(f"not a cluster name: {name!r}")
    return list(dict.fromkeys(names))


def kubeconfig_argv(cluster: Cluster, target: Path) -> list[str] | None:
    """The CLI call that writes a cluster's kubeconfig to `target` (None: nothing to do)."""
    provider, block = cluster.provider, cluster.doc.get(cluster.provider) or {}
    if provider == "gcp":
        return ["gcloud", "container", "clusters", "get-credentials", block["cluster"],
                "--project", block["project"], "--location", block["zone"]]
    if provider == "aws":
        return ["aws", "eks", "update-kubeconfig", "--name", block["clusterName"],
                "--region", block["region"], "--kubeconfig", str(target)]
    if provider == "azure":
        return ["az", "aks", "get-credentials", "--name", block["cluster"], "--resource-group",
                block["resource_group"], "--file", str(target), "--overwrite-existing"]
    return None  # kubeconfig: the file named in cluster.yaml; local: written by the test setup


def write_kubeconfig(cluster: Cluster, target: Path) -> None:
    """Run the cluster's CLI call; kubeconfig and local clusters need none."""
    argv = kubeconfig_argv(cluster, target)
    if argv is None:
        print(f"{cluster.name}: provider {cluster.provider}: no credentials to fetch")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"{cluster.name}: {shlex.join(argv)}", flush=True)
    # gcloud has no output-file flag; KUBECONFIG is set for that child process only.
    env = {**os.environ, "KUBECONFIG": str(target)}
    proc.checked(proc.run(argv, env=env, timeout=CLI_TIMEOUT), f"{cluster.name}: {argv[0]}")
    if cluster.provider == "azure" and shutil.which("kubelogin"):
        # AKS clusters with Entra ID auth need the az CLI login converted for kubectl/helm.
        convert = ["kubelogin", "convert-kubeconfig", "-l", "azurecli", "--kubeconfig",
                   str(target)]
        proc.checked(proc.run(convert, env=os.environ, timeout=CLI_TIMEOUT),
                     f"{cluster.name}: kubelogin")
    if not target.is_file():
        raise HubtasksError(f"{cluster.name}: {argv[0]} wrote no kubeconfig to {target}")
    target.chmod(0o600)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("providers", "write"):
        print(__doc__, file=sys.stderr)
        return 2
    names = cluster_names(argv[2])
    config = load_config(Path.cwd(), clusters=names)
    clusters = [config.cluster(name) for name in names]
    if argv[1] == "providers":
        write_outputs(provider_outputs(clusters), Path(os.environ["GITHUB_OUTPUT"]))
        return 0
    for cluster in clusters:
        target = config.root / config.settings.kubeconfig_dir / f"{cluster.name}.yaml"
        write_kubeconfig(cluster, target)
    return 0


def provider_outputs(clusters: list[Cluster]) -> dict[str, str]:
    """Cluster names per cloud, and the region of the first AWS cluster."""
    outputs = {cloud: " ".join(c.name for c in clusters if c.provider == cloud)
               for cloud in CLOUDS}
    aws = [c for c in clusters if c.provider == "aws"]
    outputs["aws-region"] = str(aws[0].doc["aws"]["region"]) if aws else ""
    return outputs


def write_outputs(outputs: dict[str, str], path: Path) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(f"{name}={value}\n" for name, value in outputs.items())


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (HubtasksError, KeyError, OSError) as err:
        print(f"::error::cluster credentials: {err}", file=sys.stderr)
        sys.exit(1)
