"""Shared Signals both ways over real HTTP.

A transmitter built in the test (signing by hand with `cryptography`, not with the JOSE
library Juncture uses) pushes CAEP events to `juncture serve`; the affected sessions' next
decisions and stored state change. Juncture's own stream delivers `session-revoked` to a
receiver running in the test, signed with the keys Juncture publishes. Then the bad SETs.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from events.transmitter import (
    OTHER_RSA,
    RSA_KEY,
    b64json,
    rsa_jwk,
    sign_hs256_with_public_key,
    sign_rs256,
)
from juncture.events.set import TransmitterConfig, verify_set
from juncture.store.sqlite import SqliteStore

from .server import Server
from .test_http import admin

ISSUER = "https://mdm.example.com/"
AUDIENCE = "https://juncture.example.com/ssf"
PUSH_TOKEN = "mdm-push-token-0123456789"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"

JOURNEY = """\
journey: web
applies_to: [web]
methods:
  password: {kind: password}
guard:
  - {if: "signals.device_noncompliant", reroute: {path: /limited, scopes: [read]}}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {scopes: [web], ttl: 1h}}]
  account: [{require: {aal: 1}}, {allow: {scopes: [account]}}]
  "*": [{deny: unknown_action}]
"""


class Inbox:
    """A receiver of Juncture's pushed SETs on 127.0.0.1 (RFC 8935: answers 202)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []  # (authorization, SET)
        self.arrived = threading.Condition()
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                with inbox.arrived:
                    inbox.received.append((self.headers.get("Authorization", ""), body))
                    inbox.arrived.notify_all()
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 60) -> list[tuple[str, str]]:
        """The SETs received once there are ``count`` (or all there are after ``timeout``: a
        delivery that failed under load is retried 5 s later, `events/delivery.py`)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
        return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class World:
    def __init__(self, root: Path) -> None:
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "web.yaml").write_text(JOURNEY)
        transmitters = root / "transmitters.json"
        transmitters.write_text(
            json.dumps(
                {
                    "transmitters": [
                        {
                            "name": "mdm",
                            "issuer": ISSUER,
                            "audience": AUDIENCE,
                            "algorithms": ["RS256"],
                            "jwks": {"keys": [rsa_jwk(RSA_KEY, "mdm-1")]},
                            "push_token": PUSH_TOKEN,
                        }
                    ]
                }
            )
        )
        self.server = Server(
            root / "j.db",
            bundle,
            args=("--transmitters", str(transmitters), "--ssf-allow-private"),
        ).start()
        self.admin = admin(self.server)
        made = self.admin.post(
            "/admin/v1/apps", json={"name": "web", "assertable_methods": ["password"]}
        )
        assert made.status_code == 201, made.text
        self.app = self.server.client(made.json()["key"])
        self.inbox = Inbox()

    def stop(self) -> None:
        self.admin.close()
        self.server.stop()
        self.inbox.close()

    def session(self, subject: str = "alice", **properties: Any) -> str:
        started = self.app.post(
            "/v1/sessions",
            json={
                "subject": {"id": subject, "properties": properties},
                "proofs": [{"method": "password"}],
                "context": {"device": {"id": "laptop-1"}},
            },
        )
        assert started.status_code == 201, started.text
        return str(started.json()["session"]["id"])

    def ask(self, session: str, subject: str = "alice") -> dict[str, Any]:
        answer = self.app.post(
            "/access/v1/evaluation",
            json={
                "subject": {"type": "user", "id": subject},
                "action": {"name": "account"},
                "resource": {"type": "account", "id": subject},
                "context": {"session_id": session},
            },
        )
        assert answer.status_code == 200, answer.text
        context: dict[str, Any] = answer.json()["context"]
        return context

    def push(self, token: str, bearer: str = PUSH_TOKEN) -> httpx.Response:
        return httpx.post(
            f"{self.server.url}/ssf/receive/mdm",
            content=token,
            headers={
                "Content-Type": "application/secevent+jwt",
                "Authorization": f"Bearer {bearer}",
            },
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    try:
        yield made
    finally:
        made.stop()


HEADER = {"typ": "secevent+jwt", "alg": "RS256", "kid": "mdm-1"}


def claims(event: str, payload: dict[str, Any], sub_id: dict[str, Any], **extra: Any) -> dict:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "jti": f"jti-{time.monotonic_ns()}",
        "iat": now,
        "aud": AUDIENCE,
        "sub_id": sub_id,
        "events": {CAEP + event: {"event_timestamp": now, **payload}},
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def user(subject: str = "alice") -> dict[str, Any]:
    return {"format": "iss_sub", "iss": ISSUER, "sub": subject}


def test_a_pushed_session_revoked_revokes_that_session_and_is_told_onwards(world: World):
    stream = world.app.post(
        "/ssf/streams",
        json={
            "delivery": {
                "method": "urn:ietf:rfc:8935",
                "endpoint_url": world.inbox.url,
                "authorization_header": "Bearer inbox-secret",
            },
            "events_requested": [CAEP + "session-revoked", CAEP + "token-claims-change"],
        },
    )
    assert stream.status_code == 201, stream.text
    assert stream.json()["events_delivered"] == [
        CAEP + "session-revoked",
        CAEP + "token-claims-change",
    ]
    kept, doomed = world.session(), world.session()
    subject = {"format": "complex", "user": user(), "session": {"format": "opaque", "id": doomed}}
    token = sign_rs256(HEADER, claims("session-revoked", {"initiating_entity": "admin"}, subject))
    answer = world.push(token)
    assert answer.status_code == 202, answer.text
    assert world.ask(doomed)["reason"] == "session_revoked"
    assert world.ask(kept)["outcome"] == "allow"
    read = world.app.get(f"/v1/sessions/{doomed}").json()
    assert (read["status"], read["status_reason"]) == ("revoked", "caep.session_revoked")
    [event] = read["events"]
    assert event["result"] == "applied" and event["detail"]["revoked"] == [doomed]
    # the same SET again: acknowledged, never applied twice
    assert world.push(token).status_code == 202
    assert len(world.app.get(f"/v1/sessions/{doomed}").json()["events"]) == 1
    # Juncture's own stream told the app, signed with the keys it publishes
    [(authorization, delivered)] = world.inbox.wait(1)
    assert authorization == "Bearer inbox-secret"
    keys = httpx.get(f"{world.server.url}/ssf/jwks.json").json()
    meta = httpx.get(f"{world.server.url}/.well-known/ssf-configuration").json()
    config = TransmitterConfig.configure(
        issuer=meta["issuer"], audience=world_app_id(world), jwks=keys
    )
    event = verify_set(delivered, config, now=_now())
    assert event.event_type == CAEP + "session-revoked"
    assert event.sub_id["session"] == {"format": "opaque", "id": doomed}


def world_app_id(world: World) -> str:
    apps = world.admin.get("/admin/v1/apps").json()["apps"]
    return str(next(a["id"] for a in apps if a["name"] == "web"))


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_device_compliance_change_reroutes_the_users_sessions_at_once(world: World):
    session = world.session()
    other_user = world.session("bob")
    payload = {"previous_status": "compliant", "current_status": "not-compliant"}
    answer = world.push(sign_rs256(HEADER, claims("device-compliance-change", payload, user())))
    assert answer.status_code == 202, answer.text
    read = world.app.get(f"/v1/sessions/{session}").json()
    assert read["signals"]["device_noncompliant"] is True
    assert read["path"] == "/limited"
    assert world.ask(session)["outcome"] == "reroute"
    assert world.ask(other_user, "bob")["outcome"] == "allow"
    # an older event does not undo a newer one
    older = claims(
        "device-compliance-change",
        {
            "previous_status": "not-compliant",
            "current_status": "compliant",
            "event_timestamp": int(time.time()) - 3600,
        },
        user(),
    )
    assert world.push(sign_rs256(HEADER, older)).status_code == 202
    assert world.app.get(f"/v1/sessions/{session}").json()["signals"]["device_noncompliant"]


@pytest.mark.parametrize(
    ("make", "err"),
    [
        (
            lambda c: f"{b64json({'typ': 'secevent+jwt', 'alg': 'none'})}.{b64json(c)}.",
            "invalid_key",
        ),
        (lambda c: sign_rs256(HEADER, c, key=OTHER_RSA), "invalid_key"),
        (lambda c: sign_hs256_with_public_key({**HEADER, "alg": "HS256"}, c), "invalid_key"),
        (
            lambda c: sign_rs256(HEADER, {**c, "iat": int(time.time()) - 30 * 86400}),
            "invalid_request",
        ),
        (lambda c: sign_rs256(HEADER, {**c, "aud": "https://someone.else/"}), "invalid_audience"),
        (lambda c: sign_rs256(HEADER, {**c, "iss": "https://evil.example/"}), "invalid_issuer"),
        (lambda c: sign_rs256({**HEADER, "typ": "JWT"}, c), "invalid_request"),
        (lambda c: "not.a.set", "invalid_request"),
        (lambda c: sign_rs256(HEADER, {**c, "pad": "x" * 70_000}), "invalid_request"),
    ],
    ids=[
        "unsigned",
        "wrong-key",
        "hmac-public-key",
        "expired",
        "audience",
        "issuer",
        "typ",
        "malformed",
        "oversized",
    ],
)
def test_bad_sets_get_the_right_err_and_change_nothing(world: World, make: Any, err: str):
    session = world.session()
    subject = {"format": "complex", "user": user(), "session": {"format": "opaque", "id": session}}
    answer = world.push(make(claims("session-revoked", {}, subject)))
    assert answer.status_code == 400, answer.text
    assert answer.json()["err"] == err
    read = world.app.get(f"/v1/sessions/{session}").json()
    assert read["status"] == "active" and read["events"] == []


def test_a_push_without_the_transmitters_token_is_refused(world: World):
    session = world.session()
    subject = {"format": "complex", "user": user(), "session": {"format": "opaque", "id": session}}
    token = sign_rs256(HEADER, claims("session-revoked", {}, subject))
    wrong = world.push(token, bearer="guess")
    assert (wrong.status_code, wrong.json()["err"]) == (401, "authentication_failed")
    plain = httpx.post(
        f"{world.server.url}/ssf/receive/mdm", content=token, headers={"Content-Type": "text/plain"}
    )
    assert plain.status_code == 400
    assert world.app.get(f"/v1/sessions/{session}").json()["status"] == "active"


def test_stream_management_is_per_app(world: World):
    made = world.app.post("/ssf/streams", json={"events_requested": [CAEP + "session-revoked"]})
    assert made.status_code == 201, made.text
    stream = made.json()
    assert stream["delivery"]["method"] == "urn:ietf:rfc:8936"  # no delivery: poll
    stream_id = stream["stream_id"]
    other = world.admin.post("/admin/v1/apps", json={"name": "other"}).json()["key"]
    stranger = world.server.client(other)
    assert stranger.get("/ssf/streams", params={"stream_id": stream_id}).status_code == 404
    assert stranger.get("/ssf/streams").json() == []
    status = world.app.post("/ssf/status", json={"stream_id": stream_id, "status": "paused"})
    assert status.json()["status"] == "paused"
    unsafe = world.app.patch(
        "/ssf/streams",
        json={
            "stream_id": stream_id,
            "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": "ftp://example.com/x"},
        },
    )
    assert unsafe.status_code == 400
    # poll: a revoked session's event waits in the stream until acknowledged
    world.app.post("/ssf/status", json={"stream_id": stream_id, "status": "enabled"})
    session = world.session()
    world.app.post(f"/v1/sessions/{session}/end", json={"revoke_reason": "stolen_device"})
    polled = world.app.post(f"/ssf/poll/{stream_id}", json={"maxEvents": 10})
    assert polled.status_code == 200, polled.text
    sets = polled.json()["sets"]
    assert len(sets) >= 1
    acked = world.app.post(f"/ssf/poll/{stream_id}", json={"ack": list(sets), "maxEvents": 10})
    assert all(jti not in acked.json()["sets"] for jti in sets)
    assert world.app.delete("/ssf/streams", params={"stream_id": stream_id}).status_code == 204


def test_received_events_are_durable(world: World):
    session = world.session()
    subject = {"format": "complex", "user": user(), "session": {"format": "opaque", "id": session}}
    token = sign_rs256(HEADER, claims("session-revoked", {}, subject))
    assert world.push(token).status_code == 202
    world.server.kill()
    store = SqliteStore(world.server.db)
    try:
        found = store.list_received(session_id=session)
    finally:
        store.close()
    assert [e.result for e in found] == ["applied"]


class PollTransmitter:
    """A transmitter serving SETs for polling (RFC 8936) on 127.0.0.1; keeps what it was sent."""

    def __init__(self) -> None:
        self.waiting: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({**body, "auth": self.headers.get("Authorization")})
                for jti in body.get("ack", []):
                    outer.waiting.pop(jti, None)
                answer = json.dumps({"sets": dict(outer.waiting), "moreAvailable": False}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/poll"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_polled_transmitter_is_read_applied_and_acknowledged(tmp_path: Path):
    source = PollTransmitter()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "web.yaml").write_text(JOURNEY)
    settings = tmp_path / "transmitters.json"
    settings.write_text(json.dumps({"poll_interval": 0.2, "transmitters": [{
        "name": "idp", "issuer": ISSUER, "audience": AUDIENCE,
        "jwks": {"keys": [rsa_jwk(RSA_KEY, "mdm-1")]}, "poll_url": source.url,
        "poll_authorization": "Bearer poller"}]}))  # fmt: skip
    server = Server(tmp_path / "j.db", bundle, args=("--transmitters", str(settings),
                                                     "--ssf-allow-private")).start()  # fmt: skip
    try:
        with admin(server) as client:
            key = client.post("/admin/v1/apps", json={"name": "web",
                              "assertable_methods": ["password"]}).json()["key"]  # fmt: skip
        app = server.client(key)
        session = app.post("/v1/sessions", json={"subject": {"id": "alice"},
                           "proofs": [{"method": "password"}]}).json()["session"]["id"]  # fmt: skip
        payload = {"previous_status": "compliant", "current_status": "not-compliant"}
        set_claims = claims("device-compliance-change", payload, user())
        source.waiting[set_claims["jti"]] = sign_rs256(HEADER, set_claims)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and source.waiting:
            time.sleep(0.1)
        assert not source.waiting, "the SET was never acknowledged"
        read = app.get(f"/v1/sessions/{session}").json()
        assert read["signals"]["device_noncompliant"] is True and read["path"] == "/limited"
        acks = [r for r in source.requests if r.get("ack")]
        assert acks[0]["ack"] == [set_claims["jti"]] and acks[0]["auth"] == "Bearer poller"
    finally:
        server.stop()
        source.server.shutdown()
        source.server.server_close()


def test_a_step_up_that_raises_the_aal_is_told_as_assurance_level_change(world: World):
    stream = world.app.post("/ssf/streams", json={
        "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": world.inbox.url},
        "events_requested": [CAEP + "assurance-level-change"]})  # fmt: skip
    assert stream.status_code == 201, stream.text
    started = world.app.post("/v1/sessions", json={"subject": {"id": "alice"}})
    challenge = started.json()["decision"]["challenge"]["id"]
    verified = world.app.post(f"/v1/challenges/{challenge}/verify", json={"method": "password"})
    assert verified.json()["session"]["aal"] == 1
    [(_, token)] = world.inbox.wait(1)
    part = token.split(".")[1]
    claims_sent = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    [(event_type, payload)] = claims_sent["events"].items()
    assert event_type == CAEP + "assurance-level-change"
    assert (payload["namespace"], payload["current_level"]) == ("NIST-AAL", "nist-aal1")
    assert claims_sent["sub_id"]["session"]["id"] == started.json()["session"]["id"]


def test_an_event_that_could_not_be_applied_is_answered_503_and_applied_when_sent_again(
    world: World,
):
    first, second = world.session(), world.session()
    # The store fails on cue: one of the sessions the event reaches cannot be read.
    with closing(sqlite3.connect(world.server.db)) as conn, conn:
        (body,) = conn.execute("SELECT body FROM sessions WHERE id = ?", (second,)).fetchone()
        conn.execute("UPDATE sessions SET body = ? WHERE id = ?", (b"{broken", second))
    token = sign_rs256(HEADER, claims("session-revoked", {}, user()))
    failed = world.push(token)
    assert failed.status_code == 503, failed.text
    assert failed.json()["err"] == "temporarily_unavailable"
    assert world.ask(first)["outcome"] == "allow"  # nothing applied, nothing half-done
    with closing(sqlite3.connect(world.server.db)) as conn, conn:
        conn.execute("UPDATE sessions SET body = ? WHERE id = ?", (body, second))
    # the transmitter sends the same SET again: now it is applied, once
    assert world.push(token).status_code == 202
    for session in (first, second):
        read = world.app.get(f"/v1/sessions/{session}").json()
        assert read["status"] == "revoked"
        assert [e["result"] for e in read["events"]] == ["applied"]
    assert world.push(token).status_code == 202  # a third time: acknowledged, not applied
    assert len(world.app.get(f"/v1/sessions/{first}").json()["events"]) == 1


def test_an_event_about_an_email_address_reaches_every_session_carrying_it(world: World):
    known = world.session("u-1", email="Ana@Example.com")  # an id that is not the address
    also = world.session("ana@example.com")
    other = world.session("u-2", email="bo@example.com")
    subject = {"format": "email", "email": "ana@example.com"}
    token = sign_rs256(HEADER, claims("session-revoked", {}, subject))
    assert world.push(token).status_code == 202
    for session in (known, also):
        assert world.app.get(f"/v1/sessions/{session}").json()["status"] == "revoked"
    assert world.app.get(f"/v1/sessions/{other}").json()["status"] == "active"
