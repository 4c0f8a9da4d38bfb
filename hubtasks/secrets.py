"""Secrets: sops-encrypted files, decrypting them privately, and redacting their values.

Decrypted files live only as long as one `with decrypted_values(...)` block, in a folder only
the current user can read (0700, files 0600 from the moment they exist). `Redactor` hides
every decrypted value, in every form a program may echo it, from everything hubtasks writes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hubtasks import proc
from hubtasks.files import write_private
from hubtasks.model import HubtasksError

SECRET_MARK = "secret"
SOPS_TIMEOUT = 120.0
MESSAGE_LINES = 20
REDACTED = "***"
MIN_SECRET_LEN = 4  # shorter "secrets" (true, 80, ...) would blank out ordinary text
PRIVATE_PREFIX = "hubtasks-values-"


def private_prefix() -> str:
    """The prefix of this process's private folders: carries the pid, so the next run can
    remove the folders of a run that died (runrecords.remove_dead_private_folders)."""
    return f"{PRIVATE_PREFIX}{os.getpid()}-"
# Flags whose value is secret whatever it is.
SECRET_FLAGS = frozenset({"--kube-token", "--password", "--set", "--set-string", "--set-json",
                          "--set-literal", "--set-file"})

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# ---------------------------------------------------------------------------- recognising


def is_secret_path(path: Path | str) -> bool:
    """True when the file name says it holds secrets (e.g. `enc-prod.secret.values.yaml`)."""
    name = str(path).rpartition("/")[2]  # not Path(path).name: plans ask for thousands
    return SECRET_MARK in name.lower()


def _load(path: Path) -> Any:
    """A YAML or JSON document, or None when it cannot be read or parsed."""
    try:
        data = path.read_bytes()
        if b"sops" not in data:  # cheap exit for the many plain values files
            return None
        text = data.decode("utf-8")
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_Loader)  # a safe loader (C when available)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
        return None


def is_sops_encrypted(path: Path) -> bool:
    """True when the file is YAML/JSON with sops metadata (a top-level `sops` with a `mac`)."""
    return has_sops_metadata(_load(Path(path)))


def has_sops_metadata(doc: Any) -> bool:
    """True for a parsed document that sops encrypted."""
    meta = doc.get("sops") if isinstance(doc, dict) else None
    return isinstance(meta, dict) and "mac" in meta and "version" in meta


def unencrypted_secret_problem(path: Path, rel: str) -> str | None:
    """Why a secret-named file can't be used (missing or plain text), or None."""
    if not path.is_file():
        return f"{rel}: secret values file not found"
    if not is_sops_encrypted(path):
        return (f"{rel}: the name says it holds secrets but it is not sops-encrypted; encrypt "
                f"it with `sops --encrypt --in-place {rel}` before committing it")
    return None


def needs_decrypting(path: Path) -> bool:
    """Secret-named files must be encrypted (else an error); other encrypted files are too."""
    if is_secret_path(path):
        problem = unencrypted_secret_problem(path, str(path))
        if problem:
            raise HubtasksError(problem)
        return True
    return is_sops_encrypted(path)


# ---------------------------------------------------------------------------- decrypting


def decrypt(path: Path, *, sops: Path, env: Mapping[str, str]) -> bytes:
    """The plaintext of a sops file; errors carry sops' stderr, never its stdout."""
    outcome = proc.run([str(sops), "--decrypt", str(path)], env=env, timeout=SOPS_TIMEOUT,
                       keep_stdout=True)
    if outcome:
        return outcome.stdout
    if outcome.start_error:
        raise HubtasksError(f"{path}: cannot run sops ({outcome.start_error}); run "
                            "`hubtasks install-tools` or put sops on PATH")
    message = "\n".join(outcome.lines[-MESSAGE_LINES:])
    raise HubtasksError(f"{path}: `sops --decrypt` failed ({outcome.describe()}); check that "
                        f"your key can decrypt it (e.g. SOPS_AGE_KEY_FILE):\n{message}")


