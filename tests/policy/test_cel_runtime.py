"""CEL value semantics shared by the fast path and the reference interpreter."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from juncture.policy import cel_runtime as rt
from juncture.policy.cel_runtime import CelEvalError


@pytest.mark.parametrize(
    "value",
    [
        99999999999999999,
        -99999999999999999,
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_timestamp_out_of_range_is_an_evaluation_error(value: object) -> None:
    with pytest.raises(CelEvalError, match="out of range"):
        rt.to_timestamp(value)


def test_timestamp_conversions() -> None:
    assert rt.to_timestamp(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert rt.to_timestamp("2024-03-05T23:30:00+01:00") == datetime(2024, 3, 5, 22, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["1_000", " 7 ", "\u0663", "0x10", "1.0", ""])
def test_int_of_a_string_takes_plain_decimal_digits_only(text: str) -> None:
    with pytest.raises(rt.CelEvalError, match="cannot convert"):
        rt.FUNCTIONS["int"][0](text)


@pytest.mark.parametrize("text", ["1_0.0", " 1", "1e", "\u0663.0", "."])
def test_double_of_a_string_takes_plain_numbers_only(text: str) -> None:
    with pytest.raises(rt.CelEvalError, match="cannot convert"):
        rt.FUNCTIONS["double"][0](text)


@pytest.mark.parametrize(("text", "value"), [("-12", -12), ("+3", 3)])
def test_int_of_a_decimal_string(text: str, value: int) -> None:
    assert rt.FUNCTIONS["int"][0](text) == value


@pytest.mark.parametrize(("text", "value"), [("1.5e3", 1500.0), (".5", 0.5), ("-inf", -math.inf)])
def test_double_of_a_number_string(text: str, value: float) -> None:
    assert rt.FUNCTIONS["double"][0](text) == value


def test_an_empty_time_zone_is_an_error_not_utc() -> None:
    moment = datetime(2026, 1, 1, 12, tzinfo=UTC)
    with pytest.raises(rt.CelEvalError, match="unknown time zone"):
        rt.METHODS["getHours"][0](moment, "")


def test_a_bad_regular_expression_is_reported_as_text() -> None:
    with pytest.raises(rt.CelEvalError) as info:
        rt.METHODS["matches"][0]("abc", "a(")
    assert info.value.message.startswith("invalid regular expression: missing )")
    assert "b'" not in info.value.message


def test_a_regex_error_given_as_text_is_reported_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(pattern: str) -> None:
        raise ValueError("pattern refused")

    monkeypatch.setattr(rt.re2, "compile", refuse)
    rt._regex.cache_clear()
    with pytest.raises(rt.CelEvalError, match="invalid regular expression: pattern refused"):
        rt.METHODS["matches"][0]("abc", "x+y")
    rt._regex.cache_clear()
