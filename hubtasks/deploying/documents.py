"""A release's values documents in helm's order, each decrypted and rendered, with its source.

Order (2i2c's `Hub.deploy` and `Cluster.deploy_support`): the chart's values.yaml (helm's
implicit default, not passed), the chart's own documents (`chart_values`, by default its
values.jsonnet), then the release's `helm_chart_values_files`. Encrypted documents are
decrypted; `.jsonnet` ones are rendered with the release's context (config/jsonnet.py).
Every decrypted or rendered copy lives in a private folder for the `with` block only.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from hubtasks.config.domains import hub_domain
from hubtasks.config.jsonnet import RENDERER, JsonnetRenderer, is_jsonnet, release_context
from hubtasks.config.model import RepoConfig
from hubtasks.files import write_private
from hubtasks.model import HubtasksError, Job
from hubtasks.secrets import (
    Redactor,
    decrypted_values,
    file_secrets,
    needs_decrypting,
    private_folder,
    scalar_strings,
)

CHART_VALUES, RELEASE_VALUES = "chart values", "values file"


@dataclass(frozen=True, kw_only=True)
class ValuesDocument:
    """One `--values` file: where it comes from (repo-relative) and the file helm reads."""

    source: str
    origin: str  # CHART_VALUES or RELEASE_VALUES
    path: Path
    rendered: bool = False
    secret: bool = False

    def describe(self) -> str:
        how = ", rendered jsonnet" if self.rendered else ""
        return f"{self.source} ({self.origin}{how}{', decrypted' if self.secret else ''})"


class _Context:
    """The release's jsonnet context, made on first use (the domain may need sops)."""

    def __init__(self, config: RepoConfig, job: Job, sops: Path | None,
                 env: Mapping[str, str]) -> None:
        self.config, self.job, self.sops, self.env = config, job, sops, env
        self.vars: dict[str, str] | None = None
        self.secrets: set[str] = set()

    def get(self) -> dict[str, str]:
        if self.vars is None:
            domain = None
            if self.job.hub is not None:
                hub = self.config.cluster(self.job.cluster).hub(self.job.hub)
                domain = hub_domain(self.config, hub, sops=self.sops, env=self.env)
                override = hub.domain_override_file
                if override and needs_decrypting(self.config.root / override):
                    self.secrets.add(domain)
            self.vars = release_context(self.config, self.job.cluster, self.job.hub, domain)
        return self.vars


@contextlib.contextmanager
def release_documents(config: RepoConfig, job: Job, *, sops: Path | None,
                      env: Mapping[str, str], renderer: JsonnetRenderer = RENDERER,
                      ) -> Iterator[tuple[list[ValuesDocument], Redactor]]:
    """The release's documents in order, and a redactor of every secret in them."""
    chart_rels = config.chart_values(config.release_chart(job.cluster, job.hub))
    rels = chart_rels + config.release_values(job.cluster, job.hub)
    files = [config.root / rel for rel in rels]
    context = _Context(config, job, sops, env)
    with decrypted_values(files, sops=sops or Path("sops"), env=env) as values, \
            contextlib.ExitStack() as stack:
        # A private folder for rendered documents, only when there are some.
        folder = stack.enter_context(private_folder()) if any(map(is_jsonnet, rels)) \
            else Path()
        secrets = file_secrets([p for p, o in zip(values, files, strict=True) if p != o])
        docs = []
        for index, (rel, original, path) in enumerate(zip(rels, files, values, strict=True)):
            secret = path != original
            if is_jsonnet(rel):
                source = path.read_text(encoding="utf-8") if secret else None
                context_vars = context.get()
                text = _render(renderer, original, context_vars, rel=rel, source=source,
                               hide=secrets | context.secrets)
                path = folder / f"{index:02d}-{original.stem}.json"
                write_private(path, text.encode())
                if secret:
                    secrets |= scalar_strings(json.loads(text))
            docs.append(ValuesDocument(
                source=rel, origin=CHART_VALUES if index < len(chart_rels) else RELEASE_VALUES,
                path=path, rendered=is_jsonnet(rel), secret=secret))
        yield docs, Redactor(secrets | context.secrets)


# file:line:col[-col] or file:(line:col)-(line:col), as jsonnet names a place; only names of
# files (a quoted value such as "db:5432:1" is no place, and stays hidden)
_LOCATION = re.compile(r"(?<![^\s(])[^\s\"'():]+\.(?:jsonnet|libsonnet|json|ya?ml)"
                       r":(?:\d+:\d+(?:-\d+)?|\(\d+:\d+\)-\(\d+:\d+\))")


def _render(renderer: JsonnetRenderer, path: Path, context: Mapping[str, str], *, rel: str,
            source: str | None, hide: set[str]) -> str:
    """Render one document; a failure's message never carries a secret.

    jsonnet's messages quote values (`Assertion failed. "s3cret" != "x"`): of a decrypted
    document only the places jsonnet names are kept, and any message is redacted of `hide`
    (the decrypted values known so far, a secret domain)."""
    try:
        return renderer.render(path, context, rel=rel, source=source)
    except HubtasksError as err:
        message = str(err)
        if source is not None:
            places = ", ".join(dict.fromkeys(_LOCATION.findall(message))) or "no place given"
            message = (f"{rel}: jsonnet render failed (at {places}); the document is "
                       "decrypted, so jsonnet's message, which may quote its values, is not "
                       "shown: render it with `hubtasks values` where the key is")
        raise HubtasksError(Redactor(hide)(message)) from None
