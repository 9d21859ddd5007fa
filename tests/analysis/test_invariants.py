"""The invariant checker: a corpus of journeys, each breaking one invariant by a different route
(a fragment, an else branch, a glob, the guard, a data lookup), is caught with a counterexample
that reproduces; journeys that keep their invariants check clean; what the solver cannot decide
is a warning, never a silent pass."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from juncture.analysis import check
from juncture.analysis.invariants import NOW
from juncture.bundles import find_bundles
from juncture.engine import Facts, evaluate
from juncture.errors import PolicyError
from juncture.policy import compile_plan, load, load_sources

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

HEAD = """\
journey: pay
applies_to: [shop]
subjects: [user]
methods:
  password: {kind: password}
  totp: {kind: totp}
  passkey: {kind: webauthn}
risk:
  rules:
    - {when: "has(context.flagged) && context.flagged", add: 80, reason: flagged}
"""

INVARIANTS = """\
invariants:
  payments_need_a_fresh_second_factor:
    at: "payment.*"
    never: allow
    unless: {require: {any: [totp, passkey], within: 5m}}
  high_risk_never_pays:
    at: "payment.*"
    never: [allow, reroute]
    when: "risk.level == 'high'"
"""

GOOD = """\
checkpoints:
  login:
    - require: {any: [password]}
    - allow: {}
  "payment.*":
    - {if: "risk.level == 'high'", deny: risk_too_high}
    - use: second_factor
    - allow: {}
  "*": [{deny: unknown_action}]
fragments:
  second_factor:
    - require: {any: [totp, passkey], within: 5m}
"""

#: name -> (the journey's checkpoints and fragments, the invariant broken, a line of the path)
BROKEN: dict[str, tuple[str, str, str]] = {
    "fragment": (
        """\
checkpoints:
  "payment.*":
    - {if: "risk.level == 'high'", deny: risk_too_high}
    - use: second_factor
    - allow: {}
  "*": [{deny: unknown_action}]
fragments:
  second_factor:
    - if: "has(context.remembered) && context.remembered"
      allow: {}
    - require: {any: [totp, passkey], within: 5m}
""",
        "payments_need_a_fresh_second_factor",
        "if has(context.remembered) && context.remembered",
    ),
    "else branch": (
        """\
checkpoints:
  "payment.*":
    - {if: "risk.level == 'high'", deny: risk_too_high}
    - if: "subject.properties.tier == 'gold'"
      then: [{require: {any: [totp, passkey], within: 5m}}]
      else: [{require: {any: [password, totp], within: 5m}}]
    - allow: {}
  "*": [{deny: unknown_action}]
""",
        "payments_need_a_fresh_second_factor",
        "require any(password, totp) within 5m",
    ),
    "glob": (
        """\
checkpoints:
  "payment.card":
    - {if: "risk.level == 'high'", deny: risk_too_high}
    - require: {any: [totp, passkey], within: 5m}
    - allow: {}
  "payment.*":
    - {if: "risk.level == 'high'", deny: risk_too_high}
    - require: {any: [password]}
    - allow: {}
  "*": [{deny: unknown_action}]
""",
        "payments_need_a_fresh_second_factor",
        "require any(password)",
    ),
    "star checkpoint": (
        """\
checkpoints:
  "payment.card":
    - {if: "risk.level == 'high'", deny: risk_too_high}
    - require: {any: [totp, passkey], within: 5m}
    - allow: {}
  "*":
    - {if: "risk.level == 'high'", deny: risk_too_high}
    - require: {any: [password]}
    - allow: {}
""",
        "payments_need_a_fresh_second_factor",
        "require any(password)",
    ),
    "guard": (
        """\
guard:
  - if: >-
      has(context.partner_token) && context.partner_token == 'internal' &&
      risk.level != 'high'
    allow: {scopes: [internal]}
checkpoints:
  "payment.*":
    - {if: "risk.level == 'high'", deny: risk_too_high}
    - require: {any: [totp, passkey], within: 5m}
    - allow: {}
  "*": [{deny: unknown_action}]
