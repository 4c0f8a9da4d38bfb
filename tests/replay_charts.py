"""Chart, jsonnet and unrelated-file commits for the replay (tests/test_replay_2i2c.py)."""

from __future__ import annotations

from collections.abc import Callable

from replay_oracle import (
    CHARTS,
    C,
    Expect,
    chart_users,
    hubs,
    is_staging,
    support_keys,
    with_canary,
)
from replay_scenarios import EXTRA_FILES, Replay, hub_values_edit


def chart_edit(rel: str, chart: str, *, meta: bool = False) -> Callable[[Replay], Expect]:
    def scenario(r: Replay) -> Expect:
        r.append(f"{CHARTS}/{chart}/{rel}", "# chart edit\n" if not rel.endswith("jsonnet")
                 else "// chart edit\n")
        if chart == "support":
            return Expect(planned=support_keys(r.docs))
        return Expect(planned=with_canary(r.docs, chart_users(r.root, r.docs, chart, meta=meta)))
    scenario.__name__ = f"{chart}_{rel.replace('/', '_').replace('.', '_')}_edit"
    return scenario


def daskhub_symlink_edit(r: Replay) -> Expect:
    """Editing daskhub's values.jsonnet edits basehub's, through the symlink."""
    link = r.root / CHARTS / "daskhub" / "values.jsonnet"
    assert link.is_symlink()
    with link.open("a", encoding="utf-8") as out:
        out.write("\n// edited through daskhub's link\n")
    return Expect(planned=with_canary(r.docs, chart_users(r.root, r.docs, "basehub")))


def chart_override_edit(r: Replay) -> Expect:
    cluster, entry = next((c, e) for c, e in hubs(r.docs) if e.get("chart_override"))
    r.append(f"{C}/{cluster}/{entry['chart_override']}")
    return Expect(planned=with_canary(r.docs, {(cluster, entry["name"])}))


def unrelated_files(r: Replay) -> Expect:
    for rel in [*EXTRA_FILES, "README.md", f"{CHARTS}/chartpress.yaml",
                f"{C}/templates/gcp/cluster.yaml"]:
        r.append(rel)
    return Expect()


def jsonnet_library_edit(r: Replay) -> Expect:
    """2i2c's nmfs-openscapes style: hub and support jsonnet values import a libsonnet.

    A first commit adds them (each listing release planned); the replayed commit edits only
    the library, which no values list names.
    """
    cluster, entry = next((c, e) for c, e in hubs(r.docs) if c in r.clusters()
                          and r.docs[c].get("support") and not is_staging(e))
    folder = f"{C}/{cluster}"
    r.append(f"{folder}/common.libsonnet", "{ profile: { cpu: 1 } }\n")
    r.append(f"{folder}/profiles.jsonnet", "local c = import './common.libsonnet';\n"
             "{ singleuser: c.profile }\n")
    r.append(f"{folder}/support.values.jsonnet", 'local c = import "common.libsonnet";\n'
             "{ prometheus: c.profile }\n")
    doc = r.docs[cluster]
    hubs_after = [{**e, "helm_chart_values_files": [*e["helm_chart_values_files"],
                                                    "profiles.jsonnet"]} if e is entry else e
                  for e in doc["hubs"]]
    support = doc["support"]
    r.save(cluster, {**doc, "hubs": hubs_after, "support": {
        **support, "helm_chart_values_files": [*support["helm_chart_values_files"],
                                               "support.values.jsonnet"]}})
    r.repo.commit("jsonnet values importing a library")
    r.append(f"{folder}/common.libsonnet", "// library edit\n")
    return Expect(planned=with_canary(r.docs, {(cluster, entry["name"]), (cluster, None)}))


def mixed_commit(r: Replay) -> Expect:
    """A typical upgrade PR: a support chart bump plus one hub's values."""
    first = hub_values_edit(r)
    r.append(f"{CHARTS}/support/Chart.yaml", "# bump\n")
    return Expect(planned=first.planned | support_keys(r.docs))
