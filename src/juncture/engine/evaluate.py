"""evaluate(plan, action, facts, now) -> Decision: the guard, then the checkpoint; deny by default.

Pure: no clock, no I/O, no randomness. ``now`` and the decision id come from the caller.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from juncture.engine.decision import Decision, RiskResult, StepUp, Trace
from juncture.engine.facts import Facts, Proof
from juncture.engine.risk import assess
from juncture.policy.cel_runtime import CelEvalError
from juncture.policy.plan import (
    IF,
    OUTCOME,
    REQUIRE,
    JourneyPlan,
    MethodInfo,
    Outcome,
    Plan,
    RequireSpec,
    StepRef,
    Steps,
    acr_values,
)

_NO_REF = StepRef(kind="engine", text="", file="", line=0)


class _Run:
    """The state of one evaluation: activation, trace, and the first outcome reached."""

    __slots__ = ("act", "journey", "missing", "now", "proofs", "step_up", "trace")

    def __init__(
        self, journey: JourneyPlan, act: dict[str, Any], proofs: tuple[Proof, ...], now: datetime
    ) -> None:
        self.journey = journey
        self.act = act
        self.proofs = proofs
        self.now = now
        self.trace: list[Trace] = []
        self.missing: list[str] = []
        self.step_up: StepUp | None = None

    def walk(self, steps: Steps) -> Outcome | None:
        """Run steps in order; the first outcome wins. None when the list runs out."""
        trace = self.trace
        for step in steps:
            op = step[0]
            if op == OUTCOME:
                trace.append(Trace(step=step[1], result="outcome"))
                return step[2]  # type: ignore[no-any-return]
            if op == IF:
                try:
                    taken = step[2](self.act)
                except CelEvalError as exc:
                    trace.append(Trace(step=step[1], result="error", detail=exc.message))
                    if exc.missing:
                        self.missing.append(exc.missing)
                    return _EVALUATION_ERROR
                trace.append(Trace(step=step[1], result="true" if taken else "false"))
                found = self.walk(step[3] if taken else step[4])
            elif op == REQUIRE:
                found = self.require(step[1], step[2])
            else:  # USE
                trace.append(Trace(step=step[1], result="entered"))
                found = self.walk(step[2])
            if found is not None:
                return found
        return None

    def require(self, ref: StepRef, spec: RequireSpec) -> Outcome | None:
        methods = self.journey.methods
        now = self.now
        limit = spec.limit
        fresh = set()
        level = 0
        horizon = now + CLOCK_SKEW
        for proof in self.proofs:
            if proof.at > horizon or (limit is not None and now - proof.at > limit):
                continue  # a proof from the future is no proof; a stale one is not fresh
            rated = _rate(methods, proof)
            if rated is None:
                continue
            fresh.add(proof.method)
            if rated[1] > level:
                level = rated[1]
        if spec.mode == "all":
            lacking = tuple(m for m in spec.methods if m not in fresh)
            met = not lacking
        else:
            lacking = ()
            met = not spec.methods or not fresh.isdisjoint(spec.methods)
        if spec.aal is not None and level < spec.aal:
            met = False
        if met:
            self.trace.append(Trace(step=ref, result="met"))
            return None
        self.trace.append(Trace(step=ref, result="not_met"))
        if lacking:  # `all`: ask for what is still missing
            needed = spec.aal or min(methods[m].aal for m in lacking) or 1
            offered, acr, amr = lacking, acr_values(needed), _amr(methods, lacking)
        else:
            offered, acr, amr = spec.offered, spec.acr_values, spec.amr_values
        self.step_up = StepUp(
            methods=offered,
            mode="all" if spec.mode == "all" else "any",
            within=spec.within,
            aal=spec.aal,
            acr_values=acr,
            amr_values=amr,
        )
        return _STEP_UP


def _rate(methods: dict[str, MethodInfo], proof: Proof) -> tuple[str, int, tuple[str, ...]] | None:
    """(kind, AAL, amr) of a proof as the journey rates it; None when it proves nothing here.

    A method the journey declares is rated by the declaration: its AAL is a ceiling (a proof
    that says less, such as a passkey used without user verification, counts for less), and a
    proof of another kind under the same name (another journey's method) does not count. A
    method the journey does not declare keeps the proof's own kind, AAL and amr.
    """
    info = methods.get(proof.method)
    if info is None:
        return proof.kind or "external", proof.aal or 0, proof.amr
    if proof.kind is not None and proof.kind != info.kind:
        return None
    aal = info.aal if proof.aal is None else min(info.aal, proof.aal)
    return info.kind, aal, proof.amr or info.amr


def _amr(methods: dict[str, MethodInfo], names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a for n in names for a in methods[n].amr))


#: How far in the future a proof's time may be and still count (clocks of nodes differ).
CLOCK_SKEW = timedelta(seconds=30)
_STEP_UP = Outcome(outcome="step_up", reason="step_up_required")
_EVALUATION_ERROR = Outcome(outcome="deny", reason="evaluation_error")
_NO_RULE = Outcome(outcome="deny", reason="no_rule_matched")
_GUARD_PASSED = Outcome(outcome="allow", reason="guard_passed")


def select_journey(plan: Plan, facts: Facts) -> tuple[JourneyPlan | None, str | None]:
    """The journey that governs this app and subject type: one match, or a deny reason."""
    return plan.route(facts.app, facts.subject_type)


def session_view(journey: JourneyPlan, facts: Facts, now: datetime) -> dict[str, Any]:
    """The `session` variable: proofs as the journey rates them, with ages as of ``now``.

    A session's AAL is computed here, from its current proofs and the journey's method
    table, at every decision: it is never cached.
    """
    methods = journey.methods
    latest: dict[str, dict[str, Any]] = {}
    horizon = now + CLOCK_SKEW
    for proof in facts.proofs:
        if proof.at > horizon:
            continue
        seen = latest.get(proof.method)
        if seen is not None and proof.at <= seen["at"]:
            continue
        rated = _rate(methods, proof)
        if rated is None:
            continue
        kind, aal, amr = rated
        latest[proof.method] = {"kind": kind, "aal": aal, "at": proof.at, "amr": list(amr)}
    for entry in latest.values():
        entry["age"] = now - entry["at"]
    view: dict[str, Any] = {
        "methods": latest,
        "aal": max((p["aal"] for p in latest.values()), default=0),
        "amr": sorted({a for p in latest.values() for a in p["amr"]}),
        "proofs": [{"method": p.method, "at": p.at} for p in facts.proofs],
    }
    session = facts.session
    if session is not None:
        if session.id is not None:
            view["id"] = session.id
        if session.started_at is not None:
            view["started_at"] = session.started_at
            view["age"] = now - session.started_at
    return view


def network_view(journey: JourneyPlan, facts: Facts, network: dict[str, Any]) -> dict[str, Any]:
    """The `network` variable with `segment` (longest matching prefix, else `unknown`).

    `segments` lists every journey network holding the IP, longest prefix first; a segment
    the caller observed is kept as it is.
    """
    ip = facts.ip
    if "segment" in network:  # the caller observed it: keep it
        return network if "segments" in network else {**network, "segments": [network["segment"]]}
    if ip is None:
        return network
    names = journey.network_table.all(ip)
    return {**network, "segment": names[0] if names else "unknown", "segments": names}


def evaluate(
    plan: Plan,
    action: str,
    facts: Facts,
    now: datetime,
    *,
    journey: str | None = None,
    decision_id: str | None = None,
    allowed_journeys: frozenset[str] | None = None,
    guard_only: bool = False,
) -> Decision:
    """Decide whether the session may do ``action`` now.

    ``allowed_journeys`` (the journeys the calling app is bound to) makes any other chosen
    journey a deny `journey_not_allowed`. ``guard_only`` runs risk and the guard alone (on a
    context update): an outcome reached there is returned; falling off the guard's end is
    `allow` with reason `guard_passed`, which grants nothing by itself.

    Risk rules run first, then the journey's guard, then the checkpoint for
    ``action`` (exact name, most specific glob, ``*``). Falling off the end of the
    checkpoint is deny `no_rule_matched`; any error is deny `evaluation_error`;
    no checkpoint is deny `no_checkpoint`. Never raises for a decision: an
    unexpected failure is a deny too.
    """
    try:
        return _evaluate(
            plan, action, facts, now, journey, decision_id, allowed_journeys, guard_only
        )
    except Exception as exc:  # INVARIANT: an error while evaluating is deny, never allow
        return Decision(
            outcome="deny",
            reason="evaluation_error",
            action=action,
            version=plan.version,
            id=decision_id,
            explanation=(
                Trace(step=_NO_REF, result="error", detail=f"internal error: {type(exc).__name__}"),
            ),
        )


def _activation(
    plan: Plan,
    chosen: JourneyPlan,
    action: str,
    facts: Facts,
    now: datetime,
    reads: frozenset[str],
) -> dict[str, Any]:
    """The variables conditions read (without `risk`): the facts, `now`, the data, and the
    views the journey's conditions (``reads``) need."""
    base = facts.base
    act = dict(base)
    act["now"] = now
    act["data"] = plan.data
    if "action" in reads:  # the action decided is the checkpoint asked for, whatever facts say
        given = base.get("action")
        act["action"] = {"name": action, "properties": given["properties"] if given else {}}
    if "session" in reads:
        act["session"] = session_view(chosen, facts, now)
    network = base.get("network")
    if network is not None and "network" in reads:
        act["network"] = network_view(chosen, facts, network)
    if facts.device_posture_at is not None:
        act["device"] = {**base["device"], "posture_age": now - facts.device_posture_at}
    return act


_EVERY_VIEW = frozenset({"action", "session", "network"})


def activation(
    plan: Plan, journey: JourneyPlan, action: str, facts: Facts, now: datetime
) -> dict[str, Any]:
    """Every variable a condition of ``journey`` could read for this decision, `risk`
    included, as `evaluate` builds them (for analyses that check a condition of their own,
    such as an invariant's `when`). Raises what a risk rule's evaluation may raise only as
    `evaluate` does: never (an erroring rule counts as `evaluate` counts it)."""
    act = _activation(plan, journey, action, facts, now, _EVERY_VIEW)
    risk, _ = assess(journey, act, []) if journey.risk_rules else (RiskResult(), [])
    act["risk"] = {"score": risk.score, "level": risk.level, "reasons": list(risk.reasons)}
    return act


def gate_met(
    journey: JourneyPlan, spec: RequireSpec, proofs: tuple[Proof, ...], now: datetime
) -> bool:
    """Whether the session's ``proofs`` meet a `require` gate of ``journey`` at ``now``."""
    return _Run(journey, {}, proofs, now).require(_NO_REF, spec) is None


def _evaluate(
    plan: Plan,
    action: str,
    facts: Facts,
    now: datetime,
    journey_name: str | None,
    decision_id: str | None,
    allowed_journeys: frozenset[str] | None = None,
    guard_only: bool = False,
) -> Decision:
    if journey_name is not None:
        chosen = plan.journeys.get(journey_name)
        problem = None if chosen is not None else "no_journey"
    else:
        chosen, problem = select_journey(plan, facts)
    if chosen is not None and allowed_journeys is not None and chosen.name not in allowed_journeys:
        chosen, problem = None, "journey_not_allowed"
    if chosen is None:
        return Decision(
            outcome="deny", reason=problem, action=action, version=plan.version, id=decision_id
        )
    act = _activation(plan, chosen, action, facts, now, chosen.reads)
    run = _Run(chosen, act, facts.proofs, now)
    risk, risk_missing = assess(chosen, act, run.trace) if chosen.risk_rules else (RiskResult(), [])
    run.missing.extend(risk_missing)
    act["risk"] = {"score": risk.score, "level": risk.level, "reasons": list(risk.reasons)}
    found = chosen.checkpoint(action)
    outcome = run.walk(chosen.guard)
    checkpoint = None
    if outcome is None:
        if guard_only:
            outcome = _GUARD_PASSED
        elif found is None:
            outcome = Outcome(outcome="deny", reason="no_checkpoint")
        else:
            ref, steps = found
            checkpoint = ref.text
            run.trace.append(Trace(step=ref, result="entered"))
            outcome = run.walk(steps) or _NO_RULE
    return Decision(
        outcome=outcome.outcome,  # type: ignore[arg-type]
        reason=outcome.reason,
        action=action,
        journey=chosen.name,
        checkpoint=checkpoint,
        scopes=outcome.scopes,
        ttl=outcome.ttl,
        path=outcome.path,
        obligations=outcome.obligations,
        step_up=run.step_up if outcome is _STEP_UP else None,
        risk=risk,
        version=plan.version,
        id=decision_id,
        missing=tuple(dict.fromkeys(run.missing)),
        explanation=tuple(run.trace),
    )
