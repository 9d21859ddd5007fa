"""The inventory of services and agents over real HTTP: a real server on a real SQLite file,
the identities written into that file by the store directly; then `juncture identities`
against the same server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
from typer.testing import CliRunner

from juncture.cli import app
from juncture.service.inventory import InventorySettings, identity
from juncture.store.sqlite import SqliteStore

from .server import Server
from .test_inventory import ALL, populate

ADMIN_URL = "/admin/v1/identities"


class Live:
    def __init__(self, server: Server, now: datetime) -> None:
        self.server = server
        self.now = now  # what the data was made relative to
        self.admin = server.client(server.admin_token())

    def get(self, path: str = ADMIN_URL, **params: Any) -> httpx.Response:
        return self.admin.get(path, params=params)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("inventory")
    server = Server(root / "j.db", None).start()
    now = datetime.now(UTC)
    store = SqliteStore(root / "j.db")
    try:
        populate(store, now)
    finally:
        store.close()
    try:
        yield Live(server, now)
    finally:
        server.stop()


def when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def keys(body: dict[str, Any]) -> list[str]:
    return [f"{i['type']}:{i['id']}" for i in body["identities"]]


def test_every_service_and_agent_is_listed_with_its_flags(live: Live) -> None:
    answer = live.get()
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert keys(body) == ALL and body["next"] is None  # alice (a user) is never listed
    flags = {f"{i['type']}:{i['id']}": i["flags"] for i in body["identities"]}
    assert flags == {
        "agent:helper": ["grants_outlive_task"],
        "agent:stale-task": ["grants_outlive_task", "no_owner"],
        "service:billing": [],
        "service:dormant": ["unused"],
        "service:fresh": [],
        "service:legacy": ["key_too_old", "no_owner", "unused"],
    }
    for item in body["identities"]:
        assert sorted(item["flag_reasons"]) == item["flags"]
        for credential in item["credentials"]:
            assert set(credential) == {
                "id", "kind", "label", "created_at", "age_days", "expires_at", "expired",
                "last_used_at", "last_used_from", "scopes",
            }  # fmt: skip


def test_the_fields_of_an_identity(live: Live) -> None:
    now = live.now
    listed = {f"{i['type']}:{i['id']}": i for i in live.get().json()["identities"]}
    billing = listed["service:billing"]
    assert live.get(f"{ADMIN_URL}/service/billing").json() == billing
    assert set(billing) == {
        "type", "id", "status", "owner", "description", "created_at", "credentials",
        "last_used_at", "active_sessions", "live_grants", "decisions_24h", "flags",
        "flag_reasons",
    }  # fmt: skip
    assert (billing["type"], billing["id"], billing["status"]) == ("service", "billing", "active")
    assert (billing["owner"], billing["description"]) == ("team:payments", "charges cards")
    assert when(billing["created_at"]) == now - timedelta(days=60)
    jwt, key = billing["credentials"]  # oldest first
    assert jwt == {
        "id": "cr_billing_jwt",
        "kind": "client_assertion",
        "label": "",
        "created_at": jwt["created_at"],
        "age_days": 30,
        "expires_at": None,
        "expired": False,
        "last_used_at": jwt["last_used_at"],
        "last_used_from": "10.0.0.6",
        "scopes": [],
    }
    assert when(jwt["created_at"]) == now - timedelta(days=30)
    assert when(jwt["last_used_at"]) == now - timedelta(days=2)
    assert (key["id"], key["kind"], key["label"], key["age_days"]) == (
        "cr_billing_key", "api_key", "prod", 10,
    )  # fmt: skip
    assert when(key["expires_at"]) == now + timedelta(days=80) and key["expired"] is False
    assert (key["last_used_from"], key["scopes"]) == ("10.0.0.5", ["invoice.*"])
    assert when(billing["last_used_at"]) == now - timedelta(hours=1)
    assert billing["active_sessions"] == 1
    [grant] = billing["live_grants"]  # not the expired allow, the reroute, the unscoped one
    assert when(grant["expires_at"]) == now + timedelta(hours=1)
    assert {k: v for k, v in grant.items() if k != "expires_at"} == {
        "session_id": "s_billing",
        "checkpoint": "invoice.read",
        "scopes": ["invoices:read"],
        "decision": "d_b1",
    }
    assert billing["decisions_24h"] == 3  # not the one 30 hours old
    assert (billing["flags"], billing["flag_reasons"]) == ([], {})
    assert "record" not in json.dumps(live.get().json())

    legacy = listed["service:legacy"]
    assert legacy["owner"] is None and legacy["active_sessions"] == 0
    assert legacy["flag_reasons"]["key_too_old"] == (
        "api key cr_legacy_key is 200 days old (rotation period 90 days)"
    )
    assert legacy["flag_reasons"]["unused"] == (
        "no credential used for 120 days (threshold 90 days)"
    )
    gone = [c for c in legacy["credentials"] if c["id"] == "cr_legacy_gone"]
    assert gone[0]["expired"] is True  # an expired key is not "too old"
    dormant = listed["service:dormant"]
    assert dormant["status"] == "disabled" and dormant["last_used_at"] is None
    assert dormant["flag_reasons"]["unused"].startswith("no credential ever used, created 200")
    helper = listed["agent:helper"]
    assert helper["active_sessions"] == 2
    assert [(g["session_id"], g["checkpoint"], g["scopes"]) for g in helper["live_grants"]] == [
        ("s_helper_long", "tool:refund", ["refund"]),
        ("s_helper_ok", "tool:search", ["search"]),
    ]
    assert "s_helper_long" in helper["flag_reasons"]["grants_outlive_task"]
    stale = listed["agent:stale-task"]
    assert "task t_done expired" in stale["flag_reasons"]["grants_outlive_task"]

    # what the server says is what the inventory computes over the same file
    store = SqliteStore(live.server.db)
    try:
        for name, item in listed.items():
            kind, _, sid = name.partition(":")
            local = identity(store, live.now, InventorySettings(), kind, sid)
            assert msgspec.json.decode(msgspec.json.encode(local)) == item, name
    finally:
        store.close()


def test_filters_and_pages(live: Live) -> None:
    assert keys(live.get(type="agent").json()) == ["agent:helper", "agent:stale-task"]
    assert keys(live.get(type="service").json()) == ALL[2:]
    assert keys(live.get(flag="no_owner").json()) == ["agent:stale-task", "service:legacy"]
    assert keys(live.get(flag="key_too_old").json()) == ["service:legacy"]
    assert keys(live.get(flag="unused").json()) == ["service:dormant", "service:legacy"]
    assert keys(live.get(flag="grants_outlive_task").json()) == [
        "agent:helper",
        "agent:stale-task",
    ]
    assert keys(live.get(type="service", flag="no_owner").json()) == ["service:legacy"]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    pages = []
    while True:
        body = live.get(**params).json()
        pages.append(keys(body))
        seen += keys(body)
        if body["next"] is None:
            break
        assert body["next"] == seen[-1]
        params["after"] = body["next"]
    assert seen == ALL and pages == [ALL[0:2], ALL[2:4], ALL[4:6]]
    first = live.get(flag="no_owner", limit=1).json()
    assert keys(first) == ["agent:stale-task"] and first["next"] == "agent:stale-task"
    second = live.get(flag="no_owner", limit=1, after=first["next"]).json()
    assert keys(second) == ["service:legacy"] and second["next"] is None


@pytest.mark.parametrize(
    "params",
    [
        {"type": "user"},
        {"type": "robot"},
        {"flag": "too_old"},
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
        {"after": "garbage"},
        {"after": "user:alice"},
    ],
)
def test_bad_queries_are_400(live: Live, params: dict[str, str]) -> None:
    answer = live.get(**params)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "request.invalid"


def test_one_identity_and_a_missing_one(live: Live) -> None:
    helper = live.get(f"{ADMIN_URL}/agent/helper")
    assert helper.status_code == 200 and helper.json()["flags"] == ["grants_outlive_task"]
    for path in ("service/nobody", "user/alice", "agent/billing", "robot/x"):
        missing = live.get(f"{ADMIN_URL}/{path}")
        assert missing.status_code == 404, path
        assert missing.json()["code"] == "identity.not_found"


def test_an_admin_key_with_read_is_needed(live: Live) -> None:
    for path in (ADMIN_URL, f"{ADMIN_URL}/service/billing"):
        bare = httpx.get(live.server.url + path, timeout=10)
        assert (bare.status_code, bare.json()["code"]) == (401, "auth.missing")
        wrong = httpx.get(
            live.server.url + path,
            headers={"Authorization": "Bearer jct_adm_000000000000.nope"},
            timeout=10,
        )
        assert wrong.status_code == 401
    made = CliRunner().invoke(
        app, ["admin-key", "--db", str(live.server.db), "--name", "ci", "--scope", "publish"]
    )
    assert made.exit_code == 0, made.output
    publisher = live.server.client(made.output.strip())
    refused = publisher.get(ADMIN_URL)
    assert (refused.status_code, refused.json()["code"]) == (403, "auth.forbidden")


def cli(live: Live, *args: str) -> Any:
    env = {"JUNCTURE_ADMIN_TOKEN": live.server.admin_token()}
    return CliRunner().invoke(app, ["identities", "--server", live.server.url, *args], env=env)


def test_the_cli_table(live: Live) -> None:
    shown = cli(live)
    assert shown.exit_code == 0, shown.output
    rows = {line.split("│")[2].strip(): line for line in shown.output.splitlines() if "│" in line}
    assert set(ALL) <= {f"{r.split('│')[1].strip()}:{k}" for k, r in rows.items()}
    legacy = rows["legacy"]
    for text in ("service", "none", "2 (oldest 300d)", "key_too_old no_owner unused"):
        assert text in legacy, (text, legacy)
    billing = rows["billing"]
    assert "team:payments" in billing and "2 (oldest 30d)" in billing
    assert [c.strip() for c in billing.split("│")[6:9]] == ["1", "1", "3"]
    assert "never" in rows["dormant"] and "unused" in rows["dormant"]
    assert "6 identities, 4 flagged" in shown.output


def test_the_cli_follows_pages_filters_and_prints_json(live: Live) -> None:
    paged = cli(live, "--json", "--limit", "1")
    assert paged.exit_code == 0, paged.output
    body = json.loads(paged.output)
    assert keys(body) == ALL  # six pages of one
    assert body["identities"] == live.get().json()["identities"]
    flagged = cli(live, "--flag", "no_owner", "--json")
    assert keys(json.loads(flagged.output)) == ["agent:stale-task", "service:legacy"]
    agents = cli(live, "--type", "agent", "--flag", "grants_outlive_task")
    assert agents.exit_code == 0, agents.output
    assert "helper" in agents.output and "stale-task" in agents.output
    assert "billing" not in agents.output and "2 identities, 2 flagged" in agents.output
    nothing = cli(live, "--type", "agent", "--flag", "key_too_old")
    assert nothing.exit_code == 0 and "no identities flagged key_too_old" in nothing.output
    bad = cli(live, "--flag", "too_old")
    assert bad.exit_code == 1 and "request.invalid" in bad.output
    no_key = CliRunner().invoke(
        app, ["identities", "--server", live.server.url], env={"JUNCTURE_ADMIN_TOKEN": ""}
    )
    assert no_key.exit_code == 2
