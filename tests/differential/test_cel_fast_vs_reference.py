"""The compiled fast path never returns a result the reference interpreter would not.

Hypothesis writes random well-formed conditions over literals, fact paths, operators,
`has()` and macros, and random activations (JSON-like values, missing keys). For every
pair: if the fast path returns, the reference returns the same bool; and the public call
(fast path, falling back to the reference) always answers exactly as the reference does.

Facts of the closed variables (`risk`, `geo`, `device`, `network`, `session`, `now`) are
generated with their schema types or left out, since the engine validates them against
`schema.py` before any condition runs and the compiler relies on those types; the open
variables (`subject`, `context`, `signals`) hold arbitrary values.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from juncture.errors import Location
from juncture.policy.cel import compile_condition, parse_networks
from juncture.policy.cel_runtime import CelEvalError

LOC = Location(file="t.yaml", line=1, col=1)
NETS = parse_networks({"corporate": ("10.0.0.0/8", "2001:db8::/32")})
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)

# -- activations ----------------------------------------------------------------------------------

KEYS = ("a", "b", "c", "x", "y")
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2, 2**63 - 1, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, -0.0, 2.5, math.inf]),
    st.text(max_size=4),
    st.sampled_from(["", "a", "x", "10.1.2.3", "FR", "1h"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=6,
)
open_maps = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5)
NOW = datetime(2024, 3, 5, 23, 30, tzinfo=UTC)


def _typed(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


closed = {
    "risk": _typed(
        {
            "score": st.integers(min_value=-100, max_value=200),
            "level": st.sampled_from(["low", "medium", "high", ""]),
            "reasons": st.lists(st.sampled_from(["a", "b"]), max_size=2),
        }
    ),
    "geo": _typed(
        {
            "country": st.sampled_from(["FR", "DE", "", "x"]),
            "lat": st.floats(allow_nan=False, min_value=-90, max_value=90),
            "speed_kmh": st.floats(allow_nan=False, min_value=0, max_value=5000),
        }
    ),
    "device": _typed({"known": st.booleans(), "managed": st.booleans()}),
    "network": _typed({"ip": st.sampled_from(["10.1.2.3", "192.168.0.1", "2001:db8::1", "::1"])}),
    "session": _typed(
        {
            "age": st.integers(min_value=0, max_value=10**6).map(lambda s: timedelta(seconds=s)),
            "started_at": st.integers(min_value=0, max_value=10**6).map(
                lambda s: NOW - timedelta(seconds=s)
            ),
        }
    ),
}
activations = st.fixed_dictionaries(
    {},
    optional={
        "subject": st.fixed_dictionaries({}, optional={"properties": open_maps}),
        "context": open_maps,
        "signals": open_maps,
        "now": st.just(NOW),
        **closed,
    },
)

# -- conditions -----------------------------------------------------------------------------------

DYNAMIC_PATHS = [
    "subject.properties.x",
    "subject.properties.y",
    "subject.properties",
    "context.a",
    "context.b",
    "context.c",
    "context",
    "signals.b",
    "signals.a",
]
TYPED_PATHS = [
    "risk.score",
    "risk.level",
    "risk.reasons",
    "geo.country",
    "geo.lat",
    "geo.speed_kmh",
    "device.known",
    "device.managed",
    "network.ip",
    "session.age",
    "session.started_at",
    "now",
]
literals = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.sampled_from(["0", "1", "-1", "2", "9223372036854775807", "-9223372036854775808"]),
    st.sampled_from(["0.0", "1.0", "-2.5", "1e308", "1.5"]),
    st.sampled_from(["''", "'a'", "'x'", "'FR'", "'10.1.2.3'", "'low'"]),
    st.sampled_from(["true", "false", "null"]),
    st.sampled_from(["[]", "[1, 2]", "['a', 'x']", "{}", "{'a': 1}", "[1, 'a', null]"]),
    st.sampled_from(["duration('1h')", "timestamp('2024-03-05T23:00:00Z')", "b'a'"]),
)
fact_paths = st.sampled_from(DYNAMIC_PATHS + TYPED_PATHS)
BINARY = ["==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "in", "&&", "||"]


def _expressions(local: str | None, macro_depth: int) -> st.SearchStrategy[str]:
    leaves = [literals, fact_paths]
    if local is not None:
        leaves.append(st.just(local))
    base = st.one_of(*leaves)

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        options = [
            st.tuples(inner, st.sampled_from(BINARY), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            st.tuples(st.sampled_from(["!", "-"]), inner).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
            fact_paths.filter(lambda p: "." in p).map(lambda p: f"has({p})"),
            st.sampled_from(["has(subject.properties.x.a)", "has(context.a.b)"]),
            st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
            st.tuples(inner, inner).map(lambda t: f"[{t[0]}, {t[1]}]"),
            st.tuples(inner, inner).map(lambda t: f"{{'k': {t[0]}, 'j': {t[1]}}}"),
            st.tuples(inner, st.sampled_from(["a", "b"])).map(lambda t: f"{t[0]}.{t[1]}"),
            st.tuples(st.sampled_from(["size", "int", "double", "string"]), inner).map(
                lambda t: f"{t[0]}({t[1]})"
            ),
            st.tuples(
                inner,
                st.sampled_from(["contains", "startsWith", "endsWith", "matches"]),
                st.sampled_from(["'a'", "''", "'^x'", "'[0-9]+'"]),
            ).map(lambda t: f"{t[0]}.{t[1]}({t[2]})"),
            st.tuples(inner, st.sampled_from(["size", "lowerAscii", "trim"])).map(
                lambda t: f"{t[0]}.{t[1]}()"
            ),
            inner.map(lambda e: f"in_cidr({e}, ['10.0.0.0/8', '::1/128'])"),
            inner.map(lambda e: f"in_network({e}, 'corporate')"),
            inner.map(lambda e: f"{e}.getHours('Europe/Paris')"),
        ]
        if macro_depth < 2:
            var = "v" if local is None else "w"
            body = _expressions(var, macro_depth + 1)
            options.append(
                st.tuples(
                    inner,
                    st.sampled_from(["all", "exists", "exists_one", "filter", "map"]),
                    body,
                ).map(lambda t, var=var: f"{t[0]}.{t[1]}({var}, {t[2]})")
            )
            options.append(
                st.tuples(inner, body, body).map(
                    lambda t, var=var: f"{t[0]}.map({var}, {t[1]}, {t[2]})"
                )
            )
        return st.one_of(*options)

    return st.recursive(base, extend, max_leaves=8)


conditions = st.one_of(
    _expressions(None, 0),
    st.tuples(
        _expressions(None, 0), st.sampled_from([*BINARY[:6], "in"]), _expressions(None, 0)
    ).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
)


def _outcome(fn: Any, activation: dict[str, Any]) -> object:
    try:
        return fn(activation)
    except CelEvalError as exc:
        return ("error", exc.message, exc.missing)


def check_agreement(text: str, activation: dict[str, Any]) -> None:
    condition, _ = compile_condition(text, LOC, NETS)
    assume(condition is not None)
    assert condition is not None
    expected = _outcome(condition.reference, activation)
    # the reference is total: a bool or a CelEvalError, nothing else
    assert type(expected) is bool or type(expected) is tuple, (text, expected)
    try:
        fast = condition._fast(activation)
    except Exception:  # the fast path may give up; then the reference decides
        fast = None
    else:
        assert fast is expected, (text, activation, fast, expected)
    assert _outcome(condition, activation) == expected


@SETTINGS
@given(conditions, activations)
@example("context.a == 1 || true", {})
@example("context.a && false", {"context": {"a": "x"}})
@example("[1, 2].all(v, v > context.a)", {"context": {"a": 1.5}})
@example("context.a == 1", {"context": {"a": True}})
@example("context.a in ['x']", {"context": {"a": ["x"]}})
@example("risk.score == 50.0", {"risk": {"score": 50}})
def test_fast_path_agrees_with_the_reference(text: str, activation: dict[str, Any]) -> None:
    check_agreement(text, activation)
