"""One HTTP GET of a health URL, with urllib: a total timeout, cancellable, proxies from env.

TLS certificates are verified unless `insecure`. Redirects are followed (urllib's default,
at most 10): the final answer counts, so a 2xx after a redirect passes. Proxies come from the
`env` snapshot (`https_proxy`, `http_proxy`, `no_proxy`, either case), never from os.environ
read in a worker thread.
"""

from __future__ import annotations

import functools
import http.client
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

POLL = 0.05
MAX_BODY = 4096


@dataclass(frozen=True, kw_only=True)
class Answer:
    """What one GET came to; truthy on a 2xx final answer."""

    url: str
    status: int | None = None
    problem: str = ""  # when there was no HTTP answer: `timed out after 30s`, `refused`...
    cancelled: bool = False

    def __bool__(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        """`GET https://x/hub/health -> 503` (or `-> timed out after 30s`)."""
        return f"GET {self.url} -> {self.status if self.status is not None else self.problem}"


def proxies(env: Mapping[str, str]) -> dict[str, str]:
    """urllib's proxy map from an environment snapshot (lower case wins, like curl)."""
    found: dict[str, str] = {}
    for scheme in ("http", "https", "no"):
        value = env.get(f"{scheme}_proxy") or env.get(f"{scheme.upper()}_PROXY")
        if value:
            found[scheme] = value
    return found


def _opener(url: str, env: Mapping[str, str], insecure: bool) -> urllib.request.OpenerDirector:
    found = proxies(env)
    host = urllib.parse.urlsplit(url).hostname or ""
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if "no" in found and bypass(host, found):
        found = {}
    found.pop("no", None)
    return urllib.request.build_opener(urllib.request.ProxyHandler(found),
                                       urllib.request.HTTPSHandler(context=_tls(insecure)))


@functools.cache
def _tls(insecure: bool) -> ssl.SSLContext:
    """One TLS context per process and flag: loading the CA store costs ~20 ms a check
    (bench/deploy_makespan.py); a context is safe to share between threads."""
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _get(url: str, env: Mapping[str, str], insecure: bool, timeout: float) -> Answer:
    request = urllib.request.Request(url, headers={"User-Agent": "hubtasks-health-check"})
    try:
        with _opener(url, env, insecure).open(request, timeout=timeout) as response:
            response.read(MAX_BODY)
            return Answer(url=url, status=response.status)
    except urllib.error.HTTPError as err:
        return Answer(url=url, status=err.code)
    except urllib.error.URLError as err:
        return Answer(url=url, problem=_reason(err.reason, timeout))
    except (OSError, http.client.HTTPException) as err:
        return Answer(url=url, problem=_reason(err, timeout))


def _reason(reason: object, timeout: float) -> str:
    if isinstance(reason, TimeoutError):  # the socket's timeout: the same words as `get`'s
        return f"timed out after {timeout:g}s"
    return str(getattr(reason, "strerror", None) or reason)


def get(url: str, *, timeout: float, cancel: threading.Event, env: Mapping[str, str],
        insecure: bool = False) -> Answer:
    """GET `url`: the answer within `timeout` seconds in all, or why there was none.

    The request runs in a daemon thread so a slow server can neither outlast `timeout` nor
    delay a cancel; an abandoned request ends by its own socket timeout.
    """
    if cancel.is_set():
        return Answer(url=url, problem="cancelled", cancelled=True)
    box: list[Answer] = []
    done = threading.Event()

    def work() -> None:
        box.append(_get(url, env, insecure, timeout))
        done.set()

    threading.Thread(target=work, name="hubtasks-probe", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not done.wait(POLL):
        if cancel.is_set():
            return Answer(url=url, problem="cancelled", cancelled=True)
        if time.monotonic() >= deadline:
            return Answer(url=url, problem=f"timed out after {timeout:g}s")
    return box[0]
