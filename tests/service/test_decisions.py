"""Decisions without HTTP (service/decisions.py): the version a decision is made with."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from juncture.records import DecisionQuery
from juncture.service.runtime import Runtime
from juncture.store.sqlite import SqliteStore

from .test_forward import ROUTES_TO_ALPHA, ROUTES_TO_BETA, upload

NOW = datetime(2026, 11, 29, 10, tzinfo=UTC)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    made = Runtime(SqliteStore(tmp_path / "j.db"), now=lambda: NOW, log_interval=3600)
    yield made
    made.shutdown()


def test_a_given_plan_decides_not_the_active_one(runtime: Runtime) -> None:
    """I7: a caller that read the version already hands it down; the decision and its record
    are that version's, whatever is active."""
    alpha, beta = upload(runtime, ROUTES_TO_ALPHA), upload(runtime, ROUTES_TO_BETA)
    runtime.policies.activate(beta, by="t")
    app, _ = runtime.apps.create("shop-web", [], [])
    given = runtime.policies.plan(alpha)
    request = {"subject": {"type": "user", "id": "alice"}}

    decided = runtime.decisions.decide(app, "alpha", request, plan=given).decision
    assert (decided.outcome, decided.scopes, decided.version) == ("allow", ("alpha",), alpha)
    active = runtime.decisions.decide(app, "alpha", request).decision  # beta has no `alpha`
    assert (active.outcome, active.reason, active.version) == ("deny", "unknown_action", beta)

    runtime.log.writer.flush()
    records = {r.id: r for r in runtime.store.query(DecisionQuery())}
    assert (records[decided.id or ""].outcome, records[decided.id or ""].version) == (
        "allow",
        alpha,
    )
    assert records[active.id or ""].version == beta


def test_a_given_plan_decides_even_with_no_active_version(runtime: Runtime) -> None:
    """The plan given is the one used: nothing else is read for the version."""
    alpha = upload(runtime, ROUTES_TO_ALPHA)  # stored, never activated
    app, _ = runtime.apps.create("shop-web", [], [])
    request = {"subject": {"type": "user", "id": "alice"}}
    none = runtime.decisions.decide(app, "alpha", request).decision
    assert (none.outcome, none.reason) == ("deny", "unavailable.no_version")
    given = runtime.decisions.decide(app, "alpha", request, plan=runtime.policies.plan(alpha))
    assert (given.decision.outcome, given.decision.version) == ("allow", alpha)
