"""Decisions: the outcome, why it was reached, and what would change it."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from juncture.policy.plan import StepRef

OutcomeName = Literal["allow", "deny", "step_up", "reroute", "revoke"]


class Trace(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One line of an explanation: a step or condition, and what came of it."""

    step: StepRef
    result: str  # true false error met not_met matched outcome entered
    detail: str | None = None


class StepUp(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What would satisfy a `require` gate (RFC 9470 `acr_values` / `max_age`)."""

    methods: tuple[str, ...]
    mode: Literal["any", "all"] = "any"
    within: int | None = None
    aal: int | None = None
    acr_values: str = ""
    amr_values: tuple[str, ...] = ()

    @property
    def max_age(self) -> int | None:
        return self.within


class RiskResult(msgspec.Struct, frozen=True, kw_only=True):
    score: int = 0
    level: str = "low"
    reasons: tuple[str, ...] = ()


class Decision(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The answer to "may this session do this now?", with its explanation.

    Only `allow` and `reroute` let the action proceed (`permitted`).
    """

    outcome: OutcomeName
    reason: str | None = None
    action: str = ""
    journey: str | None = None
    checkpoint: str | None = None
    scopes: tuple[str, ...] = ()
    ttl: int | None = None
    path: str | None = None
    obligations: tuple[Any, ...] = ()
    step_up: StepUp | None = None
    risk: RiskResult = RiskResult()
    version: str = ""
    id: str | None = None
    missing: tuple[str, ...] = ()
    explanation: tuple[Trace, ...] = ()

    @property
    def permitted(self) -> bool:
        return self.outcome in ("allow", "reroute")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (`msgspec.to_builtins`)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        if self.step_up is not None and self.step_up.within is not None:
            out["step_up"]["max_age"] = self.step_up.within
        return out
