"""Decisions without HTTP (service/decisions.py): the version a decision is made with, and the
facts it works out under that version."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from juncture.records import DecisionQuery, StoredProof
from juncture.service.agents import Credential
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


#: A user journey whose TOTP is AAL ``{aal}``, and an agent journey that needs its delegator
#: at AAL 2: the delegator's AAL (a fact the service assembles) changes with the version.
PEOPLE_AND_AGENTS = """\
journey: people
applies_to: [ops]
subjects: [user]
methods:
  password: {{kind: password, aal: 1}}
  totp: {{kind: totp, aal: {aal}}}
checkpoints:
  login: [{{require: {{any: [password]}}}}, {{allow: {{}}}}]
  "*": [{{deny: unknown_action}}]
---
journey: agents
applies_to: [ops]
subjects: [agent]
methods:
  agent_key: {{kind: api_key, aal: 1}}
checkpoints:
  login: [{{require: {{any: [agent_key]}}}}, {{allow: {{}}}}]
  "tool:transfer":
    - if: "agent.delegation.aal < 2"
      deny: delegator_too_weak
    - allow: {{}}
  "*": [{{deny: unknown_action}}]
"""


def test_an_agents_delegator_aal_is_the_given_plans(runtime: Runtime) -> None:
    """I7: the delegating session's AAL is a fact the service works out from the journeys;
    a decision made with a given version works it out under that version, not the active
    one read again (which rates the same TOTP proof lower)."""

    def version(totp_aal: int) -> str:
        people, agents = PEOPLE_AND_AGENTS.format(aal=totp_aal).split("---\n")
        files = {"people.yaml": people.encode(), "agents.yaml": agents.encode()}
        made, problems, _ = runtime.policies.upload(files, author="t")
        assert made is not None, problems
        return made

    strong, weak = version(2), version(1)
    runtime.policies.activate(weak, by="t")
    app, _ = runtime.apps.create("ops", [], ["password", "totp"])
    proofs = [StoredProof(method=m, at=NOW, asserted_by=app.id) for m in ("password", "totp")]
    user = runtime.sessions.start(app, {"type": "user", "id": "ana"}, {}, proofs).session
    assert user is not None and user.status == "active"
    bot = runtime.directory.create_subject("agent", "bot", attributes={}, status="active",
                                           owner="user:ana")  # fmt: skip
    _, key = runtime.agents.issue_key(bot, label="", scopes=(), expires_in=None, now=NOW)
    agent = runtime.sessions.start(
        app, {}, {}, [], credential=Credential(api_key=key), delegation=user.id,
        task={"id": "t", "purpose": "pay", "tools": ["tool:transfer"], "expires_in": "1h"},
    ).session  # fmt: skip
    assert agent is not None and agent.status == "active"
    request = {"subject": {"type": "agent", "id": "bot"}}

    given = runtime.decisions.decide(app, "tool:transfer", request, session_id=agent.id,
                                     plan=runtime.policies.plan(strong)).decision  # fmt: skip
    assert (given.outcome, given.version) == ("allow", strong)
    active = runtime.decisions.decide(app, "tool:transfer", request, session_id=agent.id)
    assert (active.decision.outcome, active.decision.reason) == ("deny", "delegator_too_weak")
    assert active.decision.version == weak
