"""The inventory of non-human identities over a real SQLite store: every field, every flag,
filters and paging (service/inventory.py). `populate` is shared with the HTTP test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from juncture.records import (
    Authenticator,
    DecisionRecord,
    Session,
    Standing,
    Subject,
    Task,
)
from juncture.service.inventory import (
    FLAGS,
    IdentityNotFound,
    InventoryError,
    InventorySettings,
    identity,
    inventory,
)
from juncture.store.protocols import Store
from juncture.store.sqlite import SqliteStore

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
DEFAULTS = InventorySettings()
ALL = [
    "agent:helper",
    "agent:stale-task",
    "service:billing",
    "service:dormant",
    "service:fresh",
    "service:legacy",
]


def days(n: float) -> timedelta:
    return timedelta(days=n)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def subject(store: Store, kind: str, sid: str, created: datetime, **changes: Any) -> None:
    made = Subject(type=kind, id=sid, created_at=created, updated_at=created, **changes)
    store.put_subject(made, expected_revision=0)


def credential(
    store: Store, owner: tuple[str, str], cid: str, kind: str, created: datetime, **changes: Any
) -> None:
    store.create_authenticator(
        Authenticator(
            id=cid,
            subject_type=owner[0],
            subject_id=owner[1],
            method=kind.replace("_", "-"),
            kind=kind,
            created_at=created,
            record=b"{}",
            confirmed_at=created,
            **changes,
        )
    )


def session(store: Store, sid: str, owner: tuple[str, str], now: datetime, **changes: Any) -> None:
    store.create_session(
        Session(
            id=sid,
            app="app_1",
            subject_type=owner[0],
            subject_id=owner[1],
            started_at=now - hours(2),
            updated_at=now - hours(1),
            handle=f"h_{sid}",
            **changes,
        )
    )


def grant(now: datetime, expires: datetime | None, *scopes: str, **changes: Any) -> Standing:
    fields: dict[str, Any] = {
        "outcome": "allow",
        "scopes": scopes,
        "decided_at": now - hours(1),
        "expires_at": expires,
        "version": "sha256:v1",
        "decision": "d_grant",
    }
    return Standing(**{**fields, **changes})


def task(now: datetime, tid: str, expires: datetime) -> Task:
    return Task(id=tid, purpose="triage", started_at=now - hours(1), expires_at=expires)


def decision(n: int, subject_id: str, at: datetime) -> DecisionRecord:
    return DecisionRecord(
        id=f"d{subject_id}{n:03d}",
        at=at,
        app="app_1",
        subject_type="service",
        subject_id=subject_id,
        session_id=None,
        action="invoice.read",
        resource=None,
        outcome="allow",
        reason=None,
        version="sha256:v1",
        latency_us=7,
        decision={"outcome": "allow"},
    )


def populate(store: Store, now: datetime) -> None:
    """Six identities (and a user), relative to ``now``:

    - service:billing: owned, fresh keys used lately, one live grant (and standing outcomes
      that are no grants), 3 decisions in the last 24 hours: no flag;
    - service:legacy: no owner, a 200-day-old key last used 120 days ago, an expired older key:
      no_owner, unused, key_too_old;
    - service:fresh: owned, made 5 days ago, no credential: no flag;
    - service:dormant: disabled, made 200 days ago, a 50-day-old key never used: unused;
    - agent:helper: owned, two active sessions, one whose grant outlives its task (and an ended
      session with a grant, ignored): grants_outlive_task;
    - agent:stale-task: no owner, a live grant on a session whose task expired:
      grants_outlive_task, no_owner.
    """
    billing, legacy = ("service", "billing"), ("service", "legacy")
    subject(store, *billing, now - days(60), owner="team:payments", description="charges cards")
    credential(
        store, billing, "cr_billing_key", "api_key", now - days(10), label="prod",
        last_used_at=now - hours(1), last_used_from="10.0.0.5", expires_at=now + days(80),
        scopes=("invoice.*",), lookup="k_billing",
    )  # fmt: skip
    credential(
        store, billing, "cr_billing_jwt", "client_assertion", now - days(30),
        last_used_at=now - days(2), last_used_from="10.0.0.6",
    )  # fmt: skip
    session(
        store, "s_billing", billing, now,
        standing={
            "invoice.read": grant(now, now + hours(1), "invoices:read", decision="d_b1"),
            "invoice.list": grant(now, now - hours(1), "invoices:list"),  # expired
            "dashboard": grant(now, now + hours(1)),  # no scopes: not a grant
            "reports": grant(now, now + hours(1), "reports:summary", outcome="reroute"),
            "forever": grant(now, None, "all"),  # no expiry: not a grant
        },
    )  # fmt: skip
    store.record(
        [
            decision(1, "billing", now - hours(1)),
            decision(2, "billing", now - hours(5)),
            decision(3, "billing", now - hours(23)),
            decision(4, "billing", now - hours(30)),  # older than a day
        ]
    )

    subject(store, *legacy, now - days(400), description="the old batch job")
    credential(
        store, legacy, "cr_legacy_key", "api_key", now - days(200),
        last_used_at=now - days(120), last_used_from="192.0.2.7",
    )  # fmt: skip
    credential(
        store, legacy, "cr_legacy_gone", "api_key", now - days(300),
        expires_at=now - days(100),
    )  # fmt: skip

    subject(store, "service", "fresh", now - days(5), owner="user:ana")

    dormant = ("service", "dormant")
    subject(store, *dormant, now - days(200), owner="team:ops", status="disabled")
    credential(store, dormant, "cr_dormant_jwt", "client_assertion", now - days(50))

    helper = ("agent", "helper")
    subject(store, *helper, now - days(20), owner="user:ana", description="support agent")
    credential(
        store, helper, "cr_helper_key", "api_key", now - days(3), last_used_at=now - hours(2)
    )
    session(
        store, "s_helper_ok", helper, now,
        task=task(now, "t_ok", now + hours(2)),
        standing={"tool:search": grant(now, now + hours(1), "search")},
    )  # fmt: skip
    session(
        store, "s_helper_long", helper, now,
        task=task(now, "t_short", now + hours(0.5)),
        standing={"tool:refund": grant(now, now + hours(3), "refund", decision="d_long")},
    )  # fmt: skip
    session(
        store, "s_helper_ended", helper, now, status="ended",
        task=task(now, "t_old", now + hours(0.5)),
        standing={"tool:refund": grant(now, now + hours(3), "refund")},
    )  # fmt: skip

    stale = ("agent", "stale-task")
    subject(store, *stale, now - days(10))
    credential(store, stale, "cr_stale_key", "api_key", now - days(9), last_used_at=now - days(1))
    session(
        store, "s_stale", stale, now,
        task=task(now, "t_done", now - hours(0.25)),
        standing={"tool:send": grant(now, now + hours(1), "send")},
    )  # fmt: skip

    # People are never listed, whatever they hold.
    subject(store, "user", "alice", now - days(500))
    credential(store, ("user", "alice"), "cr_alice_key", "api_key", now - days(400))
    session(
        store, "s_alice", ("user", "alice"), now,
        standing={"login": grant(now, now + hours(1), "app")},
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "inv.db")
    populate(opened, NOW)
    try:
        yield opened
    finally:
        opened.close()


def keys(found: list[dict[str, Any]]) -> list[str]:
    return [f"{i['type']}:{i['id']}" for i in found]


def by_key(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{i['type']}:{i['id']}": i for i in found}


def test_every_identity_with_its_flags(store: SqliteStore) -> None:
    found, after = inventory(store, NOW, DEFAULTS)
    assert keys(found) == ALL and after is None
    flags = {k: v["flags"] for k, v in by_key(found).items()}
    assert flags == {
        "agent:helper": ["grants_outlive_task"],
        "agent:stale-task": ["grants_outlive_task", "no_owner"],
        "service:billing": [],
        "service:dormant": ["unused"],
        "service:fresh": [],
        "service:legacy": ["key_too_old", "no_owner", "unused"],
    }
    for item in found:
        assert sorted(item["flag_reasons"]) == item["flags"]


def test_the_fields_of_one_identity(store: SqliteStore) -> None:
    billing = identity(store, NOW, DEFAULTS, "service", "billing")
    assert billing == {
        "type": "service",
        "id": "billing",
        "status": "active",
        "owner": "team:payments",
        "description": "charges cards",
        "created_at": NOW - days(60),
        "credentials": [
            {
                "id": "cr_billing_jwt",
                "kind": "client_assertion",
                "label": "",
                "created_at": NOW - days(30),
                "age_days": 30,
                "expires_at": None,
                "expired": False,
                "last_used_at": NOW - days(2),
                "last_used_from": "10.0.0.6",
                "scopes": [],
            },
            {
                "id": "cr_billing_key",
                "kind": "api_key",
                "label": "prod",
                "created_at": NOW - days(10),
                "age_days": 10,
                "expires_at": NOW + days(80),
                "expired": False,
                "last_used_at": NOW - hours(1),
                "last_used_from": "10.0.0.5",
                "scopes": ["invoice.*"],
            },
        ],
        "last_used_at": NOW - hours(1),
        "active_sessions": 1,
        "live_grants": [
            {
                "session_id": "s_billing",
                "checkpoint": "invoice.read",
                "scopes": ["invoices:read"],
                "expires_at": NOW + hours(1),
                "decision": "d_b1",
            }
        ],
        "decisions_24h": 3,
        "flags": [],
        "flag_reasons": {},
    }
    assert "record" not in str(billing)


def test_reasons_say_what_is_wrong(store: SqliteStore) -> None:
    legacy = identity(store, NOW, DEFAULTS, "service", "legacy")
    reasons = legacy["flag_reasons"]
    assert (
        reasons["key_too_old"] == "api key cr_legacy_key is 200 days old (rotation period 90 days)"
    )
    assert reasons["unused"] == "no credential used for 120 days (threshold 90 days)"
    assert "nobody owns it" in reasons["no_owner"]
    expired = [c for c in legacy["credentials"] if c["id"] == "cr_legacy_gone"]
    assert expired[0]["expired"] is True and expired[0]["age_days"] == 300
    assert legacy["last_used_at"] == NOW - days(120)
    dormant = identity(store, NOW, DEFAULTS, "service", "dormant")
    assert dormant["status"] == "disabled"
    assert dormant["flag_reasons"]["unused"] == (
        "no credential ever used, created 200 days ago (threshold 90 days)"
    )
    helper = identity(store, NOW, DEFAULTS, "agent", "helper")
    assert helper["active_sessions"] == 2  # the ended one is not counted
    assert [(g["session_id"], g["checkpoint"]) for g in helper["live_grants"]] == [
        ("s_helper_long", "tool:refund"),
        ("s_helper_ok", "tool:search"),
    ]
    outlive = helper["flag_reasons"]["grants_outlive_task"]
    assert "s_helper_long" in outlive and "t_short" in outlive and "s_helper_ok" not in outlive
    stale = identity(store, NOW, DEFAULTS, "agent", "stale-task")
    assert "task t_done expired" in stale["flag_reasons"]["grants_outlive_task"]


def test_the_thresholds_are_settings(store: SqliteStore) -> None:
    strict = InventorySettings(key_rotation_days=5, unused_days=1)
    billing = identity(store, NOW, strict, "service", "billing")
    assert billing["flags"] == ["key_too_old"]
    assert billing["flag_reasons"]["key_too_old"] == (
        "client assertion cr_billing_jwt is 30 days old; api key cr_billing_key is 10 days old"
        " (rotation period 5 days)"
    )
    lax = InventorySettings(key_rotation_days=365, unused_days=365)
    assert identity(store, NOW, lax, "service", "legacy")["flags"] == ["no_owner"]
    assert msgspec.json.decode(b'{"unused_days": 7}', type=InventorySettings).unused_days == 7
    for bad in (b'{"unused_days": 0}', b'{"key_rotation_days": "x"}', b'{"other": 1}'):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(bad, type=InventorySettings)
    with pytest.raises(ValueError):
        InventorySettings(key_rotation_days=0)


def test_filters(store: SqliteStore) -> None:
    agents, _ = inventory(store, NOW, DEFAULTS, subject_type="agent")
    assert keys(agents) == ["agent:helper", "agent:stale-task"]
    services, _ = inventory(store, NOW, DEFAULTS, subject_type="service")
    assert keys(services) == ALL[2:]
    expected = {
        "no_owner": ["agent:stale-task", "service:legacy"],
        "unused": ["service:dormant", "service:legacy"],
        "key_too_old": ["service:legacy"],
        "grants_outlive_task": ["agent:helper", "agent:stale-task"],
    }
    assert set(expected) == set(FLAGS)
    for flag, names in expected.items():
        assert keys(inventory(store, NOW, DEFAULTS, flag=flag)[0]) == names, flag
    both, _ = inventory(store, NOW, DEFAULTS, subject_type="service", flag="no_owner")
    assert keys(both) == ["service:legacy"]


def test_pages_follow_one_another(store: SqliteStore) -> None:
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        found, after = inventory(store, NOW, DEFAULTS, limit=4, after=after)
        seen += keys(found)
        pages += 1
        if after is None:
            break
        assert after == seen[-1]
    assert seen == ALL and pages == 2
    flagged, after = inventory(store, NOW, DEFAULTS, flag="no_owner", limit=1)
    assert keys(flagged) == ["agent:stale-task"] and after == "agent:stale-task"
    flagged, after = inventory(store, NOW, DEFAULTS, flag="no_owner", limit=1, after=after)
    assert keys(flagged) == ["service:legacy"] and after is None
    # a token of one type, with a filter of the other
    rest, _ = inventory(store, NOW, DEFAULTS, subject_type="service", after="agent:zzz")
    assert keys(rest) == ALL[2:]
    assert inventory(store, NOW, DEFAULTS, subject_type="agent", after="service:a") == ([], None)


def test_a_flag_filter_reads_a_bounded_number_of_subjects(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import juncture.service.inventory as module

    monkeypatch.setattr(module, "SCAN_BUDGET", 2)
    found, after = inventory(store, NOW, DEFAULTS, flag="key_too_old")
    assert found == [] and after == "agent:stale-task"  # two read, none flagged: go on
    found, after = inventory(store, NOW, DEFAULTS, flag="key_too_old", after=after)
    assert found == [] and after == "service:dormant"
    found, after = inventory(store, NOW, DEFAULTS, flag="key_too_old", after=after)
    assert keys(found) == ["service:legacy"] and after is None


def test_refusals(store: SqliteStore) -> None:
    for changes in (
        {"subject_type": "user"},
        {"subject_type": "robot"},
        {"flag": "too_old"},
        {"limit": 0},
        {"limit": 1001},
        {"after": "nocolon"},
        {"after": "user:alice"},
    ):
        with pytest.raises(InventoryError) as caught:
            inventory(store, NOW, DEFAULTS, **changes)
        assert (caught.value.code, caught.value.status) == ("request.invalid", 400), changes
    for kind, sid in (("service", "nobody"), ("user", "alice"), ("agent", "billing")):
        with pytest.raises(IdentityNotFound) as missing:
            identity(store, NOW, DEFAULTS, kind, sid)
        assert (missing.value.code, missing.value.status) == ("identity.not_found", 404)