""",
        "payments_need_a_fresh_second_factor",
        "if has(context.partner_token) && context.partner_token == 'internal' && "
        "risk.level != 'high'",
    ),
    "data lookup": (
        """\
checkpoints:
  "payment.*":
    - require: {any: [totp, passkey], within: 5m}
    - if: "data.limits[subject.properties.country].trusted"
      allow: {}
    - {if: "risk.level == 'high'", deny: risk_too_high}
    - allow: {}
  "*": [{deny: unknown_action}]
""",
        "high_risk_never_pays",
        "if data.limits[subject.properties.country].trusted",
    ),
}
DATA = b"DE: {trusted: false}\nFR: {trusted: false}\nLU: {trusted: true}\n"


def _bundle(body: str, extra: str = "") -> dict[str, bytes]:
    return {"pay.yaml": (HEAD + body + INVARIANTS + extra).encode(), "data/limits.yaml": DATA}


def _violations(problems: list[PolicyError]) -> list[PolicyError]:
    return [p for p in problems if p.code == "policy.invariant.violated"]


def _reproduce(problem: PolicyError, files: dict[str, bytes]) -> str:
    """Decide the counterexample again, from its facts document alone: the outcome."""
    extra = problem.extra
    plan = compile_plan(load_sources(files))
    now = datetime.fromisoformat(extra["now"].replace("Z", "+00:00"))
    decision = evaluate(plan, extra["action"], Facts.from_document(extra["facts"]), now)
    assert decision.journey == extra["journey"]
    assert decision.checkpoint in (extra["checkpoint"], None)  # None: the guard decided
    assert [t.step.text for t in decision.explanation] == [s["step"] for s in extra["path"]]
    return decision.outcome


def test_a_journey_that_keeps_its_invariants_checks_clean() -> None:
    plan, problems = check(load_sources(_bundle(GOOD)))
    assert plan is not None
    assert [p for p in problems if p.code.startswith("policy.invariant.")] == []


@pytest.mark.parametrize("route", sorted(BROKEN))
def test_a_broken_invariant_is_caught_with_a_counterexample_that_reproduces(route: str) -> None:
    body, invariant, step = BROKEN[route]
    files = _bundle(body)
    plan, problems = check(load_sources(files))
    assert plan is None  # a violation is an error: no plan, no publish
    found = _violations(problems)
    assert [p.extra["invariant"] for p in found] == [invariant], [str(p) for p in problems]
    problem = found[0]
    assert problem.severity == "error" and problem.location.file == "pay.yaml"
    assert problem.location.line > 0
    assert step in [s["step"] for s in problem.extra["path"]]
    assert all(s["file"] == "pay.yaml" and s["line"] > 0 for s in problem.extra["path"])
    outcome = _reproduce(problem, files)
    assert outcome == problem.extra["outcome"] in ("allow", "reroute")
    if invariant == "high_risk_never_pays":
        assert problem.extra["facts"]["context"]["flagged"] is True
    if route == "data lookup":  # the country that the data document trusts
        assert problem.extra["facts"]["subject"]["properties"]["country"] == "LU"
    assert problem.to_dict()["counterexample"] == problem.extra


def test_a_reroute_elsewhere_breaks_reroute_only_to() -> None:
    body = """\
checkpoints:
  "payment.*":
    - {if: "risk.level == 'high'", deny: risk_too_high}
    - if: "subject.properties.tier == 'trial'"
      reroute: {path: /somewhere/else}
    - if: "risk.score > 10"
      reroute: {path: /limited}
    - require: {any: [totp, passkey], within: 5m}
    - allow: {}
  "*": [{deny: unknown_action}]
"""
    extra = "  reroute_to_limited:\n    reroute_only_to: [/limited]\n"
    files = {"pay.yaml": (HEAD + body + extra.join(["invariants:\n", ""])).encode()}
    _, problems = check(load_sources(files))
    found = _violations(problems)
    assert [p.extra["reroute_path"] for p in found] == ["/somewhere/else"]
    assert _reproduce(found[0], files) == "reroute"


def test_an_action_no_checkpoint_serves_is_decided_by_the_guard_and_proved_too() -> None:
    journey = (
        HEAD
        + """\
