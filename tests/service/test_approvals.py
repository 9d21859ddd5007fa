"""The built-in `approval.approve` rule (a journey that does not name the checkpoint):
approving needs AAL 2 proven within the last 5 minutes, else a step-up (or a deny when the
journey has no method that strong)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from juncture.engine import Decision, Facts
from juncture.policy import compile_plan, load_sources
from juncture.service.approval_requests import APPROVE, approval_gate

NOW = datetime(2026, 11, 29, 10, tzinfo=UTC)
PEOPLE = """\
journey: people
methods:
  password: {kind: password, aal: 1}
  totp: {kind: totp, aal: 2}
  passkey: {kind: webauthn, aal: 3}
checkpoints:
  "*": [{deny: unknown_action}]
"""


def decide(journey: str, *proofs: tuple[str, timedelta]) -> Decision:
    plan = compile_plan(load_sources({"people.yaml": journey.encode()}))
    facts = Facts.from_document({
        "subject": {"type": "user", "id": "ana"},
        "session": {"id": "s1", "proofs": [{"method": m, "at": (NOW - ago).isoformat()}
                                           for m, ago in proofs]},
    })  # fmt: skip
    return approval_gate(plan, plan.journeys["people"], facts, NOW, "d1")


def test_a_recent_second_factor_approves() -> None:
    decision = decide(PEOPLE, ("password", timedelta(hours=1)), ("totp", timedelta(minutes=4)))
    assert (decision.outcome, decision.action, decision.id) == ("allow", APPROVE, "d1")


def test_an_old_or_weak_proof_steps_up_to_aal_2_within_5_minutes() -> None:
    for proofs in (
        (("password", timedelta(seconds=10)),),
        (("totp", timedelta(minutes=6)),),
        (),
    ):
        decision = decide(PEOPLE, *proofs)
        assert decision.outcome == "step_up"
        step_up = decision.step_up
        assert step_up is not None
        assert (step_up.methods, step_up.aal, step_up.within) == (("totp", "passkey"), 2, 300)


def test_a_journey_with_no_method_that_strong_denies() -> None:
    weak = PEOPLE.replace("  totp: {kind: totp, aal: 2}\n", "").replace(
        "  passkey: {kind: webauthn, aal: 3}\n", ""
    )
    decision = decide(weak, ("password", timedelta(seconds=1)))
    assert (decision.outcome, decision.reason) == ("deny", "no_method_reaches_aal")
