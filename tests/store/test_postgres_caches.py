"""A PostgreSQL node's caches (store/postgres/cached.py, changes.py): what the triggers notify,
a change on one node reaching another's caches, and a node that lost its notifications
reading the database until it has caught up."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from msgspec.structs import replace

from juncture.store.postgres import PostgresStore
from juncture.store.postgres.changes import APPLICATION_NAME, STALE_AFTER
from juncture.store.postgres.schema import CHANGES, NOTIFY_IDS, NOTIFY_ROWS

from .test_contract import at, make_app, make_session, make_version

#: How soon a change on one node must show on another (issue 15: 100 ms p99; the test allows
#: a loaded machine more, and the benchmark measures the percentiles).
PROPAGATES_WITHIN = 2.0


def eventually(check: Callable[[], bool], within: float = PROPAGATES_WITHIN) -> float:
    """Seconds until ``check()`` held; fails after ``within``."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < within, "not within the bound"
        time.sleep(0.002)
    return time.monotonic() - began


def served_from_cache(cache: Any, read: Callable[[], Any]) -> bool:
    """Whether ``read()`` is answered from ``cache`` (tried a few times: on a loaded machine
    the caches may be bypassed for a moment, when the listener's ping came back late)."""
    for _ in range(50):
        hits = cache.hits
        read()
        if cache.hits == hits + 1:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def nodes(postgres_url: str) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    a, b = PostgresStore(postgres_url), PostgresStore(postgres_url)
    a.start_caches()
    b.start_caches()
    try:
        assert a.cache_state().state == b.cache_state().state == "live"
        yield a, b
    finally:
        a.close()
        b.close()


