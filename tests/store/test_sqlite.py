"""What is particular to the SQLite backend: file format, pragmas, schema versions, errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from juncture.records import DecisionQuery, StreamSubject
from juncture.store.protocols import ConflictError, StoreError
from juncture.store.sqlite import SCHEMA_VERSION, SqliteStore

from .test_contract import (
    POLL,
    at,
    make_app,
    make_authenticator,
    make_challenge,
    make_decision,
    make_event,
    make_item,
    make_seen,
    make_session,
    make_stream,
    make_stream_subject,
    make_subject,
    make_sweep,
    make_version,
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "juncture.db"


@pytest.fixture
def store(path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(path) as opened:
        yield opened


def pragma(path: Path, name: str) -> object:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def raw(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in statements:
            conn.execute(statement)


def test_the_file_is_wal_with_the_current_schema_version(store: SqliteStore, path: Path):
    assert pragma(path, "journal_mode") == "wal"
    assert pragma(path, "user_version") == SCHEMA_VERSION >= 1


def test_connections_are_durable_with_foreign_keys(store: SqliteStore):
    store.get_session("warm-up")  # opens a reader
    for conn in (store._writer, *store._readers):
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert store._readers[0].execute("PRAGMA query_only").fetchone()[0] == 1


def test_reopening_keeps_the_schema_and_data(path: Path):
    with SqliteStore(path) as first:
        first.create_session(make_session())
    with SqliteStore(path) as second:
        assert second.get_session("s1") == make_session()
    assert pragma(path, "user_version") == SCHEMA_VERSION


def test_a_file_that_is_not_a_database_is_a_store_error(path: Path):
    path.write_bytes(b"this is not a database, just text " * 100)
    with pytest.raises(StoreError, match="not a database"):
        SqliteStore(path)


def test_a_database_of_something_else_is_refused_and_left_alone(path: Path):
    raw(path, "CREATE TABLE sessions (x)", "INSERT INTO sessions VALUES (1)")
    with pytest.raises(StoreError, match="already exists"):
        SqliteStore(path)
    assert pragma(path, "user_version") == 0
    with closing(sqlite3.connect(path)) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == [("sessions",)]


def test_a_missing_directory_is_a_store_error(tmp_path: Path):
    with pytest.raises(StoreError, match="cannot open"):
        SqliteStore(tmp_path / "missing" / "juncture.db")


def test_a_database_without_wal_is_refused():
    with pytest.raises(StoreError, match="WAL"):
        SqliteStore(":memory:")


def test_a_newer_schema_is_refused_and_left_alone(path: Path):
    with SqliteStore(path):
        pass
    raw(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        SqliteStore(path)
    assert pragma(path, "user_version") == SCHEMA_VERSION + 1


def test_a_corrupt_record_is_a_store_error(store: SqliteStore, path: Path):
    store.create_session(make_session())
    raw(path, "UPDATE sessions SET body = x'7b7d' WHERE id = 's1'")  # {}: fields missing
    with pytest.raises(StoreError, match="corrupt session"):
        store.get_session("s1")


def test_a_failing_read_is_a_store_error(store: SqliteStore, path: Path):
    raw(path, "DROP TABLE sessions")
    with pytest.raises(StoreError, match="read failed") as caught:
        store.get_session("s1")
    assert isinstance(caught.value.__cause__, sqlite3.Error)
    with pytest.raises(StoreError, match="read failed"):
        store.list_sessions()


def test_a_failing_write_is_a_store_error_and_rolls_back(store: SqliteStore, path: Path):
    store.put_version(make_version())
    raw(path, "DROP TABLE decisions")
    with pytest.raises(StoreError, match="write failed") as caught:
        store.record([make_decision(1)])
    assert not isinstance(caught.value, ConflictError)
    store.activate("v1", by="alice", at=make_version().created_at)  # the writer still works
    assert store.active_version_id() == "v1"


def test_a_write_that_cannot_get_the_lock_in_time_is_a_store_error(path: Path):
    with (
        SqliteStore(path, busy_timeout=0.05) as store,
        closing(sqlite3.connect(path, isolation_level=None)) as other,
    ):
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="cannot start a write"):
            store.create_session(make_session())
        other.execute("ROLLBACK")
        store.create_session(make_session())  # and goes on once the lock is free
        assert store.get_session("s1") == make_session()


def test_readers_do_not_wait_for_a_writer(path: Path):
    with (
        SqliteStore(path, busy_timeout=0.05) as store,
        closing(sqlite3.connect(path, isolation_level=None)) as other,
    ):
        store.create_session(make_session())
        other.execute("BEGIN IMMEDIATE")
        other.execute("DELETE FROM sessions")
        assert store.get_session("s1") == make_session()  # the committed snapshot
        other.execute("ROLLBACK")


def test_a_reader_returned_after_close_is_closed(store: SqliteStore):
    conn = store._acquire()
    store.close()
    store._release(conn)
    assert not store._readers
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")


def test_a_consumed_challenge_stays_consumed_across_handles(path: Path):
    with SqliteStore(path) as first, SqliteStore(path) as second:
        first.create_challenge(make_challenge())
        second.consume_challenge("ch1", at=make_challenge().created_at)
        with pytest.raises(ConflictError):
            first.consume_challenge("ch1", at=make_challenge().created_at)


def test_query_uses_an_index_for_each_filter(store: SqliteStore):
    for column in ("app", "subject_id", "session_id", "action", "outcome"):
        plan = store._writer.execute(
            f"EXPLAIN QUERY PLAN SELECT body FROM decisions WHERE {column} = ?"
            " ORDER BY at DESC, id DESC LIMIT 10", ("x",),
        ).fetchall()  # fmt: skip
        assert any(f"decisions_{column.removesuffix('_id')}" in str(row) for row in plan), plan
        assert not any("TEMP B-TREE" in str(row) for row in plan), plan
    assert store.query(DecisionQuery(app="x")) == []


def test_a_file_of_the_first_schema_is_migrated_and_keeps_its_sessions(path: Path):
    from juncture.store.sqlite.schema import MIGRATIONS

    raw(path, "PRAGMA journal_mode = WAL", *MIGRATIONS[0], "PRAGMA user_version = 1")
    with SqliteStore(path) as first:  # a session written by the first schema's code
        first.create_session(make_session())
    raw(path, "DROP TABLE subjects_seen", *DROP_SCHEMA_3, *DROP_SCHEMA_4, *DROP_SCHEMA_5,
        *DROP_SCHEMA_6, *DROP_SCHEMA_7, *DROP_SCHEMA_8, *DROP_SCHEMA_9, *DROP_SCHEMA_10,
        *DROP_SCHEMA_11, "PRAGMA user_version = 1")  # fmt: skip
    with SqliteStore(path) as migrated:
        assert migrated.get_session("s1") == make_session()
        assert migrated.get_subject_seen("user", "u1") is None
    assert pragma(path, "user_version") == SCHEMA_VERSION == 11


#: What undoes the third schema's migration (its tables, with their indexes).
DROP_SCHEMA_3 = ("DROP TABLE subjects", "DROP TABLE authenticators", "DROP TABLE failures")
#: What undoes the fourth schema's migration (its tables, with their indexes).
DROP_SCHEMA_4 = (
    "DROP TABLE received_sessions", "DROP TABLE received_events", "DROP TABLE event_times",
    "DROP TABLE stream_subjects", "DROP TABLE streams", "DROP TABLE outbox", "DROP TABLE sweeps",
)  # fmt: skip
#: What undoes the fifth schema's migration.
DROP_SCHEMA_5 = ("DROP TABLE delivery_leases",)
#: What undoes the sixth schema's migration.
DROP_SCHEMA_6 = ("DROP INDEX sessions_parent", "ALTER TABLE sessions DROP COLUMN parent",
                 "DROP TABLE approvals")  # fmt: skip
#: What undoes the seventh schema's migration.
DROP_SCHEMA_7 = ("DROP INDEX sessions_email", "ALTER TABLE sessions DROP COLUMN email")
#: What undoes the eighth schema's migration.
DROP_SCHEMA_8 = ("DROP TABLE heartbeats",)
#: What undoes the ninth schema's migration (the change log and the triggers that write it).
DROP_SCHEMA_9 = (
    *(f"DROP TRIGGER {table}_{event}_change" for table in ("sessions", "apps", "key_prefixes",
      "versions") for event in ("update", "delete")),
    "DROP TABLE changes",
)  # fmt: skip
#: What undoes the tenth schema's migration (the shadow version and its records).
DROP_SCHEMA_10 = ("DROP INDEX versions_one_shadow", "ALTER TABLE versions DROP COLUMN shadow",
                  "DROP TABLE shadow_decisions")  # fmt: skip
#: What undoes the eleventh schema's migration (replay jobs, app binding histories).
DROP_SCHEMA_11 = ("DROP TABLE replay_jobs", "DROP TABLE app_bindings")


def test_a_file_of_the_tenth_schema_binds_its_apps_since_the_epoch(path: Path):
    """Before the binding history an app's journeys were set only when it was made: the
    migration keeps each app's journeys as bound since ever (replay assumes nothing)."""
    from juncture.store.sqlite.rows import EPOCH

    with SqliteStore(path) as tenth:
        tenth.put_app(make_app("shop", journeys=("shop", "admin")))
        tenth.put_app(make_app("desk", journeys=()))
    raw(path, *DROP_SCHEMA_11, "PRAGMA user_version = 10")
    with SqliteStore(path) as migrated:
        assert pragma(path, "user_version") == SCHEMA_VERSION == 11
        assert [(b.journeys, b.since) for b in migrated.app_bindings("shop")] == [
            (("shop", "admin"), EPOCH)]  # fmt: skip
        assert [(b.journeys, b.since) for b in migrated.app_bindings("desk")] == [((), EPOCH)]
        assert migrated.list_replays() == []


