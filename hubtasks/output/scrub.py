"""`--dry-run` logs: rendered manifests without the data of any Secret.

`helm template` prints every manifest, Secrets included, with their values base64-encoded in
`data` (or plain in `stringData`). The job log gets each YAML document once it is complete,
with the `data`/`stringData` of every Secret replaced by a placeholder: the document is
parsed (so comments, key order, JSON form or a `kind: List` change nothing), and written
again only when it holds a Secret.
"""

from __future__ import annotations

from typing import Any

import yaml

from hubtasks.output.logs import JobLog

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SCRUBBED = "<secret data not logged by hubtasks>"
UNREADABLE = "# <a document naming a Secret that hubtasks could not read: not logged>\n"
_DATA_KEYS = ("data", "stringData")


def _scrub_object(obj: Any) -> bool:
    """Replace the data of a Secret, or of each Secret of a `*List`; True when it did."""
    if not isinstance(obj, dict):
        return False
    found = False
    if obj.get("kind") == "Secret":
        for key in _DATA_KEYS:
            if key in obj:
                obj[key] = SCRUBBED
        found = True
    items = obj.get("items")
    if isinstance(items, list) and str(obj.get("kind", "")).endswith("List"):
        found = any([_scrub_object(item) for item in items]) or found
    return found


def scrub_secret_data(lines: list[str]) -> list[str]:
    """One YAML document's lines, with the `data`/`stringData` of every Secret in it (also
    inside a `kind: List`, in JSON form, with comments) replaced. A document that doesn't
    mention `Secret` is passed as it is; one that does is parsed, and written again only
    when it holds a Secret; one that can't be parsed is not logged at all."""
    text = "".join(lines)
    if "Secret" not in text:  # nearly every document
        return lines
    separator = [lines[0]] if lines and lines[0].startswith("---") else []
    try:
        doc = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError:
        return [*separator, UNREADABLE]
    if not _scrub_object(doc):
        return lines
    head = [line for line in lines[len(separator):] if line.startswith("# Source:")][:1]
    return [*separator, *head, yaml.safe_dump(doc, sort_keys=False)]


class ScrubbedLog(JobLog):
    """A JobLog that writes rendered output document by document, Secret data removed."""

    def __init__(self, inner: JobLog) -> None:
        super().__init__(None)
        self.inner = inner
        self._document: list[str] = []

    def write(self, text: str) -> None:
        for line in text.splitlines(keepends=True):
            if line.startswith("---"):
                self.flush()
            self._document.append(line)

    def note(self, text: str) -> None:
        self.flush()
        self.inner.note(text)

    def flush(self) -> None:
        """Write the document read so far (at a `---`, a note, or the end)."""
        document, self._document = self._document, []
        if document:
            self.inner.write("".join(scrub_secret_data(document)))
