"""Secrets: sops-encrypted files, decrypting them privately, and redacting their values.

Decrypted files live only as long as one `with decrypted_values(...)` block, in a folder only
the current user can read (0700, files 0600 from the moment they exist). `Redactor` hides
every decrypted value, in every form a program may echo it, from everything hubtasks writes.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import tempfile
import urllib.parse
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
PEM_WIDTH = 64
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


def redacted_leaves(doc: Any) -> Any:
    """A parsed document with every scalar replaced by `***`, whatever its type or length
    (short ones, numbers, booleans: the Redactor skips those); keys, lists and nulls kept (a
    null is no value, and deletes its key in helm's merge)."""
    if isinstance(doc, dict):
        return {key: redacted_leaves(value) for key, value in doc.items()}
    if isinstance(doc, list):
        return [redacted_leaves(value) for value in doc]
    return None if doc is None else REDACTED


def unparsed_secrets(text: str) -> set[str]:
    """What to hide of a decrypted text that is not YAML/JSON (a dotenv or ini file, a
    jsonnet source): each non-empty line, and what follows a `KEY=` or `key:` on it."""
    found: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if line:
            found.add(line)
            found |= {part.strip() for part in _ASSIGNMENT.split(line, maxsplit=1)[1:]}
    return {s for s in found if s}


_ASSIGNMENT = re.compile(r"[=:]")


def file_secrets(paths: Iterable[Path]) -> set[str]:
    """Every scalar value of decrypted YAML/JSON files; of any other text, what
    `unparsed_secrets` finds (a decrypted file is never left without redaction)."""
    found: set[str] = set()
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found |= text_secrets(text)
    return found


def text_secrets(text: str) -> set[str]:
    """Every scalar of a decrypted YAML/JSON text; of a text that is not a YAML mapping or
    list (a dotenv file parses as one long scalar), also what `unparsed_secrets` finds."""
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return unparsed_secrets(text)
    found = scalar_strings(doc)
    return found if isinstance(doc, dict | list) else found | unparsed_secrets(text)


def _json(text: str) -> str:
    return json.dumps(text)[1:-1]


def _json_unicode(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


_GO_HTML = str.maketrans({"&": "\\u0026", "<": "\\u003c", ">": "\\u003e",
                          "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _go_json(text: str) -> str:
    """Go's json.Marshal (helm's toJson): non-ASCII kept, `&<>` and U+2028/9 as \\uXXXX."""
    return _json_unicode(text).translate(_GO_HTML)


def _go_json_ascii(text: str) -> str:
    return _json(text).translate(_GO_HTML)


_GO_QUOTE_SHORT = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                   "\t": "\\t", "\v": "\\v", '"': '\\"', "\\": "\\\\"}


def _go_quote(text: str) -> str:
    """Go's strconv.Quote (sprig's `quote`, `%q`): printable characters kept, lower-case hex."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _GO_QUOTE_SHORT:
            out.append(_GO_QUOTE_SHORT[ch])
        elif ch.isprintable():  # close to Go's unicode.IsPrint (letters, marks, ..., ' ')
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


_YAML_SHORT = {"\0": "0", "\a": "a", "\b": "b", "\t": "t", "\n": "n", "\v": "v", "\f": "f",
               "\r": "r", "\x1b": "e", '"': '"', "\\": "\\", "\x85": "N", "\xa0": "_",
               "\u2028": "L", "\u2029": "P"}


_YAML_BREAKS = "\u2028\u2029\ufeff"  # escaped even with allow_unicode


def _yaml_double(text: str, *, unicode: bool) -> str:
    """The inside of a YAML double-quoted scalar as PyYAML writes it (`unicode`: with
    allow_unicode=True, which is also how go-yaml, helm's toYaml, writes it): upper-case hex."""
    out = []
    for ch in text:
        if (" " <= ch <= "~" and ch not in '"\\') or (unicode and ch not in _YAML_BREAKS and (
                "\xa0" <= ch <= "\ud7ff" or "\ue000" <= ch <= "\ufffd" or ch >= "\U00010000")):
            out.append(ch)
        elif ch in _YAML_SHORT:
            out.append("\\" + _YAML_SHORT[ch])
        elif ch <= "\xff":
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(f"\\u{ord(ch):04X}" if ch <= "\uffff" else f"\\U{ord(ch):08X}")
    return "".join(out)


def _yaml_double_ascii(text: str) -> str:
    return _yaml_double(text, unicode=False)


def _yaml_double_unicode(text: str) -> str:
    return _yaml_double(text, unicode=True)


def _yaml_single(text: str) -> str:
    return text.replace("'", "''")


def _repr(text: str) -> str:
    return repr(text)[1:-1]


# How a program may escape a string inside a quoted literal: JSON (Python's and Go's, which
# escapes `&<>` for HTML), Go's %q, YAML double-quoted (PyYAML's default escapes non-ASCII as
# \xE4 / \u0416, go-yaml's keeps it), YAML single-quoted and Python's repr.
ESCAPES = (_json, _json_unicode, _go_json, _go_json_ascii, _go_quote, _yaml_double_ascii,
           _yaml_double_unicode, _yaml_single, _repr)
# Percent-encoding: RFC 3986 component (quote(v, safe='')), path (quote(v)), JavaScript's
# encodeURIComponent; quote_plus is Go's url.QueryEscape (text/template's `urlquery`).
_URL_SAFE = ("", "/", "!'()*")
_HEX_ESCAPE = re.compile(r"%[0-9A-F]{2}")
FOLD_MIN_LEN = 16  # shorter values are not folded by an 80-column YAML writer in practice
FOLD_WIDTH = 80
FOLD_MAX_INDENT = 40  # a middle line of a fold holds at least FOLD_WIDTH - indent characters


def _url_forms(text: str) -> set[str]:
    forms = {urllib.parse.quote(text, safe=safe) for safe in _URL_SAFE}
    forms.add(urllib.parse.quote_plus(text, safe=""))
    return forms | {_HEX_ESCAPE.sub(lambda m: m.group().lower(), f) for f in forms}


def _escaped_forms(text: str) -> set[str]:
    """`text` escaped once by every escaper, and each of those escaped once more (`toJson |
    quote`, a JSON document in a JSON string, ...)."""
    once = {escape(text) for escape in ESCAPES}
    twice = {escape(form) for form in once - {text} for escape in ESCAPES}
    return {text} | once | twice


def _fold_pieces(text: str) -> set[str]:
    """The line pieces of `text` folded at spaces by an 80-column YAML writer (go-yaml in
    helm's toYaml, PyYAML; plain or single-quoted): a line runs from the start or a space to
    the first space past column FOLD_WIDTH or the end (its indentation unknown: every such
    end). At most ~FOLD_WIDTH / word length pieces start at each space.

    Only pieces a fold can make are kept, so ordinary words of a long value are not hidden
    everywhere: a middle line is at least FOLD_WIDTH - FOLD_MAX_INDENT long (the writer
    breaks at the first space past the width); a first or last line may be short (the key
    and indentation take the first line's room), down to MIN_SECRET_LEN like any secret."""
    if len(text) < FOLD_MIN_LEN or " " not in text:
        return set()
    bounds = [-1, *(i for i, char in enumerate(text) if char == " "), len(text)]
    pieces = set()
    for number, start in enumerate(bounds[:-1]):
        for end in bounds[number + 1:]:
            piece = text[start + 1:end].strip(" ")
            edge = start == -1 or end == len(text)
            if len(piece) >= (MIN_SECRET_LEN if edge else FOLD_WIDTH - FOLD_MAX_INDENT):
                pieces.add(piece)
            if end - start > FOLD_WIDTH:  # a break comes at the first space past the width
                break
    return pieces - {text}


def pure_base64(raw: bytes) -> list[str]:
    """For each of the 3 byte alignments `raw` may have in a larger blob, the base64 characters
    that depend on `raw` alone (the characters mixing in unknown neighbours dropped)."""
    cores = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        start = (0, 2, 3)[shift]  # after the neighbour-only and mixed characters
        end = len(encoded) - (0, 3, 2)[(shift + len(raw)) % 3]  # before mixed and padding
        cores.append(encoded[start:end])
    return cores


def _base64_forms(raw: bytes) -> set[str]:
    """Base64 text that encodes `raw` alone or anywhere in a larger blob (3 alignments), in
    the standard and URL-safe alphabets, and the lines of its MIME (76-column, base64
    .encodebytes) and PEM (64-column) forms."""
    whole = base64.b64encode(raw).decode()
    forms = {whole, base64.urlsafe_b64encode(raw).decode()}
    forms |= set(base64.encodebytes(raw).decode().splitlines())
    forms |= {whole[i:i + PEM_WIDTH] for i in range(0, len(whole), PEM_WIDTH)}
    for core in pure_base64(raw):
        forms |= {core, core.replace("+", "-").replace("/", "_")}
    return {f for f in forms if len(f) >= MIN_SECRET_LEN * 2}


def secret_forms(value: str) -> set[str]:
    """`value` as it may appear in output: raw, per line, upper- and lower-cased, escaped
    (also twice), quoted, percent-encoded, folded by YAML, base64 (alone, inside a blob,
    MIME/PEM lines).

    Lines of wrapped base64 of a blob that holds `value` (a whole file base64-encoded) are
    matched by Redactor itself, from `pure_base64`."""
    parts = {value, *(line.strip() for line in value.splitlines())}
    forms: set[str] = set()
    for part in parts:
        # upper/lower case: a template's `upper`/`lower` (a hex token shown upper-cased)
        forms |= _escaped_forms(part) | _url_forms(part) | {part.upper(), part.lower()}
        for piece in _fold_pieces(part):
            forms |= {piece, _yaml_single(piece)}
    forms |= _base64_forms(value.encode("utf-8"))
    return {f for f in forms if len(f) >= MIN_SECRET_LEN}


class _WrappedBase64:
    """Finds, in lines of wrapped base64 (MIME's 76 columns, PEM's 64, any width up to
    WRAP_MAX that is a multiple of 4, as every base64 encoder wraps), the parts that encode a
    secret: a run that lies inside a secret's pure base64 (any alignment, any length of at
    least SUBSTRING_MIN), the end of a line where a secret starts (a prefix of its pure base64)
    and the start of a line where one ends (a suffix). Sets and one substring search, no
    regex of every window: a secret of n bytes has ~n of them."""

    WRAP_MAX = 128
    PIECE_MIN = 6  # base64 characters: 36 bits, at a line's edge
    SUBSTRING_MIN = 12
    RUN = re.compile(r"[A-Za-z0-9+/]{6,}={0,2}")

    def __init__(self, secrets: Iterable[str]) -> None:
        cores = [c for s in secrets for c in pure_base64(s.encode("utf-8"))
                 if len(c) >= self.PIECE_MIN]
        self.haystack = "\n" + "\n".join(cores) + "\n"
        # Every SUBSTRING_MIN-long piece of a core: a cheap test before the substring search.
        self.windows = {c[i:i + self.SUBSTRING_MIN] for c in cores for i in range(len(c))}
        sizes = [(c, range(self.PIECE_MIN, min(len(c), self.WRAP_MAX) + 1)) for c in cores]
        self.prefixes = {c[:n] for c, lengths in sizes for n in lengths}
        self.suffixes = {c[-n:] for c, lengths in sizes for n in lengths}

    def __call__(self, text: str) -> str:
        out: list[str] = []
        done = 0
        for match in self.RUN.finditer(text):
            run = match.group()
            size = len(run)
            if size % 4 and (size < self.SUBSTRING_MIN or run[:self.SUBSTRING_MIN]
                             not in self.windows):
                continue  # the common case, ordinary words: no method call
            cut = self._cut(run)
            if cut is not None:
                head, tail = cut
                kept = run[head:tail] if head < tail else ""
                out += [text[done:match.start()], REDACTED if head else "", kept,
                        REDACTED if tail < size and head < tail else ""]
                done = match.end()
        return "".join(out) + text[done:] if out else text

    def _cut(self, run: str) -> tuple[int, int] | None:
        """(head, tail): run[:head] and run[tail:] encode a secret (head 0 / tail len: none),
        or None when no part does."""
        body = run.rstrip("=")
        size = len(body)
        if size >= self.SUBSTRING_MIN and body[:self.SUBSTRING_MIN] in self.windows \
                and body in self.haystack:
            return len(run), len(run)
        if len(run) % 4 or len(run) > self.WRAP_MAX:
            return None
        head = next((k for k in range(size, self.PIECE_MIN - 1, -1)
                     if body[:k] in self.suffixes), 0)
        tail = next((k for k in range(0, size - self.PIECE_MIN + 1)
                     if body[k:] in self.prefixes), len(run))
        if not head and tail == len(run):
            return None
        return (len(run), len(run)) if head >= tail else (head, tail)


TRIE_DEPTH = 40  # deeper, a plain alternation: the regex compiler recurses per nesting level


def trie_pattern(words: Iterable[str], depth: int = 0) -> str:
    """A regex matching any of `words`, the longest one where several start at a position (as
    an alternation of them, longest first), factored by common prefixes: matching costs about
    the length of a match, not the number of words."""
    ordered = sorted(set(words))
    if len(ordered) == 1:
        return re.escape(ordered[0])
    if depth >= TRIE_DEPTH:
        ordered.sort(key=len, reverse=True)  # "" last: the shortest choice
        return "(?:" + "|".join(map(re.escape, ordered)) + ")"
    first, last = ordered[0], ordered[-1]  # sorted: their common prefix is everyone's
    size = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b),
                min(len(first), len(last)))
    prefix = first[:size]
    rest = [w[size:] for w in ordered]
    optional = rest[0] == ""  # sorted: the empty rest comes first
    branches = [trie_pattern(list(group), depth + 1)
                for _, group in itertools.groupby(rest[1:] if optional else rest,
                                                  key=lambda w: w[0])]
    body = branches[0] if len(branches) == 1 and not optional else \
        "(?:" + "|".join(branches) + ")"
    return re.escape(prefix) + body + ("?" if optional else "")


class Redactor:
    """Replaces every form of every known secret with `***`; callable on text.

    The lines of wrapped base64 (`_WrappedBase64`), then one regex of every form
    (`secret_forms`), the longest match first."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = frozenset(s for s in secrets if len(s.strip()) >= MIN_SECRET_LEN)
        forms = {f for s in self.secrets for f in secret_forms(s)}
        # Longest match first (no partial leftovers), as a prefix tree: helm's every line.
        self._pattern = re.compile(trie_pattern(forms)) if forms else None
        self._wrapped = _WrappedBase64(self.secrets) if self.secrets else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or self._wrapped is None:
            return text
        # Wrapped base64 first: a form matched inside a line would split the line's run.
        return self._pattern.sub(REDACTED, self._wrapped(text))

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
