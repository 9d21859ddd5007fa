"""Helpers for engine tests: compile a journey written inline, decide with fixed facts."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

from juncture.engine import Decision, Facts, evaluate
from juncture.errors import BundleError
from juncture.policy import Plan, compile_plan, load_sources

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def build_plan(*journeys: str, data: dict[str, str] | None = None) -> Plan:
    files = {f"j{i}.yaml": textwrap.dedent(text).encode() for i, text in enumerate(journeys)}
    for name, text in (data or {}).items():
        files[f"data/{name}"] = textwrap.dedent(text).encode()
    try:
        return compile_plan(load_sources(files))
    except BundleError as exc:  # pragma: no cover - shows what is wrong with a test's journey
        raise AssertionError("\n".join(map(str, exc.errors))) from None


def decide(plan: Plan, action: str, document: dict[str, Any] | None = None, **kw: Any) -> Decision:
    facts = Facts.from_document(document or {}, NOW)
    return evaluate(plan, action, facts, NOW, **kw)
