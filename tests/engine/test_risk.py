"""Risk: points from the journey's rules, clamped, levelled; errors count as matched."""

from __future__ import annotations

import msgspec
import pytest

from juncture.engine.decision import RiskResult
from juncture.engine.risk import assess

from .helpers import build_plan, decide

RISK = build_plan(
    """
journey: j
risk:
  rules:
    - {when: "context.a", add: 60, reason: a}
    - {when: "context.b", add: 60, reason: b}
    - {when: "context.c", add: -80, reason: c}
    - {when: "geo.country == 'XX'", add: 10, reason: odd_country}
  levels: {calm: 0, watch: 30, alarm: 90}
checkpoints:
  a: [{if: "risk.score >= 90 && risk.level == 'alarm'", deny: too_risky}, {allow: {}}]
"""
)


def ctx(**flags: bool) -> dict[str, object]:
    return {"context": {"a": False, "b": False, "c": False, **flags}, "geo": {"country": "DE"}}


@pytest.mark.parametrize(
    ("flags", "score", "level", "reasons"),
    [
        ({}, 0, "calm", ()),
        ({"a": True}, 60, "watch", ("a",)),
        ({"a": True, "b": True}, 100, "alarm", ("a", "b")),  # 120 clamped to 100
        ({"c": True}, 0, "calm", ("c",)),  # -80 clamped to 0
        ({"a": True, "c": True}, 0, "calm", ("a", "c")),
    ],
)
def test_score_is_clamped_and_levelled(flags, score, level, reasons):
    decision = decide(RISK, "a", ctx(**flags))
    assert decision.risk == RiskResult(score=score, level=level, reasons=reasons)


def test_the_checkpoint_reads_the_risk():
    assert decide(RISK, "a", ctx(a=True, b=True)).reason == "too_risky"
    assert decide(RISK, "a", ctx(a=True)).outcome == "allow"


def test_an_erroring_rule_counts_as_matched_and_names_the_missing_fact():
    doc = ctx(a=True)
    del doc["geo"]
    decision = decide(RISK, "a", doc)
    assert decision.risk == RiskResult(score=70, level="watch", reasons=("a", "odd_country"))
    assert decision.missing == ("geo",)
    risk_traces = [t for t in decision.explanation if t.step.kind == "risk"]
    assert [t.result for t in risk_traces] == ["true", "false", "false", "error"]
    assert risk_traces[-1].detail
    # the rule errs without naming a fact (wrong type): it still counts
    decision = decide(RISK, "a", {"context": {"a": "yes", "b": False, "c": False}, "geo": {}})
    assert decision.risk.reasons == ("a", "odd_country")
    assert decision.missing == ("geo.country",)


def test_no_rules_no_risk():
    plan = build_plan("journey: j\ncheckpoints: {a: [{if: 'risk.score == 0', allow: {}}]}\n")
    decision = decide(plan, "a")
    assert decision.risk == RiskResult()
    assert decision.outcome == "allow"


def test_level_falls_back_to_the_lowest_when_no_threshold_is_reached():
    journey = RISK.journeys["j"]
    odd = msgspec.structs.replace(journey, risk_levels=((50, "high"), (10, "low")))
    trace: list = []
    result, missing = assess(
        odd, {"context": {"a": False, "b": False, "c": False}, "geo": {}}, trace
    )
    assert (result.score, result.level) == (10, "low")
    assert missing == ["geo.country"]
    zero, _ = assess(odd, {"context": {"a": False, "b": False, "c": True}, "geo": {}}, [])
    assert (zero.score, zero.level) == (0, "low")


def test_an_erroring_rule_that_subtracts_does_not_count():
    # Missing context may raise risk, never lower it.
    decision = decide(RISK, "a", {"context": {"a": True, "b": False}, "geo": {"country": "DE"}})
    assert decision.risk == RiskResult(score=60, level="watch", reasons=("a",))
    assert decision.missing == ("context.c",)
