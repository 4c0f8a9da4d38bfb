"""FastSafeLoader gives exactly what PyYAML's C safe loader gives: values, sharing, errors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubtasks.config.fastyaml import FastSafeLoader

DOCS = [
    "a: 1\nb: [x, 'y', \"2\"]\nc: {d: null, e: ~, f: }\n",
    "ints: [0x1f, 0o17, 017, 1_000, -3, +4, 0b101, 190:20:30]\n",
    "floats: [1.5, 1e3, .inf, -.inf, .nan, 6.8523015e+5, 1_0.5]\n",
    "bools: [yes, No, on, OFF, true, False, y, n]\n",
    "when: [2001-12-14t21:59:43.10-05:00, 2002-12-14, '2002-12-14']\n",
    "bin: !!binary aGVsbG8=\nstr: !!str 12\nint: !!int '7'\n",
    "base: &b {x: 1, y: 2}\nuse: *b\nlist: &l [1, 2]\nagain: *l\n",
    "base: &b {x: 1, y: 2}\nmerged: {<<: *b, y: 3}\n",
    "set: !!set {a, b}\nomap: !!omap [a: 1, b: 2]\npairs: !!pairs [a: 1, a: 2]\n",
    "=: value key\n",
    "? [a, b]\n: unhashable\n",
    "? {a: 1}\n: unhashable\n",
    "x: !custom 1\n",
    "self: &s [*s]\n",
    "",
    "# only a comment\n",
    "just a string\n",
    "- 1\n- - 2\n  - {3: 4, 5.0: six, null: 7, true: 8}\n",
    "a: [\n",
    "a: 1\n---\nb: 2\n",
    "text: |\n  line one\n  line two\nfolded: >\n  one\n  two\n",
]


def load(text: str, loader: Any) -> tuple[str, Any]:
    try:
        return "ok", yaml.load(text, Loader=loader)
    except yaml.YAMLError as err:
        return type(err).__name__, str(err)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("text", DOCS)
def test_same_result_or_error_as_pyyaml(text: str) -> None:
    want, got = load(text, yaml.CSafeLoader), load(text, FastSafeLoader)
    if want[0] == "ok" and "self" in str(text):  # recursive: compare the shape only
        assert got[0] == "ok" and got[1]["self"][0] is got[1]["self"]
        return
    assert got[0] == want[0] and same(got[1], want[1]), (got, want)


@pytest.mark.parametrize(("text", "line"), [("dup: 1\ndup: 2\n", 2),
                                            ("a:\n  b: 1\n  c: 2\n  b: 3\n", 4)])
def test_a_key_named_twice_is_an_error_at_its_second_place(text: str, line: int) -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="found duplicate key") as err:
        yaml.load(text, Loader=FastSafeLoader)
    assert err.value.problem_mark is not None and err.value.problem_mark.line + 1 == line


def test_aliases_share_one_object() -> None:
    doc = yaml.load("base: &b {x: [1]}\nuse: *b\n", Loader=FastSafeLoader)
    assert doc["use"] is doc["base"]


def test_every_yaml_file_of_2i2c(fixture_2i2c: Path) -> None:
    paths = [p for p in sorted(fixture_2i2c.rglob("*.yaml")) if p.is_file()]
    assert len(paths) > 300
    for path in paths:
        text = path.read_text(encoding="utf-8")
        want, got = load(text, yaml.CSafeLoader), load(text, FastSafeLoader)
        assert got[0] == want[0] and same(got[1], want[1]), path


def test_plain_documents_skip_pyyaml_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Any, node: Any) -> Any:
        raise AssertionError("fell back")

    monkeypatch.setattr(yaml.constructor.BaseConstructor, "construct_document", refuse)
    assert yaml.load(DOCS[0] + DOCS[1] + DOCS[4], Loader=FastSafeLoader)["c"]["d"] is None
    with pytest.raises(AssertionError, match="fell back"):
        yaml.load(DOCS[7], Loader=FastSafeLoader)


def test_keys_yaml_tells_apart_are_no_duplicates() -> None:
    """`1` and `true` are two keys for YAML (and helm); only Python's dict makes them one."""
    assert yaml.load("1: x\ntrue: y\n", Loader=FastSafeLoader) == \
        yaml.load("1: x\ntrue: y\n", Loader=yaml.CSafeLoader)
