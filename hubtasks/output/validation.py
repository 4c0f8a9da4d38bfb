"""The `validate` report: one row per release, then every failure with helm's message."""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from hubtasks.deploying.validate import Check, ValidationResult, count
from hubtasks.model import JobKey


def render_validation(results: Sequence[ValidationResult]) -> str:
    """One row per release (lint, template), then each failure with helm's message."""
    by_release: dict[JobKey, dict[Check, ValidationResult]] = {}
    for result in results:
        by_release.setdefault(result.key, {})[result.check] = result
    rows = [[key.cluster, key.hub or "(support)",
             *(_mark(checks.get(check)) for check in Check)]
            for key, checks in by_release.items()]
    parts = [tabulate(rows, headers=["cluster", "release", *Check])]
    failed = [r for r in results if not r]
    if failed:
        parts.append(f"Failures ({len(failed)})")
        parts += [f"{r.key} {r.check}:\n{_indent(r.message)}" for r in failed]
    parts.append(f"{count(len(by_release), 'release')}, {count(len(results), 'check')}: "
                 f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return "\n\n".join(parts) + "\n"


def _mark(result: ValidationResult | None) -> str:
    return "" if result is None else "ok" if result else "FAILED"


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
