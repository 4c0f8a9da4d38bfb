"""PR comments: the size limit and the upsert against a local fake GitHub API."""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from hubtasks.model import HubtasksError, Job, Plan, Stage
from hubtasks.options import Limits
from hubtasks.output.github import MATRIX_LIMIT, prod_matrix, prod_outputs
from hubtasks.output.prcomment import (
    PLAN_MARKER,
    GitHubError,
    comment_target,
    find_comment,
    plan_comment,
    pr_number_from_event,
    publish_plan_comment,
    upsert_comment,
)

REPO = "org/infra"
TOKEN = "ghs_fake-token"


def big_plan(clusters: int, hubs: int) -> Plan:
    jobs = [Job(stage=Stage.PROD, cluster=f"cluster-{c:04d}", hub=f"hub-{h:03d}",
                chart="basehub", reasons=(f"values c{c}/h{h}.values.yaml modified",))
            for c in range(clusters) for h in range(hubs)]
    return Plan(base="a" * 40, head="b" * 40, jobs=tuple(jobs))


def test_small_plan_is_not_truncated() -> None:
    body = plan_comment(big_plan(2, 2))
    assert body.startswith(PLAN_MARKER + "\n")
    assert "Prod hubs (4)" in body and "not shown" not in body
    assert body.count("| cluster-") == 4


@pytest.mark.parametrize("limit", [65536, 5000, 800], ids=["github", "small", "tiny"])
def test_thousands_of_jobs_fit_the_limit(limit: int) -> None:
    plan = big_plan(300, 20)
    body = plan_comment(plan, limit, details_url="https://github.com/org/infra/actions/runs/1")
    assert len(body) <= limit
    assert body.startswith(PLAN_MARKER)
    shown = body.count("| cluster-")
    assert 0 < shown < len(plan.jobs) if limit > 1000 else shown < len(plan.jobs)
    assert f"... and {len(plan.jobs) - shown} more jobs not shown" in body
    assert "actions/runs/1" in body.splitlines()[-1]
    rows = [line for line in body.splitlines() if line.startswith("| cluster-")]
    assert all(line.rstrip().endswith("|") for line in rows), "cut inside a row"


def test_limit_too_small_for_marker() -> None:
    with pytest.raises(HubtasksError, match="too small"):
        plan_comment(big_plan(50, 5), limit=10)


def test_pr_number_from_event() -> None:
    assert pr_number_from_event({"pull_request": {"number": 7}, "number": 7}) == 7
    assert pr_number_from_event({"ref": "refs/heads/main"}) is None
    assert pr_number_from_event(None) is None


@dataclass
class FakeGitHub:
    """In-memory issue comments of one PR, served with GitHub's pagination (Link headers)."""

    comments: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    max_page: int = 30
    url: str = ""

    def add(self, body: str) -> dict[str, Any]:
        comment = {"id": 1000 + len(self.comments), "body": body,
                   "html_url": f"https://github.example/c/{1000 + len(self.comments)}"}
        self.comments.append(comment)
        return comment


def make_handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def reply(self, status: int, doc: Any, link: str = "") -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if link:
                self.send_header("Link", link)
            self.end_headers()
            self.wfile.write(data)

        def authorized(self) -> bool:
            fake.calls.append((self.command, self.path))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.reply(401, {"message": "Bad credentials"})
                return False
            return True

        def body(self) -> str:
            doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            return str(doc["body"])

        def do_GET(self) -> None:
            if not self.authorized():
                return
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            size = min(int(query.get("per_page", ["30"])[0]), fake.max_page)
            page = int(query.get("page", ["1"])[0])
            items = fake.comments[(page - 1) * size: page * size]
            more = page * size < len(fake.comments)
            link = f'<{fake.url}{url.path}?per_page={size}&page={page + 1}>; rel="next"'
            self.reply(200, items, link if more else "")

        def do_POST(self) -> None:
            if self.authorized():
                self.reply(201, fake.add(self.body()))

        def do_PATCH(self) -> None:
            if not self.authorized():
                return
            comment_id = int(self.path.rsplit("/", 1)[1])
            for comment in fake.comments:
                if comment["id"] == comment_id:
                    comment["body"] = self.body()
                    self.reply(200, comment)
                    return
            self.reply(404, {"message": "Not Found"})

    return Handler


@pytest.fixture()
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/api/v3"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


def test_first_upsert_posts_then_patches_the_same_comment(github: FakeGitHub) -> None:
    for n in range(75):  # three pages of unrelated comments before ours
        github.add(f"comment {n}, quoting {PLAN_MARKER} is not ours")
    first = upsert_comment(github.url, REPO, 12, f"{PLAN_MARKER}\nv1", TOKEN)
    assert first.created and len(github.comments) == 76
    assert ("POST", f"/api/v3/repos/{REPO}/issues/12/comments") in github.calls
    github.add("a later comment")  # ours is now on page 3 of 4

    github.calls.clear()
    second = upsert_comment(github.url + "/", REPO, 12, f"{PLAN_MARKER}\nv2", TOKEN)
    assert not second.created and second.id == first.id
    assert len(github.comments) == 77
    assert github.comments[75]["body"] == f"{PLAN_MARKER}\nv2"
    assert [c[0] for c in github.calls] == ["GET", "GET", "GET", "PATCH"]
    assert find_comment(github.url, REPO, 12, TOKEN) == first.id


