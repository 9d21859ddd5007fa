"""The invariants not replayed by an attack of their own: I7 one version, I8 rotation, I10 no
secret leaks. Over real HTTP against `juncture serve` on SQLite.
"""

from __future__ import annotations

import sqlite3

import pyotp

from service.test_methods_http import (
    PASSWORD,
    World,
    confirm,
    enroll,
    journey,
    next_code,
    step_up,
)
from service.test_methods_http import world as world  # the fixture: alice, a password


def test_session_handle_rotates_whenever_aal_rises(world: World) -> None:
    """I8: the handle changes at every rise of AAL (password, then TOTP), never otherwise."""
    started = world.login()
    session = started["session"]
    verified = world.verify(started["decision"]["challenge"]["id"], "password", PASSWORD)
    first = verified.json()["session"]
    assert first["aal"] == 1 and first["handle"] != session["handle"]
    body = enroll(world, session["id"], "totp")
    phone = pyotp.TOTP(body["shown"]["secret"])
    assert (
        confirm(world, session["id"], body["authenticator"]["id"], phone.now()).status_code == 200
    )
    challenge = step_up(world, session["id"])["challenge_id"]
    raised = world.verify(challenge, "totp", next_code(phone)).json()["session"]
    assert raised["aal"] == 2 and raised["handle"] not in (session["handle"], first["handle"])
    # no rise (a second TOTP at AAL 2): the handle stays
    asked = world.ask(session["id"], "change_email")
    assert asked["outcome"] == "allow"
    read = world.app.get(f"/v1/sessions/{session['id']}").json()
    assert "handle" not in read or read["handle"] == raised["handle"]


def test_every_decision_used_one_version_and_a_rejected_upload_serves_none(
    world: World,
) -> None:
    """I7: each decision record names exactly one version, the active one when it was made;
    a bundle refused at upload never becomes active nor answers a decision."""
    session = world.logged_in()
    active = world.admin.get("/healthz").json()["version"]
    refused = world.admin.post("/admin/v1/versions", json={
        "files": {"acct.yaml": journey() + "\n  broken: [{require: {any: [nope]}}]\n"},
        "activate": True})  # fmt: skip
    assert (refused.status_code, refused.json()["code"]) == (422, "policy.invalid")
    assert world.admin.get("/healthz").json()["version"] == active
    assert world.ask(session, "change_email")["version"] == active
    changed = journey().replace("within: 10m", "within: 5m")
    published = world.admin.post(
        "/admin/v1/versions", json={"files": {"acct.yaml": changed}, "activate": True}
    )
    assert published.status_code == 201, published.text
    newer = published.json()["id"]
    assert world.ask(session, "change_email")["version"] == newer
    records = world.admin.get("/admin/v1/decisions", params={"limit": 1000}).json()["decisions"]
    assert records and all(r["version"] in (active, newer) for r in records)
    listed = {v["id"] for v in world.admin.get("/admin/v1/versions").json()["versions"]}
    assert listed == {active, newer}  # the refused upload was never stored


def test_an_upload_that_breaks_a_journey_invariant_is_refused_with_its_counterexample(
    world: World,
) -> None:
    """I7: publishing runs `juncture check`'s validation: a bundle whose journey breaks one of
    its invariants is refused (422, each violation listed with the facts that reproduce it),
    never stored nor served; the same journey keeping its invariant publishes."""
    session = world.logged_in()
    active = world.admin.get("/healthz").json()["version"]
    invariant = (
        "invariants:\n  email_needs_aal2:\n    at: change_email\n    never: allow\n"
        "    unless: {require: {aal: 2, within: 10m}}\n"
    )
    refused = world.admin.post(
        "/admin/v1/versions", json={"files": {"acct.yaml": journey() + invariant}, "activate": True}
    )
    assert (refused.status_code, refused.json()["code"]) == (422, "policy.invalid")
    (problem,) = [p for p in refused.json()["problems"] if p["severity"] == "error"]
    assert problem["code"] == "policy.invariant.violated"
    example = problem["counterexample"]
    assert (example["invariant"], example["action"], example["outcome"]) == (
        "email_needs_aal2",
        "change_email",
        "allow",
    )
    assert [s["kind"] for s in example["path"]][-2:] == ["require", "allow"]
    assert world.admin.get("/healthz").json()["version"] == active
    assert world.ask(session, "change_email")["version"] == active
    listed = {v["id"] for v in world.admin.get("/admin/v1/versions").json()["versions"]}
    assert listed == {active}
    kept = journey().replace(
        "any: [totp, passkey, email, recovery], within: 10m",
        "any: [totp, passkey, email, recovery], within: 10m, aal: 2",
    )
    assert kept != journey()
    published = world.admin.post(
        "/admin/v1/versions", json={"files": {"acct.yaml": kept + invariant}, "activate": True}
    )
    assert published.status_code == 201, published.text
    assert world.admin.get("/healthz").json()["version"] == published.json()["id"]


def test_no_secret_in_a_response_log_record_or_error(world: World) -> None:
    """I10: passwords (right and wrong), TOTP seeds, codes, recovery codes and keys appear in no
    response but the one that shows them once, in no decision record, no server log line and no
    stored row in the clear."""
    seen: list[str] = []
    session = world.logged_in()
    wrong = "not-the-password-" + "x" * 8
    started = world.login()
    failed = world.verify(started["decision"]["challenge"]["id"], "password", wrong)
    seen.append(failed.text)
    body = enroll(world, session, "totp")
    seed = body["shown"]["secret"]
    phone = pyotp.TOTP(seed)
    code = phone.now()
    seen.append(confirm(world, session, body["authenticator"]["id"], code).text)
    recovery = world.app.post("/v1/subjects/alice/authenticators",
                              json={"session_id": session, "method": "recovery"})  # fmt: skip
    if recovery.json()["decision"]["outcome"] == "step_up":
        challenge = recovery.json()["decision"]["challenge"]["id"]
        seen.append(world.verify(challenge, "totp", next_code(phone)).text)
        recovery = world.app.post("/v1/subjects/alice/authenticators",
                                  json={"session_id": session, "method": "recovery"})  # fmt: skip
    codes = recovery.json()["shown"]["codes"]
    made = world.admin.post("/admin/v1/apps", json={"name": "other"})
    app_key = made.json()["key"]
    secrets = [PASSWORD, wrong, seed, code, *codes, app_key]
    seen += [
        world.admin.get("/admin/v1/subjects/alice").text,
        world.app.get("/v1/subjects/alice/authenticators", params={"session_id": session}).text,
        world.admin.get("/admin/v1/decisions", params={"limit": 1000}).text,
        world.admin.get("/admin/v1/apps").text,
        world.app.get(f"/v1/sessions/{session}").text,
    ]
    world.server.stop()
    seen.append(world.server.output.decode(errors="replace"))
    with sqlite3.connect(world.server.db) as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in db.execute(f"SELECT * FROM {table}"):
                seen.append(repr(row))
    text = "\n".join(seen)
    for secret in secrets:
        assert secret not in text, f"a secret leaked: {secret[:4]}…"
