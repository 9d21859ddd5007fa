"""A PostgreSQL store over a database gone silent (a partition that drops packets, through
`tcp_proxy.Cable.silence`): a call waiting on it is cut within the pulse's `SILENCE`, new
calls fail at once, and the store answers again by itself once the partition heals. A slow
statement on a database that answers is never cut: slowness is not silence.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from juncture.store.postgres import PostgresStore, liveness
from juncture.store.postgres.liveness import HEARTBEAT, SILENCE, Pulse
from juncture.store.protocols import StoreError
from postgres import PostgresServer
from tcp_proxy import Cable


@pytest.fixture
def silent_store(
    postgres_server: PostgresServer, postgres_url: str
) -> Iterator[tuple[PostgresStore, Cable]]:
    cable = Cable(postgres_server.port)
    url = postgres_url.replace(f":{postgres_server.port}/", f":{cable.port}/")
    store = PostgresStore(url, timeout=1.0)
    try:
        yield store, cable
    finally:
        cable.heal()
        store.close()
        cable.close()


def test_a_call_on_a_silent_database_is_cut_within_the_silence_and_the_next_fail_at_once(
    silent_store: tuple[PostgresStore, Cable],
):
    store, cable = silent_store
    with store._connection(), store._connection(), store._connection():
        pass  # three connections in the pool, idle: all go quiet with the partition
    assert store.get_session("s1") is None
    cable.silence()
    began = time.monotonic()
    with pytest.raises(StoreError, match="database call failed"):
        store.get_session("s1")
    cut = time.monotonic() - began
    assert SILENCE - HEARTBEAT - 0.5 < cut < SILENCE + 1.0, cut
    assert store.database_silent()
    for _ in range(3):  # no connection is tried while the database is unheard
        began = time.monotonic()
        with pytest.raises(StoreError, match="no answer from the database"):
            store.get_session("s1")
        assert time.monotonic() - began < 0.1
    time.sleep(HEARTBEAT)
    cable.heal()
    deadline = time.monotonic() + 10
    while True:
        try:
            assert store.get_session("s1") is None
            break
        except StoreError:
            assert time.monotonic() < deadline, "the store did not answer again after the heal"
            time.sleep(0.1)
    for _ in range(5):  # every pooled connection works (or was replaced)
        assert store.get_session("s1") is None
    assert not store.database_silent()


def test_a_slow_statement_on_a_database_that_answers_is_not_cut(postgres_url: str):
    store = PostgresStore(postgres_url)
    try:
        took: list[float] = []

        def slow() -> None:
            began = time.monotonic()
            with store._connection() as conn:
                conn.execute("SELECT pg_sleep(%s)", (SILENCE + HEARTBEAT + 0.5,))
            took.append(time.monotonic() - began)

        thread = threading.Thread(target=slow)
        thread.start()
        thread.join(30)
        assert took and took[0] >= SILENCE + HEARTBEAT, took  # ran to its end
        assert store.get_session("s1") is None
    finally:
        store.close()


def test_a_wait_gives_up_past_the_silence_or_the_deadline(monkeypatch: pytest.MonkeyPatch):
    now = [100.0]
    monkeypatch.setattr(liveness, "monotonic", lambda: now[0])
    pulse = Pulse(deadline=10.0, silence=3.0)
    began = now[0]
    now[0] += 2.0
    pulse.heard()
    now[0] += 2.5
    assert not pulse.gave_up(began) and not pulse.silent()  # heard 2.5 s ago
    now[0] += 0.5
    assert pulse.gave_up(began) and pulse.silent() and pulse.unheard_for() == 3.0
    late = now[0]
    now[0] += 2.9
    assert not pulse.gave_up(late)  # a wait begun while silent gets its own silence
    now[0] += 0.1
    assert pulse.gave_up(late)
    began = now[0]
    while not pulse.gave_up(began):  # heard all along: only the deadline ends the wait
        pulse.heard()
        now[0] += 1.0
    assert now[0] - began == 10.0
