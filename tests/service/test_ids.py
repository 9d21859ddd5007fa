"""Ids (service/ids.py): what `is_id` accepts is exactly what `new_id` makes."""

from __future__ import annotations

import pytest

from juncture.service.ids import is_id, new_id


def test_a_new_id_is_an_id_of_its_prefix_only() -> None:
    made = new_id("s")
    assert is_id("s", made)
    assert not is_id("d", made)
    assert not is_id("s", made.upper())


@pytest.mark.parametrize(
    "text",
    ["", "s_", "s_" + "0" * 31, "s_" + "0" * 33, "s_" + "0" * 31 + "g", "s_" + "0" * 31 + "\n",
     "s-" + "0" * 32, "x_" + "0" * 32, "s_" + "0" * 31 + "A", 42, None],
)  # fmt: skip
def test_anything_else_is_not(text: object) -> None:
    assert not is_id("s", text)
