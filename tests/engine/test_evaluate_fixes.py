"""Engine rules added after review: future proofs, the action variable, given segments."""

from __future__ import annotations

from datetime import timedelta

import pytest

from juncture.engine import Facts, evaluate
from juncture.errors import FactsError

from .helpers import NOW, build_plan, decide

GATED = build_plan(
    """
journey: j
methods:
  totp: {kind: totp, aal: 2}
checkpoints:
  pay:
    - require: {any: [totp], within: 5m}
    - allow: {}
  "tool:*":
    - {if: "action.name == 'tool:read'", allow: {}}
    - deny: not_a_read
  where:
    - {if: "network.segment == 'given' && network.segments == ['given']", allow: {}}
    - deny: no
"""
)


def _proof_at(offset: timedelta) -> dict[str, object]:
    return {"session": {"proofs": [{"method": "totp", "at": (NOW + offset).isoformat()}]}}


def test_a_proof_from_the_future_is_no_proof():
    assert decide(GATED, "pay", _proof_at(timedelta(days=1))).outcome == "step_up"
    assert decide(GATED, "pay", _proof_at(timedelta(minutes=-1))).outcome == "allow"


def test_a_proof_a_little_ahead_of_this_clock_counts():
    # Nodes' clocks differ by a few seconds; that must not force a second step-up.
    assert decide(GATED, "pay", _proof_at(timedelta(seconds=10))).outcome == "allow"


def test_future_proofs_do_not_raise_the_session_aal():
    plan = build_plan(
        """
journey: j
methods: {totp: {kind: totp, aal: 2}}
checkpoints: {a: [{if: "session.aal >= 2", allow: {}}, {deny: weak}]}
"""
    )
    assert decide(plan, "a", _proof_at(timedelta(hours=2))).reason == "weak"
    assert decide(plan, "a", _proof_at(timedelta(hours=-2))).outcome == "allow"


def test_conditions_read_the_action_being_decided():
    assert decide(GATED, "tool:read").outcome == "allow"
    assert decide(GATED, "tool:write").reason == "not_a_read"
    # what the facts claim the action is does not matter: the checkpoint asked for does
    claims = {"action": {"name": "tool:read", "properties": {"x": 1}}}
    assert decide(GATED, "tool:write", claims).reason == "not_a_read"


def test_a_segment_the_caller_observed_is_kept_with_its_segments():
    decision = decide(GATED, "where", {"network": {"ip": "10.0.0.1", "segment": "given"}})
    assert decision.outcome == "allow"


def test_naive_timestamps_in_facts_are_refused():
    with pytest.raises(FactsError) as info:
        Facts.from_document({"session": {"proofs": [{"method": "t", "at": "2026-11-29T09:00:00"}]}})
    assert info.value.code == "facts.invalid"
    assert "timezone" in info.value.message
    assert "$.session.proofs[0].at" in info.value.message


def test_decisions_do_not_depend_on_the_wall_clock():
    facts = Facts.from_document(_proof_at(timedelta(minutes=-1)))
    assert evaluate(GATED, "pay", facts, NOW).outcome == "allow"
    assert evaluate(GATED, "pay", facts, NOW + timedelta(minutes=10)).outcome == "step_up"


def test_an_app_bound_to_other_journeys_is_denied():
    decision = evaluate(
        GATED, "pay", Facts.from_document({}), NOW, allowed_journeys=frozenset({"x"})
    )
    assert (decision.outcome, decision.reason) == ("deny", "journey_not_allowed")
    bound = evaluate(
        GATED, "tool:read", Facts.from_document({}), NOW, allowed_journeys=frozenset({"j"})
    )
    assert bound.outcome == "allow"


def test_guard_only_returns_the_guard_outcome_or_guard_passed():
    plan = build_plan(
        """
journey: j
guard:
  - {if: "signals.credential_compromised", revoke: credential_compromised}
checkpoints: {a: [{deny: never_reached_by_guard_only}]}
"""
    )
    quiet = evaluate(plan, "", Facts.from_document({}), NOW, guard_only=True)
    assert (quiet.outcome, quiet.reason, quiet.checkpoint) == ("allow", "guard_passed", None)
    facts = Facts.from_document({"signals": {"credential_compromised": True}})
    loud = evaluate(plan, "", facts, NOW, guard_only=True)
    assert (loud.outcome, loud.reason) == ("revoke", "credential_compromised")
