"""CEL conditions as z3 constraints: what is translated exactly, and what is opaque (a free
boolean, which only widens what the checker considers)."""

from __future__ import annotations

from typing import Any

import pytest
import z3

from juncture.analysis.symbolic import Space
from juncture.policy.cel_ast import parse

DATA = {
    "users": {"ana": {"country": "DE", "vip": True}, "bo": {"country": "FR", "vip": False}},
    "allowed": ["DE", "NL"],
    "limits": {"max": 5},
    "nested": {"a": {"b": {"c": 1}}},
    "numbers": [1, 2],
}
LEVELS = ((70, "high"), (40, "medium"), (0, "low"))


def _space(rules: tuple[tuple[str, int, str], ...] = ()) -> Space:
    return Space(DATA, [(parse(text), add, reason) for text, add, reason in rules], LEVELS)


def _opaque(text: str) -> bool:
    space = _space()
    space.condition(parse(text))
    return bool(space.opaque)


def _possible(space: Space, *formulas: Any) -> bool:
    solver = z3.Solver()
    solver.add(*space.finish(), *formulas)
    return solver.check() == z3.sat


def _holds(space: Space, text: str) -> Any:
    defined, value = space.condition(parse(text))
    return z3.And(defined, value)


@pytest.mark.parametrize(
    "text",
    [
        "context.a && !context.b || has(context.c)",
        "context.n > 3 && context.n <= 10.5",
        "context.x == 'a' && 'b' != context.y",
        "context.t in ['a', 'b'] && !(context.u in data.allowed)",
        "data.users[subject.id].country == geo.country",
        "data.users[subject.id].vip",
        "has(data.users.ana) && !has(data.users.zed) && has(data.nested.a.b)",
        "data.limits.max > context.amount && data.limits['max'] == 5",
        "risk.level == 'high' || risk.score < 10 || 'flagged' in risk.reasons",
        "device.posture_age >= duration('15m') && has(device.posture_age)",
        "signals.credential_compromised || -1 < context.n",
        "action.name == 'pay' && subject.type == 'user' && has(action.name) && has(risk.score)",
        "true && !false",
        "geo.asn == 3 && geo.lat > 1 && device.managed == true",
        "context.flag == 'x' && context.flags == 1",
    ],
)
def test_what_is_translated_exactly(text: str) -> None:
    assert not _opaque(text), text


@pytest.mark.parametrize(
    "text",
    [
        "now.getHours() < 6",
        "session.aal >= 2",
        "context.s < 'b'",
        "context.x == context.y",
        "subject.name == 'x'",
        "subject.properties == 'x'",
        "network.version == 4",
        "network.segments == ['x']",
        "context.n > 1 ? true : false",
        "device.posture_age == 'x'",
        "duration('nonsense') > device.posture_age",
        "context.tags.exists(t, t == 'x')",
        "data.numbers[context.i] == 1",
        "data.users[context.k.size()] == 1",
        "context.x in risk.reasons",
        "context.v in context.w",
        "has(data.users[subject.id].vip) && has(context.list[0].x)",
        "data.numbers.x == 1 && [context.a][0]",
        "risk",
        "context.n + 1 > 2",
        "context.m in {'a': 1}",
        "context.flag == 'x' && context.flag == 1",
        "context.b == true && context.b < true",
        "context.q == 'a' && context.q > 1",
        "geo.country > 3",
        "now == now",
    ],
)
def test_what_is_beyond_the_translation_is_opaque(text: str) -> None:
    assert _opaque(text), text


def test_has_tells_absent_from_present_and_absent_facts_are_errors() -> None:
    space = _space()
    defined, _ = space.condition(parse("context.n > 3"))
    present = space.present[("context", "n")]
    assert not _possible(space, defined, z3.Not(present))  # absent: an error
    guarded = _holds(space, "has(context.n) && context.n > 3")
    assert _possible(space, guarded) and not _possible(space, guarded, z3.Not(present))
    either = space.condition(parse("context.n > 3 || true"))
    assert not _possible(space, z3.Not(either[0]))  # `|| true` absorbs the error


def test_a_data_lookup_by_a_fact_is_a_case_split_over_the_document() -> None:
    space = _space()
    vip = _holds(space, "data.users[subject.id].vip")
    subject = space.values[("subject", "id")]
    assert _possible(space, vip, subject == z3.StringVal("ana"))
    assert not _possible(space, vip, subject != z3.StringVal("ana"))
    missing = space.condition(parse("data.users[subject.id].country == 'DE'"))[0]
    assert not _possible(space, missing, subject == z3.StringVal("zed"))  # no such key: error


def test_risk_is_computed_from_the_rules_as_the_engine_does() -> None:
    space = _space(
        (
            ("has(context.flagged) && context.flagged", 50, "flagged"),
            ("context.n > 5", 30, "many"),  # an error adds its points
            ("has(device.known) && device.known", -10, "known"),
            ("context.m == 1", -20, "never_lowers_on_error"),
        )
    )
    high = _holds(space, "risk.level == 'high'")
    flagged = space.values[("context", "flagged")]
    assert _possible(space, high)
    assert not _possible(space, high, z3.Not(flagged))  # 30 at most without the flag
    assert _possible(space, _holds(space, "'many' in risk.reasons && risk.score == 80"))
    assert not _possible(space, _holds(space, "risk.score > 80"))
    assert not _possible(space, _holds(space, "'nope' in risk.reasons"))
    assert not _possible(space, _holds(space, "risk.level == 'medium' && risk.score < 40"))
    n = space.values[("context", "n")]
    assert _possible(space, _holds(space, "'many' in risk.reasons"), z3.Not(n > 5))


def test_clamping_keeps_the_score_within_0_and_100() -> None:
    space = _space((("true", -100, "low"), ("context.a", 100, "a"), ("context.b", 100, "b")))
    assert not _possible(space, _holds(space, "risk.score < 0 || risk.score > 100"))
    assert _possible(space, _holds(space, "risk.score == 100"))
    assert _possible(space, _holds(space, "risk.score == 0"))


def test_the_same_condition_is_translated_once_and_opaque_text_shares_its_choice() -> None:
    space = _space()
    first = space.condition(parse("now.getHours() < 6"))
    again = space.condition(parse("now.getHours() < 6"))
    assert all(a.eq(b) for a, b in zip(again, first, strict=True))
    assert len(space.opaque) == 1


def test_a_nested_fact_needs_its_container() -> None:
    space = _space()
    inner = _holds(space, "has(context.a.b)")
    outer = space.condition(parse("has(context.a)"))[1]
    assert not _possible(space, inner, z3.Not(outer))


def test_the_conditions_holding_an_opaque_part_are_noted() -> None:
    space = _space((("now.getHours() < 6", 10, "night"),))
    text = "context.a && session.aal >= 2"
    space.translate(parse(text), text)
    space.translate(parse(text), "the same, written again")  # translated once, noted again
    space.translate(parse("context.b"), "context.b")
    assert list(space.beyond) == ["risk rule `night`", text, "the same, written again"]