def test_a_file_of_the_ninth_schema_keeps_its_active_version_and_has_no_shadow(path: Path):
    from juncture.store.sqlite.schema import MIGRATIONS

    raw(path, "PRAGMA journal_mode = WAL", *(s for m in MIGRATIONS[:9] for s in m),
        "PRAGMA user_version = 9")  # fmt: skip
    with SqliteStore(path) as ninth:
        ninth.put_version(make_version(1))
        ninth.activate("v1", by="alice", at=at(1))
    raw(path, *DROP_SCHEMA_10, *DROP_SCHEMA_11, "PRAGMA user_version = 9")
    with SqliteStore(path) as migrated:
        assert pragma(path, "user_version") == SCHEMA_VERSION == 11
        assert migrated.active_version_id() == "v1"
        assert migrated.shadow_version_id() is None
        assert [v.shadow for v in migrated.list_versions()] == [False]


def test_a_file_of_the_second_schema_is_migrated_and_keeps_its_records(path: Path):
    from juncture.store.sqlite.schema import MIGRATIONS

    raw(path, "PRAGMA journal_mode = WAL", *MIGRATIONS[0], *MIGRATIONS[1],
        "PRAGMA user_version = 2")  # fmt: skip
    with SqliteStore(path) as second:  # records written by the second schema's code
        second.create_session(make_session())
        seen = second.put_subject_seen(make_seen(), expected_revision=0)
        second.create_challenge(make_challenge())
    raw(path, *DROP_SCHEMA_3, *DROP_SCHEMA_4, *DROP_SCHEMA_5, *DROP_SCHEMA_6, *DROP_SCHEMA_7,
        *DROP_SCHEMA_8, *DROP_SCHEMA_9, *DROP_SCHEMA_10, *DROP_SCHEMA_11,
        "PRAGMA user_version = 2")  # fmt: skip
    with SqliteStore(path) as migrated:
        assert pragma(path, "user_version") == SCHEMA_VERSION == 11
        assert migrated.get_session("s1") == make_session()
        assert migrated.get_subject_seen("user", "u1") == seen
        assert migrated.get_challenge("ch1") == make_challenge()
        assert migrated.get_subject("user", "u1") is None
        assert migrated.put_subject(make_subject(), expected_revision=0).revision == 1
        migrated.create_authenticator(make_authenticator())
        assert migrated.find_authenticator("cred-a1") == make_authenticator(revision=1)
        assert migrated.record_failure(
            "user", "u1", "password", at=make_session().started_at, window=timedelta(minutes=1),
            lock_after=3, lock_for=timedelta(minutes=5),
        ).count == 1  # fmt: skip


