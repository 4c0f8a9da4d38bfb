"""Compiled schema validators, cached on disk.

fastjsonschema turns a schema into Python source (~20 ms for cluster.schema.json) that
Python then compiles (~35 ms): more than the rest of a small `plan`. The compiled code
object is kept in the hubtasks cache folder under a key of the schema text, the
fastjsonschema version and the Python bytecode tag, so any change makes a new entry. The
file is named by a checksum of the key (zlib's: hashlib's OpenSSL costs ~2 ms to import on
every plan) and holds the whole key, so a checksum collision only costs a recompile.
An unreadable or unwritable cache only costs the compile time, never an error.

Local `#/definitions/...` references are inlined before generating: fastjsonschema turns each
`$ref` into a function call that formats the item's path with `str.format(**locals())`, which
made validating 20,000 hubs 4x slower. jsonschema (the error messages) reads the schema as is.
"""

from __future__ import annotations

import marshal
import os
import re
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema

from hubtasks.cachedir import cache_dir

ENTRY = re.compile(r"^def (\w+)\(", re.MULTILINE)  # the first function validates the root
LOCAL_REF = "#/definitions/"
GENERATOR = "inline-refs-1"  # how we prepare a schema for fastjsonschema: part of the key


def _key(text: str) -> str:
    return f"{text}\0{fastjsonschema.VERSION}\0{sys.implementation.cache_tag}\0{GENERATOR}"


def inline_refs(schema: Any, definitions: dict[str, Any] | None = None,
                expanding: frozenset[str] = frozenset()) -> Any:
    """`schema` with each `{"$ref": "#/definitions/NAME"}` replaced by that definition.

    A recursive definition, any other reference and a `$ref` with siblings are kept as is
    (fastjsonschema resolves them itself).
    """
    if definitions is None:
        definitions = schema.get("definitions", {}) if isinstance(schema, dict) else {}
    if isinstance(schema, list):
        return [inline_refs(item, definitions, expanding) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    name = ref[len(LOCAL_REF):] if isinstance(ref, str) and ref.startswith(LOCAL_REF) else None
    if len(schema) == 1 and name is not None and name in definitions \
            and name not in expanding:
        return inline_refs(definitions[name], definitions, expanding | {name})
    return {k: v if k == "definitions" else inline_refs(v, definitions, expanding)
            for k, v in schema.items()}


def cache_path(name: str, text: str) -> Path:
    """Where the compiled validator of schema `name` with content `text` is cached."""
    key = _key(text).encode()
    digest = f"{zlib.crc32(key):08x}{zlib.adler32(key):08x}"
    return cache_dir(os.environ) / "schemas" / f"{Path(name).stem}-{digest}.marshal"


def _generate(schema: dict[str, Any], name: str) -> tuple[str, Any]:
    source = fastjsonschema.compile_to_code(inline_refs(schema))
    match = ENTRY.search(source)
    if match is None:  # pragma: no cover - fastjsonschema always emits a function
        raise RuntimeError(f"{name}: fastjsonschema generated no function")
    return match.group(1), compile(source, f"<schema {name}>", "exec")


def _read(path: Path, key: str) -> tuple[str, Any] | None:
    try:
        stored, entry, code = marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return (entry, code) if stored == key and isinstance(entry, str) else None


def _write(path: Path, key: str, entry: str, code: Any) -> None:
    from hubtasks.files import write_atomic

    try:
        write_atomic(path, marshal.dumps((key, entry, code)), mode=0o644)
    except OSError:
        pass  # a read-only home: compile every run


def compiled_check(schema: dict[str, Any], text: str, name: str) -> Callable[[Any], Any]:
    """The fastjsonschema validator of `schema` (source `text`), from the cache when there."""
    path, key = cache_path(name, text), _key(text)
    cached = _read(path, key)
    if cached is None:
        cached = _generate(schema, name)
        _write(path, key, *cached)
    entry, code = cached
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # code fastjsonschema generated from our own schema
    check: Callable[[Any], Any] = namespace[entry]
    return check