def notified(url: str, act: Callable[[], Any]) -> list[str]:
    """The payloads on the changes channel while ``act()`` runs."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANGES}")
        act()
        return [n.payload for n in conn.notifies(timeout=0.3)]


def test_the_triggers_notify_what_changed_at_commit_and_never_an_insert(postgres_url: str):
    store = PostgresStore(postgres_url)
    try:
        sessions = [make_session(n) for n in range(1, NOTIFY_IDS + 3)]
        assert notified(postgres_url, lambda: [store.create_session(s) for s in sessions]) == []
        one = sessions[0]
        assert notified(postgres_url, lambda: store.update_session(one, expected_revision=0)) == [
            "session s1"
        ]
        two = [replace(s, revision=s.revision + (s is one)) for s in sessions[:2]]
        assert notified(postgres_url, lambda: store.update_sessions(two)) == ["session s1,s2"]
        many = sorted(store.get_sessions([s.id for s in sessions]).values(), key=lambda s: s.id)
        payloads = notified(postgres_url, lambda: store.update_sessions(many))
        assert len(payloads) == 2  # the ids in groups of NOTIFY_IDS
        told = [i for p in payloads for i in p.removeprefix("session ").split(",")]
        assert sorted(told) == sorted(s.id for s in many)

        def by_hand() -> None:  # an operator's statement over more rows than are told
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                conn.execute(
                    "INSERT INTO sessions (id, handle, app, subject_id, status, started_at,"
                    " revision, body) SELECT 'x' || n, 'hx' || n, 'shop', 'u', 'active', 0, 0,"
                    " '\\x00' FROM generate_series(1, %s) AS n",
                    (NOTIFY_ROWS + 1,),
                )
                conn.execute("UPDATE sessions SET revision = revision + 1 WHERE id LIKE 'x%'")

        assert notified(postgres_url, by_hand) == ["session *"]
        assert notified(postgres_url, lambda: store.delete_session("s3")) == ["session s3"]
        assert notified(postgres_url, lambda: store.put_app(make_app("shop", "jct_app_1"))) == [
            "app *"
        ]
        store.put_version(make_version(1))
        assert notified(
            postgres_url, lambda: store.activate("v1", by="alice", at=at(1))
        ) == ["version *"]

        def rolled_back() -> None:
            with psycopg.connect(postgres_url) as conn:
                conn.execute("UPDATE sessions SET status = 'revoked' WHERE id = 's1'")
                conn.rollback()

        assert notified(postgres_url, rolled_back) == []
    finally:
        store.close()


def test_a_session_changed_on_one_node_is_read_anew_on_the_other(
    nodes: tuple[PostgresStore, PostgresStore],
):
    a, b = nodes
    a.create_session(make_session(1))
    assert b.get_session("s1").status == "active"  # type: ignore[union-attr]
    assert served_from_cache(b._sessions, lambda: b.get_session("s1"))
    a.update_session(make_session(1, status="revoked"), expected_revision=0)
    eventually(lambda: b.get_session("s1").status == "revoked")  # type: ignore[union-attr]
    a.delete_session("s1")
    eventually(lambda: b.get_session("s1") is None)


def test_the_writing_node_reads_its_own_write_at_once(
    nodes: tuple[PostgresStore, PostgresStore],
):
    a, _ = nodes
    a.create_session(make_session(1))
    assert a.get_session("s1").revision == 0  # type: ignore[union-attr]
    a.update_session(make_session(1, status="ended"), expected_revision=0)
    got = a.get_session("s1")  # no waiting for the notification
    assert (got.status, got.revision) == ("ended", 1)  # type: ignore[union-attr]


def test_an_app_key_and_the_active_version_changed_on_one_node_reach_the_other(
    nodes: tuple[PostgresStore, PostgresStore],
):
    a, b = nodes
    a.put_app(make_app("shop", "jct_app_1"))
    assert b.find_app_by_key_prefix("jct_app_1").disabled is False  # type: ignore[union-attr]
    a.put_app(make_app("shop", "jct_app_1", disabled=True))
    eventually(lambda: b.find_app_by_key_prefix("jct_app_1").disabled)  # type: ignore[union-attr]
    a.put_app(make_app("shop", "jct_app_2"))  # the old key removed
    eventually(lambda: b.find_app_by_key_prefix("jct_app_1") is None)
    for n in (1, 2):
        a.put_version(make_version(n))
    a.activate("v1", by="alice", at=at(1))
    assert b.active_version_id() == "v1"
    a.activate("v2", by="alice", at=at(2))
    eventually(lambda: b.active_version_id() == "v2")


def test_the_shadow_version_set_on_one_node_reaches_the_other(
    nodes: tuple[PostgresStore, PostgresStore],
):
    a, b = nodes
    for n in (1, 2):
        a.put_version(make_version(n))
    a.activate("v1", by="alice", at=at(1))
    assert b.shadow_version_id() is None
    a.set_shadow("v2")
    eventually(lambda: b.shadow_version_id() == "v2")
    a.set_shadow(None)
    eventually(lambda: b.shadow_version_id() is None)


def _listener_pids(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database()",
            (APPLICATION_NAME,),
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def test_a_node_that_lost_its_notifications_reads_the_database_until_it_caught_up(
    postgres_url: str, nodes: tuple[PostgresStore, PostgresStore]
):
    a, b = nodes
    a.create_session(make_session(1))
    assert b.get_session("s1").status == "active"  # type: ignore[union-attr]
    assert len(_listener_pids(postgres_url)) == 2
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        # Both listeners' connections end; the change below is notified to no one.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (APPLICATION_NAME,),
        )
        eventually(lambda: b.cache_state().state == "bypassed", within=STALE_AFTER + 1)
        conn.execute("UPDATE sessions SET body = %s WHERE id = 's1'", (_revoked_body(a),))
    state = b.cache_state()
    assert state.state == "bypassed" and "reading the database" in str(state.reason)
    # A change b never heard of: read from the database while the caches are not trusted,
    # and not served from the cache once b listens again (everything was dropped).
    assert b.get_session("s1").status == "revoked"  # type: ignore[union-attr]
    eventually(lambda: b.cache_state().state == "live", within=5)
    assert b.get_session("s1").status == "revoked"  # type: ignore[union-attr]
    assert len(_listener_pids(postgres_url)) == 2


def _revoked_body(store: PostgresStore) -> bytes:
    from juncture.store.postgres.rows import encode

    session = store.get_session("s1")
    assert session is not None
    return encode(replace(session, status="revoked"))


def test_a_store_without_caches_says_so(postgres_url: str):
    store = PostgresStore(postgres_url)
    try:
        assert store.cache_state().state == "off"
        assert _listener_pids(postgres_url) == []
    finally:
        store.close()


def test_a_node_may_keep_no_sessions_in_memory(postgres_url: str):
    store = PostgresStore(postgres_url)
    store.start_caches(sessions=0)
    try:
        store.create_session(make_session(1))
        store.put_app(make_app("shop", "jct_app_1"))
        for _ in range(3):
            assert store.get_session("s1") is not None
            assert store.find_app_by_key_prefix("jct_app_1") is not None
        assert (store._sessions.hits, len(store._sessions)) == (0, 0)  # read every time
        assert served_from_cache(store._apps, lambda: store.find_app_by_key_prefix("jct_app_1"))
    finally:
        store.close()
