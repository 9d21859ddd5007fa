"""CEL value semantics shared by the fast path and the reference interpreter."""

from __future__ import annotations

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
