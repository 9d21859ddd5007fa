"""The start-up heap is frozen out of the collector; what is made later is still collected."""

from __future__ import annotations

import gc

from juncture.api import heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_settle_freezes_what_survives_and_later_cycles_are_still_collected() -> None:
    try:
        frozen = heap.settle()
        assert frozen == gc.get_freeze_count() > 1000  # the modules, at least
        a, b = _Node(), _Node()
        a.other, b.other = b, a  # a cycle made after settling
        del a, b
        assert gc.collect() >= 2  # found and freed: settling did not stop collection
    finally:
        gc.unfreeze()
