"""Pull request comments: the plan as ONE comment per PR, updated in place on each push.

`plan_comment` is pure (markdown within GitHub's size limit); `upsert_comment` talks to
the REST API with urllib only, so the `pr-comment` task needs no extra dependency.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubtasks.model import HubtasksError, Plan
from hubtasks.output.github import plan_markdown
from hubtasks.output.tables import STAGE_TITLES

PLAN_MARKER = "<!-- hubtasks-plan -->"
COMMENT_LIMIT = 65536  # GitHub rejects issue comment bodies longer than this
PAGE_SIZE = 100
TIMEOUT = 30.0
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
_JOB_SECTIONS = tuple(f"### {title} (" for title in STAGE_TITLES.values())


class GitHubError(HubtasksError):
    """A GitHub API call failed; `status` is the HTTP status (0 when unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, kw_only=True)
class Comment:
    """The comment that `upsert_comment` created or updated."""

    id: int
    url: str
    created: bool


def plan_comment(plan: Plan, limit: int = COMMENT_LIMIT, *, marker: str = PLAN_MARKER,
                 details_url: str | None = None) -> str:
    """The comment body: marker, then the plan markdown cut at a row boundary to fit `limit`."""
    lines = [marker, *plan_markdown(plan).rstrip("\n").split("\n")]
    if details_url:
        lines += ["", f"[Workflow run]({details_url})"]
    body = "\n".join(lines) + "\n"
    if len(body) <= limit:
        return body
    return _truncate(lines, len(plan.jobs), limit, details_url)


def _truncate(lines: list[str], total_jobs: int, limit: int, details_url: str | None) -> str:
    """Keep whole lines while they fit beside the footer; the footer counts hidden jobs."""
    kept: list[str] = []
    size, shown, in_jobs = 0, 0, False
    # Reserve room for the longest footer this plan can need.
    reserve = len(_footer(total_jobs, details_url)) + 2
    for line in lines:
        if size + len(line) + 1 + reserve > limit:
            break
        kept.append(line)
        size += len(line) + 1
        in_jobs = line.startswith(_JOB_SECTIONS) or (in_jobs and not line.startswith("#"))
        shown += in_jobs and _is_row(line)
    if len(kept) < 1:
        raise HubtasksError(f"comment limit {limit} is too small for the plan marker")
    return "\n".join([*kept, "", _footer(total_jobs - shown, details_url)]) + "\n"


def _is_row(line: str) -> bool:
    """A markdown table body row (not the header, not the `|---|` separator)."""
    return line.startswith("| ") and not line.startswith("| cluster ")


def _footer(hidden: int, details_url: str | None) -> str:
    where = f"; see the [workflow run]({details_url}) for the full plan" if details_url else ""
    if hidden:
        return f"... and {hidden} more jobs not shown{where}"
    return f"... (truncated){where}"


def upsert_comment(api_url: str, repo: str, pr_number: int, body: str, token: str,
                   marker: str = PLAN_MARKER) -> Comment:
    """Update the PR comment whose body starts with `marker`, or create it if there is none."""
    api = _api_root(api_url)
    existing = find_comment(api, repo, pr_number, token, marker)
    if existing is not None:
        doc = _request("PATCH", f"{api}/repos/{repo}/issues/comments/{existing}", token,
                       {"body": body})
        return Comment(id=int(doc["id"]), url=str(doc.get("html_url", "")), created=False)
    doc = _request("POST", f"{api}/repos/{repo}/issues/{pr_number}/comments", token,
                   {"body": body})
    return Comment(id=int(doc["id"]), url=str(doc.get("html_url", "")), created=True)


def find_comment(api_url: str, repo: str, pr_number: int, token: str,
                 marker: str = PLAN_MARKER) -> int | None:
    """The id of the oldest comment on the PR whose body starts with `marker`."""
    url: str | None = (f"{_api_root(api_url)}/repos/{repo}/issues/{pr_number}/comments"
                       f"?per_page={PAGE_SIZE}")
    while url:
        page, url = _get_page(url, token)
        for comment in page:
            if str(comment.get("body") or "").startswith(marker):
                return int(comment["id"])
    return None