def test_no_marker_comment_on_an_empty_pr(github: FakeGitHub) -> None:
    assert find_comment(github.url, REPO, 3, TOKEN) is None
    assert [c[0] for c in github.calls] == ["GET"]


def test_http_errors_carry_the_status_not_the_token(github: FakeGitHub) -> None:
    with pytest.raises(GitHubError) as err:
        upsert_comment(github.url, REPO, 12, "body", "wrong-token")
    assert err.value.status == 401 and "Bad credentials" in str(err.value)
    assert "wrong-token" not in str(err.value)


def test_unreachable_api_and_bad_url() -> None:
    with pytest.raises(GitHubError) as err:
        find_comment("http://127.0.0.1:9", REPO, 1, TOKEN)
    assert err.value.status == 0
    with pytest.raises(HubtasksError, match="http"):
        find_comment("file:///etc", REPO, 1, TOKEN)


def test_comment_target_from_the_actions_environment(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": 5, "pull_request": {"number": 5}}))
    env = {"GITHUB_REPOSITORY": REPO, "GITHUB_TOKEN": TOKEN, "GITHUB_EVENT_PATH": str(event),
           "GITHUB_SERVER_URL": "https://github.com", "GITHUB_RUN_ID": "99"}
    target = comment_target(env)
    assert (target.api_url, target.repo, target.pr_number) == ("https://api.github.com", REPO, 5)
    assert target.run_url == f"https://github.com/{REPO}/actions/runs/99"
    assert TOKEN not in repr(target)
    assert comment_target(env, pr="8", repo="a/b").pr_number == 8
    with pytest.raises(HubtasksError, match="--pr must be"):
        comment_target(env, pr="x8")


@pytest.mark.parametrize(("env", "message"), [
    ({"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": REPO}, "no pull request"),
    ({"GITHUB_TOKEN": TOKEN}, "no repository: pass --gh-repo OWNER/NAME"),
    ({"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": "bad repo"}, "'bad repo' is not OWNER/NAME"),
    ({"GITHUB_REPOSITORY": REPO}, "GITHUB_TOKEN"),
    ({"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": REPO, "GITHUB_EVENT_PATH": "/nonexistent"},
     "cannot read"),
], ids=["no-pr", "no-repo", "bad-repo", "no-token", "bad-event"])
def test_comment_target_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(HubtasksError, match=message):
        comment_target(env)


def test_publish_plan_comment(github: FakeGitHub) -> None:
    env = {"GITHUB_REPOSITORY": REPO, "GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.url}
    target = comment_target(env, pr=4)
    first = publish_plan_comment(big_plan(1, 2), target)
    second = publish_plan_comment(big_plan(1, 3), target)
    assert first.created and not second.created and len(github.comments) == 1
    assert "Prod hubs (3)" in github.comments[0]["body"]


# ---------------------------------------------------------------------------- prod matrix


def test_prod_legs_are_lanes_of_at_most_per_cluster_per_cluster() -> None:
    """A lane's hubs run one after another (`prod --per-cluster 1`), so a cluster never has
    more than `per_cluster` upgrades at once, however many legs GitHub runs."""
    plan = big_plan(2, 6)
    legs = prod_matrix(plan.jobs, per_cluster=4)["include"]
    assert [leg["jobs"] for leg in legs[:4]] == [
        "cluster-0000/hub-000 cluster-0000/hub-004", "cluster-0000/hub-001 cluster-0000/hub-005",
        "cluster-0000/hub-002", "cluster-0000/hub-003"]
    assert len(legs) == 8 and legs[0]["name"] == "cluster-0000/hub-000 (+1)"
    assert sorted(i for leg in legs for i in leg["jobs"].split()) == \
        sorted(str(j.key) for j in plan.jobs)
    small = prod_matrix(big_plan(3, 2).jobs, per_cluster=4)["include"]
    assert [leg["jobs"] for leg in small] == [str(j.key) for j in big_plan(3, 2).jobs]


def test_prod_lanes_past_the_leg_limit_are_batched_whole() -> None:
    plan = big_plan(100, 5)  # 400 lanes of 4 per cluster
    legs = prod_matrix(plan.jobs, per_cluster=4)["include"]
    assert len(legs) == MATRIX_LIMIT
    ids = [i for leg in legs for i in leg["jobs"].split()]
    assert sorted(ids) == sorted(str(j.key) for j in plan.jobs) and len(ids) == len(set(ids))
    per_leg = [collections.Counter(i.split("/")[0] for i in leg["jobs"].split()) for leg in legs]
    for cluster in {j.cluster for j in plan.jobs}:  # still at most 4 legs hold a cluster
        assert sum(1 for counts in per_leg if cluster in counts) <= 4


def test_prod_outputs_carry_the_global_bound() -> None:
    outputs = prod_outputs(big_plan(1, 2).jobs, Limits(jobs=3, per_cluster=1))
    assert outputs["prod-max-parallel"] == "3" and outputs["has-prod"] == "true"
    assert json.loads(outputs["prod-matrix"])["include"] == [
        {"name": "cluster-0000/hub-000 (+1)", "jobs": "cluster-0000/hub-000 cluster-0000/hub-001"}]
