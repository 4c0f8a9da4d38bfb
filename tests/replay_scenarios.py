"""2i2c-style commits for the replay (tests/test_replay_2i2c.py): each edits a checkout.

A scenario picks its targets from the checkout's current cluster.yaml files (so the scenarios
also run as one sequence) and returns what the oracle (tests/replay_oracle.py) expects.
"""

from __future__ import annotations

import shutil
from typing import Any

import yaml
from gitrepo import GitRepo
from replay_oracle import (
    C,
    Docs,
    Expect,
    broken_releases,
    cluster_docs,
    hubs,
    is_staging,
    releases,
    users_of,
    with_canary,
)

EXTRA_FILES = {"docs/howto/deploy.md": "# deploy\n", ".github/workflows/deploy-hubs.yaml":
               "on: push\n", "deployer/__main__.py": "print('deployer')\n",
               "requirements.txt": "ruamel.yaml\n", "helm-charts/images/hub/Dockerfile":
               "FROM python:3.12\n", "helm-charts/images/hub/requirements.txt": "jupyterhub\n"}


class Replay:
    """One checkout and what the scenario edits in it."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo, self.root = repo, repo.root
        self.docs: Docs = cluster_docs(repo.root)
        self.serial = int(repo.git("rev-list", "--count", "HEAD"))

    def append(self, rel: str, text: str | None = None) -> None:
        path = self.root / rel
        line = text or f"# replay edit {self.serial}\n"
        old = path.read_text(encoding="utf-8") + "\n" if path.exists() else ""
        path.write_text(old + line, encoding="utf-8")

    def move(self, old: str, new: str) -> None:
        (self.root / new).parent.mkdir(parents=True, exist_ok=True)
        self.repo.git("mv", old, new)

    def delete(self, rel: str) -> None:
        self.repo.git("rm", "-rq", rel)

    def save(self, cluster: str, doc: dict[str, Any]) -> None:
        (self.root / C / cluster / "cluster.yaml").write_text(
            yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")

    def hub(self, cluster: str, name: str) -> dict[str, Any]:
        return next(e for e in self.docs[cluster]["hubs"] if e["name"] == name)

    def pick_prod(self, *, chart: str | None = None, own_file: bool = False,
                  override: bool = False) -> tuple[str, dict[str, Any]]:
        """The first prod hub (by cluster) with the wanted traits."""
        for cluster, entry in hubs(self.docs):
            if is_staging(entry) or (chart and entry["helm_chart"] != chart) \
                    or not self.sound(cluster):
                continue
            if own_file and not self.own_files(cluster, entry):
                continue
            if override == bool(entry.get("chart_override")):
                return cluster, entry
        raise AssertionError("no such hub")

    def sound(self, cluster: str) -> bool:
        """No earlier commit broke the cluster (a listed file missing)."""
        return not broken_releases(self.root, {cluster: self.docs[cluster]})

    def clusters(self) -> list[str]:
        return [c for c in self.docs if self.sound(c)]

    def own_files(self, cluster: str, entry: dict[str, Any]) -> list[str]:
        """Plain values files only this hub lists."""
        return [f for f in entry["helm_chart_values_files"]
                if users_of(self.docs, cluster, f) == {(cluster, entry["name"])}
                and "secret" not in f and (self.root / C / cluster / f).is_file()]


# ---------------------------------------------------------------------------- scenarios


def hub_values_edit(r: Replay) -> Expect:
    cluster, entry = r.pick_prod(own_file=True)
    r.append(f"{C}/{cluster}/{r.own_files(cluster, entry)[0]}")
    return Expect(planned=with_canary(r.docs, {(cluster, entry["name"])}))


def shared_values_edit(r: Replay) -> Expect:
    cluster = max(r.docs, key=lambda c: len(users_of(r.docs, c, "common.values.yaml")))
    r.append(f"{C}/{cluster}/common.values.yaml")
    return Expect(planned=with_canary(r.docs, users_of(r.docs, cluster, "common.values.yaml")))


def secret_values_reencrypted(r: Replay) -> Expect:
    cluster, entry = r.pick_prod()
    secret = next(f for f in entry["helm_chart_values_files"] if "secret" in f)
    r.append(f"{C}/{cluster}/{secret}", "# re-encrypted\n")
    return Expect(planned=with_canary(r.docs, users_of(r.docs, cluster, secret)))


def support_values_edit(r: Replay) -> Expect:
    cluster = next(c for c in r.clusters() if r.docs[c].get("support"))
    first = r.docs[cluster]["support"]["helm_chart_values_files"][0]
    r.append(f"{C}/{cluster}/{first}")
    return Expect(planned=users_of(r.docs, cluster, first))


def values_file_moved_to_other_cluster(r: Replay) -> Expect:
    """The file moves and the hub is added to the new cluster; the old entry stays (broken)."""
    cluster, entry = r.pick_prod(own_file=True)
    moved = r.own_files(cluster, entry)[0]
    other = next(c for c in r.clusters() if c != cluster and r.docs[c].get("hubs"))
    r.move(f"{C}/{cluster}/{moved}", f"{C}/{other}/{moved}")
    doc = r.docs[other]
    new = {"name": f"{entry['name']}-moved", "display_name": "moved", "domain": "m.example.org",
           "helm_chart": entry["helm_chart"], "helm_chart_values_files": [moved]}
    r.save(other, {**doc, "hubs": [*doc["hubs"], new]})
    after = {**r.docs, other: {**doc, "hubs": [*doc["hubs"], new]}}
    old_key = (cluster, entry["name"])
    return Expect(planned=with_canary(after, {old_key, (other, new["name"])}),
                  invalid={old_key})


def hub_added(r: Replay) -> Expect:
    cluster, entry = r.pick_prod()
    name = f"new-hub-{r.serial}"
    r.append(f"{C}/{cluster}/{name}.values.yaml", "jupyterhub: {}\n")
    doc = r.docs[cluster]
    new = {**entry, "name": name, "domain": f"{name}.example.org",
           "helm_chart_values_files": [f"{name}.values.yaml"]}
    new.pop("chart_override", None)
    after = {**r.docs, cluster: {**doc, "hubs": [*doc["hubs"], new]}}
    r.save(cluster, after[cluster])
    return Expect(planned=with_canary(after, {(cluster, name)}))


def hub_removed(r: Replay) -> Expect:
    cluster, entry = r.pick_prod(own_file=True)
    for rel in r.own_files(cluster, entry):
        r.delete(f"{C}/{cluster}/{rel}")
    doc = r.docs[cluster]
    r.save(cluster, {**doc, "hubs": [e for e in doc["hubs"] if e is not entry]})
    return Expect(removed={(cluster, entry["name"], False)})


def hub_renamed(r: Replay) -> Expect:
    cluster, entry = r.pick_prod(own_file=True)
    old = r.own_files(cluster, entry)[0]
    name = f"{entry['name']}-renamed"
    r.move(f"{C}/{cluster}/{old}", f"{C}/{cluster}/{name}.values.yaml")
    files = [f"{name}.values.yaml" if f == old else f for f in entry["helm_chart_values_files"]]
    doc = r.docs[cluster]
    renamed = {**entry, "name": name, "helm_chart_values_files": files}
    after = {**r.docs, cluster: {**doc, "hubs": [renamed if e is entry else e
                                                 for e in doc["hubs"]]}}
    r.save(cluster, after[cluster])
    return Expect(planned=with_canary(after, {(cluster, name)}),
                  removed={(cluster, entry["name"], False)})


def cluster_removed(r: Replay) -> Expect:
    cluster = sorted(r.docs, key=lambda c: len(releases(r.docs, c)))[len(r.docs) // 2]
    r.delete(f"{C}/{cluster}")
    return Expect(removed={(c, h, True) for c, h in releases(r.docs, cluster)})


def hub_moved_between_clusters(r: Replay) -> Expect:
    """The entry and its own values file go to another cluster in one commit."""
    cluster, entry = r.pick_prod(own_file=True)
    own = r.own_files(cluster, entry)[0]
    other = next(c for c in r.clusters() if c != cluster and r.docs[c].get("hubs"))
    r.move(f"{C}/{cluster}/{own}", f"{C}/{other}/{own}")
    doc, target = r.docs[cluster], r.docs[other]
    moved = {**entry, "helm_chart_values_files": [own]}
    moved.pop("chart_override", None)
    r.save(cluster, {**doc, "hubs": [e for e in doc["hubs"] if e is not entry]})
    after = {**r.docs, other: {**target, "hubs": [*target["hubs"], moved]}}
    r.save(other, after[other])
    return Expect(planned=with_canary(after, {(other, entry["name"])}),
                  removed={(cluster, entry["name"], False)})


def cluster_renamed(r: Replay) -> Expect:
    """A cluster folder renamed (and its name with it): one cluster gone, one new."""
    cluster = r.clusters()[-1]
    name = f"{cluster}-renamed"
    r.move(f"{C}/{cluster}", f"{C}/{name}")
    after = {**r.docs, name: {**r.docs[cluster], "name": name}}
    r.save(name, after[name])
    return Expect(planned=releases(after, name),
                  removed={(c, h, True) for c, h in releases(r.docs, cluster)})


def _copy_cluster(r: Replay, *, credentials: bool) -> tuple[str, Docs]:
    source = next(c for c in r.clusters()
                  if r.docs[c].get("support") and len(r.docs[c]["hubs"]) > 1)
    name = f"new-cluster-{r.serial}"
    shutil.copytree(r.root / C / source, r.root / C / name, symlinks=True)
    if not credentials:
        for path in (r.root / C / name).glob("enc-deployer-credentials*"):
            path.unlink()
    doc = {**r.docs[source], "name": name}
    r.save(name, doc)
    return name, {**r.docs, name: doc}


def cluster_added(r: Replay) -> Expect:
    name, after = _copy_cluster(r, credentials=True)
    return Expect(planned=releases(after, name))


def cluster_added_without_credentials(r: Replay) -> Expect:
    name, after = _copy_cluster(r, credentials=False)
    return Expect(planned=releases(after, name), invalid=releases(after, name))


def credentials_rotated(r: Replay) -> Expect:
    for cluster in list(r.docs)[:3]:
        for path in (r.root / C / cluster).glob("enc-deployer-credentials*"):
            path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    return Expect()


def _credentials(r: Replay) -> tuple[str, str]:
    cluster = next(c for c in r.clusters() if "gcp" in r.docs[c] and r.docs[c].get("hubs"))
    return cluster, f"{C}/{cluster}/{r.docs[cluster]['gcp']['key']}"


def credentials_deleted(r: Replay) -> Expect:
    """A credentials file that disappears breaks (and so plans) every release of its cluster."""
    cluster, path = _credentials(r)
    r.delete(path)
    return Expect(planned=releases(r.docs, cluster), invalid=releases(r.docs, cluster))


def credentials_added_late(r: Replay) -> Expect:
    """2i2c adds a cluster's credentials after its cluster.yaml: the commit that adds them
    plans the releases the commits before could not deploy."""
    cluster, path = _credentials(r)
    text = (r.root / path).read_text(encoding="utf-8")
    r.delete(path)
    r.repo.commit("credentials not added yet")
    r.append(path, text)
    return Expect(planned=releases(r.docs, cluster))


def credentials_path_changed(r: Replay) -> Expect:
    cluster = next(c for c in r.clusters() if "gcp" in r.docs[c] and r.docs[c].get("hubs"))
    doc = r.docs[cluster]
    old = doc["gcp"]["key"]
    r.move(f"{C}/{cluster}/{old}", f"{C}/{cluster}/enc-deployer-rotated.secret.json")
    r.save(cluster, {**doc, "gcp": {**doc["gcp"], "key": "enc-deployer-rotated.secret.json"}})
    return Expect(planned=releases(r.docs, cluster))


def domain_changed(r: Replay) -> Expect:
    cluster, entry = r.pick_prod()
    doc = r.docs[cluster]
    changed = {**entry, "domain": f"new-{r.serial}.{entry['domain']}"}
    r.save(cluster, {**doc, "hubs": [changed if e is entry else e for e in doc["hubs"]]})
    return Expect(planned=with_canary(r.docs, {(cluster, entry["name"])}))


def descriptive_keys_changed(r: Replay) -> Expect:
    cluster = next(c for c in r.clusters() if r.docs[c].get("hubs"))
    doc = r.docs[cluster]
    first = {**doc["hubs"][0], "display_name": "renamed for humans"}
    r.save(cluster, {**doc, "provider_url": "https://example.org/console",
                     "hubs": list(reversed([first, *doc["hubs"][1:]]))})
    return Expect()


def prod_flipped_to_staging(r: Replay) -> Expect:
    cluster, entry = r.pick_prod()
    doc = r.docs[cluster]
    r.save(cluster, {**doc, "hubs": [{**e, "staging": True} if e is entry else e
                                     for e in doc["hubs"]]})
    return Expect(planned={(cluster, entry["name"])})


def staging_flipped_to_prod(r: Replay) -> Expect:
    cluster = next(c for c in r.clusters()
                   if sum(is_staging(e) for e in r.docs[c].get("hubs") or []) > 1)
    doc = r.docs[cluster]
    entry = next(e for e in doc["hubs"] if is_staging(e))
    flipped = {**entry, "staging": False}
    after = {**r.docs, cluster: {**doc, "hubs": [flipped if e is entry else e
                                                 for e in doc["hubs"]]}}
    r.save(cluster, after[cluster])
    return Expect(planned=with_canary(after, {(cluster, entry["name"])}))


def hub_chart_switched(r: Replay) -> Expect:
    cluster, entry = r.pick_prod(chart="basehub")
    doc = r.docs[cluster]
    r.save(cluster, {**doc, "hubs": [{**e, "helm_chart": "daskhub"} if e is entry else e
                                     for e in doc["hubs"]]})
    return Expect(planned=with_canary(r.docs, {(cluster, entry["name"])}))


def connection_changed(r: Replay) -> Expect:
    cluster = next(c for c in r.clusters() if "gcp" in r.docs[c] and r.docs[c].get("hubs"))
    doc = r.docs[cluster]
    r.save(cluster, {**doc, "gcp": {**doc["gcp"], "zone": "europe-west1-b",
                                    "billing": {"paid_by_us": False}}})
    return Expect(planned=releases(r.docs, cluster))


def support_removed(r: Replay) -> Expect:
    cluster = next(c for c in r.clusters() if r.docs[c].get("support"))
    r.save(cluster, {k: v for k, v in r.docs[cluster].items() if k != "support"})
    return Expect(removed={(cluster, None, False)})


def values_file_dropped(r: Replay) -> Expect:
    cluster, entry = r.pick_prod(own_file=True)
    dropped = r.own_files(cluster, entry)[0]
    r.delete(f"{C}/{cluster}/{dropped}")
    doc = r.docs[cluster]
    files = [f for f in entry["helm_chart_values_files"] if f != dropped]
    r.save(cluster, {**doc, "hubs": [{**e, "helm_chart_values_files": files} if e is entry
                                     else e for e in doc["hubs"]]})
    return Expect(planned=with_canary(r.docs, {(cluster, entry["name"])}))
