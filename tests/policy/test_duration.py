"""Durations as journeys write them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from juncture.policy.duration import MAX_SECONDS, format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("1h30m", 5400),
        ("7d", 604800),
        ("1d2h3m4s", 93784),
        ("0s", 0),
        (" 5m ", 300),
        ("2m2m", 240),
        (0, 0),
        (45, 45),
        (MAX_SECONDS, MAX_SECONDS),
        ("3650d", MAX_SECONDS),
    ],
)
def test_parse(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["", "   ", "10", "5x", "m", "1h 30m", "-5m", "1.5h", "h1", "5mx"]
)
def test_malformed_text_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="is not a duration such as"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, False, 1.5, None, [], {"m": 1}])
def test_other_types_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"^expected a duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [-1, MAX_SECONDS + 1, "3651d"])
def test_out_of_range_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="between 0s and 10 years"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (600, "10m"), (5400, "1h30m"), (93784, "1d2h3m4s"), (59, "59s")],
)
def test_format(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=MAX_SECONDS))
def test_format_then_parse_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
