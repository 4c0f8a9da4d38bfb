"""Local apiservers as data and over HTTP: the cluster record, its kubeconfig, requests."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True, kw_only=True)
class LocalCluster:
    """One running local cluster and how to reach it."""

    name: str
    kubeconfig: Path
    server: str
    context: str
    token: str


def kubeconfig_text(name: str, server: str, token: str) -> str:
    """A kubeconfig with one cluster, user and context, all named `name`."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    return yaml.safe_dump(config, sort_keys=False)


# Loopback only, with the apiserver's self-signed certificate.
INSECURE_TLS = ssl.create_default_context()
INSECURE_TLS.check_hostname = False
INSECURE_TLS.verify_mode = ssl.CERT_NONE
# Never through a proxy from the environment: every request goes to 127.0.0.1.
OPENER = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=INSECURE_TLS)
)


# ---------------------------------------------------------------- HTTP to the apiserver


def api_request(
    server: str,
    token: str,
    path: str,
    *,
    method: str = "GET",
    body: Any = None,
    content_type: str = "application/json",
    timeout: float = 5.0,
) -> Any:
    """One JSON request to an apiserver with a bearer token."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    req = urllib.request.Request(server + path, data=data, headers=headers, method=method)
    with OPENER.open(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def is_ready(url: str, token: str | None) -> bool:
    """Whether a health URL answers 200 `ok`."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        req = urllib.request.Request(url, headers=headers)
        with OPENER.open(req, timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False
