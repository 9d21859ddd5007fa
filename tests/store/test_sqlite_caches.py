"""A SQLite store's caches (store/sqlite/changes.py, store/cached.py): exact across every
process that shares the file: a change another process committed is in force at this
process's very next read, no bound to wait for."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from msgspec.structs import replace

from juncture.store.sqlite import SqliteStore

from .test_contract import at, make_app, make_session, make_version
from .test_sqlite import raw


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[SqliteStore, SqliteStore]]:
    """Two stores on one file, with their own connections, as two worker processes have."""
    a, b = SqliteStore(tmp_path / "j.db"), SqliteStore(tmp_path / "j.db")
    a.start_caches()
    b.start_caches()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_a_session_changed_by_another_writer_is_read_anew_at_once(
    two: tuple[SqliteStore, SqliteStore],
):
    a, b = two
    a.create_session(make_session(1))
    assert b.get_session("s1").status == "active"  # type: ignore[union-attr]
    hits = b._sessions.hits
    assert b.get_session("s1").status == "active"  # type: ignore[union-attr]
    assert b._sessions.hits == hits + 1  # served from b's cache
    a.update_session(make_session(1, status="revoked"), expected_revision=0)
    assert b.get_session("s1").status == "revoked"  # type: ignore[union-attr]
    a.delete_session("s1")
    assert b.get_session("s1") is None


def test_reads_in_one_block_stand_as_of_its_first_and_the_next_block_looks_anew(
    two: tuple[SqliteStore, SqliteStore],
):
    a, b = two
    a.create_session(make_session(1))
    a.create_session(make_session(2))
    with b.consistent_reads():
        assert b.get_session("s1").status == "active"  # type: ignore[union-attr]
        a.update_session(make_session(1, status="revoked"), expected_revision=0)
        # Committed after the block's look: the block's reads stand as of that look...
        assert b.get_session("s1").status == "active"  # type: ignore[union-attr]
        with b.consistent_reads():  # ...a block within it shares it...
            assert b.get_session("s1").status == "active"  # type: ignore[union-attr]
        # ...and what the block did not have cached is read from the file as it is now.
        assert b.get_session("s2").status == "active"  # type: ignore[union-attr]
    with b.consistent_reads():  # the next block (the next decision) looks again
        assert b.get_session("s1").status == "revoked"  # type: ignore[union-attr]
    a.update_session(make_session(2, status="revoked"), expected_revision=0)
    assert b.get_session("s2").status == "revoked"  # type: ignore[union-attr]  # no block


def test_a_block_writing_drops_its_own_write_from_the_cache(
    two: tuple[SqliteStore, SqliteStore],
):
    a, _ = two
    a.create_session(make_session(1))
    with a.consistent_reads():
        assert a.get_session("s1").status == "active"  # type: ignore[union-attr]
        a.update_session(make_session(1, status="revoked"), expected_revision=0)
        assert a.get_session("s1").status == "revoked"  # type: ignore[union-attr]


def test_app_keys_and_the_active_version_follow_at_once(two: tuple[SqliteStore, SqliteStore]):
    a, b = two
    a.put_app(make_app("shop", "jct_app_1"))
    assert b.find_app_by_key_prefix("jct_app_1").disabled is False  # type: ignore[union-attr]
    a.put_app(make_app("shop", "jct_app_1", disabled=True))
    assert b.find_app_by_key_prefix("jct_app_1").disabled is True  # type: ignore[union-attr]
    a.put_app(make_app("shop", "jct_app_2"))
    assert b.find_app_by_key_prefix("jct_app_1") is None
    for n in (1, 2):
        a.put_version(make_version(n))
    a.activate("v1", by="alice", at=at(1))
    assert b.active_version_id() == "v1"
    a.activate("v2", by="alice", at=at(2))
    assert b.active_version_id() == "v2"


def test_the_shadow_version_and_its_absence_follow_at_once(two: tuple[SqliteStore, SqliteStore]):
    a, b = two
    for n in (1, 2, 3):
        a.put_version(make_version(n))
    a.activate("v1", by="alice", at=at(1))
    assert b.shadow_version_id() is None  # none: kept too (every decision asks)
    with b.consistent_reads():
        assert b.shadow_version_id() is None
        assert b.active_version_id() == "v1"
    a.set_shadow("v2")
    assert b.shadow_version_id() == "v2"
    a.set_shadow("v3")
    assert b.shadow_version_id() == "v3"
    a.activate("v3", by="alice", at=at(2))  # promoted: no longer the shadow
    assert (b.active_version_id(), b.shadow_version_id()) == ("v3", None)
    b.set_shadow("v2")  # the writer reads its own write
    assert b.shadow_version_id() == "v2"
    a.set_shadow(None)
    assert b.shadow_version_id() is None


def test_a_change_made_by_another_process_or_by_hand_is_in_force_at_once(tmp_path: Path):
    path = tmp_path / "j.db"
    store = SqliteStore(path)
    store.start_caches()
    try:
        store.create_session(make_session(1))
        assert store.get_session("s1").status == "active"  # type: ignore[union-attr]
        revoke = (
            "from juncture.store.sqlite import SqliteStore\n"
            "from msgspec.structs import replace\n"
            f"s = SqliteStore({str(path)!r})\n"
            "old = s.get_session('s1')\n"
            "s.update_session(replace(old, status='revoked'), expected_revision=old.revision)\n"
            "s.close()\n"
        )
        subprocess.run([sys.executable, "-c", revoke], check=True, timeout=60)
        assert store.get_session("s1").status == "revoked"  # type: ignore[union-attr]
        raw(path, "UPDATE versions SET active = 0")  # an operator's statement
        store.put_version(make_version(1))
        assert store.active_version_id() is None
    finally:
        store.close()


def test_a_process_that_missed_pruned_changes_drops_everything(
    two: tuple[SqliteStore, SqliteStore],
):
    a, b = two
    sessions = [make_session(n) for n in range(1, 4)]
    for session in sessions:
        a.create_session(session)
        assert b.get_session(session.id) is not None
    assert len(b._sessions) == 3
    stale = replace(sessions[0], status="revoked")
    a.update_session(stale, expected_revision=0)
    # The rows b has not read are pruned away (as a flood of changes would): b cannot know
    # what changed, so it drops everything.
    a._writer.execute("DELETE FROM changes")
    a.update_session(replace(sessions[1], status="ended"), expected_revision=0)
    assert b.get_session("s1").status == "revoked"  # type: ignore[union-attr]
    assert len(b._sessions) == 1  # only what it read again since


def test_the_change_log_is_pruned_as_it_grows(tmp_path: Path):
    store = SqliteStore(tmp_path / "j.db")
    try:
        store.create_session(make_session(1))
        session = store.get_session("s1")
        assert session is not None
        for _ in range(12_000):
            session = store.update_session(session, expected_revision=session.revision)
        (count,) = store._writer.execute("SELECT count(*) FROM changes").fetchone()
        assert count <= 11_000
    finally:
        store.close()


def test_healthz_state_is_live_with_caches_and_off_without(tmp_path: Path):
    store = SqliteStore(tmp_path / "j.db")
    try:
        assert store.cache_state().state == "off"
        store.start_caches()
        assert store.cache_state().state == "live"
    finally:
        store.close()
