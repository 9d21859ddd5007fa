"""Attacks on sessions and subjects, over real HTTP against `juncture serve` on SQLite.

A malformed session handle never means "no session"; a disabled subject is denied on every
route that decides; recovery codes (or any authenticator) cannot be planted from a weaker
session; ended, revoked and disabled are final.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

import httpx
import pytest

from service.test_methods_http import (
    PASSWORD,
    World,
    journey,
    next_code,
    step_up,
    totp_enrolled,
)
from service.test_methods_http import world as world  # the fixture: alice, a password


def evaluation(world: World, action: str, context: dict[str, Any],
               subject: str = "alice") -> httpx.Response:  # fmt: skip
    return world.app.post("/access/v1/evaluation", json={
        "subject": {"type": "user", "id": subject}, "action": {"name": action},
        "resource": {"type": "account", "id": subject}, "context": context})  # fmt: skip


def store_rows(world: World) -> dict[str, list[Any]]:
    """The rows an app's request could change (read from the SQLite file itself)."""
    uri = f"file:{world.server.db}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        return {
            table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("sessions", "challenges", "authenticators", "failures", "subjects")
        }


# -- a malformed session handle ------------------------------------------------------------------


@pytest.mark.parametrize("handle", ["", 0, 12345, [], ["s"], {}, {"id": "x"}, True, None,
                                    "s-1", "s_" + "0" * 31, " s_" + "0" * 32])  # fmt: skip
def test_malformed_session_handle_is_refused_not_sessionless(world: World, handle: Any) -> None:
    """I1: a revoked session's holder sending a malformed handle gets 400, never a sessionless
    `allow` on an open checkpoint."""
    session = world.logged_in()
    ended = world.app.post(f"/v1/sessions/{session}/end", json={"revoke_reason": "stolen"})
    assert ended.status_code == 200
    # `login` is open to anyone who proves a password: sessionless, nothing is proven
    for context, properties in (({"session_id": handle}, {}), ({}, {"session_id": handle})):
        answer = world.app.post("/access/v1/evaluation", json={
            "subject": {"type": "user", "id": "alice", "properties": properties},
            "action": {"name": "unknown"}, "resource": {"type": "account", "id": "alice"},
            "context": context})  # fmt: skip
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "request.invalid"
        batch = world.app.post("/access/v1/evaluations", json={
            "subject": {"type": "user", "id": "alice", "properties": properties},
            "resource": {"type": "account", "id": "alice"}, "context": context,
            "evaluations": [{"action": {"name": "login"}}]})  # fmt: skip
        assert batch.status_code == 200
        item = batch.json()["evaluations"][0]
        assert item["decision"] is False and item["context"]["error"]["code"] == "request.invalid"


def test_unknown_well_formed_session_handle_is_404(world: World) -> None:
    answer = evaluation(world, "login", {"session_id": "s_" + "0" * 32})
    assert (answer.status_code, answer.json()["code"]) == (404, "session.not_found")


# -- a disabled subject, on every route that decides ----------------------------------------------

#: Every POST route an app calls, and whether it decides (asks a journey) for a subject.
DECIDES = {
    "/access/v1/evaluation", "/access/v1/evaluations", "/access/v1/search/subject",
    "/access/v1/search/resource", "/access/v1/search/action", "/v1/sessions",
    "/v1/sessions/{session_id}/signals", "/v1/sessions/{session_id}/task",
    "/v1/challenges/{challenge_id}/verify", "/v1/challenges/{challenge_id}/start",
    "/v1/subjects/{subject_id}/authenticators", "/v1/approvals/{approval_id}",
}  # fmt: skip
DECIDES_NOT = {
    "/v1/sessions/{session_id}/end": "ends a session; decides nothing",
    "/v1/subjects/{subject_id}/authenticators/{authenticator_id}/confirm":
        "needs a live session of the subject (a disabled one has none)",
    "/ssf/v1/events": "a transmitter's events, not an app's request",
}  # fmt: skip


