"""The console's Shared Signals page against a real `juncture serve`: the streams it transmits
on with how their outbox stands, the transmitters it trusts, and the events received with the
sessions each revoked; stopping trusting a transmitter (`manage_apps`, CSRF, audited), which a
read key neither sees nor can post."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx

from events.transmitter import RSA_KEY, rsa_jwk, sign_rs256

from .test_console_http import audit_lines, strict_csp
from .world import World

ISSUER = "https://mdm.example.com/"
AUDIENCE = "https://juncture.example.com/ssf"
PUSH_TOKEN = "mdm-push-token-0123456789"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
STREAM_AUTH = "Bearer receiver-secret-0123456789"


def trust_mdm(world: World) -> None:
    made = world.admin.post("/admin/v1/transmitters", json={
        "name": "mdm", "issuer": ISSUER, "audience": AUDIENCE,
        "jwks": {"keys": [rsa_jwk(RSA_KEY, "mdm-1")]}, "push_token": PUSH_TOKEN,
    })  # fmt: skip
    assert made.status_code == 201, made.text


def revoke_from_mdm(world: World) -> str:
    """The transmitter pushes session-revoked for alice's session; the SET's jti."""
    now = int(time.time())
    jti = f"jti-{time.monotonic_ns()}"
    subject = {"format": "complex",
               "user": {"format": "iss_sub", "iss": ISSUER, "sub": "alice"},
               "session": {"format": "opaque", "id": world.session_id}}  # fmt: skip
    claims = {"iss": ISSUER, "jti": jti, "iat": now, "aud": AUDIENCE, "sub_id": subject,
              "events": {CAEP + "session-revoked": {"event_timestamp": now}}}  # fmt: skip
    token = sign_rs256({"typ": "secevent+jwt", "alg": "RS256", "kid": "mdm-1"}, claims)
    answer = httpx.post(
        f"{world.url}/ssf/receive/mdm",
        content=token,
        headers={
            "Content-Type": "application/secevent+jwt",
            "Authorization": f"Bearer {PUSH_TOKEN}",
        },
    )
    assert answer.status_code == 202, answer.text
    return jti


def streams(world: World) -> dict[str, Any]:
    poll = world.app.post(
        "/ssf/streams",
        json={"events_requested": [CAEP + "session-revoked"], "description": "the web app's poll"},
    )
    assert poll.status_code == 201, poll.text
    return dict(poll.json())


def test_the_page_shows_streams_transmitters_and_what_each_event_did(world: World) -> None:
    trust_mdm(world)
    poll = streams(world)
    jti = revoke_from_mdm(world)
    assert world.session_status() == "revoked"
    client, _ = world.logged_in(world.admin_key)
    nav = client.get("/console/sessions").text
    assert 'href="/console/signals"' in nav
    page = client.get("/console/signals")
    assert page.status_code == 200, page.text
    strict_csp(page)
    text = page.text
    # The stream: its receiver app, delivery, status, events, and the revocation told on it
    # waiting for the app's poll.
    row = text.split(f"<code>{poll['stream_id']}</code>", 1)[1].split("</tr>", 1)[0]
    assert "the web app&#39;s poll" in row and "<td>web</td>" in row
    assert "poll" in row and ">enabled<" in row and "session-revoked" in row
    assert "<td>inline</td>" in text  # the transmitter's keys are in its entry
    assert "1 pending" in row and "0 delivered" in row and "never" in row
    # The transmitter trusted, and what its event did: alice's session revoked.
    assert "<td>mdm</td>" in text and ISSUER in text and "Stop trusting" in text
    event = text.split(f"<code>{jti}</code>", 1)[0].rsplit("<tr>", 1)[1]
    event += text.split(f"<code>{jti}</code>", 1)[1].split("</tr>", 1)[0]
    assert "mdm" in event and "session-revoked" in event and ">applied<" in event
    assert f'revoked <a href="/console/sessions/{world.session_id}">' in event
    for secret in (PUSH_TOKEN, *world.secrets):
        assert secret not in text
    # Once the app polls and acknowledges it, the stream shows it delivered.
    polled = world.app.post(f"/ssf/poll/{poll['stream_id']}", json={"maxEvents": 10})
    assert polled.status_code == 200, polled.text
    [acked] = polled.json()["sets"]
    acked_answer = world.app.post(f"/ssf/poll/{poll['stream_id']}",
                                  json={"ack": [acked], "maxEvents": 0})  # fmt: skip
    assert acked_answer.status_code == 200, acked_answer.text
    row = client.get("/console/signals").text.split(f"<code>{poll['stream_id']}</code>", 1)[1]
    row = row.split("</tr>", 1)[0]
    assert "0 pending" in row and "1 delivered" in row and "never" not in row and "<time" in row


def test_a_push_stream_that_fails_shows_its_retries_and_last_error(tmp_path: Path) -> None:
    world = World(tmp_path, args=("--ssf-allow-private",))
    try:
        with socket.socket() as closed:  # a port nothing listens on
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        push = world.app.post("/ssf/streams", json={
            "delivery": {"method": "urn:ietf:rfc:8935",
                         "endpoint_url": f"http://127.0.0.1:{port}/events",
                         "authorization_header": STREAM_AUTH},
            "events_requested": [CAEP + "session-revoked"]})  # fmt: skip
        assert push.status_code == 201, push.text
        revoked = world.app.post(f"/v1/sessions/{world.session_id}/end",
                                 json={"revoke_reason": "stolen laptop"})  # fmt: skip
        assert revoked.status_code < 300, revoked.text
        client, _ = world.logged_in(world.reader_key)
        deadline = time.monotonic() + 15
        while True:
            text = client.get("/console/signals").text
            row = text.split(f"<code>{push.json()['stream_id']}</code>", 1)[1]
            row = row.split("</tr>", 1)[0]
            if "last error" in row or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "push" in row and f"127.0.0.1:{port}/events" in row
        assert "1 pending (1 retrying)" in row and "last error:" in row, row
        assert "0 delivered, last never" in row
        assert STREAM_AUTH not in text  # the stream's Authorization header is a secret
    finally:
        world.stop()


def test_stop_trusting_a_transmitter_needs_manage_apps_and_the_csrf_token(world: World) -> None:
    trust_mdm(world)
    reader, reader_csrf = world.logged_in(world.reader_key)
    page = reader.get("/console/signals")
    assert page.status_code == 200 and ISSUER in page.text
    assert "Stop trusting" not in page.text
    url = "/console/transmitters/mdm/remove"
    refused = reader.post(url, data={"csrf": reader_csrf})
    assert refused.status_code == 403 and "auth.forbidden" in refused.text
    client, csrf = world.logged_in(world.admin_key)
    assert client.post(url, data={"csrf": "forged"}).status_code == 403
    listed = world.admin.get("/admin/v1/transmitters").json()["transmitters"]
    assert [t["name"] for t in listed] == ["mdm"]  # nothing changed
    assert client.post(url, data={"csrf": csrf}).status_code == 303
    assert world.admin.get("/admin/v1/transmitters").json()["transmitters"] == []
    assert "No transmitter is trusted." in client.get("/console/signals").text
    missing = client.post(url, data={"csrf": csrf})
    assert missing.status_code == 404 and "transmitter.not_found" in missing.text
    actions = [(a["action"], a["admin"], a["result"]) for a in audit_lines(world)
               if a["action"] == "transmitter.remove"]  # fmt: skip
    assert ("transmitter.remove", "reader", "auth.forbidden") in actions
    assert ("transmitter.remove", "bootstrap", "auth.csrf") in actions
    assert ("transmitter.remove", "bootstrap", "ok") in actions
    assert ("transmitter.remove", "bootstrap", "transmitter.not_found") in actions