def _api_root(api_url: str) -> str:
    parsed = urllib.parse.urlsplit(api_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise HubtasksError(f"GitHub API URL must be http(s)://host[/path], got {api_url!r}")
    return api_url.rstrip("/")


def _get_page(url: str, token: str) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a list endpoint and the `rel="next"` URL from its Link header."""
    with _open(urllib.request.Request(url, headers=_headers(token))) as response:
        page = json.loads(response.read().decode("utf-8"))
        match = _NEXT_LINK.search(response.headers.get("Link", ""))
    if not isinstance(page, list):
        raise GitHubError(f"GET {url}: expected a JSON list")
    return page, match.group(1) if match else None


def _request(method: str, url: str, token: str, payload: dict[str, Any]) -> dict[str, Any]:
    data = json.dumps(payload).encode("utf-8")
    headers = {**_headers(token), "Content-Type": "application/json"}
    with _open(urllib.request.Request(url, data=data, headers=headers,
                                      method=method)) as response:
        doc = json.loads(response.read().decode("utf-8"))
    if not isinstance(doc, dict) or "id" not in doc:
        raise GitHubError(f"{method} {url}: unexpected response")
    return doc


def _open(request: urllib.request.Request) -> Any:
    """urlopen with a timeout; errors become GitHubError (the token is never in them)."""
    what = f"{request.get_method()} {request.full_url}"
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as err:
        detail = err.read().decode("utf-8", "replace")[:300]
        raise GitHubError(f"{what}: HTTP {err.code} {err.reason}: {detail}", err.code) from None
    except (urllib.error.URLError, OSError) as err:
        raise GitHubError(f"{what}: {getattr(err, 'reason', err)}") from None


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "hubtasks"}


def pr_number_from_event(event: Any) -> int | None:
    """The PR number of a `pull_request` event payload (None for other events)."""
    if isinstance(event, dict):
        number = (event.get("pull_request") or {}).get("number", event.get("number"))
        if isinstance(number, int):
            return number
    return None


@dataclass(frozen=True, kw_only=True)
class CommentTarget:
    """Where the plan comment goes, and the credentials to put it there."""

    api_url: str
    repo: str
    pr_number: int
    token: str = field(repr=False)
    run_url: str | None = None


def comment_target(env: Mapping[str, str], *, pr: str | int | None = None,
                   repo: str | None = None) -> CommentTarget:
    """The target from GitHub Actions' variables (GITHUB_*), with explicit overrides."""
    repo = repo or env.get("GITHUB_REPOSITORY", "")
    token = env.get("GITHUB_TOKEN", "")
    if not repo:
        raise HubtasksError("no repository: pass --gh-repo OWNER/NAME or set GITHUB_REPOSITORY")
    if repo.count("/") != 1 or any(not part or part.strip() != part or " " in part
                                   for part in repo.split("/")):
        raise HubtasksError(f"repository {repo!r} is not OWNER/NAME (--gh-repo or "
                            "GITHUB_REPOSITORY)")
    if not token:
        raise HubtasksError("GITHUB_TOKEN is not set (pass github.token to this step's env)")
    number = _pr_number(pr) if pr not in (None, "") else _event_pr_number(
        env.get("GITHUB_EVENT_PATH"))
    server, run_id = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_RUN_ID")
    run_url = f"{server}/{repo}/actions/runs/{run_id}" if server and run_id else None
    return CommentTarget(api_url=env.get("GITHUB_API_URL") or "https://api.github.com",
                         repo=repo, pr_number=number, token=token, run_url=run_url)


def _pr_number(value: str | int | None) -> int:
    if not str(value).isdigit():
        raise HubtasksError(f"--pr must be a pull request number, got {value!r}")
    return int(str(value))


def _event_pr_number(event_path: str | None) -> int:
    number = None
    if event_path:
        try:
            number = pr_number_from_event(json.loads(Path(event_path).read_text("utf-8")))
        except (OSError, ValueError) as err:
            raise HubtasksError(f"cannot read GITHUB_EVENT_PATH {event_path}: {err}") from None
    if number is None:
        raise HubtasksError("no pull request: pass --pr N, or run on a pull_request event")
    return number


def publish_plan_comment(plan: Plan, target: CommentTarget) -> Comment:
    """Render the plan comment and create or update it on the target PR."""
    body = plan_comment(plan, details_url=target.run_url)
    return upsert_comment(target.api_url, target.repo, target.pr_number, body, target.token)


def post_plan_comment(plan: Plan, target: CommentTarget) -> str:
    """Publish the comment; what happened, as a line to print (a read-only token warns)."""
    try:
        comment = publish_plan_comment(plan, target)
    except GitHubError as err:
        if err.status != 403:
            raise
        return f"::warning::plan comment skipped: the token is read-only (a fork's PR?): {err}"
    return f"plan comment {'created' if comment.created else 'updated'}: {comment.url}"
