"""Reading config files: YAML with line-numbered errors, JSON Schema checks with key paths."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema
import yaml

from hubtasks.config.fastyaml import FastSafeLoader
from hubtasks.config.schemacache import compiled_check
from hubtasks.model import HubtasksError

if TYPE_CHECKING:
    import jsonschema

_Loader: Any = FastSafeLoader  # PyYAML's C safe loader, its Python half made faster


class ConfigError(HubtasksError):
    """One or more problems in the config; each names its file and key."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the config:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


def read_yaml(root: Path, rel: str) -> Any:
    """Parse one YAML file, turning syntax errors into a message with its line."""
    return parse_yaml(read_text(root, rel), rel)


def read_text(root: Path, rel: str) -> str:
    """A config file's text; a ConfigError naming it when it can't be read.

    A string path, not pathlib: a plan reads thousands of small files, and joining
    Paths cost more than parsing them.
    """
    try:
        with open(f"{root}/{rel}", encoding="utf-8") as file:
            return file.read()
    except OSError as err:
        raise ConfigError([f"{rel}: cannot read: {err.strerror}"]) from None
    except UnicodeDecodeError as err:
        raise ConfigError([f"{rel}: not valid UTF-8 (byte {err.start}): save it as UTF-8"]) \
            from None


def parse_yaml(text: str, rel: str) -> Any:
    """Parse YAML text named `rel` for error messages."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError([f"{rel}{where}: invalid YAML: {problem}"]) from None


@cache
def _schema_text(name: str) -> str:
    # next to this module (not importlib.resources: ~3 ms of imports on every plan)
    return Path(__file__).with_name(name).read_text(encoding="utf-8")


@cache
def _schema(name: str) -> dict[str, Any]:
    return json.loads(_schema_text(name))  # type: ignore[no-any-return]


@cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    """The full validator, imported lazily: only an invalid document needs it (~45 ms)."""
    import jsonschema.validators

    schema = _schema(name)
    cls = jsonschema.validators.validator_for(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


@cache
def _fast_check(name: str) -> Callable[[Any], Any]:
    """A compiled validator: ~50x faster than jsonschema, but stops at the first error."""
    return compiled_check(_schema(name), _schema_text(name), name)


def key_path(parts: Iterable[str | int], doc: Any = None) -> str:
    """Render a JSON path like `hubs[2](name=prod).domain`, naming hubs when possible."""
    out = ""
    node = doc
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
            if isinstance(node, list) and part < len(node):
                node = node[part]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    out += f"(name={node['name']})"
            else:
                node = None
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


@dataclass(frozen=True)
class SchemaError:
    """One schema violation: where (a key path into the document), which rule, and why."""

    path: tuple[str | int, ...]
    rule: str  # the JSON Schema keyword that failed: "required", "additionalProperties"...
    message: str

    def describe(self, rel: str, doc: Any) -> str:
        return f"{rel}: {key_path(self.path, doc)}: {self.message}"


def schema_errors(schema: str, doc: Any) -> list[SchemaError]:
    """Every schema violation of `doc`, sorted by key path.

    The compiled validator answers the common, valid case fast; only an invalid
    document pays for jsonschema, which lists every error with its path.
    """
    try:
        _fast_check(schema)(doc)
        return []
    except fastjsonschema.JsonSchemaException:
        pass
    errors = sorted(_validator(schema).iter_errors(doc), key=lambda e: list(map(str, e.path)))
    return [SchemaError(tuple(e.absolute_path), str(e.validator), e.message) for e in errors]


def schema_problems(schema: str, doc: Any, rel: str) -> list[str]:
    """Every schema violation of `doc`, each naming file and key path."""
    return [error.describe(rel, doc) for error in schema_errors(schema, doc)]


def schema_definition(schema: str, name: str) -> Mapping[str, Any]:
    """One entry of a bundled schema's `definitions` (e.g. cluster.yaml's `hub`)."""
    definition: Mapping[str, Any] = _schema(schema)["definitions"][name]
    return definition
