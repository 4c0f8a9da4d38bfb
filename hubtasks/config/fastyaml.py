"""PyYAML's C safe loader with a faster Python half: the same documents, about half the time.

libyaml parses and composes in C, but PyYAML then calls back into Python for every scalar's
tag (`resolve`) and builds the objects with a generic, generator-based constructor. For config
files (plain mappings, lists and scalars) that Python half is most of the load time of 20,000
hubs. Here:
- a plain scalar's tag depends only on its text (the safe loader has no path resolvers), so it
  is resolved once per distinct text;
- mappings, sequences and scalars with the safe loader's plain tags are built by one direct
  recursion. Anything else (merge keys `<<`, `=` value keys, sets, omaps, custom or wrong
  tags, recursive anchors, unhashable keys) falls back to PyYAML's own constructor for the
  whole document, so results and errors stay PyYAML's. Aliases share one object, as in PyYAML.
- a key named twice in one mapping is an error (PyYAML keeps the last silently; helm and
  2i2c's ruamel loader refuse it); a document PyYAML's constructor builds (merge keys)
  is left as PyYAML has it.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

try:  # the C loader is ~10x faster, which matters for repos with thousands of hubs
    _Base: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Base = yaml.SafeLoader

_TAG = "tag:yaml.org,2002:"
STR, MAP, SEQ = f"{_TAG}str", f"{_TAG}map", f"{_TAG}seq"
_SPECIAL_KEYS = frozenset({f"{_TAG}merge", f"{_TAG}value"})
# scalar constructors of the safe loader that return their value (no generator, no children)
_SCALARS = frozenset(f"{_TAG}{name}" for name in
                     ("null", "bool", "int", "float", "binary", "timestamp"))
_IMPLICIT_TAGS: dict[str, str] = {}  # plain scalar text -> its resolved tag


class _Fallback(Exception):
    """The document needs PyYAML's full constructor."""


class FastSafeLoader(_Base):  # type: ignore[misc]
    """`yaml.load(text, Loader=FastSafeLoader)` == `yaml.load(text, Loader=CSafeLoader)`."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode and implicit[0]:
            tag = _IMPLICIT_TAGS.get(value)
            if tag is None:
                tag = _IMPLICIT_TAGS[value] = super().resolve(kind, value, implicit)
            return tag
        return super().resolve(kind, value, implicit)

    def construct_document(self, node: Node) -> Any:
        try:
            return self._build(node, {}, set())
        except _Fallback:
            return super().construct_document(node)

    def _build(self, node: Node, memo: dict[int, Any], busy: set[int]) -> Any:
        cls, tag = node.__class__, node.tag
        if cls is ScalarNode:
            if tag == STR:
                return node.value
            if tag in _SCALARS:
                return self.yaml_constructors[tag](self, node)
            raise _Fallback
        key = id(node)
        if key in memo:
            return memo[key]
        if key in busy:  # a recursive anchor
            raise _Fallback
        busy.add(key)
        out: Any
        # string leaves (most keys and values) are taken in place: no call per scalar
        if tag == MAP and cls is MappingNode:
            out = {}
            for key_node, value_node in node.value:
                if key_node.__class__ is ScalarNode and key_node.tag == STR:
                    name = key_node.value
                elif key_node.tag in _SPECIAL_KEYS:
                    raise _Fallback
                else:
                    name = self._build(key_node, memo, busy)
                if value_node.__class__ is ScalarNode and value_node.tag == STR:
                    value = value_node.value
                else:
                    value = self._build(value_node, memo, busy)
                try:
                    out[name] = value
                except TypeError:  # an unhashable key: PyYAML says so, with its mark
                    raise _Fallback from None
            if len(out) != len(node.value):
                _duplicate(self, node)
        elif tag == SEQ and cls is SequenceNode:
            out = [child.value if child.__class__ is ScalarNode and child.tag == STR
                   else self._build(child, memo, busy) for child in node.value]
        else:
            raise _Fallback
        busy.discard(key)
        memo[key] = out
        return out


def _duplicate(loader: FastSafeLoader, node: Node) -> None:
    """Refuse a mapping that names a key twice (helm and ruamel refuse it; PyYAML keeps
    the last value, silently dropping the first), at the second occurrence."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        # a scalar key as YAML spells it, with its tag: `1` and `true` are two keys (helm's
        # go-yaml keeps both), though Python's dict makes them one
        key = (key_node.tag, key_node.value) if key_node.__class__ is ScalarNode \
            else loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key_node.value if isinstance(key, tuple) else key!r}",
                key_node.start_mark)
        seen.add(key)