def test_a_challenge_stored_before_subject_types_and_states_decodes_with_defaults(
    store: SqliteStore, path: Path
):
    store.create_challenge(make_challenge())
    legacy = msgspec.json.decode(msgspec.json.encode(make_challenge()))
    del legacy["subject_type"], legacy["states"]
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("UPDATE challenges SET body = ? WHERE id = 'ch1'",
                     (msgspec.json.encode(legacy),))  # fmt: skip
    stored = store.get_challenge("ch1")
    assert stored == make_challenge()
    assert (stored.subject_type, stored.states) == ("user", {})
    kept = store.set_challenge_state("ch1", "passkey", b"state", at=make_challenge().created_at)
    assert kept.states == {"passkey": b"state"}


def test_subject_and_authenticator_lists_use_an_index(store: SqliteStore):
    for sql, params, index in [
        ("SELECT body FROM subjects WHERE status = ? ORDER BY type, id LIMIT 10", ("x",),
         "subjects_status"),
        ("SELECT body FROM subjects WHERE (type, id) > (?, ?) ORDER BY type, id LIMIT 10",
         ("x", "y"), "(type,id)>(?,?)"),
        ("SELECT body FROM subjects WHERE type = ? AND id > ? ORDER BY type, id LIMIT 10",
         ("x", "y"), "(type=? AND id>?)"),
        ("SELECT body FROM subjects WHERE type = ? AND status = ? AND id > ?"
         " ORDER BY type, id LIMIT 10", ("x", "y", "z"), "(status=? AND type=? AND id>?)"),
        ("SELECT body FROM authenticators WHERE subject_type = ? AND subject_id = ?"
         " ORDER BY created_at, id", ("x", "y"), "authenticators_subject"),
    ]:  # fmt: skip
        plan = store._writer.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
        assert any(index in str(row) for row in plan), plan
        assert not any("TEMP B-TREE" in str(row) for row in plan), plan


