"""Properties of CEL compilation: no text crashes the compiler; conditions only answer bool."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from juncture.errors import Location, PolicyError
from juncture.policy.cel import CompiledCondition, compile_condition
from juncture.policy.cel_runtime import CelEvalError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "differential"))
from test_cel_fast_vs_reference import NETS, activations, conditions

LOC = Location(file="p.yaml", line=2, col=3)
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
TOKENS = st.sampled_from(
    [
        "a",
        "context",
        ".",
        "x",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "?",
        "!",
        "-",
        "+",
        "*",
        "/",
        "%",
        "==",
        "<",
        ">=",
        "&&",
        "||",
        " in ",
        "1",
        "0x1F",
        "1u",
        "2.5",
        "'s'",
        '"',
        "'",
        "b'\\xff'",
        "\\",
        "true",
        "null",
        "has",
        "all",
        "map",
        "exists_one",
        "size",
        "in_network",
        "timestamp",
        "duration",
        "'1h'",
        " ",
        "\n",
        "risk",
        "score",
        "now",
        "9223372036854775808",
        "'\\u'",
        "r'",
        "'''",
        "Foo{",
        ".getHours",
        "matches",
    ]
)


def _check_compile(text: str) -> CompiledCondition | None:
    condition, problems = compile_condition(text, LOC, NETS)
    if condition is None:
        assert problems
        for problem in problems:
            assert isinstance(problem, PolicyError)
            assert problem.code.startswith("policy.")
            assert problem.location.file == "p.yaml"
    else:
        assert problems == []
    return condition


@SETTINGS
@given(st.text(max_size=80))
def test_random_text_never_crashes_the_compiler(text: str) -> None:
    _check_compile(text)


@SETTINGS
@given(st.lists(TOKENS, max_size=25).map("".join))
def test_random_token_soup_never_crashes_the_compiler(text: str) -> None:
    _check_compile(text)


@SETTINGS
@given(conditions, activations)
def test_conditions_only_return_bool_or_raise_cel_eval_error(
    text: str, activation: dict[str, Any]
) -> None:
    condition = _check_compile(text)
    assume(condition is not None)
    assert condition is not None
    for evaluate in (condition, condition.reference):
        try:
            result = evaluate(activation)
        except CelEvalError:
            continue
        assert type(result) is bool
