"""The store contract: every backend passes every test here (see conftest.BACKENDS)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from juncture.records import (
    AdminCredential,
    App,
    AppKey,
    Approval,
    AppTheme,
    Authenticator,
    Challenge,
    DecisionQuery,
    DecisionRecord,
    Delegation,
    Failures,
    Located,
    Observed,
    OutboxItem,
    PolicyVersion,
    Posture,
    ReceivedEvent,
    Session,
    SessionPage,
    ShadowRecord,
    StoredProof,
    Stream,
    StreamSubject,
    Subject,
    SubjectSeen,
    SweepRun,
    Task,
)
from juncture.store.protocols import ConflictError, NotFound, Store, StoreError

from .conftest import Backend

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
replace = msgspec.structs.replace


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_session(n: int = 1, **changes: Any) -> Session:
    session = Session(
        id=f"s{n}", app="shop", subject_type="user", subject_id=f"u{n}", started_at=at(n),
        updated_at=at(n), handle=f"h{n}",
        proofs=(StoredProof(method="password", at=at(n), kind="password", aal=1, amr=("pwd",)),),
        subject_properties={"email": "a@example.com", "tier": 3},
        signals={"credential_compromised": False}, context={"ip": "10.0.0.1", "geo": {"lat": 1.5}},
        path="main", scopes=("read", "write"),
    )  # fmt: skip
    return replace(session, **changes)


def make_version(n: int = 1, **changes: Any) -> PolicyVersion:
    version = PolicyVersion(
        id=f"v{n}", files={"shop.yaml": b"journey: shop\n", "raw.bin": bytes(range(256))},
        author="alice", created_at=at(n), comment=f"version {n}",
    )  # fmt: skip
    return replace(version, **changes)


def make_decision(n: int, **changes: Any) -> DecisionRecord:
    record = DecisionRecord(
        id=f"d{n:04d}", at=at(n), app="shop", subject_type="user", subject_id="u1",
        session_id="s1", action="login", resource={"type": "page"}, outcome="allow",
        reason=None, version="v1", latency_us=42,
        decision={"outcome": "allow", "trace": [{"step": 0, "met": True}]},
        facts={"network": {"ip": "10.0.0.1"}},
    )  # fmt: skip
    return replace(record, **changes)


def make_key(prefix: str) -> AppKey:
    return AppKey(prefix=prefix, hash="sha256:" + prefix, created_at=T0, expires_at=at(3600))


def make_app(app_id: str = "shop", *prefixes: str, **changes: Any) -> App:
    keys = tuple(make_key(p) for p in prefixes)
    app = App(id=app_id, name=app_id.title(), created_at=T0, journeys=("shop",),
              assertable_methods=("password",), keys=keys)  # fmt: skip
    return replace(app, **changes)


def make_admin(admin_id: str = "root", prefix: str = "jct_admin_1") -> AdminCredential:
    return AdminCredential(id=admin_id, name=admin_id, scopes=("read", "publish"),
                           key=make_key(prefix), created_at=T0)  # fmt: skip


def make_challenge(n: int = 1, **changes: Any) -> Challenge:
    challenge = Challenge(
        id=f"ch{n}", session_id="s1", app="shop", subject_id="u1", checkpoint="change_email",
        methods=("totp", "passkey"), within=600, aal=2, created_at=T0, expires_at=at(300),
        attempts_left=3, request={"resource": {"type": "email"}},
    )  # fmt: skip
    return replace(challenge, **changes)


def race(threads: int, work: Callable[[int], object]) -> tuple[list[object], list[BaseException]]:
    """Run ``work(i)`` in ``threads`` threads released together; (results, exceptions)."""
    barrier = threading.Barrier(threads)
    results: list[object] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            value = work(i)
        except BaseException as error:  # collected for the assertions
            with lock:
                errors.append(error)
        else:
            with lock:
                results.append(value)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results, errors


# -- sessions -------------------------------------------------------------------------------
def test_session_round_trips_exactly(store: Store):
    session = make_session()
    store.create_session(session)
    assert store.get_session("s1") == session
    assert store.get_session("s1").started_at.utcoffset() == timedelta(0)


def test_unknown_session_is_none(store: Store):
    assert store.get_session("nope") is None


def test_session_times_in_another_offset_keep_their_instant(store: Store):
    paris = timezone(timedelta(hours=1))
    session = make_session(started_at=T0.astimezone(paris))
    store.create_session(session)
    assert store.get_session("s1").started_at == T0


@pytest.mark.parametrize("clash", [{"handle": "other"}, {"id": "other"}])
def test_create_session_with_a_taken_id_or_handle_conflicts(store: Store, clash: dict[str, str]):
    first = make_session()
    store.create_session(first)
    with pytest.raises(ConflictError):
        store.create_session(make_session(subject_id="intruder", **clash))
    assert store.get_session("s1") == first
    assert store.get_session("other") is None


def test_update_session_bumps_the_revision(store: Store):
    store.create_session(make_session())
    changed = make_session(status="revoked", status_reason="admin", handle="h1b", revision=7)
    stored = store.update_session(changed, expected_revision=0)
    assert stored.revision == 1
    assert stored == replace(changed, revision=1)
    assert store.get_session("s1") == stored
    again = store.update_session(replace(stored, scopes=()), expected_revision=1)
    assert again.revision == 2
    assert store.get_session("s1").scopes == ()


def test_update_session_with_a_stale_revision_conflicts_and_changes_nothing(store: Store):
    store.create_session(make_session())
    current = store.update_session(make_session(path="a"), expected_revision=0)
    with pytest.raises(ConflictError):
        store.update_session(make_session(path="stale"), expected_revision=0)
    assert store.get_session("s1") == current


def test_update_unknown_session_is_not_found(store: Store):
    with pytest.raises(NotFound):
        store.update_session(make_session(), expected_revision=0)
    assert store.get_session("s1") is None


def test_update_session_to_a_taken_handle_conflicts(store: Store):
    store.create_session(make_session(1))
    store.create_session(make_session(2))
    with pytest.raises(ConflictError):
        store.update_session(make_session(1, handle="h2"), expected_revision=0)
    assert store.get_session("s1") == make_session(1)


def test_two_threads_updating_one_session_exactly_one_wins(store: Store):
    store.create_session(make_session())
    base = store.get_session("s1")
    assert base is not None
    results, errors = race(2, lambda i: store.update_session(
        replace(base, path=f"thread{i}"), expected_revision=base.revision))  # fmt: skip
    assert len(results) == 1
    assert len(errors) == 1 and isinstance(errors[0], ConflictError)
    assert store.get_session("s1") == results[0]


def test_many_threads_retrying_updates_lose_nothing(store: Store):
    store.create_session(make_session(scopes=()))

    def add_scope(i: int) -> None:
        while True:
            current = store.get_session("s1")
            assert current is not None
            try:
                store.update_session(replace(current, scopes=(*current.scopes, f"t{i}")),
                                     expected_revision=current.revision)  # fmt: skip
                return
            except ConflictError:
                continue

    _, errors = race(8, add_scope)
    assert errors == []
    final = store.get_session("s1")
    assert final is not None
    assert sorted(final.scopes) == [f"t{i}" for i in range(8)]
    assert final.revision == 8


def test_list_sessions_filters_and_orders_newest_first(store: Store):
    store.create_session(make_session(1, app="shop", subject_id="u1"))
    store.create_session(make_session(2, app="shop", subject_id="u2", status="revoked"))
    store.create_session(make_session(3, app="portal", subject_id="u1"))
    store.create_session(make_session(4, app="shop", subject_id="u1", status="ended"))

    def ids(**filters: Any) -> list[str]:
        return [s.id for s in store.list_sessions(**filters)]

    assert ids() == ["s4", "s3", "s2", "s1"]
    assert ids(app="shop") == ["s4", "s2", "s1"]
    assert ids(subject_id="u1") == ["s4", "s3", "s1"]
    assert ids(status="active") == ["s3", "s1"]
    assert ids(app="shop", subject_id="u1", status="ended") == ["s4"]
    assert ids(app="none") == []
    assert ids(limit=2) == ["s4", "s3"]
    assert ids(limit=0) == []
    assert store.list_sessions(app="portal") == [make_session(3, app="portal", subject_id="u1")]


def test_count_active_sessions(store: Store):
    assert store.count_active_sessions() == 0
    store.create_session(make_session(1))
    store.create_session(make_session(2))
    store.create_session(make_session(3, status="ended"))
    assert store.count_active_sessions() == 2
    store.update_session(make_session(1, status="revoked"), expected_revision=0)
    assert store.count_active_sessions() == 1


# -- policy versions ------------------------------------------------------------------------
def test_version_round_trips_with_bytes(store: Store):
    version = make_version()
    assert store.put_version(version) is True
    assert store.get_version("v1") == version
    assert store.get_version("v1").files["raw.bin"] == bytes(range(256))
    assert store.get_version("v9") is None


def test_put_existing_version_changes_nothing(store: Store):
    store.put_version(make_version())
    assert store.put_version(make_version(author="mallory", files={})) is False
    assert store.get_version("v1") == make_version()
    assert len(store.list_versions()) == 1


def test_no_active_version_at_first(store: Store):
    assert store.active_version_id() is None
    assert store.list_versions() == []


def test_activate_records_time_and_author_and_keeps_exactly_one_active(store: Store):
    for n in (1, 2, 3):
        store.put_version(make_version(n))
    store.activate("v1", by="alice", at=at(10))
    assert store.active_version_id() == "v1"
    store.activate("v3", by="bob", at=at(20))
    assert store.active_version_id() == "v3"
    infos = store.list_versions()
    assert [i.id for i in infos] == ["v3", "v2", "v1"]
    assert [i.active for i in infos] == [True, False, False]
    assert (infos[0].activated_at, infos[0].activated_by) == (at(20), "bob")
    assert (infos[1].activated_at, infos[1].activated_by) == (None, None)
    assert (infos[2].activated_at, infos[2].activated_by) == (at(10), "alice")
    assert (infos[0].author, infos[0].comment, infos[0].created_at) == ("alice", "version 3", at(3))
    store.activate("v1", by="carol", at=at(30))  # roll back
    assert [(i.id, i.active) for i in store.list_versions() if i.active] == [("v1", True)]
    assert store.list_versions()[2].activated_by == "carol"


def test_activate_unknown_version_is_not_found_and_changes_nothing(store: Store):
    store.put_version(make_version())
    store.activate("v1", by="alice", at=at(10))
    with pytest.raises(NotFound):
        store.activate("v404", by="alice", at=at(20))
    assert store.active_version_id() == "v1"


def make_shadow(n: int, shadow_version: str = "v2", **changes: Any) -> ShadowRecord:
    record = ShadowRecord(
        decision_id=f"d{n:04d}", at=at(n), shadow_version=shadow_version, active_version="v1",
        app="shop", action="login", subject_type="user", subject_id="u1", session_id="s1",
        transition="allow->deny", active={"outcome": "allow", "reason": None},
        shadow={"outcome": "deny", "reason": "no_rule_matched"},
    )  # fmt: skip
    return replace(record, **changes)


def test_one_shadow_version_at_most_and_activating_it_ends_it(store: Store):
    for n in (1, 2, 3):
        store.put_version(make_version(n))
    store.activate("v1", by="alice", at=at(10))
    assert store.shadow_version_id() is None
    store.set_shadow("v2")
    assert store.shadow_version_id() == "v2"
    store.set_shadow("v3")  # replaces it
    assert store.shadow_version_id() == "v3"
    assert [(i.id, i.active, i.shadow) for i in store.list_versions()] == [
        ("v3", False, True), ("v2", False, False), ("v1", True, False),
    ]  # fmt: skip
    with pytest.raises(NotFound):
        store.set_shadow("v404")
    assert store.shadow_version_id() == "v3"  # unchanged
    store.activate("v3", by="bob", at=at(20))  # promoted: no longer the shadow
    assert (store.active_version_id(), store.shadow_version_id()) == ("v3", None)
    store.set_shadow("v2")
    store.set_shadow(None)
    assert store.shadow_version_id() is None
    store.set_shadow(None)  # none to drop: nothing happens
    assert store.shadow_version_id() is None


def test_shadow_records_are_counted_paged_and_kept_once(store: Store):
    records = [make_shadow(n) for n in (1, 2, 3)]
    records.append(make_shadow(4, transition="step_up->allow"))
    records.append(make_shadow(5, shadow_version="v9"))
    store.record_shadow(records)
    store.record_shadow(records[:2])  # a retried batch: nothing twice
    store.record_shadow([])
    assert store.shadow_counts("v2") == {"allow->deny": 3, "step_up->allow": 1}
    assert store.shadow_counts("v9") == {"allow->deny": 1}
    assert store.shadow_counts("v404") == {}
    page = store.shadow_records("v2", limit=2)
    assert [r.decision_id for r in page] == ["d0004", "d0003"]
    assert page[0] == records[3]
    rest = store.shadow_records("v2", limit=10, before="d0003")
    assert [r.decision_id for r in rest] == ["d0002", "d0001"]
    only = store.shadow_records("v2", transition="step_up->allow")
    assert [r.decision_id for r in only] == ["d0004"]
    with pytest.raises(NotFound):
        store.shadow_records("v2", before="d0005")  # another shadow version's
    assert store.purge_before(at(3)) == 0  # no decision records; the shadow's go by time
    assert [r.decision_id for r in store.shadow_records("v2")] == ["d0004", "d0003"]


def test_list_versions_breaks_time_ties_by_insertion(store: Store):
    store.put_version(make_version(1, created_at=T0))
    store.put_version(make_version(2, created_at=T0))
    assert [i.id for i in store.list_versions()] == ["v2", "v1"]


def test_version_ids_find_the_versions_a_prefix_names(store: Store):
    for n in (1, 2, 12):
        store.put_version(make_version(n))
    assert store.version_ids("v1") == ["v1", "v12"]
    assert store.version_ids("v1", limit=5) == ["v1", "v12"]
    assert store.version_ids("v12") == ["v12"]
    assert store.version_ids("v2") == ["v2"]
    assert store.version_ids("v3") == []
    assert store.version_ids("%") == [] and store.version_ids("v_") == []  # no patterns
    assert store.version_ids("") == ["v1", "v12"]  # at most ``limit``


def test_usage_since_counts_decisions_by_journey_and_checkpoint_and_live_sessions(store: Store):
    def decided(n: int, journey: str | None, checkpoint: str | None, **changes: Any):
        body = {"outcome": "allow", "journey": journey, "checkpoint": checkpoint}
        return make_decision(n, decision=body, **changes)

    store.record(
        [
            decided(1, "shop", "login"),
            decided(2, "shop", "login"),
            decided(3, "shop", "pay", app="ios"),
            decided(4, None, None, outcome="deny"),
            decided(5, "shop", "old"),
        ]
    )
    store.create_session(make_session(1))
    store.create_session(make_session(2))
    store.create_session(make_session(3, status="ended"))
    before = make_decision(6, at=at(-100), decision={"journey": "gone", "checkpoint": "x"})
    store.record([before])  # older than ``since``: not counted
    as_tuples = [(u.app, u.subject_type, u.journey, u.checkpoint, u.decisions, u.sessions)
                 for u in store.usage_since(at(1))]  # fmt: skip
    assert sorted(as_tuples, key=str) == sorted(
        [
            ("shop", "user", "shop", "login", 2, 0),
            ("ios", "user", "shop", "pay", 1, 0),
            ("shop", "user", None, None, 1, 0),
            ("shop", "user", "shop", "old", 1, 0),
            ("shop", "user", None, None, 0, 2),
        ],
        key=str,
    )


def test_concurrent_activations_leave_one_active(store: Store):
    for n in range(8):
        store.put_version(make_version(n))
    _, errors = race(8, lambda i: store.activate(f"v{i}", by=f"t{i}", at=at(100 + i)))
    assert errors == []
    active = [i for i in store.list_versions() if i.active]
    assert len(active) == 1
    assert store.active_version_id() == active[0].id


# -- decision log ---------------------------------------------------------------------------
def test_decisions_round_trip(store: Store):
    records = [make_decision(n) for n in range(3)]
    store.record(records)
    for record in records:
        assert store.get_decision(record.id) == record
    assert store.get_decision("d9999") is None


def test_prepared_records_round_trip_exactly(store: Store):
    awkward = {"name": "Zoë \u2028 \"quoted\" \\", "ratio": 0.1, "tiny": 1e-7, "big": 2**62,
               "nested": [{"a": None}, [], {}]}  # fmt: skip
    records = [make_decision(n, facts=awkward, resource=None) for n in range(3)]
    prepared = [store.prepare_record(r) for r in records]
    store.record_prepared(prepared)
    store.record_prepared(prepared)  # a retried batch changes nothing
    for record in records:
        assert store.get_decision(record.id) == record
    assert len(store.query(DecisionQuery(limit=10))) == 3
    store.record_prepared([])


def test_preparing_a_record_with_a_naive_time_is_refused(store: Store):
    with pytest.raises(StoreError, match="naive"):
        store.prepare_record(make_decision(1, at=datetime(2026, 3, 1, 12, 0)))


def test_record_nothing_is_a_no_op(store: Store):
    store.record([])
    assert store.query(DecisionQuery()) == []


def test_recording_a_logged_id_again_keeps_the_first(store: Store):
    store.record([make_decision(1)])
    store.record([make_decision(1, outcome="deny"), make_decision(2)])
    assert store.get_decision("d0001") == make_decision(1)
    assert store.get_decision("d0002") == make_decision(2)


def test_record_a_batch_of_100(store: Store):
    store.record([make_decision(n) for n in range(100)])
    assert len(store.query(DecisionQuery(limit=1000))) == 100


def test_query_is_newest_first_with_ties_by_id(store: Store):
    store.record([make_decision(1), make_decision(3, at=at(2)), make_decision(2),
                  make_decision(4)])  # fmt: skip
    assert [r.id for r in store.query(DecisionQuery())] == ["d0004", "d0003", "d0002", "d0001"]


def test_query_applies_every_filter(store: Store):
    store.record([
        make_decision(1),
        make_decision(2, app="portal"),
        make_decision(3, subject_id="u2"),
        make_decision(4, session_id="s2"),
        make_decision(5, action="change_email"),
        make_decision(6, outcome="deny", reason="risk_too_high"),
        make_decision(7, app=None, subject_type=None, subject_id=None, session_id=None),
    ])  # fmt: skip

    def ids(**filters: Any) -> list[str]:
        return [r.id for r in store.query(DecisionQuery(**filters))]

    assert ids(app="portal") == ["d0002"]
    assert ids(subject_id="u2") == ["d0003"]
    assert ids(session_id="s2") == ["d0004"]
    assert ids(action="change_email") == ["d0005"]
    assert ids(outcome="deny") == ["d0006"]
    assert ids(app="shop", subject_id="u1", session_id="s1", action="login",
               outcome="allow") == ["d0001"]  # fmt: skip
    assert ids(since=at(5)) == ["d0007", "d0006", "d0005"]  # since is inclusive
    assert ids(until=at(2)) == ["d0001"]  # until is exclusive
    assert ids(since=at(2), until=at(4)) == ["d0003", "d0002"]
    assert ids(limit=2) == ["d0007", "d0006"]
    assert ids(limit=0) == []
    assert ids(app="shop", outcome="deny", since=at(6), until=at(7)) == ["d0006"]
    assert ids(app="nobody") == []


def test_paging_with_before_visits_every_record_once(store: Store):
    # 25 records over 5 instants: ties at each instant are ordered by id.
    store.record([make_decision(n, at=at(n // 5)) for n in range(25)])
    expected = [r.id for r in sorted((make_decision(n, at=at(n // 5)) for n in range(25)),
                                     key=lambda r: (r.at, r.id), reverse=True)]  # fmt: skip
    seen: list[str] = []
    before = None
    while True:
        page = store.query(DecisionQuery(limit=4, before=before))
        if not page:
            break
        seen.extend(r.id for r in page)
        before = page[-1].id
    assert seen == expected


def test_paging_keeps_the_filters(store: Store):
    store.record([make_decision(n, app="shop" if n % 2 else "portal") for n in range(10)])
    first = store.query(DecisionQuery(app="shop", limit=2))
    assert [r.id for r in first] == ["d0009", "d0007"]
    rest = store.query(DecisionQuery(app="shop", before=first[-1].id, since=at(3)))
    assert [r.id for r in rest] == ["d0005", "d0003"]


def test_paging_from_an_unknown_decision_is_not_found(store: Store):
    with pytest.raises(NotFound):
        store.query(DecisionQuery(before="d404"))


def test_purge_before_deletes_strictly_older_records(store: Store):
    store.record([make_decision(n) for n in range(10)])
    assert store.purge_before(at(4)) == 4
    assert [r.id for r in store.query(DecisionQuery())][-1] == "d0004"
    assert store.get_decision("d0003") is None
    assert store.purge_before(at(4)) == 0


# -- apps and admins ------------------------------------------------------------------------
def test_app_round_trips_and_is_found_by_each_key_prefix(store: Store):
    app = make_app("shop", "jct_app_a", "jct_app_b")
    store.put_app(app)
    assert store.get_app("shop") == app
    assert store.find_app_by_key_prefix("jct_app_a") == app
    assert store.find_app_by_key_prefix("jct_app_b") == app
    assert store.find_app_by_key_prefix("jct_app_c") is None
    assert store.get_app("nope") is None


def test_an_apps_origins_and_identity_headers_round_trip(store: Store):
    """What forward auth reads of an app (docs/proxy.md) is kept as written, and changed."""
    app = msgspec.structs.replace(
        make_app("shop", "jct_app_a"),
        origins=("https://shop.example:443", "http://127.0.0.1:8080"),
        identity_headers={"subject": "X-User", "aal": "X-User-Aal"},
    )
    store.put_app(app)
    assert store.get_app("shop") == app
    assert store.find_app_by_key_prefix("jct_app_a") == app
    changed = msgspec.structs.replace(app, origins=(), identity_headers={})
    store.put_app(changed)
    assert store.get_app("shop") == changed == make_app("shop", "jct_app_a")


def test_an_apps_theme_round_trips(store: Store):
    """The hosted pages' theme (docs/proxy.md#themes) is kept in the app's body as written,
    a field left out stays out, and a theme removed is gone."""
    theme = AppTheme(name="Shop", logo="https://cdn.shop.example/logo.svg", background="#102030",
                     text="#f0f0f0")  # fmt: skip
    app = msgspec.structs.replace(make_app("shop", "jct_app_a"), theme=theme)
    store.put_app(app)
    assert store.get_app("shop") == app
    assert store.find_app_by_key_prefix("jct_app_a") == app
    got = store.get_app("shop")
    assert got is not None and got.theme is not None and got.theme.accent is None
    store.put_app(msgspec.structs.replace(app, theme=None))
    assert store.get_app("shop") == make_app("shop", "jct_app_a")


def test_put_app_replaces_the_app_and_its_keys(store: Store):
    store.put_app(make_app("shop", "jct_app_a", "jct_app_b"))
    rotated = make_app("shop", "jct_app_b", "jct_app_c", disabled=True, name="Shop 2")
    store.put_app(rotated)
    assert store.get_app("shop") == rotated
    assert store.find_app_by_key_prefix("jct_app_a") is None
    assert store.find_app_by_key_prefix("jct_app_c") == rotated
    assert store.list_apps() == [rotated]


def test_list_apps_by_id(store: Store):
    assert store.list_apps() == []
    for app_id in ("zeta", "alpha", "mid"):
        store.put_app(make_app(app_id))
    assert [a.id for a in store.list_apps()] == ["alpha", "mid", "zeta"]


def test_a_key_prefix_held_by_another_app_conflicts(store: Store):
    shop = make_app("shop", "jct_app_a")
    store.put_app(shop)
    with pytest.raises(ConflictError):
        store.put_app(make_app("portal", "jct_app_z", "jct_app_a"))
    assert store.get_app("portal") is None
    assert store.find_app_by_key_prefix("jct_app_z") is None
    assert store.find_app_by_key_prefix("jct_app_a") == shop
    store.put_app(make_app("portal", "jct_app_z"))
    with pytest.raises(ConflictError):  # an update that would steal a prefix changes nothing
        store.put_app(make_app("portal", "jct_app_a", name="Thief"))
    assert store.get_app("portal") == make_app("portal", "jct_app_z")


def test_a_key_prefix_twice_in_one_app_conflicts(store: Store):
    with pytest.raises(ConflictError):
        store.put_app(make_app("shop", "jct_app_a", "jct_app_a"))
    assert store.get_app("shop") is None


def test_key_prefixes_are_unique_across_apps_and_admins(store: Store):
    store.put_app(make_app("shop", "jct_shared_1"))
    with pytest.raises(ConflictError):
        store.put_admin(make_admin("root", "jct_shared_1"))
    assert store.count_admins() == 0
    store.put_admin(make_admin("root", "jct_shared_2"))
    with pytest.raises(ConflictError):
        store.put_app(make_app("portal", "jct_shared_2"))
    assert store.get_app("portal") is None
    with pytest.raises(ConflictError):
        store.put_admin(make_admin("other", "jct_shared_2"))
    assert store.count_admins() == 1


def test_admins_round_trip_and_rotate(store: Store):
    assert store.count_admins() == 0
    admin = make_admin("root", "jct_admin_1")
    store.put_admin(admin)
    assert store.find_admin_by_key_prefix("jct_admin_1") == admin
    assert store.find_app_by_key_prefix("jct_admin_1") is None
    rotated = make_admin("root", "jct_admin_2")
    store.put_admin(rotated)
    assert store.find_admin_by_key_prefix("jct_admin_1") is None
    assert store.find_admin_by_key_prefix("jct_admin_2") == rotated
    store.put_admin(make_admin("second", "jct_admin_3"))
    assert store.count_admins() == 2
    assert store.find_admin_by_key_prefix("nope") is None


# -- challenges -----------------------------------------------------------------------------
def test_challenge_round_trips(store: Store):
    challenge = make_challenge()
    store.create_challenge(challenge)
    assert store.get_challenge("ch1") == challenge
    assert store.get_challenge("nope") is None


def test_create_challenge_with_a_taken_id_conflicts(store: Store):
    store.create_challenge(make_challenge())
    with pytest.raises(ConflictError):
        store.create_challenge(make_challenge(session_id="s9"))
    assert store.get_challenge("ch1") == make_challenge()


def test_spend_attempt_counts_down_to_zero(store: Store):
    store.create_challenge(make_challenge(attempts_left=2))
    assert store.spend_attempt("ch1", at=at(1)).attempts_left == 1
    spent = store.spend_attempt("ch1", at=at(2))
    assert spent == make_challenge(attempts_left=0)
    assert store.get_challenge("ch1") == spent
    with pytest.raises(ConflictError):
        store.spend_attempt("ch1", at=at(3))
    assert store.get_challenge("ch1").attempts_left == 0


def test_consume_after_the_last_attempt_succeeds_once(store: Store):
    store.create_challenge(make_challenge(attempts_left=1))
    store.spend_attempt("ch1", at=at(1))
    consumed = store.consume_challenge("ch1", at=at(2))
    assert consumed == make_challenge(attempts_left=0, consumed_at=at(2))
    assert store.get_challenge("ch1") == consumed
    with pytest.raises(ConflictError):
        store.consume_challenge("ch1", at=at(3))
    with pytest.raises(ConflictError):
        store.spend_attempt("ch1", at=at(3))
    assert store.get_challenge("ch1") == consumed


@pytest.mark.parametrize("operation", ["spend_attempt", "consume_challenge"])
def test_an_expired_challenge_conflicts(store: Store, operation: str):
    store.create_challenge(make_challenge(expires_at=at(300)))
    live = getattr(store, operation)("ch1", at=at(300) - timedelta(microseconds=1))
    assert live is not None
    store.create_challenge(make_challenge(2, expires_at=at(300)))
    with pytest.raises(ConflictError):
        getattr(store, operation)("ch2", at=at(300))  # expires_at itself is expired
    assert store.get_challenge("ch2") == make_challenge(2, expires_at=at(300))


@pytest.mark.parametrize("operation", ["spend_attempt", "consume_challenge"])
def test_an_unknown_challenge_is_not_found(store: Store, operation: str):
    with pytest.raises(NotFound):
        getattr(store, operation)("nope", at=at(1))


def test_threads_racing_consume_one_challenge_exactly_once(store: Store):
    store.create_challenge(make_challenge())
    results, errors = race(8, lambda i: store.consume_challenge("ch1", at=at(1 + i)))
    assert len(results) == 1
    assert len(errors) == 7 and all(isinstance(e, ConflictError) for e in errors)
    assert store.get_challenge("ch1") == results[0]


def test_threads_racing_spend_no_more_attempts_than_there_are(store: Store):
    store.create_challenge(make_challenge(attempts_left=3))
    results, errors = race(8, lambda i: store.spend_attempt("ch1", at=at(1)))
    assert sorted(c.attempts_left for c in results) == [0, 1, 2]  # type: ignore[attr-defined]
    assert len(errors) == 5 and all(isinstance(e, ConflictError) for e in errors)


def test_two_handles_racing_consume_one_challenge_exactly_once(backend: Backend):
    first, second = backend.open(), backend.open()
    try:
        first.create_challenge(make_challenge())
        handles = (first, second)
        results, errors = race(8, lambda i: handles[i % 2].consume_challenge("ch1", at=at(1)))
        assert len(results) == 1
        assert len(errors) == 7 and all(isinstance(e, ConflictError) for e in errors)
    finally:
        first.close()
        second.close()


# -- lifetime and durability ----------------------------------------------------------------
def fill(store: Store) -> None:
    store.create_session(make_session())
    store.update_session(make_session(path="updated"), expected_revision=0)
    store.put_version(make_version())
    store.activate("v1", by="alice", at=at(5))
    store.record([make_decision(n) for n in range(3)])
    store.put_app(make_app("shop", "jct_app_a"))
    store.put_admin(make_admin())
    store.create_challenge(make_challenge())
    store.consume_challenge("ch1", at=at(6))
    store.put_subject(make_subject(), expected_revision=0)
    store.create_authenticator(make_authenticator())
    store.record_failure("user", "u1", "password", **LIMITS)
    store.receive_event(make_event())
    store.set_event_time("user:u1", "credential-change", at(7))
    store.put_stream(make_stream(), expected_revision=0)
    store.add_stream_subject(make_stream_subject())
    first, _ = store.enqueue([make_item(1), make_item(2)])
    store.mark_failed(first.seq, at=at(8), error="503", next_attempt_at=at(20))
    store.put_sweep(make_sweep(), expected_revision=0)


def check_filled(store: Store) -> None:
    assert store.get_session("s1") == make_session(path="updated", revision=1)
    assert store.get_version("v1") == make_version()
    assert store.active_version_id() == "v1"
    assert [r.id for r in store.query(DecisionQuery())] == ["d0002", "d0001", "d0000"]
    assert store.find_app_by_key_prefix("jct_app_a") == make_app("shop", "jct_app_a")
    assert store.find_admin_by_key_prefix("jct_admin_1") == make_admin()
    assert store.get_challenge("ch1").consumed_at == at(6)
    with pytest.raises(ConflictError):
        store.consume_challenge("ch1", at=at(7))
    assert store.get_subject("user", "u1") == make_subject(revision=1)
    assert store.find_authenticator("cred-a1") == make_authenticator(revision=1)
    assert store.get_failures("user", "u1", "password").count == 1
    assert store.get_received("https://idp.example", "jti-1") == make_event()
    assert store.last_event_time("user:u1", "credential-change") == at(7)
    assert store.get_stream("st1") == make_stream(revision=1)
    assert store.list_stream_subjects("st1") == [make_stream_subject()]
    pending = store.pending("st1")
    assert [replace(item, seq=0) for item in pending] == [
        make_item(1, attempts=1, last_error="503", next_attempt_at=at(20)),
        make_item(2),
    ]
    assert 0 < pending[0].seq < pending[1].seq
    assert store.get_sweep("sw1") == make_sweep(revision=1)


def test_state_survives_close_and_reopen(backend: Backend):
    store = backend.open()
    fill(store)
    store.close()
    reopened = backend.open()
    try:
        check_filled(reopened)
    finally:
        reopened.close()


def test_a_writer_killed_right_after_its_calls_return_loses_nothing(backend: Backend):
    script = "\n".join([
        "import os, signal",
        backend.open_source(),
        "from tests.store.test_contract import fill",
        "fill(store)",
        "os.kill(os.getpid(), signal.SIGKILL)",
    ])  # fmt: skip
    child = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                           timeout=60, check=False)  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    store = backend.open()
    try:
        check_filled(store)
    finally:
        store.close()


def test_a_writer_killed_mid_stream_keeps_every_acknowledged_write(backend: Backend):
    script = "\n".join([
        "import sys",
        backend.open_source(),
        "from tests.store.test_contract import make_decision",
        "n = 0",
        "while True:",
        "    store.record([make_decision(n * 10 + i) for i in range(10)])",
        "    print(n, flush=True)",
        "    n += 1",
    ])  # fmt: skip
    with subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as child:  # fmt: skip
        assert child.stdout is not None
        acknowledged = -1
        for line in child.stdout:
            acknowledged = int(line)
            if acknowledged >= 20:
                child.send_signal(signal.SIGKILL)
                break
        rest = child.stdout.read()  # whatever it acknowledged before dying
        child.wait(timeout=30)
    acknowledged += len(rest.splitlines())
    assert child.returncode == -signal.SIGKILL
    store = backend.open()
    try:
        for n in range((acknowledged + 1) * 10):
            assert store.get_decision(f"d{n:04d}") is not None, n
    finally:
        store.close()


def test_a_closed_store_refuses_reads_and_writes(backend: Backend):
    store = backend.open()
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError):
        store.get_session("s1")
    with pytest.raises(StoreError):
        store.create_session(make_session())


# -- what was observed of subjects ---------------------------------------------------------


def make_seen(**changes: Any) -> SubjectSeen:
    seen = SubjectSeen(
        subject_type="user", subject_id="u1", devices={"laptop-1": at(1)},
        located=(Located(lat=52.52, lon=13.405, at=at(2), ip="198.51.100.7", country="DE"),),
        updated_at=at(2),
    )  # fmt: skip
    return replace(seen, **changes)


def test_subject_seen_round_trips_and_starts_at_revision_one(store: Store):
    assert store.get_subject_seen("user", "u1") is None
    stored = store.put_subject_seen(make_seen(), expected_revision=0)
    assert stored.revision == 1
    assert store.get_subject_seen("user", "u1") == stored == replace(make_seen(), revision=1)
    assert store.get_subject_seen("service", "u1") is None  # the type is part of the key


def test_subject_seen_updates_optimistically(store: Store):
    first = store.put_subject_seen(make_seen(), expected_revision=0)
    with pytest.raises(ConflictError):
        store.put_subject_seen(make_seen(devices={}), expected_revision=0)  # exists already
    second = store.put_subject_seen(replace(first, devices={"phone": at(5)}), expected_revision=1)
    assert second.revision == 2
    with pytest.raises(ConflictError):
        store.put_subject_seen(replace(first, devices={}), expected_revision=1)  # stale
    assert store.get_subject_seen("user", "u1") == second


def test_threads_racing_to_create_subject_seen_exactly_one_wins(store: Store):
    results, errors = race(8, lambda i: store.put_subject_seen(make_seen(), expected_revision=0))
    assert len(results) == 1 and len(errors) == 7
    assert all(isinstance(e, ConflictError) for e in errors)


def test_session_observations_round_trip(store: Store):
    observed = Observed(
        ip="2001:db8::1", ip_at=at(3), user_agent="Firefox/140", device_id="laptop-1",
        platform="macos", located=Located(lat=1.5, lon=-2.25, at=at(3)),
        posture=Posture(device_id="laptop-1", managed=True, compliant=False, at=at(2),
                        source="attestation"),
    )  # fmt: skip
    store.create_session(make_session(observed=observed))
    assert store.get_session("s1") == make_session(observed=observed)


def test_naive_times_are_refused(store: Store):
    with pytest.raises(StoreError):
        store.create_session(make_session(started_at=T0.replace(tzinfo=None)))
    assert store.get_session("s1") is None


# -- challenge state --------------------------------------------------------------------------
def test_a_new_challenge_has_no_state_and_a_user_subject(store: Store):
    store.create_challenge(make_challenge())
    stored = store.get_challenge("ch1")
    assert (stored.subject_type, stored.states) == ("user", {})
    store.create_challenge(make_challenge(2, subject_type="agent", states={"passkey": b"\x00"}))
    assert store.get_challenge("ch2") == make_challenge(2, subject_type="agent",
                                                        states={"passkey": b"\x00"})  # fmt: skip


def test_set_challenge_state_keeps_each_method_state(store: Store):
    store.create_challenge(make_challenge(attempts_left=0))  # attempts are not checked
    first = store.set_challenge_state("ch1", "passkey", b"webauthn-1\x00\xff", at=at(1))
    assert first == make_challenge(attempts_left=0, states={"passkey": b"webauthn-1\x00\xff"})
    assert store.get_challenge("ch1") == first
    store.set_challenge_state("ch1", "email", b"code", at=at(2))
    replaced = store.set_challenge_state("ch1", "passkey", b"webauthn-2", at=at(3))
    assert replaced.states == {"passkey": b"webauthn-2", "email": b"code"}
    assert store.get_challenge("ch1") == replaced
    consumed = store.consume_challenge("ch1", at=at(4))
    assert consumed.states == replaced.states  # other changes keep the states


def test_set_challenge_state_on_an_expired_or_consumed_challenge_conflicts(store: Store):
    store.create_challenge(make_challenge(expires_at=at(300)))
    store.set_challenge_state("ch1", "totp", b"a", at=at(300) - timedelta(microseconds=1))
    with pytest.raises(ConflictError):
        store.set_challenge_state("ch1", "totp", b"b", at=at(300))  # expires_at is expired
    assert store.get_challenge("ch1").states == {"totp": b"a"}
    store.create_challenge(make_challenge(2))
    store.consume_challenge("ch2", at=at(1))
    with pytest.raises(ConflictError):
        store.set_challenge_state("ch2", "totp", b"b", at=at(2))
    assert store.get_challenge("ch2").states == {}


def test_set_challenge_state_on_an_unknown_challenge_is_not_found(store: Store):
    with pytest.raises(NotFound):
        store.set_challenge_state("nope", "totp", b"a", at=at(1))


def test_set_challenge_state_refuses_a_naive_time(store: Store):
    store.create_challenge(make_challenge())
    with pytest.raises(StoreError, match="naive"):
        store.set_challenge_state("ch1", "totp", b"a", at=at(1).replace(tzinfo=None))
    assert store.get_challenge("ch1") == make_challenge()


# -- the directory: subjects ----------------------------------------------------------------
def make_subject(subject_id: str = "u1", subject_type: str = "user", **changes: Any) -> Subject:
    subject = Subject(
        type=subject_type, id=subject_id, created_at=at(1), updated_at=at(2),
        attributes={"email": f"{subject_id}@example.com", "groups": ["staff"]},
    )  # fmt: skip
    return replace(subject, **changes)


def test_subject_round_trips_and_starts_at_revision_one(store: Store):
    assert store.get_subject("user", "u1") is None
    stored = store.put_subject(make_subject(revision=9), expected_revision=0)
    assert stored == make_subject(revision=1)
    assert store.get_subject("user", "u1") == stored
    assert stored.status == "active"
    assert store.get_subject("service", "u1") is None  # the type is part of the key
    assert store.get_subject("user", "u2") is None


def test_creating_a_subject_that_exists_conflicts_and_changes_nothing(store: Store):
    store.put_subject(make_subject(), expected_revision=0)
    with pytest.raises(ConflictError):
        store.put_subject(make_subject(attributes={}), expected_revision=0)
    assert store.get_subject("user", "u1") == make_subject(revision=1)
    store.put_subject(make_subject(subject_type="service"), expected_revision=0)  # other type


def test_put_subject_replaces_at_the_expected_revision(store: Store):
    first = store.put_subject(make_subject(), expected_revision=0)
    disabled = replace(first, status="disabled", attributes={"email": "new@example.com"},
                       updated_at=at(10))  # fmt: skip
    second = store.put_subject(disabled, expected_revision=1)
    assert second == replace(disabled, revision=2)
    assert store.get_subject("user", "u1") == second
    with pytest.raises(ConflictError):  # stale
        store.put_subject(replace(first, attributes={}), expected_revision=1)
    with pytest.raises(ConflictError):  # ahead
        store.put_subject(replace(first, attributes={}), expected_revision=5)
    assert store.get_subject("user", "u1") == second


def test_replacing_an_unknown_subject_is_not_found(store: Store):
    with pytest.raises(NotFound):
        store.put_subject(make_subject(), expected_revision=1)
    assert store.get_subject("user", "u1") is None


def test_threads_racing_to_create_a_subject_exactly_one_wins(store: Store):
    results, errors = race(8, lambda i: store.put_subject(
        make_subject(attributes={"thread": i}), expected_revision=0))  # fmt: skip
    assert len(results) == 1 and len(errors) == 7
    assert all(isinstance(e, ConflictError) for e in errors)
    assert store.get_subject("user", "u1") == results[0]


def test_threads_racing_to_update_a_subject_exactly_one_wins(store: Store):
    base = store.put_subject(make_subject(), expected_revision=0)
    results, errors = race(8, lambda i: store.put_subject(
        replace(base, attributes={"thread": i}), expected_revision=1))  # fmt: skip
    assert len(results) == 1 and len(errors) == 7
    assert all(isinstance(e, ConflictError) for e in errors)
    assert store.get_subject("user", "u1") == results[0]


def test_list_subjects_filters_and_orders_by_type_then_id(store: Store):
    for subject_type, subject_id, status in [
        ("user", "u2", "active"), ("user", "u10", "disabled"), ("service", "billing", "active"),
        ("user", "u1", "active"), ("agent", "bot", "disabled"),
    ]:  # fmt: skip
        store.put_subject(make_subject(subject_id, subject_type, status=status),
                          expected_revision=0)  # fmt: skip

    def keys(**filters: Any) -> list[str]:
        return [f"{s.type}:{s.id}" for s in store.list_subjects(**filters)]

    assert keys() == ["agent:bot", "service:billing", "user:u1", "user:u10", "user:u2"]
    assert keys(subject_type="user") == ["user:u1", "user:u10", "user:u2"]
    assert keys(status="disabled") == ["agent:bot", "user:u10"]
    assert keys(subject_type="user", status="active") == ["user:u1", "user:u2"]
    assert keys(subject_type="robot") == []
    assert keys(limit=2) == ["agent:bot", "service:billing"]
    assert keys(limit=0) == []
    assert store.list_subjects(subject_type="service") == [
        make_subject("billing", "service", revision=1)
    ]


def test_paging_subjects_with_after_visits_every_subject_once(store: Store):
    made = [
        make_subject(f"{prefix}{n}", subject_type)
        for subject_type in ("agent", "user")
        for prefix in ("a", "a:b", "z")
        for n in range(3)
    ]
    for subject in made:
        store.put_subject(subject, expected_revision=0)
    expected = sorted(f"{s.type}:{s.id}" for s in made)
    seen: list[str] = []
    after = None
    while True:
        page = store.list_subjects(limit=4, after=after)
        if not page:
            break
        seen.extend(f"{s.type}:{s.id}" for s in page)
        after = f"{page[-1].type}:{page[-1].id}"
    assert seen == expected
    assert [s.id for s in store.list_subjects(subject_type="user", after="agent:z2")][:2] == [
        "a0", "a1"
    ]  # fmt: skip
    assert store.list_subjects(subject_type="agent", after="agent:z2") == []
    assert store.list_subjects(subject_type="agent", after="user:a0") == []
    users = [s.id for s in store.list_subjects(subject_type="user", after="user:a2", limit=2)]
    assert users == ["a:b0", "a:b1"]
    page = store.list_subjects(after="user:a:b1", limit=2)  # an id with a colon
    assert [s.id for s in page] == ["a:b2", "z0"]
    assert [s.id for s in store.list_subjects(after="user:a:b15", limit=1)] == ["a:b2"]  # gone


def test_paging_subjects_keeps_the_filters(store: Store):
    made = [make_subject(f"u{n:02d}", subject_type, status="disabled" if n % 3 else "active")
            for subject_type in ("service", "user") for n in range(12)]  # fmt: skip
    for subject in made:
        store.put_subject(subject, expected_revision=0)
    for filters in [{"subject_type": "user"}, {"status": "active"},
                    {"subject_type": "user", "status": "disabled"}]:  # fmt: skip
        expected = [f"{s.type}:{s.id}" for s in made if all(
            getattr(s, name.removeprefix("subject_")) == value for name, value in filters.items()
        )]  # fmt: skip
        seen: list[str] = []
        after = None
        while page := store.list_subjects(limit=3, after=after, **filters):
            seen.extend(f"{s.type}:{s.id}" for s in page)
            after = seen[-1]
        assert seen == expected, filters


def test_subjects_with_naive_times_are_refused(store: Store):
    with pytest.raises(StoreError, match="naive"):
        store.put_subject(make_subject(created_at=at(1).replace(tzinfo=None)), expected_revision=0)
    assert store.get_subject("user", "u1") is None
    stored = store.put_subject(make_subject(), expected_revision=0)
    with pytest.raises(StoreError, match="naive"):
        store.put_subject(replace(stored, updated_at=at(5).replace(tzinfo=None)),
                          expected_revision=1)  # fmt: skip
    assert store.get_subject("user", "u1") == stored


# -- the directory: authenticators ----------------------------------------------------------
def make_authenticator(n: int = 1, subject_id: str = "u1", **changes: Any) -> Authenticator:
    authenticator = Authenticator(
        id=f"a{n}", subject_type="user", subject_id=subject_id, method="passkey", kind="webauthn",
        created_at=at(n), record=b"sealed\x00\xff" + bytes([n]), label=f"key {n}",
        confirmed_at=at(n + 1), lookup=f"cred-a{n}",
    )  # fmt: skip
    return replace(authenticator, **changes)


def test_authenticator_round_trips_at_revision_one(store: Store):
    made = store.create_authenticator(make_authenticator(revision=7))
    assert made == make_authenticator(revision=1)
    assert store.get_authenticator("a1") == made
    assert store.get_authenticator("a1").record == b"sealed\x00\xff\x01"
    assert store.find_authenticator("cred-a1") == made
    assert store.get_authenticator("a9") is None
    assert store.find_authenticator("cred-a9") is None


def test_authenticators_without_a_lookup_are_not_found_by_one(store: Store):
    plain = make_authenticator(1, lookup=None, method="totp", kind="totp", confirmed_at=None)
    store.create_authenticator(plain)
    store.create_authenticator(make_authenticator(2, lookup=None))  # many may have none
    assert store.get_authenticator("a1") == replace(plain, revision=1)
    assert store.find_authenticator("") is None
    assert [a.id for a in store.list_authenticators("user", "u1")] == ["a1", "a2"]


@pytest.mark.parametrize("clash", [{"lookup": "cred-other"}, {"id": "other"}])
def test_create_authenticator_with_a_taken_id_or_lookup_conflicts(
    store: Store, clash: dict[str, str]
):
    first = store.create_authenticator(make_authenticator(1))
    with pytest.raises(ConflictError):  # held by another subject's authenticator, too
        store.create_authenticator(make_authenticator(1, subject_id="intruder", **clash))
    assert store.get_authenticator("a1") == first
    assert store.get_authenticator("other") is None
    assert store.find_authenticator("cred-a1") == first
    assert store.list_authenticators("user", "intruder") == []


def test_list_authenticators_oldest_first_then_by_id(store: Store):
    store.create_authenticator(make_authenticator(3, created_at=at(1)))
    store.create_authenticator(make_authenticator(1, created_at=at(5)))
    store.create_authenticator(make_authenticator(2, created_at=at(1)))
    paris = timezone(timedelta(hours=1))
    store.create_authenticator(make_authenticator(4, created_at=at(3).astimezone(paris)))
    store.create_authenticator(make_authenticator(5, subject_id="u2"))
    store.create_authenticator(make_authenticator(6, subject_id="u1", subject_type="service"))
    assert [a.id for a in store.list_authenticators("user", "u1")] == ["a2", "a3", "a4", "a1"]
    assert [a.id for a in store.list_authenticators("user", "u2")] == ["a5"]
    assert [a.id for a in store.list_authenticators("service", "u1")] == ["a6"]
    assert store.list_authenticators("user", "nobody") == []
    assert store.get_authenticator("a4").created_at == at(3)


def test_update_authenticator_bumps_the_revision(store: Store):
    made = store.create_authenticator(make_authenticator(confirmed_at=None))
    confirmed = replace(made, confirmed_at=at(10), last_used_at=at(10), record=b"counter=1",
                        label="renamed", lookup="cred-new")  # fmt: skip
    stored = store.update_authenticator(confirmed, expected_revision=1)
    assert stored == replace(confirmed, revision=2)
    assert store.get_authenticator("a1") == stored
    assert store.find_authenticator("cred-new") == stored
    assert store.find_authenticator("cred-a1") is None
    again = store.update_authenticator(replace(stored, lookup=None), expected_revision=2)
    assert again.revision == 3
    assert store.find_authenticator("cred-new") is None


def test_update_authenticator_with_a_stale_revision_conflicts_and_changes_nothing(store: Store):
    made = store.create_authenticator(make_authenticator())
    current = store.update_authenticator(replace(made, label="b"), expected_revision=1)
    with pytest.raises(ConflictError):
        store.update_authenticator(replace(made, label="stale"), expected_revision=1)
    assert store.get_authenticator("a1") == current


def test_update_unknown_authenticator_is_not_found(store: Store):
    with pytest.raises(NotFound):
        store.update_authenticator(make_authenticator(), expected_revision=1)
    assert store.get_authenticator("a1") is None


def test_update_authenticator_to_a_lookup_held_by_another_conflicts(store: Store):
    mine = store.create_authenticator(make_authenticator(1))
    theirs = store.create_authenticator(make_authenticator(2, subject_id="u2"))
    with pytest.raises(ConflictError):
        store.update_authenticator(replace(mine, lookup="cred-a2"), expected_revision=1)
    assert store.get_authenticator("a1") == mine
    assert store.find_authenticator("cred-a2") == theirs


def test_threads_racing_to_update_an_authenticator_exactly_one_wins(store: Store):
    made = store.create_authenticator(make_authenticator())
    results, errors = race(8, lambda i: store.update_authenticator(
        replace(made, last_used_at=at(10 + i)), expected_revision=1))  # fmt: skip
    assert len(results) == 1 and len(errors) == 7
    assert all(isinstance(e, ConflictError) for e in errors)
    assert store.get_authenticator("a1") == results[0]


def test_threads_racing_to_claim_one_lookup_exactly_one_wins(store: Store):
    results, errors = race(8, lambda i: store.create_authenticator(
        make_authenticator(i, lookup="cred-shared")))  # fmt: skip
    assert len(results) == 1 and len(errors) == 7
    assert all(isinstance(e, ConflictError) for e in errors)
    assert store.find_authenticator("cred-shared") == results[0]


def test_delete_authenticator(store: Store):
    store.create_authenticator(make_authenticator(1))
    store.create_authenticator(make_authenticator(2))
    assert store.delete_authenticator("a1") is True
    assert store.delete_authenticator("a1") is False
    assert store.delete_authenticator("nope") is False
    assert store.get_authenticator("a1") is None
    assert store.find_authenticator("cred-a1") is None
    assert [a.id for a in store.list_authenticators("user", "u1")] == ["a2"]
    store.create_authenticator(make_authenticator(3, lookup="cred-a1"))  # the lookup is free


def test_authenticators_with_naive_times_are_refused(store: Store):
    naive = at(1).replace(tzinfo=None)
    for change in ("created_at", "confirmed_at", "last_used_at"):
        with pytest.raises(StoreError, match="naive"):
            store.create_authenticator(make_authenticator(**{change: naive}))
    assert store.get_authenticator("a1") is None
    made = store.create_authenticator(make_authenticator())
    for change in ("created_at", "confirmed_at", "last_used_at"):
        with pytest.raises(StoreError, match="naive"):
            store.update_authenticator(replace(made, **{change: naive}), expected_revision=1)
    assert store.get_authenticator("a1") == made


# -- failure counters -----------------------------------------------------------------------
LIMITS: dict[str, Any] = {"at": at(0), "window": timedelta(minutes=15), "lock_after": 3,
                          "lock_for": timedelta(minutes=30)}  # fmt: skip


def fail(store: Store, seconds: float, counter: str = "password", **limits: Any) -> Failures:
    return store.record_failure("user", "u1", counter, **{**LIMITS, "at": at(seconds), **limits})


def test_failures_count_up_within_the_window(store: Store):
    assert store.get_failures("user", "u1", "password") is None
    first = fail(store, 0)
    assert first == Failures(subject_type="user", subject_id="u1", counter="password", count=1,
                             first_at=at(0), last_at=at(0))  # fmt: skip
    second = fail(store, 60)
    assert (second.count, second.first_at, second.last_at) == (2, at(0), at(60))
    assert second.locked_until is None
    assert store.get_failures("user", "u1", "password") == second
    assert store.get_failures("user", "u1", "second_factor") is None
    assert store.get_failures("service", "u1", "password") is None


def test_failures_lock_when_the_count_reaches_lock_after(store: Store):
    fail(store, 0)
    fail(store, 1)
    locked = fail(store, 2)
    assert (locked.count, locked.locked_until) == (3, at(2) + timedelta(minutes=30))
    assert store.get_failures("user", "u1", "password") == locked
    again = fail(store, 5)  # past it: each further failure locks again
    assert (again.count, again.locked_until) == (4, at(5) + timedelta(minutes=30))
    assert again.first_at == at(0)


def test_a_failure_after_the_window_restarts_the_count(store: Store):
    fail(store, 0)
    fail(store, 100)
    window = LIMITS["window"].total_seconds()
    kept = fail(store, 100 + window)  # exactly the window: not older
    assert kept.count == 3
    restarted = fail(store, 100 + 2 * window + 1, lock_after=5)
    assert (restarted.count, restarted.first_at) == (1, restarted.last_at)
    assert restarted.last_at == at(100 + 2 * window + 1)


def test_a_restart_keeps_a_running_lock_and_drops_an_ended_one(store: Store):
    limits = {"window": timedelta(seconds=10), "lock_after": 2, "lock_for": timedelta(hours=1)}
    fail(store, 0, **limits)
    locked = fail(store, 1, **limits)
    assert locked.locked_until == at(1) + timedelta(hours=1)
    restarted = fail(store, 100, **limits)
    assert (restarted.count, restarted.locked_until) == (1, locked.locked_until)
    ended = fail(store, 2 * 3600, **limits)
    assert (ended.count, ended.locked_until) == (1, None)


def test_a_shorter_lock_never_shortens_a_running_one(store: Store):
    fail(store, 0, lock_after=1, lock_for=timedelta(hours=1))
    shorter = fail(store, 1, lock_after=1, lock_for=timedelta(minutes=1))
    assert shorter.locked_until == at(0) + timedelta(hours=1)


def test_lock_after_below_one_never_locks(store: Store):
    assert fail(store, 0, lock_after=0).locked_until is None
    assert fail(store, 1, lock_after=0).count == 2


def test_a_late_failure_does_not_move_the_window_back(store: Store):
    fail(store, 100)
    late = fail(store, 50)
    assert (late.count, late.first_at, late.last_at) == (2, at(100), at(100))


def test_clear_failures_forgets_one_counter(store: Store):
    fail(store, 0)
    fail(store, 0, counter="second_factor")
    store.clear_failures("user", "u1", "password")
    assert store.get_failures("user", "u1", "password") is None
    assert store.get_failures("user", "u1", "second_factor").count == 1
    store.clear_failures("user", "u1", "password")  # nothing to clear
    assert fail(store, 1).count == 1


def test_threads_racing_record_failure_lose_no_count(store: Store):
    results, errors = race(8, lambda i: fail(store, i, lock_after=8))
    assert errors == []
    final = store.get_failures("user", "u1", "password")
    assert final.count == 8
    assert sorted(f.count for f in results) == list(range(1, 9))  # type: ignore[attr-defined]
    assert final.locked_until is not None


def test_two_handles_racing_record_failure_lose_no_count(backend: Backend):
    first, second = backend.open(), backend.open()
    try:
        handles = (first, second)
        _, errors = race(8, lambda i: fail(handles[i % 2], 1))
        assert errors == []
        assert first.get_failures("user", "u1", "password").count == 8
    finally:
        first.close()
        second.close()


def reserve(
    store: Store, attempt: str, seconds: float, limit: int = 3, hold: float = 120
) -> int | None:
    """Reserve an attempt when fewer than ``limit`` failures and reservations are there."""

    def admit(failures: Failures | None) -> int | None:
        taken = 0 if failures is None else failures.count + len(failures.pending)
        return None if taken < limit else 7

    return store.reserve_attempt("user", "u1", "password", attempt=attempt, at=at(seconds),
                                 hold=timedelta(seconds=hold), admit=admit)  # fmt: skip


def test_reserve_attempt_keeps_the_admitted_and_changes_nothing_when_refused(store: Store):
    assert reserve(store, "a1", 0) is None
    assert reserve(store, "a2", 1) is None
    kept = store.get_failures("user", "u1", "password")
    assert kept is not None
    assert (kept.count, kept.pending) == (0, {"a1": at(0), "a2": at(1)})
    fail(store, 2)
    assert reserve(store, "a3", 3) == 7  # 1 failure + 2 in flight: refused, nothing kept
    assert store.get_failures("user", "u1", "password").pending == {"a1": at(0), "a2": at(1)}


def test_record_failure_and_release_settle_a_reservation(store: Store):
    reserve(store, "a1", 0)
    reserve(store, "a2", 0)
    counted = fail(store, 1, attempt="a1")
    assert (counted.count, counted.pending) == (1, {"a2": at(0)})
    assert store.get_failures("user", "u1", "password") == counted
    store.release_attempt("user", "u1", "password", "a2")
    released = store.get_failures("user", "u1", "password")
    assert (released.count, released.pending) == (1, {})
    store.release_attempt("user", "u1", "password", "a2")  # gone: nothing happens
    store.release_attempt("user", "u9", "password", "a2")
    assert store.get_failures("user", "u9", "password") is None
    assert fail(store, 2, attempt="unknown").count == 2
    reserve(store, "a3", 3)
    store.clear_failures("user", "u1", "password")  # a success forgets reservations too
    assert store.get_failures("user", "u1", "password") is None


def test_a_reservation_held_too_long_is_dropped(store: Store):
    reserve(store, "a1", 0, limit=1)
    assert reserve(store, "a2", 10, limit=1, hold=60) == 7
    assert reserve(store, "a2", 61, limit=1, hold=60) is None
    assert store.get_failures("user", "u1", "password").pending == {"a2": at(61)}


def test_threads_racing_reserve_attempt_admit_no_more_than_the_limit(store: Store):
    results, errors = race(8, lambda i: reserve(store, f"a{i}", 1, limit=3))
    assert errors == []
    assert results.count(None) == 3
    assert len(store.get_failures("user", "u1", "password").pending) == 3


def test_two_handles_racing_reserve_attempt_admit_no_more_than_the_limit(backend: Backend):
    first, second = backend.open(), backend.open()
    try:
        handles = (first, second)
        results, errors = race(8, lambda i: reserve(handles[i % 2], f"a{i}", 1, limit=3))
        assert errors == []
        assert results.count(None) == 3
    finally:
        first.close()
        second.close()


# -- node clocks ----------------------------------------------------------------------------


def test_a_heartbeat_keeps_the_node_clock_beside_the_store_clock(store: Store):
    from datetime import datetime as wall

    before = wall.now(UTC)
    ahead = before + timedelta(seconds=10)
    beat = store.beat("n1", ahead)
    after = wall.now(UTC)
    assert (beat.node, beat.clock) == ("n1", ahead)
    # the store's clock is the host's here: read between `before` and `after`
    slack = timedelta(milliseconds=2)
    assert before - slack <= beat.store_at <= after + slack
    assert timedelta(seconds=9) < beat.offset <= timedelta(seconds=10, milliseconds=2)
    store.beat("n2", before)
    again = store.beat("n1", before)  # a node keeps one heartbeat, its latest
    assert [h.node for h in store.heartbeats(within=timedelta(minutes=1))] == ["n1", "n2"]
    assert store.heartbeats(within=timedelta(minutes=1))[0] == again


def test_heartbeats_older_than_asked_are_left_out(store: Store):
    import time

    store.beat("n1", T0)
    time.sleep(0.6)  # margins for a loaded machine: n2's beat is read within 0.3 s of it
    store.beat("n2", T0)
    assert [h.node for h in store.heartbeats(within=timedelta(milliseconds=300))] == ["n2"]


def test_beat_refuses_a_naive_time(store: Store):
    with pytest.raises(StoreError, match="naive"):
        store.beat("n1", T0.replace(tzinfo=None))
    assert store.heartbeats(within=timedelta(days=1)) == []


def test_record_failure_refuses_a_naive_time(store: Store):
    with pytest.raises(StoreError, match="naive"):
        fail(store, 0, at=at(0).replace(tzinfo=None))
    assert store.get_failures("user", "u1", "password") is None


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# -- Shared Signals: events received --------------------------------------------------------
ISSUER = "https://idp.example"
REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"


def make_event(n: int = 1, **changes: Any) -> ReceivedEvent:
    event = ReceivedEvent(
        issuer=ISSUER, jti=f"jti-{n}", received_at=at(n), event_type=REVOKED,
        event_time=at(n - 1), subject={"format": "opaque", "id": "u1", "extra": [{"b": 1}]},
        detail={"revoked": ["s1"], "ratio": 0.5}, session_ids=("s1",), subject_id="u1",
    )  # fmt: skip
    return replace(event, **changes)


def test_a_received_event_is_kept_once_per_issuer_and_jti(store: Store):
    assert store.get_received(ISSUER, "jti-1") is None
    assert store.receive_event(make_event()) is True
    assert store.get_received(ISSUER, "jti-1") == make_event()
    assert store.receive_event(make_event(result="error", detail={}, session_ids=())) is False
    assert store.get_received(ISSUER, "jti-1") == make_event()  # nothing changed
    assert [e.jti for e in store.list_received(session_id="s1")] == ["jti-1"]
    assert store.receive_event(make_event(issuer="https://other.example")) is True
    assert store.get_received("https://other.example", "jti-1") is not None
    assert store.get_received(ISSUER, "jti-2") is None


def test_a_received_event_round_trips_with_defaults(store: Store):
    bare = ReceivedEvent(issuer=ISSUER, jti="j", received_at=at(1), event_type=REVOKED)
    assert store.receive_event(bare) is True
    stored = store.get_received(ISSUER, "j")
    assert stored == bare
    assert (stored.result, stored.subject, stored.session_ids) == ("applied", {}, ())
    paris = timezone(timedelta(hours=1))
    store.receive_event(make_event(2, received_at=at(2).astimezone(paris)))
    assert store.get_received(ISSUER, "jti-2").received_at == at(2)


def test_update_received_replaces_the_record_and_its_sessions(store: Store):
    store.receive_event(make_event(session_ids=("s1", "s2")))
    done = make_event(result="ignored", detail={"why": "older"}, session_ids=("s3",),
                      subject_id="u9")  # fmt: skip
    assert store.update_received(done) is None
    assert store.get_received(ISSUER, "jti-1") == done
    assert store.list_received(session_id="s1") == []
    assert store.list_received(session_id="s2") == []
    assert store.list_received(session_id="s3") == [done]
    assert store.list_received(subject_id="u1") == []
    assert store.list_received(subject_id="u9") == [done]


def test_update_received_of_an_unknown_event_is_not_found(store: Store):
    with pytest.raises(NotFound):
        store.update_received(make_event())
    assert store.get_received(ISSUER, "jti-1") is None
    assert store.list_received() == []


def test_list_received_is_newest_first_and_filters(store: Store):
    events = [
        make_event(1, session_ids=("s1",)),
        make_event(2, session_ids=("s1", "s2", "s1")),  # a repeated id is listed once
        make_event(3, subject_id="u2", session_ids=("s3",)),
        make_event(4, subject_id=None, session_ids=()),
        make_event(5, received_at=at(2), session_ids=("s2",)),  # tie with 2: by jti
        make_event(1, issuer="https://other.example", subject_id="u9", session_ids=()),
    ]  # fmt: skip
    for event in events:
        assert store.receive_event(event) is True
    e1, e2, e3, e4, e5, e6 = events

    assert store.list_received() == [e4, e3, e5, e2, e6, e1]  # a jti tie: by issuer
    assert store.list_received(subject_id="u1") == [e5, e2, e1]
    assert store.list_received(subject_id="u2") == [e3]
    assert store.list_received(session_id="s1") == [e2, e1]
    assert store.list_received(session_id="s2") == [e5, e2]
    assert store.list_received(session_id="s2", subject_id="u1") == [e5, e2]
    assert store.list_received(session_id="s3", subject_id="u1") == []
    assert store.list_received(session_id="s9") == []
    assert store.list_received(limit=2) == [e4, e3]
    assert store.list_received(session_id="s1", limit=1) == [e2]
    assert store.list_received(limit=0) == []


def test_threads_racing_to_receive_one_event_exactly_one_keeps_it(store: Store):
    results, errors = race(8, lambda i: store.receive_event(make_event(detail={"thread": i})))
    assert errors == []
    assert sorted(results) == [False] * 7 + [True]  # type: ignore[type-var]
    assert len(store.list_received(session_id="s1")) == 1


def test_two_handles_racing_to_receive_one_event_exactly_one_keeps_it(backend: Backend):
    first, second = backend.open(), backend.open()
    try:
        handles = (first, second)
        results, errors = race(8, lambda i: handles[i % 2].receive_event(make_event()))
        assert errors == []
        assert results.count(True) == 1
        assert first.get_received(ISSUER, "jti-1") == make_event()
    finally:
        first.close()
        second.close()


def test_received_events_with_naive_times_are_refused(store: Store):
    naive = at(1).replace(tzinfo=None)
    for change in ("received_at", "event_time"):
        with pytest.raises(StoreError, match="naive"):
            store.receive_event(make_event(**{change: naive}))
    assert store.get_received(ISSUER, "jti-1") is None
    store.receive_event(make_event())
    with pytest.raises(StoreError, match="naive"):
        store.update_received(make_event(result="ignored", event_time=naive))
    assert store.get_received(ISSUER, "jti-1") == make_event()


def test_event_times_keep_only_a_newer_time(store: Store):
    assert store.last_event_time("user:u1", "session-revoked") is None
    assert store.set_event_time("user:u1", "session-revoked", at(10)) is True
    assert store.last_event_time("user:u1", "session-revoked") == at(10)
    assert store.set_event_time("user:u1", "session-revoked", at(5)) is False  # older
    assert store.set_event_time("user:u1", "session-revoked", at(10)) is False  # equal
    paris = timezone(timedelta(hours=1))
    equal_elsewhere = at(10).astimezone(paris)
    assert store.set_event_time("user:u1", "session-revoked", equal_elsewhere) is False
    assert store.last_event_time("user:u1", "session-revoked") == at(10)
    later = at(10) + timedelta(microseconds=1)
    assert store.set_event_time("user:u1", "session-revoked", later) is True
    assert store.last_event_time("user:u1", "session-revoked") == later
    # The key is (subject_key, signal): each pair keeps its own time.
    assert store.set_event_time("user:u1", "credential-change", at(1)) is True
    assert store.set_event_time("user:u2", "session-revoked", at(1)) is True
    assert store.last_event_time("user:u1", "credential-change") == at(1)
    assert store.last_event_time("user:u1", "session-revoked") == later


def test_threads_racing_one_event_time_apply_it_once(store: Store):
    results, errors = race(8, lambda i: store.set_event_time("user:u1", "risk", at(3)))
    assert errors == []
    assert results.count(True) == 1
    assert store.last_event_time("user:u1", "risk") == at(3)


def test_threads_racing_event_times_keep_the_newest(store: Store):
    results, errors = race(8, lambda i: (i, store.set_event_time("user:u1", "risk", at(i))))
    assert errors == []
    assert (7, True) in results  # the newest is newer than whatever came first
    assert 1 <= [ok for _, ok in results].count(True) <= 8  # type: ignore[misc]
    assert store.last_event_time("user:u1", "risk") == at(7)
    assert store.set_event_time("user:u1", "risk", at(7)) is False


def test_set_event_time_refuses_a_naive_time(store: Store):
    with pytest.raises(StoreError, match="naive"):
        store.set_event_time("user:u1", "risk", at(1).replace(tzinfo=None))
    assert store.last_event_time("user:u1", "risk") is None


# -- Shared Signals: streams ----------------------------------------------------------------
def make_stream(n: int = 1, **changes: Any) -> Stream:
    stream = Stream(
        id=f"st{n}", app="shop", iss="https://juncture.example", aud=("https://shop.example",),
        created_at=at(n), updated_at=at(n), endpoint_url="https://shop.example/ssf",
        authorization_header="Bearer secret", events_requested=(REVOKED, "urn:other"),
        events_delivered=(REVOKED,), description=f"stream {n}",
    )  # fmt: skip
    return replace(stream, **changes)


def test_stream_round_trips_at_revision_one(store: Store):
    assert store.get_stream("st1") is None
    made = store.put_stream(make_stream(revision=9), expected_revision=0)
    assert made == make_stream(revision=1)
    assert store.get_stream("st1") == made
    assert (made.delivery_method, made.status) == (PUSH, "enabled")
    poll = make_stream(2, delivery_method=POLL, endpoint_url=None, authorization_header=None)
    assert store.put_stream(poll, expected_revision=0) == replace(poll, revision=1)


def test_creating_a_stream_that_exists_conflicts_and_changes_nothing(store: Store):
    made = store.put_stream(make_stream(), expected_revision=0)
    with pytest.raises(ConflictError):
        store.put_stream(make_stream(app="intruder"), expected_revision=0)
    assert store.get_stream("st1") == made
    assert store.list_streams(app="intruder") == []


def test_put_stream_replaces_at_the_expected_revision(store: Store):
    first = store.put_stream(make_stream(), expected_revision=0)
    paused = replace(first, status="paused", status_reason="maintenance", updated_at=at(10))
    second = store.put_stream(paused, expected_revision=1)
    assert second == replace(paused, revision=2)
    assert store.get_stream("st1") == second
    with pytest.raises(ConflictError):  # stale
        store.put_stream(replace(first, description="stale"), expected_revision=1)
    with pytest.raises(ConflictError):  # ahead
        store.put_stream(replace(first, description="ahead"), expected_revision=5)
    assert store.get_stream("st1") == second


def test_a_delivery_lease_is_held_by_one_owner_until_it_expires_or_is_given_up(store: Store):
    assert store.lease_stream("st1", owner="a", now=at(0), until=at(60))  # free: taken
    assert not store.lease_stream("st1", owner="b", now=at(30), until=at(90))  # a's
    assert store.lease_stream("st1", owner="a", now=at(30), until=at(120))  # renewed
    assert not store.lease_stream("st1", owner="b", now=at(90), until=at(150))  # still a's
    assert store.lease_stream("st2", owner="b", now=at(90), until=at(150))  # one per stream
    assert store.lease_stream("st1", owner="b", now=at(120), until=at(180))  # a's ran out
    assert not store.lease_stream("st1", owner="a", now=at(121), until=at(181))
    assert not store.release_stream("st1", owner="a")  # not a's to give up
    assert store.release_stream("st1", owner="b")
    assert not store.release_stream("st1", owner="b")
    assert store.lease_stream("st1", owner="a", now=at(122), until=at(182))  # free again


def test_replacing_an_unknown_stream_is_not_found(store: Store):
    with pytest.raises(NotFound):
        store.put_stream(make_stream(), expected_revision=1)
    assert store.get_stream("st1") is None


def test_threads_racing_to_update_a_stream_exactly_one_wins(store: Store):
    base = store.put_stream(make_stream(), expected_revision=0)
    results, errors = race(8, lambda i: store.put_stream(
        replace(base, description=f"thread {i}"), expected_revision=1))  # fmt: skip
    assert len(results) == 1 and len(errors) == 7
    assert all(isinstance(e, ConflictError) for e in errors)
    assert store.get_stream("st1") == results[0]


def test_list_streams_by_creation_then_id_and_by_app(store: Store):
    for stream in [make_stream(3, created_at=at(1)), make_stream(1, created_at=at(5)),
                   make_stream(2, created_at=at(1), app="portal"), make_stream(4)]:  # fmt: skip
        store.put_stream(stream, expected_revision=0)
    assert [s.id for s in store.list_streams()] == ["st2", "st3", "st4", "st1"]
    assert [s.id for s in store.list_streams(app="shop")] == ["st3", "st4", "st1"]
    assert [s.id for s in store.list_streams(app="portal")] == ["st2"]
    assert store.list_streams(app="nobody") == []


def test_delete_stream_takes_its_subjects_and_undelivered_items(store: Store):
    store.put_stream(make_stream(1), expected_revision=0)
    store.put_stream(make_stream(2), expected_revision=0)
    for stream_id in ("st1", "st2"):
        store.add_stream_subject(make_stream_subject(stream_id))
    items = store.enqueue([make_item(1), make_item(2), make_item(3), make_item(1, "st2")])
    store.mark_delivered("st1", ["set-1"], at=at(5))
    store.mark_failed(items[2].seq, at=at(5), error="gone", next_attempt_at=None)
    assert store.delete_stream("st1") is True
    assert store.delete_stream("st1") is False
    assert store.delete_stream("nope") is False
    assert store.get_stream("st1") is None
    assert store.list_stream_subjects("st1") == []
    assert store.pending("st1") == []
    assert store.due(now=at(100)) == [items[3]]
    assert store.list_stream_subjects("st2") == [make_stream_subject("st2")]
    assert store.pending("st2") == [items[3]]
    store.put_stream(make_stream(1), expected_revision=0)  # the id can be used again
    assert store.list_stream_subjects("st1") == []
    assert store.pending("st1") == []


def test_streams_with_naive_times_are_refused(store: Store):
    naive = at(1).replace(tzinfo=None)
    for change in ("created_at", "updated_at"):
        with pytest.raises(StoreError, match="naive"):
            store.put_stream(make_stream(**{change: naive}), expected_revision=0)
    assert store.get_stream("st1") is None
    made = store.put_stream(make_stream(), expected_revision=0)
    with pytest.raises(StoreError, match="naive"):
        store.put_stream(replace(made, updated_at=naive), expected_revision=1)
    assert store.get_stream("st1") == made


# -- Shared Signals: stream subjects --------------------------------------------------------
def make_stream_subject(stream_id: str = "st1", **changes: Any) -> StreamSubject:
    subject = StreamSubject(stream_id=stream_id, subject={"format": "email",
                            "email": "a@example.com"}, added_at=at(1))  # fmt: skip
    return replace(subject, **changes)


def test_stream_subjects_are_added_once_whatever_their_key_order(store: Store):
    store.put_stream(make_stream(), expected_revision=0)
    assert store.list_stream_subjects("st1") == []
    store.add_stream_subject(make_stream_subject())
    reordered = {"email": "a@example.com", "format": "email"}
    store.add_stream_subject(make_stream_subject(subject=reordered, verified=False,
                                                 added_at=at(9)))  # fmt: skip
    assert store.list_stream_subjects("st1") == [make_stream_subject()]  # the first stays
    nested = {"format": "complex", "user": {"format": "opaque", "id": "u1"},
              "session": {"id": "s1", "format": "opaque"}}  # fmt: skip
    store.add_stream_subject(make_stream_subject(subject=nested, added_at=at(0)))
    again = {"session": {"format": "opaque", "id": "s1"}, "format": "complex",
             "user": {"id": "u1", "format": "opaque"}}  # fmt: skip
    store.add_stream_subject(make_stream_subject(subject=again, added_at=at(5)))
    assert store.list_stream_subjects("st1") == [
        make_stream_subject(subject=nested, added_at=at(0)), make_stream_subject()
    ]  # fmt: skip
    assert store.remove_stream_subject("st1", again) is True
    assert store.remove_stream_subject("st1", again) is False
    assert store.remove_stream_subject("st1", reordered) is True
    assert store.list_stream_subjects("st1") == []


def test_stream_subjects_belong_to_their_stream(store: Store):
    store.put_stream(make_stream(1), expected_revision=0)
    store.put_stream(make_stream(2), expected_revision=0)
    store.add_stream_subject(make_stream_subject("st1"))
    store.add_stream_subject(make_stream_subject("st2", verified=False))
    assert store.remove_stream_subject("st1", make_stream_subject().subject) is True
    assert store.list_stream_subjects("st2") == [make_stream_subject("st2", verified=False)]
    assert store.remove_stream_subject("nope", make_stream_subject().subject) is False
    assert store.list_stream_subjects("nope") == []


def test_adding_a_subject_to_an_unknown_stream_is_not_found(store: Store):
    with pytest.raises(NotFound):
        store.add_stream_subject(make_stream_subject("nope"))
    assert store.list_stream_subjects("nope") == []


def test_stream_subjects_with_a_naive_time_are_refused(store: Store):
    store.put_stream(make_stream(), expected_revision=0)
    with pytest.raises(StoreError, match="naive"):
        store.add_stream_subject(make_stream_subject(added_at=at(1).replace(tzinfo=None)))
    assert store.list_stream_subjects("st1") == []


# -- Shared Signals: the outbox -------------------------------------------------------------
def make_item(n: int, stream_id: str = "st1", **changes: Any) -> OutboxItem:
    item = OutboxItem(stream_id=stream_id, jti=f"set-{n}", set=f"eyJhbGciOiJFUzI1NiJ9.{n}.sig",
                      event_type=REVOKED, created_at=at(n), next_attempt_at=at(n))  # fmt: skip
    return replace(item, **changes)


def test_enqueue_assigns_increasing_seqs_and_items_round_trip(store: Store):
    store.put_stream(make_stream(1, delivery_method=POLL), expected_revision=0)
    assert store.enqueue([]) == []
    paris = timezone(timedelta(hours=1))
    first = store.enqueue([make_item(1, created_at=at(1).astimezone(paris)), make_item(2)])
    second = store.enqueue([make_item(3)])
    seqs = [item.seq for item in (*first, *second)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 and seqs[0] > 0
    assert [replace(i, seq=0) for i in (*first, *second)] == [
        make_item(1, created_at=at(1).astimezone(paris)), make_item(2), make_item(3)
    ]  # fmt: skip
    assert store.pending("st1") == [*first, *second]
    assert store.pending("st1")[0].created_at == at(1)


def test_enqueue_a_duplicate_conflicts_and_stores_nothing(store: Store):
    store.put_stream(make_stream(1), expected_revision=0)
    store.put_stream(make_stream(2), expected_revision=0)
    (kept,) = store.enqueue([make_item(1)])
    with pytest.raises(ConflictError):
        store.enqueue([make_item(2), make_item(1, set="other")])
    with pytest.raises(ConflictError):
        store.enqueue([make_item(3), make_item(3)])
    assert store.pending("st1") == [kept]
    (other,) = store.enqueue([make_item(1, "st2")])  # the same jti on another stream
    assert store.pending("st2") == [other]
    assert other.seq > kept.seq


def test_seqs_are_never_reused_after_a_delete(store: Store):
    store.put_stream(make_stream(1), expected_revision=0)
    store.put_stream(make_stream(2), expected_revision=0)
    (last,) = store.enqueue([make_item(1)])
    store.delete_stream("st1")  # the highest seq goes with it
    (after,) = store.enqueue([make_item(2, "st2")])
    assert after.seq > last.seq


def test_threads_enqueueing_together_get_distinct_increasing_seqs(store: Store):
    for n in range(4):
        store.put_stream(make_stream(n), expected_revision=0)
    results, errors = race(8, lambda i: store.enqueue(
        [make_item(i * 10 + k, f"st{i % 4}", next_attempt_at=at(0)) for k in range(5)]
    ))  # fmt: skip
    assert errors == []
    batches: list[Any] = results
    for batch in batches:
        assert [item.seq for item in batch] == sorted(item.seq for item in batch)
    everything = sorted((item for batch in batches for item in batch), key=lambda i: i.seq)
    assert len({item.seq for item in everything}) == 40
    assert store.due(now=at(0), limit=100) == everything


def test_due_takes_what_is_ready_on_enabled_push_streams(store: Store):
    store.put_stream(make_stream(1), expected_revision=0)
    paused = store.put_stream(make_stream(2, status="paused"), expected_revision=0)
    store.put_stream(make_stream(3, status="disabled"), expected_revision=0)
    store.put_stream(make_stream(4, delivery_method=POLL), expected_revision=0)
    ready, future, delivered, given_up, boundary = store.enqueue([
        make_item(1, next_attempt_at=at(1)), make_item(2, next_attempt_at=at(11)),
        make_item(3, next_attempt_at=at(1)), make_item(4, next_attempt_at=at(1)),
        make_item(5, next_attempt_at=at(10)),
    ])  # fmt: skip
    of_paused, _, _, orphan = store.enqueue([
        make_item(6, "st2", next_attempt_at=at(1)), make_item(7, "st3", next_attempt_at=at(1)),
        make_item(8, "st4", next_attempt_at=at(1)), make_item(9, "gone", next_attempt_at=at(1)),
    ])  # fmt: skip
    store.mark_delivered("st1", [delivered.jti], at=at(2))
    store.mark_failed(given_up.seq, at=at(2), error="410", next_attempt_at=None)

    assert store.due(now=at(10)) == [ready, boundary]  # next_attempt_at <= now
    assert store.due(now=at(10), limit=1) == [ready]
    assert store.due(now=at(10), limit=0) == []
    assert store.due(now=at(0)) == []
    assert store.due(now=at(11)) == [ready, future, boundary]
    store.put_stream(replace(paused, status="enabled"), expected_revision=1)
    assert store.due(now=at(10)) == [ready, boundary, of_paused]  # by seq, across streams
    assert orphan not in store.due(now=at(100))
    moved = store.put_stream(make_stream(1, delivery_method=POLL), expected_revision=1)
    assert moved.delivery_method == POLL
    assert store.due(now=at(100)) == [of_paused]


def test_pending_lists_a_streams_undelivered_items(store: Store):
    store.put_stream(make_stream(1, delivery_method=POLL), expected_revision=0)
    store.put_stream(make_stream(2, delivery_method=POLL), expected_revision=0)
    items = store.enqueue([make_item(n, next_attempt_at=at(100)) for n in range(5)])
    (other,) = store.enqueue([make_item(9, "st2")])
    store.mark_delivered("st1", ["set-1"], at=at(5))
    store.mark_failed(items[3].seq, at=at(5), error="expired", next_attempt_at=None)
    assert store.pending("st1") == [items[0], items[2], items[4]]  # future ones too
    assert store.pending("st1", limit=2) == [items[0], items[2]]
    assert store.pending("st1", limit=0) == []
    assert store.pending("st2") == [other]
    assert store.pending("nope") == []


def test_mark_delivered_counts_what_it_changed(store: Store):
    store.put_stream(make_stream(1, delivery_method=POLL), expected_revision=0)
    store.put_stream(make_stream(2, delivery_method=POLL), expected_revision=0)
    items = store.enqueue([make_item(n) for n in range(4)])
    (same_jti,) = store.enqueue([make_item(0, "st2")])
    assert store.mark_delivered("st1", ["set-0", "set-2", "set-2", "unknown"], at=at(9)) == 2
    assert store.mark_delivered("st1", ["set-0", "set-2"], at=at(10)) == 0  # already
    assert store.mark_delivered("st1", [], at=at(10)) == 0
    assert store.pending("st1") == [items[1], items[3]]
    assert store.pending("st2") == [same_jti]  # another stream's item of that jti is kept
    assert store.mark_delivered("nope", ["set-1"], at=at(10)) == 0
    assert store.mark_delivered("st1", ["set-1", "set-3"], at=at(10)) == 2
    assert store.pending("st1") == []


def test_mark_failed_counts_attempts_and_gives_up(store: Store):
    store.put_stream(make_stream(), expected_revision=0)
    item, other = store.enqueue([make_item(1, next_attempt_at=at(1)), make_item(2)])
    assert store.mark_failed(item.seq, at=at(3), error="503 unavailable",
                             next_attempt_at=at(30)) is None  # fmt: skip
    retried = replace(item, attempts=1, last_error="503 unavailable", next_attempt_at=at(30))
    assert store.due(now=at(29)) == [other]
    assert store.due(now=at(30)) == [retried, other]
    store.mark_failed(item.seq, at=at(31), error="timeout", next_attempt_at=at(60))
    assert store.pending("st1")[0] == replace(retried, attempts=2, last_error="timeout",
                                              next_attempt_at=at(60))  # fmt: skip
    store.mark_failed(item.seq, at=at(61), error="404", next_attempt_at=None)
    assert store.due(now=at(1000)) == [other]
    assert store.pending("st1") == [other]
    assert store.mark_delivered("st1", [item.jti], at=at(62)) == 1  # a late 202 still counts
    with pytest.raises(NotFound):
        store.mark_failed(other.seq + 1000, at=at(3), error="x", next_attempt_at=None)


def test_outbox_times_must_be_aware(store: Store):
    store.put_stream(make_stream(), expected_revision=0)
    naive = at(1).replace(tzinfo=None)
    for change in ("created_at", "next_attempt_at", "delivered_at", "given_up_at"):
        with pytest.raises(StoreError, match="naive"):
            store.enqueue([make_item(2), make_item(1, **{change: naive})])
    assert store.pending("st1") == []
    (item,) = store.enqueue([make_item(1)])
    with pytest.raises(StoreError, match="naive"):
        store.due(now=naive)
    with pytest.raises(StoreError, match="naive"):
        store.mark_delivered("st1", [item.jti], at=naive)
    with pytest.raises(StoreError, match="naive"):
        store.mark_failed(item.seq, at=naive, error="x", next_attempt_at=None)
    with pytest.raises(StoreError, match="naive"):
        store.mark_failed(item.seq, at=at(2), error="x", next_attempt_at=naive)
    assert store.pending("st1") == [item]


# -- sweeps ---------------------------------------------------------------------------------
def make_sweep(n: int = 1, **changes: Any) -> SweepRun:
    run = SweepRun(id=f"sw{n}", reason="publish v1", version="v1", started_at=at(n),
                   updated_at=at(n), total=10)  # fmt: skip
    return replace(run, **changes)


def test_sweep_round_trips_and_updates_optimistically(store: Store):
    assert store.get_sweep("sw1") is None
    first = store.put_sweep(make_sweep(revision=4), expected_revision=0)
    assert first == make_sweep(revision=1)
    assert store.get_sweep("sw1") == first
    with pytest.raises(ConflictError):
        store.put_sweep(make_sweep(reason="manual"), expected_revision=0)
    done = replace(first, cursor="s9", processed=10, changed=2, status="done",
                   finished_at=at(9), updated_at=at(9))  # fmt: skip
    second = store.put_sweep(done, expected_revision=1)
    assert second == replace(done, revision=2)
    with pytest.raises(ConflictError):
        store.put_sweep(replace(first, processed=5), expected_revision=1)
    assert store.get_sweep("sw1") == second
    with pytest.raises(NotFound):
        store.put_sweep(make_sweep(2), expected_revision=1)
    assert store.get_sweep("sw2") is None


def test_threads_racing_to_step_a_sweep_exactly_one_wins(store: Store):
    base = store.put_sweep(make_sweep(), expected_revision=0)
    results, errors = race(8, lambda i: store.put_sweep(
        replace(base, processed=i, cursor=f"s{i}"), expected_revision=1))  # fmt: skip
    assert len(results) == 1 and len(errors) == 7
    assert all(isinstance(e, ConflictError) for e in errors)
    assert store.get_sweep("sw1") == results[0]


def test_list_sweeps_newest_first_by_status(store: Store):
    for run in [make_sweep(1, status="done"), make_sweep(3), make_sweep(2, status="failed"),
                make_sweep(4, started_at=at(3)), make_sweep(5, status="done")]:  # fmt: skip
        store.put_sweep(run, expected_revision=0)

    def ids(**filters: Any) -> list[str]:
        return [r.id for r in store.list_sweeps(**filters)]

    assert ids() == ["sw5", "sw4", "sw3", "sw2", "sw1"]  # a started_at tie: by id
    assert ids(status="running") == ["sw4", "sw3"]
    assert ids(status="done") == ["sw5", "sw1"]
    assert ids(status="failed", limit=5) == ["sw2"]
    assert ids(limit=2) == ["sw5", "sw4"]
    assert ids(limit=0) == []
    assert ids(status="nope") == []
    store.put_sweep(replace(make_sweep(3), status="done", revision=1), expected_revision=1)
    assert ids(status="running") == ["sw4"]


def test_sweeps_with_naive_times_are_refused(store: Store):
    naive = at(1).replace(tzinfo=None)
    for change in ("started_at", "updated_at", "finished_at"):
        with pytest.raises(StoreError, match="naive"):
            store.put_sweep(make_sweep(**{change: naive}), expected_revision=0)
    assert store.get_sweep("sw1") is None


def test_sessions_after_pages_through_the_active_sessions_by_id(store: Store):
    def ids_after(cursor: str | None, limit: int) -> list[str]:
        return [s.id for s in store.sessions_after(cursor, limit=limit).sessions]

    statuses = ("active", "ended", "active", "revoked", "active")
    made = [make_session(n, status=statuses[n % 5]) for n in range(1200)]
    for session in made:
        store.create_session(session)
    active = sorted((s for s in made if s.status == "active"), key=lambda s: s.id)
    assert len(active) == 720
    seen: list[Session] = []
    cursor = None
    while (page := store.sessions_after(cursor, limit=100)).rows:
        assert len(page.sessions) == page.rows <= 100
        assert page.corrupt == []
        seen.extend(page.sessions)
        cursor = page.last
    assert seen == active  # by id as text: s0, s1, s10, s100, s1000, s1001, ...
    assert ids_after(None, limit=4) == ["s0", "s10", "s100", "s1000"]
    assert ids_after("s1001", limit=2) == ["s1002", "s1004"]
    assert ids_after("s1000x", limit=1) == ["s1002"]  # no such id
    assert store.sessions_after(active[-1].id) == SessionPage(sessions=[])
    assert store.sessions_after(None, limit=0) == SessionPage(sessions=[])
    store.update_session(replace(made[10], status="revoked"), expected_revision=0)
    assert ids_after("s1", limit=2) == ["s100", "s1000"]

    ids = [s.id for s in made]
    found = store.get_sessions([*ids, "nope"])  # more ids than SQLite takes as parameters
    assert len(found) == 1200
    assert found["s7"] == made[7]
    assert found["s10"].status == "revoked"


def test_get_sessions_reads_a_batch(store: Store):
    for n in (1, 2, 3):
        store.create_session(make_session(n))
    assert store.get_sessions([]) == {}
    assert store.get_sessions(["s3", "s1", "s1", "nope"]) == {
        "s1": make_session(1), "s3": make_session(3)
    }  # fmt: skip
    assert store.get_sessions(("nope",)) == {}


def test_update_sessions_applies_each_at_its_revision_in_one_go(store: Store):
    for n in (1, 2, 3):
        store.create_session(make_session(n))
    moved = store.update_session(make_session(2, status="ended"), expected_revision=0)
    changes = [make_session(1, path="/one"), make_session(2, path="/two"),
               make_session(3, path="/three"), make_session(9, path="/gone")]  # fmt: skip
    done = store.update_sessions(changes)
    assert [(s.id, s.revision) for s in done] == [("s1", 1), ("s3", 1)]
    assert store.get_session("s1") == replace(make_session(1, path="/one"), revision=1)
    assert store.get_session("s2") == moved  # it changed meanwhile: skipped
    assert store.get_session("s9") is None
    assert store.update_sessions([]) == []


def test_update_sessions_stores_any_text_time_and_revision_in_the_queried_columns(store: Store):
    odd = 'ü "q", {b}\\ NULL \u2028'  # what an array literal or an encoding could get wrong
    long_ago = datetime(1901, 1, 2, 3, 4, 5, 6, tzinfo=UTC)  # before the epoch: negative
    store.create_session(make_session(1))
    store.create_session(make_session(2, revision=2**40))
    done = store.update_sessions([
        make_session(1, handle=f"h{odd}", app=f"a{odd}", subject_id=f"u{odd}", status="revoked",
                     started_at=long_ago, path=odd),
        make_session(2, revision=2**40, app=f"a{odd}", subject_id=f"u{odd}", status="revoked"),
    ])  # fmt: skip
    assert [(s.id, s.revision) for s in done] == [("s1", 1), ("s2", 2**40 + 1)]
    found = store.list_sessions(app=f"a{odd}", subject_id=f"u{odd}", status="revoked")
    assert found == [done[1], done[0]]  # the latest start first: the columns were written
    assert store.get_session("s1") == done[0]
    with pytest.raises(ConflictError):  # the handle column holds the new handle
        store.create_session(make_session(3, handle=f"h{odd}"))


# -- agents: delegated sessions, approvals ---------------------------------------------------


def test_delegated_sessions_are_the_active_agent_sessions_acting_for_a_session(store: Store):
    store.create_session(make_session(1))
    for n, status in ((2, "active"), (3, "revoked"), (4, "active")):
        store.create_session(make_session(
            n, subject_type="agent", status=status,
            delegation=Delegation(subject_id="u1", session_id="s1"),
            task=Task(id=f"t{n}", purpose="pay", tools=("tool:pay",), started_at=at(n),
                      expires_at=at(n + 600), details={"limit": 100}),
        ))  # fmt: skip
    other = Delegation(subject_id="u9", session_id="s9")
    store.create_session(make_session(5, subject_type="agent", delegation=other))
    found = store.delegated_sessions("s1")
    assert [s.id for s in found] == ["s2", "s4"]
    assert found[0].task is not None and found[0].task.details == {"limit": 100}
    assert store.delegated_sessions("s2") == []


def make_approval(n: int = 1, **changes: Any) -> Approval:
    approval = Approval(
        id=f"ap{n}", challenge_id=f"ch{n}", method="manager_approval", app="ops",
        session_id=f"s{n}", agent_type="agent", agent_id="bot", user_id="u1",
        action="tool:transfer_funds", request={"action": {"properties": {"amount": 5000}}},
        created_at=at(n), expires_at=at(n + 300),
    )  # fmt: skip
    return replace(approval, **changes)


def test_approvals_are_created_once_answered_at_their_revision_and_listed_per_user(
    store: Store,
):
    made = store.put_approval(make_approval(1, revision=7), expected_revision=0)
    assert made == make_approval(1, revision=1)
    with pytest.raises(ConflictError):
        store.put_approval(make_approval(1), expected_revision=0)
    with pytest.raises(ConflictError):  # one approval per challenge and method
        store.put_approval(make_approval(1, id="ap-other"), expected_revision=0)
    store.put_approval(make_approval(2, user_id="u2"), expected_revision=0)
    store.put_approval(make_approval(3), expected_revision=0)
    answered = store.put_approval(
        replace(made, status="approved", answered_at=at(10), answered_session="su1"),
        expected_revision=1,
    )
    assert answered.revision == 2
    with pytest.raises(ConflictError):  # answered meanwhile: a second answer loses
        store.put_approval(replace(made, status="rejected"), expected_revision=1)
    with pytest.raises(NotFound):
        store.put_approval(make_approval(9), expected_revision=1)
    assert store.get_approval("ap1") == answered
    assert store.get_approval("nope") is None
    assert store.find_approval("ch1", "manager_approval") == answered
    assert store.find_approval("ch1", "other") is None
    assert [a.id for a in store.list_approvals("u1")] == ["ap3", "ap1"]
    assert [a.id for a in store.list_approvals("u1", status="pending")] == ["ap3"]
    assert [a.id for a in store.list_approvals("u1", limit=1)] == ["ap3"]
    assert [a.id for a in store.list_approvals("u2")] == ["ap2"]


def test_count_decisions_counts_a_subjects_decisions_since_a_time(store: Store):
    store.record([make_decision(n) for n in range(1, 6)])
    subject = make_decision(1).subject_id
    assert subject is not None
    total = sum(1 for n in range(1, 6) if make_decision(n).subject_id == subject)
    assert store.count_decisions(subject, since=at(0)) == total
    assert store.count_decisions(subject, since=at(1000)) == 0
    assert store.count_decisions("nobody", since=at(0)) == 0


def test_sessions_by_email_finds_the_active_sessions_carrying_an_address(store: Store):
    store.create_session(make_session(1, subject_properties={"email": "Ana@Example.com"}))
    store.create_session(make_session(2, subject_properties={"email": "ana@example.com"}))
    store.create_session(make_session(3, subject_properties={"email": "ana@example.com"},
                                      status="revoked"))  # fmt: skip
    store.create_session(make_session(4, subject_properties={"email": 7}))
    store.create_session(make_session(5, subject_properties={}))
    assert [s.id for s in store.sessions_by_email("ANA@example.com")] == ["s1", "s2"]
    assert [s.id for s in store.sessions_by_email("ana@example.com", limit=1)] == ["s1"]
    assert store.sessions_by_email("bo@example.com") == []


def test_purging_the_decision_log_drops_approvals_a_day_older_than_it(store: Store):
    day = 86_400
    store.put_approval(make_approval(1, created_at=at(0), expires_at=at(300)),
                       expected_revision=0)  # fmt: skip
    store.put_approval(make_approval(2, created_at=at(day + 10), expires_at=at(day + 300)),
                       expected_revision=0)  # fmt: skip
    store.purge_before(at(day + 5))  # the first was made more than a day before: gone
    assert store.get_approval("ap1") is None
    assert store.get_approval("ap2") is not None
    store.purge_before(at(day + 11))  # the second, less than a day before: kept
    assert store.get_approval("ap2") is not None