def test_a_file_of_the_third_schema_is_migrated_and_keeps_its_records(path: Path):
    from juncture.store.sqlite.schema import MIGRATIONS

    raw(path, "PRAGMA journal_mode = WAL", *MIGRATIONS[0], *MIGRATIONS[1], *MIGRATIONS[2],
        "PRAGMA user_version = 3")  # fmt: skip
    with SqliteStore(path) as third:  # records written by the third schema's code
        third.create_session(make_session(1))
        third.create_session(make_session(2, status="ended"))
        subject = third.put_subject(make_subject(), expected_revision=0)
        authenticator = third.create_authenticator(make_authenticator())
        failures = third.record_failure(
            "user", "u1", "password", at=at(1), window=timedelta(minutes=1), lock_after=3,
            lock_for=timedelta(minutes=5),
        )  # fmt: skip
    raw(path, *DROP_SCHEMA_4, *DROP_SCHEMA_5, *DROP_SCHEMA_6, *DROP_SCHEMA_7, *DROP_SCHEMA_8,
        *DROP_SCHEMA_9, *DROP_SCHEMA_10, *DROP_SCHEMA_11,
        "PRAGMA user_version = 3")  # fmt: skip
    with SqliteStore(path) as migrated:
        assert pragma(path, "user_version") == SCHEMA_VERSION == 11
        assert migrated.get_session("s1") == make_session(1)
        # the address of the sessions written before it is found (filled in by the migration)
        assert migrated.sessions_by_email("A@Example.com") == [make_session(1)]
        assert migrated.get_subject("user", "u1") == subject
        assert migrated.find_authenticator("cred-a1") == authenticator
        assert migrated.get_failures("user", "u1", "password") == failures
        assert migrated.sessions_after(None).sessions == [make_session(1)]
        assert migrated.get_sessions(["s1", "s2"]) == {
            "s1": make_session(1),
            "s2": make_session(2, status="ended"),
        }
        assert migrated.list_received() == []
        assert migrated.receive_event(make_event()) is True
        assert migrated.list_received(session_id="s1") == [make_event()]
        assert migrated.set_event_time("user:u1", "risk", at(1)) is True
        assert migrated.list_streams() == []
        assert migrated.put_stream(make_stream(), expected_revision=0).revision == 1
        migrated.add_stream_subject(make_stream_subject())
        (item,) = migrated.enqueue([make_item(1)])
        assert migrated.due(now=at(1)) == [item]
        assert migrated.list_sweeps() == []
        assert migrated.put_sweep(make_sweep(), expected_revision=0).revision == 1
    fresh = path.with_name("fresh.db")
    with SqliteStore(fresh):
        pass
    assert schema(path) == schema(fresh)  # migrating ends where a new file starts


def schema(path: Path) -> list[tuple[str, str, str]]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master"
                            " WHERE name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()  # fmt: skip
    return [(kind, name, " ".join(sql.split())) for kind, name, sql in rows]


def plans(store: SqliteStore, call: Callable[[], object]) -> list[str]:
    """The query plans of the statements ``call`` runs on a pooled reader (traced as SQLite
    runs them, values bound), one string each."""
    conn = store._acquire()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    store._release(conn)  # the next read takes it (the pool is last in, first out)
    try:
        call()
    finally:
        conn.set_trace_callback(None)
    assert statements, "nothing ran on the traced reader"
    return [str(store._writer.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall())
            for sql in statements]  # fmt: skip


