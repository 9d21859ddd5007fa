"""Risk: the journey's rules turn observed facts into a score, a level and reasons."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from juncture.engine.decision import RiskResult, Trace
from juncture.policy.cel_runtime import CelEvalError
from juncture.policy.plan import JourneyPlan


def assess(
    journey: JourneyPlan, activation: Mapping[str, Any], trace: list[Trace]
) -> tuple[RiskResult, list[str]]:
    """Score the request: the sum of matching rules' points, clamped to 0..100.

    A rule whose condition cannot be evaluated (a fact it reads is missing) counts
    as matched when it adds points and as unmatched when it would subtract: missing
    context raises risk, it never lowers it. Returns the
    result and the missing facts that forced a rule to count.
    """
    score = 0
    reasons = []
    missing = []
    for rule in journey.risk_rules:
        try:
            matched = rule.condition(activation)
            result = "true" if matched else "false"
            detail = None
        except CelEvalError as exc:
            # Missing context may only raise risk: an erroring rule that adds points counts,
            # one that would subtract does not.
            matched = rule.add > 0
            result = "error"
            detail = exc.message
            if exc.missing:
                missing.append(exc.missing)
        if matched:
            score += rule.add
            reasons.append(rule.reason)
        trace.append(Trace(step=rule.ref, result=result, detail=detail))
    score = max(0, min(100, score))
    level = journey.risk_levels[-1][1]
    for at_least, name in journey.risk_levels:
        if score >= at_least:
            level = name
            break
    return RiskResult(score=score, level=level, reasons=tuple(reasons)), missing