def test_disabled_subject_denied_on_every_route_that_decides(world: World) -> None:
    """I1: disabled means deny on every entry path, sessionless AuthZEN calls included (the
    lesson of authentik CVE-2024-38371 / CVE-2025-64521)."""
    spec = httpx.get(f"{world.server.url}/openapi.json").json()
    posts = {p for p, ops in spec["paths"].items() if "post" in ops
             and (p.startswith(("/access/", "/v1/")))}  # fmt: skip
    assert posts - DECIDES - set(DECIDES_NOT) == set(), "a new route: does it decide?"

    browse = journey().replace("  change_email:", "  browse: [{allow: {}}]\n  change_email:")
    published = world.admin.post("/admin/v1/versions", json={"files": {
        "acct.yaml": browse, "data/entities.yaml": "resources: [{type: account, id: alice}]\n"},
        "activate": True})  # fmt: skip
    assert published.status_code == 201, published.text
    session = world.logged_in()
    pending = step_up(world, session)["challenge_id"]
    subject = {"type": "user", "id": "alice"}
    resource = {"type": "account", "id": "alice"}
    searches = (
        ("subject", {"subject": {"type": "user"}, "action": {"name": "browse"},
                     "resource": resource}),
        ("resource", {"subject": subject, "action": {"name": "browse"},
                      "resource": {"type": "account"}}),
        ("action", {"subject": subject, "resource": resource}),
    )  # fmt: skip
    for kind, body in searches:  # before: browse is open to alice, sessionless
        found = world.app.post(f"/access/v1/search/{kind}", json=body)
        assert found.status_code == 200 and found.json()["results"] != [], (kind, found.text)
    assert evaluation(world, "browse", {}).json()["decision"] is True
    disabled = world.admin.patch("/admin/v1/subjects/alice", json={"status": "disabled"})
    assert disabled.status_code == 200, disabled.text

    for path, body in (
        ("/access/v1/evaluation", {"subject": subject, "action": {"name": "browse"},
                                   "resource": resource}),
        ("/access/v1/evaluations", {"subject": subject, "resource": resource,
                                    "evaluations": [{"action": {"name": "browse"}}]}),
    ):  # fmt: skip
        answer = world.app.post(path, json=body)
        assert answer.status_code == 200, answer.text
        decided = answer.json().get("evaluations", [answer.json()])[0]
        assert decided["decision"] is False
        assert decided["context"]["reason"] == "subject_disabled"
    for kind, body in searches:
        found = world.app.post(f"/access/v1/search/{kind}", json=body)
        assert found.status_code == 200, found.text
        assert found.json()["results"] == [], (kind, found.text)
    started = world.app.post("/v1/sessions", json={"subject": subject})
    assert (started.status_code, started.json()["code"]) == (403, "subject.disabled")
    for path, body in (
        (f"/v1/sessions/{session}/signals", {"context": {"context": {"x": 1}}}),
        (f"/v1/sessions/{session}/task", {"task": {"id": "t", "purpose": "p"}}),
        (f"/v1/challenges/{pending}/verify", {"method": "recovery", "proof": "ABCD-EFGH"}),
        (f"/v1/challenges/{pending}/start", {"method": "email"}),
        ("/v1/subjects/alice/authenticators", {"session_id": session, "method": "totp"}),
        ("/v1/approvals/ap_" + "0" * 32, {"session_id": session, "answer": "approve"}),
    ):
        refused = world.app.post(path, json=body)
        assert refused.status_code in (403, 404, 409), (path, refused.text)


# -- recovery codes from a weaker session -------------------------------------------------------


def test_recovery_codes_cannot_be_replaced_from_a_password_only_session(world: World) -> None:
    """I2: replacing the victim's recovery codes needs the strongest factor the subject has,
    freshly; the codes a password thief would plant are never made."""
    first = world.logged_in()
    phone = totp_enrolled(world, first)
    thief = world.logged_in()  # the password alone
    before = store_rows(world)["authenticators"]
    for method in ("recovery", "password"):
        given = {"session_id": thief, "method": method, "password": "a new password of mine"}
        answer = world.app.post("/v1/subjects/alice/authenticators", json=given)
        assert answer.status_code == 200, answer.text
        decision = answer.json()["decision"]
        assert decision["outcome"] == "step_up" and decision["step_up"]["aal"] == 2
        assert "shown" not in answer.json()
    assert store_rows(world)["authenticators"] == before
    # the second factor, fresh, opens it
    asked = world.app.post("/v1/subjects/alice/authenticators",
                           json={"session_id": thief, "method": "recovery"})  # fmt: skip
    challenge = asked.json()["decision"]["challenge"]["id"]
    assert world.verify(challenge, "totp", next_code(phone)).status_code == 200
    made = world.app.post("/v1/subjects/alice/authenticators",
                          json={"session_id": thief, "method": "recovery"})  # fmt: skip
    assert made.status_code == 201, made.text
    assert len(made.json()["shown"]["codes"]) == 10


# -- terminal is final ---------------------------------------------------------------------------


def test_revoked_session_cannot_be_rewritten(world: World) -> None:
    """I1, I6: a revoked or ended session's signals, context and reason stay as they were."""
    session = world.logged_in()
    other = world.logged_in()
    assert world.app.post(f"/v1/sessions/{session}/end",
                          json={"revoke_reason": "stolen"}).status_code == 200  # fmt: skip
    assert world.app.post(f"/v1/sessions/{other}/end", json={}).status_code == 200
    before = store_rows(world)
    for target in (session, other):
        for path, body in (
            (f"/v1/sessions/{target}/signals", {"signals": {"custom": 1}}),
            (f"/v1/sessions/{target}/signals", {"context": {"context": {"x": 1}}}),
            (f"/v1/sessions/{target}/end", {"revoke_reason": "rewritten"}),
            (f"/v1/sessions/{target}/end", {}),
        ):
            answer = world.app.post(path, json=body)
            assert (answer.status_code, answer.json()["code"]) == (409, "session.not_active")
    assert store_rows(world) == before
    read = world.app.get(f"/v1/sessions/{session}").json()
    assert (read["status"], read["status_reason"]) == ("revoked", "stolen")


@pytest.mark.parametrize("proof", [PASSWORD, "wrong password"])
def test_challenge_of_disabled_subject_checks_no_password(world: World, proof: str) -> None:
    """I1, I6: a challenge pending when its subject was disabled checks no secret (no oracle)
    and records no proof: the right and the wrong password get the same 409."""
    started = world.login()
    challenge = started["decision"]["challenge"]["id"]
    disabled = world.admin.patch("/admin/v1/subjects/alice", json={"status": "disabled"})
    assert disabled.status_code == 200
    before = store_rows(world)
    answer = world.verify(challenge, "password", proof)
    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] in ("session.not_active", "subject.disabled")
    assert store_rows(world) == before
