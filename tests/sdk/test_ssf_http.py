"""The SDK's Shared Signals receiver against a real `juncture serve`: a polled stream and a
pushed one carry a revocation to the app's handler, verified with the stream's keys."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from juncture.sdk import Client, NotFound
from juncture.sdk.ssf import (
    InvalidSET,
    PollReceiver,
    SecurityEvent,
    SeenEvents,
    SetVerifier,
    push_endpoint,
)
from service.server import free_port

from .test_middleware_http import served_asgi
from .world import World

REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"


@pytest.fixture
def ssf_world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path, args=("--ssf-allow-private",))
    try:
        yield made
    finally:
        made.stop()


def revoked_session(world: World) -> str:
    with Client(world.url, world.app_key) as client:
        session = client.start_session("alice", proofs=["password"]).session_id
        assert session is not None
        client.end_session(session, revoke_reason="stolen_device")
    return session


def stream(world: World, delivery: dict[str, Any]) -> dict[str, Any]:
    wanted = {"delivery": delivery, "events_requested": [REVOKED]}
    made = world.http.post("/ssf/streams", json=wanted)
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def test_a_polled_stream_hands_each_event_once_then_acknowledges(ssf_world: World):
    world = ssf_world
    stream_id = stream(world, {"method": "urn:ietf:rfc:8936"})["stream_id"]
    seen: list[SecurityEvent] = []
    receiver = PollReceiver.for_stream(world.url, world.app_key, stream_id, seen.append)
    session = revoked_session(world)
    assert receiver.poll_once() == 1
    (event,) = seen
    assert event.event_type == REVOKED and event.subject is not None
    assert event.subject["session"]["id"] == session and event.subject["user"]["id"] == "alice"
    assert receiver.poll_once() == 0  # acknowledged with this poll: not delivered again
    assert receiver.poll_once() == 0 and len(seen) == 1

    receiver.close()

    revoked_session(world)  # a real token, taken by hand (so left unacknowledged)
    polled = world.http.post(f"/ssf/poll/{stream_id}", json={"returnImmediately": True})
    (token,) = polled.json()["sets"].values()
    good = receiver.verifier
    assert good.verify(token).event_type == REVOKED
    jwks = httpx.get(f"{world.url}/ssf/jwks.json").json()
    header, payload, signature = token.split(".")
    refusals = {
        "invalid_audience": (SetVerifier(good.issuer, "https://else", jwks), token),
        "invalid_issuer": (SetVerifier("https://else", good.audiences, jwks), token),
        "invalid_key": (SetVerifier(good.issuer, good.audiences, jwks, algorithms=["ES256"]),
                        token),
        "invalid_request": (SetVerifier(good.issuer, good.audiences, jwks,
                                        clock=lambda: 4e9), token),
    }  # fmt: skip
    with pytest.raises(ValueError):
        SetVerifier(good.issuer, good.audiences, {"keys": []})
    with pytest.raises(ValueError):
        SetVerifier(good.issuer, good.audiences, jwks, algorithms=["HS256"])
    with pytest.raises(NotFound) as unknown:
        PollReceiver.for_stream(world.url, world.app_key, "no-such-stream", seen.append)
    assert unknown.value.code
    tampered = f"{header}.{payload[:-4]}AAAA.{signature}"
    for err, (verifier, given) in [*refusals.items(), ("invalid_key", (good, tampered))]:
        with pytest.raises(InvalidSET) as refused:
            verifier.verify(given)
        assert refused.value.err == err


def test_a_failing_handler_gets_the_event_again(ssf_world: World):
    world = ssf_world
    stream_id = stream(world, {"method": "urn:ietf:rfc:8936"})["stream_id"]
    calls: list[str] = []

    def flaky(event: SecurityEvent) -> None:
        calls.append(event.jti)
        if len(calls) == 1:
            raise RuntimeError("the app's database is down")

    receiver = PollReceiver.for_stream(world.url, world.app_key, stream_id, flaky)
    revoked_session(world)
    with pytest.raises(RuntimeError):
        receiver.poll_once()
    assert receiver.poll_once() == 1 and calls[0] == calls[1]
    receiver.close()


def test_a_pushed_stream_reaches_the_endpoint_and_forgeries_do_not(ssf_world: World):
    world = ssf_world
    port = free_port()
    secret = "Bearer app-secret-" + "x" * 20
    made = stream(world, {"method": "urn:ietf:rfc:8935",
                          "endpoint_url": f"http://127.0.0.1:{port}/ssf/events",
                          "authorization_header": secret})  # fmt: skip
    jwks = httpx.get(f"{world.url}/ssf/jwks.json").json()
    verifier = SetVerifier(made["iss"], made["aud"], jwks)
    arrived: list[SecurityEvent] = []
    got = threading.Event()

    def handler(event: SecurityEvent) -> None:
        arrived.append(event)
        got.set()

    with served_asgi(push_endpoint(verifier, handler, secret), port=port) as base:
        session = revoked_session(world)
        assert got.wait(20), "nothing was pushed"
        assert arrived[0].event_type == REVOKED
        assert arrived[0].subject is not None and arrived[0].subject["session"]["id"] == session
        headers = {"content-type": "application/secevent+jwt", "authorization": secret}
        forged = httpx.post(f"{base}/ssf/events", headers=headers, content=b"e30.e30.c2ln")
        assert forged.status_code == 400 and forged.json()["err"] in ("invalid_request",
                                                                       "invalid_key")
        stranger = httpx.post(f"{base}/ssf/events", headers={**headers, "authorization": "x"},
                              content=b"e30.e30.c2ln")  # fmt: skip
        assert stranger.status_code == 401 and len(arrived) == 1


def test_a_set_delivered_again_is_acknowledged_not_handled_twice(ssf_world: World):
    """A SET replayed to the push endpoint, or polled again after its acknowledgement was lost,
    reaches the handler once (by issuer and jti); a handler that failed gets it again."""
    world = ssf_world
    stream_id = stream(world, {"method": "urn:ietf:rfc:8936"})["stream_id"]
    revoked_session(world)
    polled = world.http.post(f"/ssf/poll/{stream_id}", json={"returnImmediately": True})
    (token,) = polled.json()["sets"].values()  # taken by hand: not acknowledged
    jwks = httpx.get(f"{world.url}/ssf/jwks.json").json()
    made = world.http.get("/ssf/streams", params={"stream_id": stream_id}).json()
    verifier = SetVerifier(made["iss"], made["aud"], jwks)
    calls: list[str] = []

    def handler(event: SecurityEvent) -> None:
        calls.append(event.jti)
        if len(calls) == 1:
            raise RuntimeError("the app's database is down")

    port = free_port()
    secret = "Bearer app-secret-" + "y" * 20
    headers = {"content-type": "application/secevent+jwt", "authorization": secret}
    with served_asgi(push_endpoint(verifier, handler, secret), port=port) as base:
        failed = httpx.post(f"{base}/ssf/events", headers=headers, content=token)
        assert failed.status_code == 500  # not remembered: the transmitter pushes it again
        for _ in range(3):  # pushed again, then replayed twice: handled once, answered 202
            again = httpx.post(f"{base}/ssf/events", headers=headers, content=token)
            assert again.status_code == 202, again.text
    assert len(calls) == 2 and calls[0] == calls[1]

    # Polled again (its acknowledgement lost): acknowledged without calling the handler.
    polled_seen: list[SecurityEvent] = []
    receiver = PollReceiver.for_stream(world.url, world.app_key, stream_id, polled_seen.append)
    assert receiver.poll_once() == 1 and len(polled_seen) == 1
    again_seen = receiver.seen
    receiver.close()  # before the next poll, which carries the acknowledgement: it is lost
    receiver = PollReceiver.for_stream(world.url, world.app_key, stream_id, polled_seen.append,
                                       seen=again_seen)  # fmt: skip
    assert receiver.poll_once() == 0 and len(polled_seen) == 1  # delivered, not handled
    assert receiver.poll_once() == 0  # and acknowledged with that poll
    receiver.close()


def test_seen_events_forget_what_is_older_than_max_age_and_past_capacity():
    now = [1000.0]
    seen = SeenEvents(60, capacity=2, clock=lambda: now[0])

    def event(jti: str, issuer: str = "https://juncture") -> SecurityEvent:
        return SecurityEvent(jti=jti, issuer=issuer, issued_at=1000, event_type=REVOKED,
                             event={}, subject=None)  # fmt: skip

    seen.add(event("a"))
    assert event("a") in seen and event("a", "https://other") not in seen
    seen.add(event("b"))
    seen.add(event("c"))  # past capacity: the oldest goes
    assert event("a") not in seen and event("b") in seen and event("c") in seen
    now[0] += 61  # past max_age: a SET this old is refused by its iat anyway
    assert event("b") not in seen and event("c") not in seen
    with pytest.raises(ValueError):
        SeenEvents(0)