def test_sessions_after_walks_the_primary_key_with_100000_sessions(store: SqliteStore, path: Path):
    """The sweep's batches stay one index range each, however many sessions there are, and
    whatever the statistics (ANALYZE) say of the status index."""
    statuses = ("active", "ended", "revoked", "ended")
    rows = []
    for n in range(100_000):
        session = make_session(n, status=statuses[n % 4])
        rows.append((session.id, session.handle, session.app, session.subject_id, session.status,
                     n, 0, msgspec.json.encode(session)))  # fmt: skip
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO sessions (id, handle, app, subject_id, status, started_at,"
                         " revision, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)  # fmt: skip
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    for cursor in (None, "s5", "s99996"):
        for plan in plans(store, lambda cursor=cursor: store.sessions_after(cursor, limit=500)):
            assert "INDEX sqlite_autoindex_sessions_1" in plan, plan
            assert cursor is None or "(id>?)" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
    count, cursor = 0, None
    while (page := store.sessions_after(cursor, limit=500)).rows:
        count += len(page.sessions)
        cursor = page.last
    assert count == 25_000
    (plan,) = plans(store, lambda: store.get_sessions(["s1", "s2"]))
    assert "sqlite_autoindex_sessions_1 (id=?)" in plan, plan


def test_signal_and_sweep_lists_use_an_index(store: SqliteStore):
    expected: list[tuple[Callable[[], object], str]] = [
        (lambda: store.list_received(), "received_events_at"),
        (lambda: store.list_received(subject_id="u1"), "received_events_subject (subject_id=?)"),
        (lambda: store.list_received(session_id="s1"), "received_sessions_session (session_id=?)"),
        (lambda: store.list_received(session_id="s1", subject_id="u1"),
         "received_sessions_session (session_id=?)"),
        (lambda: store.list_streams(), "streams_created"),
        (lambda: store.list_streams(app="shop"), "streams_app (app=?)"),
        (lambda: store.list_stream_subjects("st1"), "stream_subjects_added (stream_id=?)"),
        (lambda: store.pending("st1"), "outbox_pending (stream_id=?)"),
        (lambda: store.list_sweeps(), "sweeps_started"),
        (lambda: store.list_sweeps(status="running"), "sweeps_status (status=?)"),
    ]  # fmt: skip
    for call, index in expected:
        (plan,) = plans(store, call)
        assert index in plan, plan
        assert "TEMP B-TREE" not in plan, plan


def test_due_walks_the_streams_then_each_ones_due_items(store: SqliteStore):
    (plan,) = plans(store, lambda: store.due(now=at(0)))
    assert "SCAN s" in plan, plan
    assert "outbox_due (stream_id=? AND next_attempt_at<?)" in plan, plan
    assert plan.index("SCAN s") < plan.index("outbox_due"), plan  # streams outside
    # What is delivered or given up leaves the partial indexes.
    store.put_stream(make_stream(), expected_revision=0)
    items = store.enqueue([make_item(n) for n in range(4)])
    store.mark_delivered("st1", ["set-0"], at=at(5))
    store.mark_failed(items[1].seq, at=at(5), error="410", next_attempt_at=None)
    for index in ("outbox_due", "outbox_pending"):
        (count,) = store._writer.execute(
            f"SELECT count(*) FROM outbox INDEXED BY {index}"
            " WHERE delivered_at IS NULL AND given_up_at IS NULL").fetchone()  # fmt: skip
        assert count == 2


def test_deleting_a_stream_keeps_its_delivered_items(store: SqliteStore, path: Path):
    store.put_stream(make_stream(1, delivery_method=POLL), expected_revision=0)
    store.add_stream_subject(make_stream_subject())
    items = store.enqueue([make_item(n) for n in range(3)])
    store.mark_delivered("st1", ["set-0"], at=at(5))
    store.mark_failed(items[1].seq, at=at(5), error="x", next_attempt_at=None)
    assert store.delete_stream("st1") is True
    with closing(sqlite3.connect(path)) as conn:
        kept = conn.execute("SELECT jti, delivered_at IS NOT NULL FROM outbox").fetchall()
        subjects = conn.execute("SELECT count(*) FROM stream_subjects").fetchone()[0]
    assert kept == [("set-0", 1)]
    assert subjects == 0


def test_stream_subjects_are_keyed_by_canonical_json(store: SqliteStore, path: Path):
    store.put_stream(make_stream(), expected_revision=0)
    subject = {"format": "complex", "user": {"id": "ü1", "format": "opaque"}}
    store.add_stream_subject(StreamSubject(stream_id="st1", subject=subject, added_at=at(1)))
    with closing(sqlite3.connect(path)) as conn:
        (key,) = conn.execute("SELECT subject FROM stream_subjects").fetchone()
    assert key == '{"format":"complex","user":{"format":"opaque","id":"ü1"}}'