guard:
  - if: "has(context.internal) && context.internal"
    allow: {}
checkpoints:
  "payment.card":
    - require: {any: [totp, passkey], within: 5m}
    - allow: {}
invariants:
  payments_need_a_fresh_second_factor:
    at: "payment.*"
    never: allow
    unless: {require: {any: [totp, passkey], within: 5m}}
"""
    )
    files = {"pay.yaml": journey.encode()}
    _, problems = check(load_sources(files))
    found = _violations(problems)
    assert sorted(p.extra["checkpoint"] or "" for p in found) == ["", "payment.card"]
    for problem in found:
        assert _reproduce(problem, files) == "allow"
    assert any("no checkpoint: the guard decides" in p.message for p in found)


def test_subjects_narrow_an_invariant() -> None:
    journey = (
        HEAD.replace("subjects: [user]", "subjects: [user, agent]")
        + """\
checkpoints:
  "payment.*":
    - if: "subject.type == 'user'"
      then: [{require: {any: [totp, passkey], within: 5m}}]
    - allow: {}
invariants:
  people_pay_with_a_second_factor:
    subjects: [user]
    never: allow
    unless: {require: {any: [totp, passkey], within: 5m}}
  agents_never_pay:
    subjects: [agent]
    never: allow
"""
    )
    _, problems = check(load_sources({"pay.yaml": journey.encode()}))
    found = _violations(problems)
    assert [p.extra["invariant"] for p in found] == ["agents_never_pay"]
    assert found[0].extra["facts"]["subject"]["type"] == "agent"


def test_what_the_solver_cannot_decide_is_a_warning_never_a_silent_pass() -> None:
    """`now.getHours()` is beyond the translation: the solver's path does not reproduce (every
    counterexample is decided at noon), so the answer is unknown, a warning."""
    body = """\
checkpoints:
  "payment.*":
    - {if: "risk.level == 'high'", deny: risk_too_high}
    - if: "now.getHours() < 6"
      allow: {}
    - require: {any: [totp, passkey], within: 5m}
    - allow: {}
  "*": [{deny: unknown_action}]
"""
    plan, problems = check(load_sources(_bundle(body)))
    assert plan is not None
    unknown = [p for p in problems if p.code == "policy.invariant.unknown"]
    assert [p.severity for p in unknown] == ["warning"]
    assert "payments_need_a_fresh_second_factor" in unknown[0].message
    assert "beyond the solver: `now.getHours() < 6`" in unknown[0].message


def test_an_invariant_proved_with_an_opaque_condition_still_holds() -> None:
    """A condition beyond the solver is a free boolean: the gate after it holds either way."""
    body = """\
checkpoints:
  "payment.*":
    - {if: "risk.level == 'high'", deny: risk_too_high}
    - if: "now.getHours() < 6"
      deny: night
    - require: {any: [totp, passkey], within: 5m}
    - allow: {}
  "*": [{deny: unknown_action}]
"""
    plan, problems = check(load_sources(_bundle(body)))
    assert plan is not None and _violations(problems) == []
    assert [p for p in problems if p.code.startswith("policy.invariant")] == []


@pytest.mark.parametrize(
    "bundle", sorted(find_bundles(EXAMPLES / "journeys")), ids=lambda p: p.name
)
def test_the_reference_journeys_carry_invariants_and_check_clean(bundle: Path) -> None:
    loaded = load(bundle)
    assert all(j.invariants for j in loaded.journeys)
    plan, problems = check(loaded)
    assert plan is not None
    assert [str(p) for p in problems if p.code.startswith("policy.invariant.")] == []


def test_the_counterexamples_time_is_fixed() -> None:
    assert NOW.isoformat() == "2026-01-01T12:00:00+00:00"
