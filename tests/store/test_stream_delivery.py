"""A stream's delivery status (`delivery_status`): its outbox counted by state, on every
backend, as the console's Shared Signals page shows it."""

from __future__ import annotations

from juncture.records import StreamDelivery
from juncture.store.protocols import Store

from .test_contract import POLL, at, make_item, make_stream


def test_delivery_status_counts_a_streams_items_by_state(store: Store):
    store.put_stream(make_stream(1), expected_revision=0)
    store.put_stream(make_stream(2, delivery_method=POLL), expected_revision=0)
    assert store.delivery_status("st1") == StreamDelivery()
    assert store.delivery_status("nope") == StreamDelivery()
    items = store.enqueue([make_item(n) for n in range(6)])
    store.enqueue([make_item(1, "st2")])  # another stream's item is not counted
    store.mark_delivered("st1", ["set-0"], at=at(5))
    store.mark_delivered("st1", ["set-1"], at=at(9))
    store.mark_failed(items[2].seq, at=at(6), error="503 unavailable", next_attempt_at=at(60))
    store.mark_failed(items[3].seq, at=at(7), error="410 gone", next_attempt_at=None)
    store.mark_failed(items[4].seq, at=at(4), error="timeout", next_attempt_at=at(60))
    assert store.delivery_status("st1") == StreamDelivery(
        pending=3, retrying=2, failed=1, delivered=2, last_delivered_at=at(9),
        last_error="timeout",  # the newest undelivered item's (by seq), not the latest attempt
    )  # fmt: skip
    store.mark_delivered("st1", ["set-4", "set-3"], at=at(3))  # a late 202 of a given-up one
    assert store.delivery_status("st1") == StreamDelivery(
        pending=2, retrying=1, failed=0, delivered=4, last_delivered_at=at(9),
        last_error="503 unavailable",
    )  # fmt: skip
    assert store.delivery_status("st2") == StreamDelivery(pending=1)
