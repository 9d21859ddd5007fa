"""What the clients do with answers Juncture gives when it is in trouble, or that something in
between gives (a proxy's error page): a real HTTP server on loopback plays them, in order."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from juncture.sdk import (
    AsyncClient,
    BadRequest,
    Busy,
    Client,
    Decision,
    JunctureProtocolError,
    JunctureUnavailable,
)

from .world import World

ALLOW = (200, {"content-type": "application/json"},
         json.dumps({"decision": True, "context": {"outcome": "allow", "id": "d_1"}}))  # fmt: skip
STORE_DOWN = (503, {"content-type": "application/problem+json", "retry-after": "0"},
              json.dumps({"code": "unavailable.store", "title": "x", "status": 503}))  # fmt: skip
PROXY_PAGE = (502, {"content-type": "text/html"}, "<html>Bad gateway</html>")
NOT_JSON = (200, {"content-type": "text/html"}, "<html>a login page</html>")
BUSY = (429, {"content-type": "application/problem+json", "retry-after": "2"},
        json.dumps({"code": "auth.busy", "detail": "try again"}))  # fmt: skip


@contextmanager
def playing(*answers: tuple[int, dict[str, str], str]) -> Iterator[tuple[str, list[str]]]:
    """A server answering ``answers`` in order (the last one again after them); the paths
    asked are listed."""
    asked: list[str] = []
    queue = list(answers)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            asked.append(self.path)
            status, headers, body = queue.pop(0) if len(queue) > 1 else queue[0]
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body.encode())))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", asked
    finally:
        server.shutdown()
        server.server_close()


def test_a_decision_is_tried_again_on_a_503_and_a_verification_is_not():
    with playing(STORE_DOWN, STORE_DOWN, ALLOW) as (url, asked), Client(url, "k") as client:
        assert client.evaluate("alice", "view").allowed
        assert len(asked) == 3 and client.breaker.state == "closed"
    with playing(STORE_DOWN, ALLOW) as (url, asked), Client(url, "k", retries=5) as client:
        with pytest.raises(JunctureUnavailable) as down:
            client.verify_challenge("ch_1", "totp", "123456")
        assert down.value.code == "unavailable.store" and down.value.status == 503
        assert asked == ["/v1/challenges/ch_1/verify"]


def test_a_proxy_page_is_unavailable_and_a_page_in_place_of_an_answer_is_refused():
    with playing(PROXY_PAGE) as (url, asked):
        with Client(url, "k", retries=1) as client, pytest.raises(JunctureUnavailable) as bad:
            client.evaluate("alice", "view")
        assert bad.value.code == "unavailable.server" and len(asked) == 2
        with Client(url, "k", retries=0, on_unavailable="deny") as client:
            assert client.evaluate("alice", "view") == Decision.unavailable()
    with playing(NOT_JSON) as (url, _), Client(url, "k") as client:
        with pytest.raises(JunctureProtocolError):
            client.evaluate("alice", "view")
        assert client.breaker._failures == 1  # not Juncture answering: a failure


def test_busy_carries_when_to_try_again():
    with playing(BUSY) as (url, asked), Client(url, "k") as client:
        with pytest.raises(Busy) as busy:
            client.verify_challenge("ch_1", "totp", "1")
        assert (busy.value.code, busy.value.retry_after, busy.value.status) == ("auth.busy", 2, 429)
        assert len(asked) == 1


def test_the_async_client_runs_every_call_and_retries_as_the_sync_one(world: World):
    async def run() -> None:
        async with AsyncClient(world.url, world.app_key) as client:
            started = await client.start_session("alice", proofs=["password"])
            session = started.session_id
            assert session is not None
            with pytest.raises(BadRequest) as empty:
                await client.update_context(session)  # nothing to update: refused
            assert empty.value.code == "request.invalid"
            updated = await client.update_context(session, signals={"credential_compromised": True})
            assert updated.session_id == session
            assert (await client.read_session(session))["status"] == "active"
            asked = await client.evaluate("alice", "change_email", session_id=session)
            assert asked.challenge_id is not None
            with pytest.raises(BadRequest) as wrong:  # a password does not answer a TOTP step-up
                await client.verify_challenge(asked.challenge_id, "password")
            assert wrong.value.code == "challenge.method_not_accepted"
            assert (await client.end_session(session))["status"] == "ended"
        with playing(STORE_DOWN, ALLOW) as (url, seen):
            async with AsyncClient(url, "k") as flaky:
                assert (await flaky.evaluate("alice", "view")).allowed and len(seen) == 2
            async with AsyncClient(url, "k", retries=0, on_unavailable="deny") as denying:
                assert (await denying.evaluate("alice", "view")).allowed  # ALLOW, last
        with playing(STORE_DOWN) as (url, _):
            async with AsyncClient(url, "k", retries=0, on_unavailable="deny") as denying:
                assert await denying.evaluate("alice", "view") == Decision.unavailable()
            async with AsyncClient(url, "k", retries=0) as raising:
                with pytest.raises(JunctureUnavailable):
                    await raising.start_challenge("ch_1", "email")

    asyncio.run(run())
