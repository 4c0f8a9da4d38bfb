"""`--dry-run` logs: rendered manifests without the data of any Secret.

`helm template` prints every manifest, Secrets included, with their values base64-encoded in
`data` (or plain in `stringData`). The job log gets each YAML document once it is complete,
with the `data`/`stringData` blocks of `kind: Secret` documents replaced by a placeholder,
whatever order the keys come in.
"""

from __future__ import annotations

import re

from hubtasks.output.logs import JobLog

SCRUBBED = "<secret data not logged by hubtasks>"
_SECRET_KIND = re.compile(r"kind:\s*[\"']?Secret[\"']?\s*$")
_DATA_KEY = re.compile(r"(data|stringData):")


def scrub_secret_data(lines: list[str]) -> list[str]:
    """One YAML document's lines, with a Secret's top-level `data`/`stringData` dropped."""
    if not any(_SECRET_KIND.match(line) for line in lines):
        return lines
    out: list[str] = []
    skipping = False
    for line in lines:
        top_level = bool(line.strip()) and not line[0].isspace() and not line.startswith("#")
        if skipping and not top_level:
            continue
        skipping = False
        match = _DATA_KEY.match(line) if top_level else None
        if match:
            out.append(f"{match.group(1)}: {SCRUBBED}\n")
            skipping = True
        else:
            out.append(line)
    return out


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