@contextlib.contextmanager
def private_folder() -> Iterator[Path]:
    """A fresh folder only this user can read, removed on exit whatever ends the block."""
    folder = Path(tempfile.mkdtemp(prefix=private_prefix()))
    try:
        folder.chmod(0o700)  # mkdtemp already does; state it rather than rely on it
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def decrypted_values(files: Sequence[Path], *, sops: Path,
                     env: Mapping[str, str]) -> Iterator[tuple[Path, ...]]:
    """The files to pass to helm, in order: encrypted ones swapped for decrypted copies.

    The copies keep their file name (so helm and sops see the same extension) and are
    removed on exit, whatever ends the block (error, KeyboardInterrupt).
    """
    paths = [Path(f) for f in files]
    chosen = [needs_decrypting(p) for p in paths]
    if not any(chosen):
        yield tuple(paths)
        return
    with private_folder() as folder:
        out = []
        for index, (path, secret) in enumerate(zip(paths, chosen, strict=True)):
            # The index keeps two files of the same name (from different folders) apart.
            target = folder / f"{index:02d}-{path.name}"
            if secret:
                write_private(target, decrypt(path, sops=sops, env=env))
            out.append(target if secret else path)
        yield tuple(out)


# ---------------------------------------------------------------------------- redacting


def scalar_strings(doc: Any) -> set[str]:
    """Every scalar of a parsed document (lists and mappings walked), as text."""
    found: set[str] = set()
    pending = [doc]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
        elif node is not None and not isinstance(node, bool):
            found.add(str(node))
    return found


def file_secrets(paths: Iterable[Path]) -> set[str]:
    """Every scalar value of decrypted YAML/JSON files."""
    found: set[str] = set()
    for path in paths:
        try:
            found |= scalar_strings(yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
    return found


def _base64_forms(raw: bytes) -> set[str]:
    """Base64 text that encodes `raw` wherever it sits in a larger blob (3 alignments)."""
    forms: set[str] = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        # Drop the characters that mix in the unknown neighbours on either side.
        start = -(-shift * 4 // 3) + (1 if shift else 0)
        end = len(encoded) - (0 if (shift + len(raw)) % 3 == 0 else 4)
        core = encoded[start:end].decode()
        for text in (core, core.replace("+", "-").replace("/", "_")):
            if len(text) >= MIN_SECRET_LEN * 2:
                forms.add(text)
    return forms


def secret_forms(value: str) -> set[str]:
    """`value` as it may appear in output: raw, per line, escaped, quoted and base64."""
    parts = {value, *(line.strip() for line in value.splitlines())}
    forms: set[str] = set()
    for part in parts:
        forms |= {part, json.dumps(part)[1:-1], json.dumps(part, ensure_ascii=False)[1:-1],
                  part.replace("'", "''"), repr(part)[1:-1]}
    raw = value.encode("utf-8")
    forms |= {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    forms |= _base64_forms(raw)
    return {f for f in forms if len(f) >= MIN_SECRET_LEN}


class Redactor:
    """Replaces every form of every known secret with `***`; callable on text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = frozenset(s for s in secrets if len(s.strip()) >= MIN_SECRET_LEN)
        forms = {f for s in self.secrets for f in secret_forms(s)}
        ordered = sorted(forms, key=len, reverse=True)  # longest first: no partial leftovers
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def merged(self, other: Redactor) -> Redactor:
        return Redactor(self.secrets | other.secrets)

    def argv(self, argv: Sequence[str]) -> list[str]:
        """argv for echoing: values of secret-carrying flags and every known secret hidden."""
        out: list[str] = []
        for arg in argv:
            flag, eq, _ = arg.partition("=")
            if out and out[-1] in SECRET_FLAGS:
                arg = REDACTED
            elif eq and flag in SECRET_FLAGS:
                arg = f"{flag}={REDACTED}"
            out.append(self(arg))
        return out


NO_SECRETS = Redactor()
