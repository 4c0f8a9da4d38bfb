"""Compiled schema validators are cached on disk, and a bad cache only costs time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest

from hubtasks.config.schemacache import cache_path, compiled_check

SCHEMA = {"$id": "https://example.org/t.json", "type": "object",
          "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}},
          "required": ["name"]}
TEXT = json.dumps(SCHEMA)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUBTASKS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _works(check: object) -> None:
    assert callable(check)
    check({"name": "abc"})
    with pytest.raises(fastjsonschema.JsonSchemaException):
        check({"name": "ABC"})


def test_compiles_once_then_reads_the_cache(cache: Path) -> None:
    _works(compiled_check(SCHEMA, TEXT, "t.schema.json"))
    path = cache_path("t.schema.json", TEXT)
    assert path.is_relative_to(cache / "schemas") and path.is_file()
    stamp = path.stat().st_mtime_ns
    _works(compiled_check(SCHEMA, TEXT, "t.schema.json"))
    assert path.stat().st_mtime_ns == stamp  # read, not rewritten
    assert cache_path("t.schema.json", TEXT + " ") != path  # another schema, another entry


def test_a_corrupt_cache_is_recompiled(cache: Path) -> None:
    path = cache_path("t.schema.json", TEXT)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not marshal data")
    _works(compiled_check(SCHEMA, TEXT, "t.schema.json"))


def test_an_unwritable_cache_still_validates(cache: Path) -> None:
    cache.write_text("a file where the folder should be")
    _works(compiled_check(SCHEMA, TEXT, "t.schema.json"))


def test_an_entry_for_another_key_is_recompiled(cache: Path) -> None:
    """The file name is a checksum: an entry made for another schema text is not used."""
    other = json.dumps({**SCHEMA, "required": []})
    compiled_check({**SCHEMA, "required": []}, other, "t.schema.json")
    cache_path("t.schema.json", TEXT).parent.mkdir(parents=True, exist_ok=True)
    cache_path("t.schema.json", other).rename(cache_path("t.schema.json", TEXT))
    check = compiled_check(SCHEMA, TEXT, "t.schema.json")
    with pytest.raises(fastjsonschema.JsonSchemaException):
        check({})  # "name" is required again


def test_inlined_references_keep_every_verdict() -> None:
    """Local `$ref`s are inlined (fast code), recursive ones kept; verdicts don't change."""
    from hubtasks.config.schemacache import inline_refs

    tree = {"type": "object",
            "properties": {"kids": {"type": "array", "items": {"$ref": "#/definitions/tree"}}}}
    schema: dict[str, Any] = {"type": "object", "definitions": {
        "files": {"type": "array", "items": {"type": "string", "minLength": 1}}, "tree": tree},
        "properties": {"files": {"$ref": "#/definitions/files"},
                       "tree": {"$ref": "#/definitions/tree"}}}
    inlined = inline_refs(schema)
    assert inlined["properties"]["files"] == schema["definitions"]["files"]
    kids = inlined["properties"]["tree"]["properties"]["kids"]["items"]
    assert kids == {"$ref": "#/definitions/tree"}  # recursion stays a reference
    plain, fast = fastjsonschema.compile(schema), fastjsonschema.compile(inlined)
    docs = [{"files": ["a"]}, {"files": [""]}, {"files": "a"},
            {"tree": {"kids": [{"kids": []}]}}, {"tree": {"kids": [{"kids": "x"}]}}]
    for doc in docs:
        verdicts = []
        for check in (plain, fast):
            try:
                check(doc)
                verdicts.append(True)
            except fastjsonschema.JsonSchemaException:
                verdicts.append(False)
        assert verdicts[0] == verdicts[1], doc
