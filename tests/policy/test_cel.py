"""CEL conditions: semantics of every operator and function, static checks, fast vs reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from juncture.errors import Location, PolicyError
from juncture.policy import cel_compile, cel_interpret
from juncture.policy.cel import CompiledCondition, compile_condition, parse_networks
from juncture.policy.cel_runtime import CelEvalError

LOC = Location(file="j.yaml", line=3, col=5, path="$.checkpoints.c[0].if")
NETS = parse_networks({"corporate": ("10.0.0.0/8", "2001:db8::/32"), "office": ("192.0.2.7",)})
NOW = datetime(2024, 3, 5, 23, 30, tzinfo=UTC)
FACTS: dict[str, Any] = {
    "context": {
        "a": 1,
        "b": 1.0,
        "t": True,
        "f": False,
        "s": "x",
        "l": [1, 2],
        "m": {"k": 1},
        "big": 2**63 - 1,
        "small": -(2**63),
        "n": None,
        "zero": 0,
        "strs": ["a", "b"],
    },
    "subject": {"properties": {"x": "a", "roles": ["admin"]}},
    "signals": {"credential_compromised": False},
    "risk": {"score": 50, "level": "medium", "reasons": ["r"]},
    "geo": {"country": "FR", "lat": 1.5, "speed_kmh": 1000.0},
    "device": {"known": True, "managed": False},
    "now": NOW,
    "session": {
        "age": timedelta(minutes=5),
        "started_at": NOW - timedelta(minutes=30),
        "aal": 2,
        "methods": {"totp": {"aal": 2}},
    },
    "network": {"ip": "10.1.2.3", "segment": "corp", "version": 4},
}


def compiled(text: str, networks: Any = NETS) -> CompiledCondition:
    condition, errors = compile_condition(text, LOC, networks)
    assert not errors, [str(e) for e in errors]
    assert condition is not None
    return condition


def run(text: str, facts: dict[str, Any] | None = None) -> bool:
    """Evaluate on both paths; they must agree. Returns the result or raises CelEvalError."""
    condition = compiled(text)
    activation = FACTS if facts is None else facts
    try:
        reference: object = condition.reference(activation)
    except CelEvalError as exc:
        reference = exc
    try:
        result: object = condition(activation)
    except CelEvalError as exc:
        result = exc
    if isinstance(reference, CelEvalError):
        assert isinstance(result, CelEvalError), (text, result)
        assert (result.message, result.missing) == (reference.message, reference.missing)
        raise result
    assert result is reference, (text, result, reference)
    return bool(result)


def fails(text: str, facts: dict[str, Any] | None = None) -> CelEvalError:
    with pytest.raises(CelEvalError) as info:
        run(text, facts)
    return info.value


def errors(text: str, networks: Any = NETS, **kwargs: Any) -> list[PolicyError]:
    condition, problems = compile_condition(text, LOC, networks, **kwargs)
    assert condition is None
    assert problems
    return problems


def codes(text: str, **kwargs: Any) -> list[str]:
    return [e.code for e in errors(text, **kwargs)]


# -- equality and comparison ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "1 == 1.0",
        "context.a == context.b",
        "context.b == 1",
        "context.t != context.a",
        "context.a != context.t",
        "context.n == null",
        "null == null",
        "context.s == 'x'",
        "'x' == context.s",
        "context.l == [1, 2]",
        "[1] == [1.0]",
        "context.m == {'k': 1}",
        "{'a': [1]} == {'a': [1.0]}",
        "b'ab' == b'ab'",
        "(1 == 1) == (2 == 2)",
        "context.l != 'x'",
        "geo.country == 'FR'",
        "risk.score == 50",
        "risk.score == 50.0",
        "geo.lat == 1.5",
        "device.known == true",
        "device.known != device.managed",
        "now == now",
        "session.age == duration('5m')",
        "now.getHours() == 23",
        "size(context.l) == size([3, 4])",
        "context.s + 'y' == 'xy'",
        "0.0 / 0.0 != 0.0 / 0.0",
        "(context.t ? 1 : 2) == 1.0",
        "[1, 'a'] == [1, 'a']",
        "[1].map(x, x) == [1]",
    ],
)
def test_true_equalities(text: str) -> None:
    assert run(text) is True


@pytest.mark.parametrize(
    "text",
    [
        "context.t == 1",
        "context.a == context.t",
        "context.f == 0",
        "context.n == 0",
        "context.s == 1",
        "context.l == [1]",
        "context.l == [2, 1]",
        "context.m == {'k': 2}",
        "context.m == {'j': 1}",
        "context.m == {'k': 1, 'j': 2}",
        "context.m == [1]",
        "context.l == 'x'",
        "{'a': 1} == {'b': 1}",
        "0.0 / 0.0 == 0.0 / 0.0",
        "context.s == null",
    ],
)
def test_false_equalities(text: str) -> None:
    assert run(text) is False


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("1 < 2", True),
        ("1 < 1.5", True),
        ("2.0 <= 2", True),
        ("3 > 2.5", True),
        ("2 >= 3", False),
        ("context.a < context.b", False),
        ("context.a <= context.b", True),
        ("'a' < 'b'", True),
        ("context.s < 'y'", True),
        ("context.s >= 'y'", False),
        ("true > false", True),
        ("context.t > context.f", True),
        ("b'a' < b'b'", True),
        ("now > session.started_at", True),
        ("session.age < duration('10m')", True),
        ("session.age >= duration('5m')", True),
        ("risk.score >= 40", True),
        ("risk.score > geo.lat", True),
        ("geo.speed_kmh > 900", True),
        ("0.0 / 0.0 < 1.0", False),
        ("0.0 / 0.0 >= 1.0", False),
        ("context.big > 1.0", True),
        ("'é' > 'z'", True),
    ],
)
def test_ordering(text: str, result: bool) -> None:
    assert run(text) is result


@pytest.mark.parametrize(
    "text",
    ["context.a < context.s", "null < null", "[1] < [2]", "context.t < 1", "context.m > context.m"],
)
def test_ordering_of_unrelated_types_is_an_error(text: str) -> None:
    assert "no such overload" in fails(text).message


# -- arithmetic -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "-7 / 2 == -3",
        "7 / -2 == -3",
        "7 / 2 == 3",
        "-7 % 2 == -1",
        "7 % -2 == 1",
        "-7 % -2 == -1",
        "context.a + 1 == 2",
        "context.a - 3 == -2",
        "context.a * 3 == 3",
        "risk.score + 10 == 60",
        "risk.score - 60 == -10",
        "risk.score * 2 == 100",
        "risk.score / 3 == 16",
        "risk.score % 7 == 1",
        "1.5 * 2.0 == 3.0",
        "3.0 / 2.0 == 1.5",
        "1.5 - 0.5 == 1.0",
        "1.5 + 0.5 == 2.0",
        "geo.lat + 0.5 == 2.0",
        "3.0 / 0.0 > 1e308",
        "-3.0 / 0.0 < 0.0",
        "3.0 / -0.0 < 0.0",
        "0.0 / 0.0 != 0.0",
        "'a' + 'b' == 'ab'",
        "context.s + context.s == 'xx'",
        "[1] + [2] == [1, 2]",
        "context.l + [] == context.l",
        "b'a' + b'b' == b'ab'",
        "now - session.started_at == duration('30m')",
        "session.started_at + duration('1h') > now",
        "duration('1h') + now > now",
        "now - duration('1h') < now",
        "session.age + session.age == duration('10m')",
        "session.age - session.age == duration('0s')",
        "-session.age < session.age",
        "-context.a == -1",
        "-context.b == -1.0",
        "- -1 == 1",
        "-(1.5) == -1.5",
        "context.small / 2 == -4611686018427387904",
        "context.big % 10 == 7",
        "context.small % 10 == -8",
        "9223372036854775807 % 2 == 1",
    ],
)
def test_arithmetic(text: str) -> None:
    assert run(text) is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("context.big + 1 == 0", "integer overflow"),
        ("context.small - 1 == 0", "integer overflow"),
        ("context.big * 2 > 0", "integer overflow"),
        ("-context.small == 0", "integer overflow"),
        ("context.small / -1 == 0", "integer overflow"),
        ("risk.score * 9223372036854775807 > 0", "integer overflow"),
        ("context.a / 0 == 0", "division by zero"),
        ("context.a / context.zero == 0", "division by zero"),
        ("context.a % 0 == 0", "modulus by zero"),
        ("context.a + context.b == 2.0", "no such overload: `+` on (int, double)"),
        ("1 + 1.0 == 2.0", "no such overload: `+` on (int, double)"),
        ("context.a - context.b == 0.0", "no such overload"),
        ("context.a * context.b == 1.0", "no such overload"),
        ("context.a / context.b == 1.0", "no such overload"),
        ("1.5 % 1.0 == 0.5", "no such overload"),
        ("context.s + 1 == 'x1'", "no such overload"),
        ("now + now == now", "no such overload"),
        ("session.age - now == now", "no such overload"),
        ("-context.s == 1", "no such overload: `-` on (string)"),
        ("-true", "no such overload"),
        ("!1", "expected bool, got int"),
        ("!context.s", "expected bool, got string"),
        ("context.s", "expected bool, got string"),
        ("context.s ? true : false", "expected bool, got string"),
        ("true ? 1 : 'a'", "expected bool, got int"),
    ],
)
def test_arithmetic_errors(text: str, message: str) -> None:
    assert message in fails(text).message


def test_datetime_overflow_is_an_evaluation_error() -> None:
    facts = {**FACTS, "context": {"t": datetime.max.replace(tzinfo=UTC)}}
    assert fails("context.t + duration('1h') > now", facts).message.startswith("internal error")


# -- membership -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("2 in context.l", True),
        ("2.0 in context.l", True),
        ("3 in context.l", False),
        ("'k' in context.m", True),
        ("'z' in context.m", False),
        ("1 in {1: 'a'}", True),
        ("1.0 in {1: 'a'}", True),
        ("true in {1: 'a'}", False),
        ("context.s in ['x', 'y']", True),
        ("context.a in ['x', 'y']", False),
        ("context.l in ['x']", False),
        ("context.m in ['x']", False),
        ("context.a in [1, 2]", True),
        ("context.t in [1, 2]", False),
        ("[1] in [[1], 2]", True),
        ("'admin' in subject.properties.roles", True),
        ("network.segment in ['corp']", True),
    ],
)
def test_in(text: str, result: bool) -> None:
    assert run(text) is result


@pytest.mark.parametrize(
    "text", ["1 in 'abc'", "1 in context.a", "[1] in context.m", "context.l in context.m"]
)
def test_in_on_other_types_is_an_error(text: str) -> None:
    fails(text)


# -- missing facts, has() and the logic operators ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("context.zz == 1", "context.zz"),
        ("geo.city == 'Paris'", "geo.city"),
        ("agent.task.scope == 'x'", "agent"),
        ("subject.properties.y.z == 1", "subject.properties.y"),
        ("context.m['zz'] == 1", "context.m['zz']"),
        ("context.m.k.zz == 1", None),
        ("size(context.zz) == 1", "context.zz"),
    ],
)
def test_missing_facts_raise_naming_the_path(text: str, path: str | None) -> None:
    err = fails(text)
    assert err.missing == path
    if path is not None and "[" not in path:
        assert err.message == f"missing fact `{path}`"


def test_missing_fact_inside_a_macro_is_not_named() -> None:
    err = fails("[{'a': 1}].all(x, x.b == 1)")
    assert err.missing is None
    assert err.message == "no such key: `b`"


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("has(context.zz)", False),
        ("has(context.a)", True),
        ("has(subject.properties.x)", True),
        ("has(agent.task)", False),
        ("has(agent.task.scope)", False),
        ("has(subject.properties.y.z)", False),
        ("has(context.m.k)", True),
        ("has(context.n.x) || true", True),
        ("has(geo.city)", False),
        ("has(geo.country)", True),
        ("has(context.m['zz'].x)", False),
        ("[{'a': 1}].all(x, has(x.a))", True),
        ("[{'a': 1}].exists(x, has(x.b))", False),
        ("[{'a': {'b': 1}}].all(x, has(x.a.b))", True),
        ("!has(context.zz) || context.zz == 1", True),
        ("has(context.zz) && context.zz == 1", False),
        ("has(now.x) || true", True),
    ],
)
def test_has(text: str, result: bool) -> None:
    assert run(text) is result


@pytest.mark.parametrize(
    "text",
    [
        "has(context.s.x)",
        "has(context.n.x)",
        "has(context.l.x)",
        "[1].all(x, has(x.a))",
        "has(now.x)",
        "[{'a': 1}].all(x, has(x.b.c))",
        "has(context.l.x.y)",
        "has(context.a.x.y)",
    ],
)
def test_has_on_a_value_that_is_not_a_map_is_an_error(text: str) -> None:
    fails(text)


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("context.zz == 1 || true", True),
        ("true || context.zz == 1", True),
        ("context.zz == 1 && false", False),
        ("false && context.zz == 1", False),
        ("context.s || true", True),
        ("context.s && false", False),
        ("context.a / 0 == 1 || context.t", True),
        ("context.t && context.t", True),
        ("context.f || context.f", False),
        ("device.known && !device.managed", True),
        ("!(1 == 1)", False),
    ],
)
def test_and_or_are_commutative_over_errors(text: str, result: bool) -> None:
    assert run(text) is result


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("context.zz == 1 && true", "context.zz"),
        ("true && context.zz == 1", "context.zz"),
        ("context.zz == 1 || false", "context.zz"),
        ("context.zz == 1 || context.yy == 1", "context.zz"),
        ("context.yy == 1 && context.zz == 1", "context.yy"),
    ],
)
def test_and_or_keep_an_error_that_is_not_absorbed(text: str, missing: str) -> None:
    assert fails(text).missing == missing


def test_ternary() -> None:
    assert run("context.t ? true : context.zz") is True
    assert run("context.f ? context.zz : true") is True
    assert fails("context.zz ? true : false").missing == "context.zz"


# -- macros -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("context.l.all(x, x > 0)", True),
        ("context.l.all(x, x > 1)", False),
        ("[].all(x, x > 1)", True),
        ("context.l.exists(x, x > 1)", True),
        ("context.l.exists(x, x > 5)", False),
        ("[].exists(x, x)", False),
        ("context.l.exists_one(x, x > 1)", True),
        ("context.l.exists_one(x, x > 0)", False),
        ("context.l.exists_one(x, x > 5)", False),
        ("context.l.map(x, x * 2) == [2, 4]", True),
        ("context.l.map(x, x > 1, x * 2) == [4]", True),
        ("context.l.filter(x, x > 1) == [2]", True),
        ("context.m.all(k, k == 'k')", True),
        ("context.m.exists_one(k, k == 'k')", True),
        ("context.m.map(k, k) == ['k']", True),
        ("[0, 'a'].all(x, x > 0)", False),
        ("['a', 2].exists(x, x > 1)", True),
        ("[[1]].all(x, x.all(y, y > 0))", True),
        ("[1, 2].all(x, [x].exists(x, x == 2)) == false", True),
        ("context.l.all(context, context > 0)", True),
        ("subject.properties.roles.exists(r, r.startsWith('adm'))", True),
    ],
)
def test_macros(text: str, result: bool) -> None:
    assert run(text) is result


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("['a', 1].all(x, x > 0)", "no such overload"),
        ("['a', 0].exists(x, x > 0)", "no such overload"),
        ("[1, 2].exists_one(x, x / 0 == 1)", "division by zero"),
        ("[1, 2].map(x, x / 0) == []", "division by zero"),
        ("[1, 2].filter(x, x / 0 == 1) == []", "division by zero"),
        ("[1, 2].map(x, x / 0 == 1, x) == []", "division by zero"),
        ("[1].all(x, x)", "expected bool, got int"),
        ("context.a.all(x, x)", "cannot iterate over int"),
        ("context.s.exists(x, true)", "cannot iterate over string"),
    ],
)
def test_macro_errors(text: str, message: str) -> None:
    assert message in fails(text).message


# -- functions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "size('abc') == 3",
        "'abc'.size() == 3",
        "size('é') == 1",
        "size(b'ab') == 2",
        "size([1]) == 1",
        "size({}) == 0",
        "context.m.size() == 1",
        "int('12') == 12",
        "int('-3') == -3",
        "int(2.7) == 2",
        "int(-2.7) == -2",
        "int(7) == 7",
        "int(now) == 1709681400",
        "double('1.5') == 1.5",
        "double(1) == 1.0",
        "double(2.5) == 2.5",
        "string(1.5) == '1.5'",
        "string(1) == '1'",
        "string(true) == 'true'",
        "string(false) == 'false'",
        "string('x') == 'x'",
        "string(b'ab') == 'ab'",
        "string(now) == '2024-03-05T23:30:00Z'",
        "string(session.age) == '300s'",
        "timestamp('2024-03-05T23:30:00Z') == now",
        "timestamp('2024-03-06T00:30:00+01:00') == now",
        "timestamp(0) < now",
        "timestamp(now) == now",
        "duration('1h30m') == duration('90m')",
        "duration(session.age) == session.age",
        "duration(context.s + 'x') != duration('1s') || true",
        "'xyz'.contains('y')",
        "'xyz'.startsWith('xy')",
        "'xyz'.endsWith('yz')",
        "!'xyz'.endsWith('x')",
        "'AbC'.lowerAscii() == 'abc'",
        "'ÀbC'.upperAscii() == 'ÀBC'",
        "'Àbc'.lowerAscii() == 'Àbc'",
        "'abc'.upperAscii() == 'ABC'",
        "' a '.trim() == 'a'",
        "'a,b'.split(',') == ['a', 'b']",
        "'ab'.split('') == ['a', 'b']",
        "['a', 'b'].join('-') == 'a-b'",
        "['a', 'b'].join() == 'ab'",
        "'abc'.matches('^a.c$')",
        "matches('abc', 'b')",
        "!'abc'.matches('^b')",
        "'ab\\nc'.matches('b.c') == false",
        "in_cidr(network.ip, ['10.0.0.0/8'])",
        "in_cidr(network.ip, '10.0.0.0/8')",
        "!in_cidr(network.ip, '192.168.0.0/16')",
        "in_cidr('::1', '::1/128')",
        "in_cidr('10.1.2.3', '10.1.2.0/24')",
        "in_cidr('10.1.2.3', '10.1.2.1/24')",
        "!in_cidr(network.ip, [])",
        "in_network(network.ip, 'corporate')",
        "in_network('2001:db8::1', 'corporate')",
        "!in_network('2001:db9::1', 'corporate')",
        "in_network('192.0.2.7', 'office')",
        "!in_network('192.0.2.8', 'office')",
    ],
)
def test_functions(text: str) -> None:
    assert run(text) is True


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("now.getFullYear() == 2024", True),
        ("now.getMonth() == 2", True),
        ("now.getDayOfMonth() == 4", True),
        ("now.getDayOfWeek() == 2", True),
        ("now.getHours() == 23", True),
        ("now.getMinutes() == 30", True),
        ("now.getHours('Europe/Paris') == 0", True),
        ("now.getDayOfMonth('Europe/Paris') == 5", True),
        ("now.getDayOfWeek('Asia/Tokyo') == 3", True),
        ("now.getHours('America/New_York') == 18", True),
        ("now.getMinutes('Asia/Kolkata') == 0", True),
        ("timestamp('2024-12-31T23:30:00Z').getFullYear('Europe/Paris') == 2025", True),
        ("timestamp('2024-12-31T23:30:00Z').getMonth('Europe/Paris') == 0", True),
        ("timestamp('2024-03-10T00:00:00Z').getDayOfWeek() == 0", True),
    ],
)
def test_timestamp_getters_with_time_zones(text: str, result: bool) -> None:
    assert run(text) is result


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("'abc'.matches('(')", "invalid regular expression"),
        ("'abc'.matches('(?=a)')", "invalid regular expression"),
        ("matches(1, 'a')", "no such overload: `matches`"),
        ("in_cidr('x', '10.0.0.0/8')", "`x` is not an IP address"),
        ("in_cidr(network.ip, 'bad')", "`bad` is not a network"),
        ("in_cidr(network.ip, [1])", "no such overload: `in_cidr`"),
        ("in_cidr(1, '10.0.0.0/8')", "no such overload: `in_cidr`"),
        ("in_network('x', 'corporate')", "`x` is not an IP address"),
        ("in_network(1, 'corporate')", "no such overload: `in_network`"),
        ("now.getFullYear('Nowhere/Zone') == 1", "unknown time zone `Nowhere/Zone`"),
        ("now.getHours('../etc') == 1", "unknown time zone"),
        ("now.getHours(1) == 1", "no such overload: `getHours`"),
        ("context.s.getHours() == 1", "no such overload: `getHours`"),
        ("int('x') == 1", "cannot convert `x` to int"),
        ("int('99999999999999999999') == 1", "integer overflow"),
        ("int(1e30) == 1", "int() out of range"),
        ("int(0.0 / 0.0) == 1", "int() out of range"),
        ("int(null) == 1", "no such overload: `int`"),
        ("double('x') == 1.0", "cannot convert `x` to double"),
        ("double(null) == 1.0", "no such overload: `double`"),
        ("string(null) == ''", "no such overload: `string`"),
        ("string(b'\\xff') == ''", "bytes are not valid UTF-8"),
        ("size(1) == 1", "no such overload: `size`"),
        ("duration(context.a) == session.age", "no such overload: `duration`"),
        ("duration(context.s) == session.age", "is not a duration"),
        ("timestamp(context.b) == now", "no such overload: `timestamp`"),
        ("timestamp(context.s) == now", "cannot convert `x` to timestamp"),
        ("timestamp(context.s + '2024-01-01T00:00:00') == now", "cannot convert"),
        ("timestamp(context.big) == now", "out of range"),
        ("context.s.split(1) == []", "no such overload: `split`"),
        ("'a'.join() == 'a'", "no such overload: `join`"),
        ("[1].join() == '1'", "no such overload: `join`"),
        ("context.s.contains(1)", "no such overload: `contains`"),
        ("context.a.trim() == ''", "no such overload: `trim`"),
    ],
)
def test_function_errors(text: str, message: str) -> None:
    assert message in fails(text).message


def test_in_cidr_with_unhashable_items_fails_closed() -> None:
    assert fails("in_cidr('1.1.1.1', [['x']])").message.startswith("internal error")


# -- indexing, lists and maps -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "context.m['k'] == 1",
        "context.l[0] == 1",
        "context.l[1.0] == 2",
        "{'a': 1}['a'] == 1",
        "{1: 'a'}[1.0] == 'a'",
        "{1: 'a'}[1] == 'a'",
        "{true: 'a'}[true] == 'a'",
        "{}.size() == 0",
        "[1, [2]][1][0] == 2",
        "{'a': {'b': [1]}}['a']['b'][0] == 1",
        "subject.properties['x'] == 'a'",
    ],
)
def test_index(text: str) -> None:
    assert run(text) is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("context.l[5] == 1", "index 5 out of range"),
        ("context.l[-1] == 1", "index -1 out of range"),
        ("context.l[1.5] == 1", "no such overload: `[]`"),
        ("context.l['a'] == 1", "no such overload: `[]`"),
        ("context.s[0] == 'x'", "no such overload: `[]`"),
        ("context.m[[1]] == 1", "unsupported map key type list"),
        ("{'a': 1, 'a': 2}.size() == 1", "duplicate map key `a`"),
        ("{1: 'a', 1.0: 'b'}.size() == 1", "unsupported map key type double"),
        ("{[1]: 2}.size() == 1", "unsupported map key type list"),
        ("context.a.b == 1", "cannot select field `b` from int"),
        ("context.l.b == 1", "cannot select field `b` from list"),
    ],
)
def test_index_errors(text: str, message: str) -> None:
    assert message in fails(text).message


def test_map_literal_with_dynamic_keys() -> None:
    assert run("{context.s: 1}['x'] == 1") is True
    assert "unsupported map key type" in fails("{context.l: 1}.size() == 1").message


# -- static checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "suggestion"),
    [
        ("unknwn.x == 1", "policy.cel.unknown_variable", None),
        ("contxt.a == 1", "policy.cel.unknown_variable", "did you mean `context`?"),
        ("geo.contry == 'FR'", "policy.cel.unknown_field", "did you mean `country`?"),
        ("has(geo.contry)", "policy.cel.unknown_field", "did you mean `country`?"),
        ("risk.zzzz == 1", "policy.cel.unknown_field", None),
        ("foo(1)", "policy.cel.unknown_function", None),
        ("sise('a') == 1", "policy.cel.unknown_function", "did you mean `size`?"),
        ("context.a.startWith('x')", "policy.cel.unknown_function", "did you mean `startsWith`?"),
        (
            "in_netwrk(network.ip, 'corporate')",
            "policy.cel.unknown_function",
            "did you mean `in_network`?",
        ),
        ("context.a.in_network('x')", "policy.cel.unknown_function", None),
        ("size(1, 2) == 1", "policy.cel.type", None),
        ("context.s.startsWith() ", "policy.cel.type", None),
        ("now.getHours(1, 2) == 1", "policy.cel.type", None),
        ("risk.score == 'x'", "policy.cel.type", None),
        ("true == 1", "policy.cel.type", None),
        ("'a' != 1", "policy.cel.type", None),
        ("risk.score + 1", "policy.cel.type", None),
        ("'a'", "policy.cel.type", None),
        ("[1]", "policy.cel.type", None),
        ("{}", "policy.cel.type", None),
        ("1.5", "policy.cel.type", None),
        ("geo.country < 1", "policy.cel.type", None),
        ("'a' * 2 == 'aa'", "policy.cel.type", None),
        ("now.getHours() + 'a' == 'x'", "policy.cel.type", None),
        ("'x' - 1 == 'x'", "policy.cel.type", None),
        ("duration('bogus') == session.age", "policy.cel.type", None),
        ("timestamp('2024-03-05T23:30:00') == now", "policy.cel.type", None),
        ("timestamp(99999999999999999) == now", "policy.cel.type", None),
        ("duration(5) == session.age", "policy.cel.type", None),
        (
            "in_network(network.ip, 'corp')",
            "policy.ref.unknown_network",
            "did you mean `corporate`?",
        ),
        ("in_network(network.ip)", "policy.cel.type", None),
        ("in_network(network.ip, context.s)", "policy.cel.type", None),
        ("in_network(network.ip, 1)", "policy.cel.type", None),
        ("[[[1]]].all(x, x.all(y, y.all(z, z > 0)))", "policy.cel.too_complex", None),
        ("[1].map(x, [2].map(y, [3].exists(z, z > 0))) == []", "policy.cel.too_complex", None),
        ("1 +", "policy.cel.syntax", None),
    ],
)
def test_static_errors(text: str, code: str, suggestion: str | None) -> None:
    problems = errors(text)
    assert [e.code for e in problems] == [code], [str(e) for e in problems]
    assert problems[0].location == LOC
    assert problems[0].suggestion == suggestion


@pytest.mark.parametrize(
    "text",
    [
        "risk.score + 1 == 2",
        "now - session.started_at > duration('1m')",
        "now + duration('1m') > now",
        "duration('1m') + now > now",
        "context.a == 'x'",
        "risk.score == null",
        "null != geo.country",
        "risk.score < geo.lat",
        "context.l.all(x, x == 'a')",
        "[[1]].all(x, x.all(y, y > 0)) && [[1]].all(x, x.all(y, y > 0))",
        "context.m.map(k, k).size() == 1",
    ],
)
def test_static_check_accepts(text: str) -> None:
    compiled(text)


def test_every_static_error_is_reported() -> None:
    problems = errors("foo(1) && geo.contry == 'FR' && unknwn && risk.score == 'x'")
    assert sorted(e.code for e in problems) == [
        "policy.cel.type",
        "policy.cel.unknown_field",
        "policy.cel.unknown_function",
        "policy.cel.unknown_variable",
    ]


def test_too_deep_macros_are_reported_once() -> None:
    text = "[[[1]]].all(x, x.all(y, y.all(z, z.all(w, w > 0))))"
    assert codes(text) == ["policy.cel.too_complex"]


def test_forbidden_variables() -> None:
    problems = errors("risk.score > 1 && context.a == 1", forbid=frozenset({"risk", "context"}))
    assert [e.message for e in problems] == [
        "this condition may not read `context`",
        "this condition may not read `risk`",
    ]
    compiled_ok, none = compile_condition("context.a == 1", LOC, forbid=frozenset({"risk"}))
    assert compiled_ok is not None and none == []


def test_variables_read_are_recorded() -> None:
    condition = compiled("risk.score > 1 && [1].all(x, x > 0 && has(geo.country)) && now == now")
    assert condition.variables == frozenset({"risk", "geo", "now"})
    assert condition.text.startswith("risk.score")
    assert condition.location == LOC


def test_syntax_error_message_and_location() -> None:
    problems = errors("risk.score >= ")
    assert problems[0].code == "policy.cel.syntax"
    assert problems[0].message == (
        "invalid CEL: unexpected `>=` at line 1 column 12 in `risk.score >= `"
    )
    assert errors("  ")[0].message == "invalid CEL: unexpected end of condition in `  `"
    assert problems[0].location == LOC
    problems = errors("1 ? 2")
    assert problems[0].message == "invalid CEL: unexpected `2` at line 1 column 5 in `1 ? 2`"


def test_too_long_condition_message_has_no_text() -> None:
    problems = errors("true && " * 600 + "true")
    assert problems[0].code == "policy.cel.too_complex"
    assert "`" not in problems[0].message


def test_without_networks() -> None:
    assert codes("in_network(network.ip, 'corporate')", networks=None) == [
        "policy.ref.unknown_network"
    ]
    condition, problems = compile_condition("risk.score > 1", LOC)
    assert condition is not None and not problems


def test_code_generation_failure_is_reported_as_too_complex(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(*args: object, **kwargs: object) -> str:
        raise RecursionError

    monkeypatch.setattr(cel_compile.Generator, "boolean", explode)
    assert codes("risk.score > 1") == ["policy.cel.too_complex"]


# -- the fast path and the reference ----------------------------------------------------------


def test_the_fast_path_falls_back_on_any_surprise() -> None:
    condition = compiled("context.zz == 1 || true")
    with pytest.raises(KeyError):
        condition._fast(FACTS)
    assert condition(FACTS) is True


def test_reference_turns_unexpected_exceptions_into_evaluation_errors() -> None:
    facts = {**FACTS, "session": {**FACTS["session"], "started_at": datetime(2024, 1, 1)}}
    err = fails("now > session.started_at", facts)
    assert err.message == "internal error: TypeError"


def test_reference_turns_recursion_into_an_evaluation_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    condition = compiled("context.t")

    def deep(self: object, node: object, local: object) -> object:
        raise RecursionError

    monkeypatch.setattr(cel_interpret.Interpreter, "run", deep)
    with pytest.raises(CelEvalError, match="too deep"):
        condition.reference(FACTS)


def test_activation_need_not_be_a_dict() -> None:
    from types import MappingProxyType

    facts = MappingProxyType({"context": {"a": 1}})
    assert compiled("has(context.a) && context.a == 1")(facts) is True
    assert compiled("has(context.a)").reference(facts) is True


@pytest.mark.parametrize("text", ["null.a == 1", "(1).a == 1", "true.x", "'s'.a == 1"])
def test_selecting_a_field_of_a_literal_compiles_to_an_evaluation_error(text: str) -> None:
    # the generated Python (`None['a']`) made compile() warn; under -W error it became
    # a SyntaxError reported as `policy.cel.too_complex`
    assert "cannot select field" in fails(text).message


def test_a_fast_path_answer_that_is_not_bool_goes_to_the_reference():
    # Facts are validated before conditions run; should one ever have the wrong type, the
    # condition is an error, never a truthy value.
    cond, errors = compile_condition("device.known", Location())
    assert not errors and cond is not None
    with pytest.raises(CelEvalError, match="expected bool"):
        cond({"device": {"known": "yes"}})
    assert cond({"device": {"known": True}}) is True


def test_map_keys_of_different_types_that_python_merges_are_an_error():
    cond, errors = compile_condition('size({1: "a", true: "b"}) == 2', Location())
    assert not errors and cond is not None
    with pytest.raises(CelEvalError, match="collides"):
        cond({})
