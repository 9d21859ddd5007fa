"""What is particular to the SQLite backend: file format, pragmas, schema versions, errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from juncture.store.models import DecisionQuery
from juncture.store.protocols import ConflictError, StoreError
from juncture.store.sqlite import SCHEMA_VERSION, SqliteStore

from .test_contract import (
    make_authenticator,
    make_challenge,
    make_decision,
    make_seen,
    make_session,
    make_subject,
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
    with SqliteStore(path, busy_timeout=0.05) as store, closing(
        sqlite3.connect(path, isolation_level=None)
    ) as other:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="cannot start a write"):
            store.create_session(make_session())
        other.execute("ROLLBACK")
        store.create_session(make_session())  # and goes on once the lock is free
        assert store.get_session("s1") == make_session()


def test_readers_do_not_wait_for_a_writer(path: Path):
    with SqliteStore(path, busy_timeout=0.05) as store, closing(
        sqlite3.connect(path, isolation_level=None)
    ) as other:
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
    from juncture.store.sqlite import _MIGRATIONS

    raw(path, "PRAGMA journal_mode = WAL", *_MIGRATIONS[0], "PRAGMA user_version = 1")
    with SqliteStore(path) as first:  # a session written by the first schema's code
        first.create_session(make_session())
    raw(path, "DROP TABLE subjects_seen", *DROP_SCHEMA_3, "PRAGMA user_version = 1")
    with SqliteStore(path) as migrated:
        assert migrated.get_session("s1") == make_session()
        assert migrated.get_subject_seen("user", "u1") is None
    assert pragma(path, "user_version") == SCHEMA_VERSION == 3


#: What undoes the third schema's migration (its tables, with their indexes).
DROP_SCHEMA_3 = ("DROP TABLE subjects", "DROP TABLE authenticators", "DROP TABLE failures")


def test_a_file_of_the_second_schema_is_migrated_and_keeps_its_records(path: Path):
    from juncture.store.sqlite import _MIGRATIONS

    raw(path, "PRAGMA journal_mode = WAL", *_MIGRATIONS[0], *_MIGRATIONS[1],
        "PRAGMA user_version = 2")  # fmt: skip
    with SqliteStore(path) as second:  # records written by the second schema's code
        second.create_session(make_session())
        seen = second.put_subject_seen(make_seen(), expected_revision=0)
        second.create_challenge(make_challenge())
    raw(path, *DROP_SCHEMA_3, "PRAGMA user_version = 2")
    with SqliteStore(path) as migrated:
        assert pragma(path, "user_version") == SCHEMA_VERSION == 3
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
