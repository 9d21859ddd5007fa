"""What only the PostgreSQL backend has: migrations under an advisory lock, a pool that
never hangs, and a server gone answering StoreError (the contract suite covers the rest)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from juncture.records import DecisionQuery, DecisionRecord
from juncture.service.database import files_base, is_postgres_url
from juncture.store.postgres import SCHEMA_VERSION, PostgresStore
from juncture.store.postgres.arrays import ByteaArray, Int8Array, TextArray
from juncture.store.postgres.decisions import DAY, DAYS_AHEAD
from juncture.store.postgres.schema import migrate
from juncture.store.protocols import StoreError
from postgres import PostgresServer


def test_two_stores_opened_together_migrate_once(postgres_url: str):
    opened: list[PostgresStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(PostgresStore(postgres_url))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    try:
        with psycopg.connect(postgres_url) as conn:
            rows = conn.execute("SELECT version FROM juncture_schema").fetchall()
        assert rows == [(SCHEMA_VERSION,)]
        assert all(store.count_active_sessions() == 0 for store in opened)
    finally:
        for store in opened:
            store.close()


def test_a_schema_newer_than_known_is_refused(postgres_url: str):
    PostgresStore(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE juncture_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer"):
        PostgresStore(postgres_url)


def test_migrate_without_applying_reports_the_version_found(postgres_url: str):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert migrate(conn, apply=False) == 0
        assert migrate(conn) == 0
        assert migrate(conn, apply=False) == SCHEMA_VERSION


def test_a_pool_with_no_free_connection_raises_within_its_timeout(postgres_url: str):
    store = PostgresStore(postgres_url, pool_size=1, timeout=0.5)
    try:
        with store._connection():  # the only connection, held
            began = time.monotonic()
            with pytest.raises(StoreError, match="no database connection free"):
                store.get_session("s1")
            assert time.monotonic() - began < 2.0
        assert store.get_session("s1") is None  # given back: served again
    finally:
        store.close()


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own, to stop and start."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        except RuntimeError:
            pass  # stopped by the test already
        server.remove()


def test_a_stopped_server_answers_store_error_and_the_store_recovers(own_server: PostgresServer):
    url = own_server.create_database()
    store = PostgresStore(url, timeout=1.0)
    try:
        with store._connection(), store._connection(), store._connection():
            pass  # three connections in the pool, idle: all broken by the restart
        assert store.get_session("s1") is None
        own_server.stop()
        began = time.monotonic()
        for _ in range(3):  # a stale connection, then no connection: StoreError each time
            with pytest.raises(StoreError) as raised:
                store.get_session("s1")
            assert "127.0.0.1" not in str(raised.value)  # the driver's words stay in the log
        assert time.monotonic() - began < 10.0
        own_server.start()
        deadline = time.monotonic() + 20
        while True:
            try:
                assert store.get_session("s1") is None
                break
            except StoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        for _ in range(5):  # recovered: the broken connections were replaced
            assert store.get_session("s1") is None
    finally:
        store.close()


def test_opening_with_no_server_raises_store_error(own_server: PostgresServer):
    url = own_server.create_database()
    own_server.stop()
    began = time.monotonic()
    with pytest.raises(StoreError, match="cannot open the store"):
        PostgresStore(url, timeout=1.0)
    assert time.monotonic() - began < 10.0


def test_a_db_argument_is_a_postgres_url_by_its_scheme():
    assert is_postgres_url("postgresql://u@h/db")
    assert is_postgres_url("postgres://u@h/db")
    assert not is_postgres_url("juncture.db")
    assert not is_postgres_url("/var/lib/juncture/postgresql.db")


def test_files_beside_a_postgres_database_go_to_the_current_directory_by_its_name():
    assert files_base("juncture.db") == Path("juncture.db")
    assert files_base("postgresql://u:secret@db.example:6543/prod") == Path(
        "postgres-db.example-6543-prod"
    )
    assert files_base("postgres://db.example/juncture") == Path("postgres-db.example-5432-juncture")


def test_a_database_that_takes_no_writes_is_not_writable(postgres_url: str):
    store = PostgresStore(postgres_url)
    try:
        store.check_writable()
        name = postgres_url.rsplit("/", 1)[1]
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        store.close()
        store = PostgresStore(postgres_url, migrate_schema=False)
        with pytest.raises(StoreError, match="takes no writes"):
            store.check_writable()
    finally:
        store.close()


def _decision(n: int, when: datetime) -> DecisionRecord:
    return DecisionRecord(
        id=f"d{n:04d}", at=when, app="shop", subject_type="user", subject_id="u1",
        session_id="s1", action="login", resource={"type": "page"}, outcome="allow",
        reason=None, version="v1", latency_us=42, decision={"outcome": "allow"}, facts={},
    )  # fmt: skip


def _days(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'decisions'::regclass"
        ).fetchall()
    return {name for (name,) in rows}


def test_the_decision_log_is_kept_in_days_and_retention_drops_whole_days(postgres_url: str):
    store = PostgresStore(postgres_url)
    try:
        now = datetime.now(UTC)
        today = int(now.timestamp() * 1_000_000) // DAY
        midnight = datetime.fromtimestamp(today * 86_400, UTC)
        records = [
            _decision(1, now - timedelta(days=30)),  # before any day made: the default one
            _decision(2, midnight - timedelta(hours=3)),  # yesterday
            _decision(3, midnight - timedelta(hours=1)),  # yesterday
            _decision(4, midnight + timedelta(seconds=1)),  # today
        ]
        store.record(records)
        store.record(records)  # a retried batch is kept once
        days = _days(postgres_url)
        assert {f"decisions_d{d}" for d in range(today - 1, today + DAYS_AHEAD + 1)} <= days
        assert "decisions_default" in days

        # Retention up to today's midnight: yesterday's day is dropped whole, the month-old
        # record is deleted from the default partition, today's stays.
        assert store.purge_before(midnight) == 3
        assert f"decisions_d{today - 1}" not in _days(postgres_url)
        assert f"decisions_d{today}" in _days(postgres_url)
        left = store.query(DecisionQuery(limit=10))
        assert [r.id for r in left] == ["d0004"]
    finally:
        store.close()


def test_a_statement_waiting_on_another_clients_lock_gives_up(postgres_url: str):
    store = PostgresStore(postgres_url, lock_timeout=0.5)
    try:
        with psycopg.connect(postgres_url) as holder:
            holder.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(StoreError):
                store.get_session("s_nobody")
            assert time.monotonic() - started < 3
        assert store.get_session("s_nobody") is None  # the lock gone, the store answers
    finally:
        store.close()


def test_the_time_limits_join_the_options_a_url_gives():
    from juncture.store.postgres.connection import _bounded

    bounded = _bounded("postgresql://u@h/d?options=-c%20search_path%3Dj", 8, 15)
    assert bounded == "-c search_path=j -c lock_timeout=8000 -c statement_timeout=15000"


def test_packed_arrays_reach_the_server_as_the_values_given(postgres_url: str):
    texts = ["", 'ü "q", {b}\\ NULL', "x" * 5000]
    numbers = [0, -1, 2**62, -(2**62)]
    blobs = [b"", bytes(range(256)), b"\\x00"]
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute(
            "SELECT %s::text[], %s::bigint[], %s::bytea[], %s::text[], %s::bigint[],"
            " %s::bytea[], cardinality(%s::text[])",
            (TextArray(texts), Int8Array(numbers), ByteaArray(blobs), TextArray([]),
             Int8Array([]), ByteaArray([]), TextArray([])),
        ).fetchone()  # fmt: skip
    assert row == (texts, numbers, blobs, [], [], [], 0)


def test_a_database_of_the_third_schema_binds_its_apps_since_the_epoch(postgres_url: str):
    """As on SQLite: an app stored before the binding history is bound since ever."""
    from juncture.store.sqlite.rows import EPOCH

    from .test_contract import make_app

    with PostgresStore(postgres_url) as third:
        third.put_app(make_app("shop", journeys=("shop", "admin")))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE replay_jobs")
        conn.execute("DROP TABLE app_bindings")
        conn.execute("UPDATE juncture_schema SET version = 3")
    with PostgresStore(postgres_url) as migrated:
        assert [(b.journeys, b.since) for b in migrated.app_bindings("shop")] == [
            (("shop", "admin"), EPOCH)]  # fmt: skip
        assert migrated.list_replays() == []
