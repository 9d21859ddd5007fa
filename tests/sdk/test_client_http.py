"""The SDK's clients against a real `juncture serve`: decisions, a challenge answered with a
TOTP code, typed errors, and the failure policy when the server goes away and comes back."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from juncture.sdk import (
    AsyncClient,
    CircuitBreaker,
    CircuitOpen,
    Client,
    Conflict,
    Decision,
    JunctureUnavailable,
    NotFound,
    StepUp,
    Unauthorized,
    step_up_challenge,
)

from .world import World, next_code


def logged_in(client: Client) -> str:
    started = client.start_session("alice", proofs=["password"])
    assert started.decision.outcome == "allow" and started.decision.scopes == ("app",)
    assert started.session_id is not None
    return started.session_id


def test_decisions_and_a_challenge_through_the_sync_client(world: World):
    with Client(world.url, world.app_key) as client:
        session = logged_in(client)
        phone = world.enroll_totp(session)
        view = client.evaluate("alice", "view", session_id=session)
        assert view.allowed and view.scopes == ("account:read",) and view.id
        denied = client.evaluate("alice", "delete_everything", session_id=session)
        assert (denied.outcome, denied.reason, denied.allowed) == ("deny", "unknown_action", False)

        asked = client.evaluate(
            "alice", "change_email", resource={"type": "account", "id": "alice"}, session_id=session
        )
        assert asked.outcome == "step_up" and not asked.permitted
        aal2 = "urn:juncture:aal2 urn:juncture:aal3"
        assert asked.step_up == StepUp(methods=("totp",), acr_values=aal2, max_age=600)
        assert asked.challenge_id and asked.challenge_id.startswith("ch_")
        assert asked.www_authenticate == step_up_challenge(
            {"outcome": "step_up", "acr_values": aal2, "max_age": 600}
        )

        verified = client.verify_challenge(asked.challenge_id, "totp", next_code(phone))
        assert verified.decision.allowed and verified.decision.scopes == ("account:write",)
        assert verified.session is not None and verified.session["aal"] == 2
        again = client.evaluate("alice", "change_email", session_id=session)
        assert again.allowed and again.scopes == ("account:write",)


def test_the_async_client_decides_the_same(world: World):
    async def run() -> list[Decision]:
        async with AsyncClient(world.url, world.app_key) as client:
            started = await client.start_session("alice", proofs=["password"])
            assert started.session_id is not None
            return [
                await client.evaluate("alice", action, session_id=started.session_id)
                for action in ("view", "change_email", "nope")
            ]

    view, change, nope = asyncio.run(run())
    assert view.allowed and view.scopes == ("account:read",)
    assert change.outcome == "step_up" and change.step_up is not None
    assert change.step_up.methods == ("totp",) and change.challenge_id
    assert nope.outcome == "deny" and nope.reason == "unknown_action"


def test_context_updates_end_and_server_errors_are_typed(world: World):
    with Client(world.url, world.app_key) as client:
        session = logged_in(client)
        updated = client.update_context(session, context={"device": {"id": "d1"}})
        assert updated.session_id == session
        assert client.read_session(session)["status"] == "active"
        ended = client.end_session(session)
        assert ended["status"] == "ended"
        with pytest.raises(Conflict) as conflict:
            client.update_context(session, context={"context": {"x": 1}})
        assert conflict.value.code == "session.not_active" and conflict.value.status == 409
        with pytest.raises(NotFound) as missing:
            client.verify_challenge("ch_" + "0" * 26, "totp", "123456")
        assert missing.value.code.endswith("not_found")
        assert client.evaluate("alice", "view", session_id=session).reason == "session_ended"
    with Client(world.url, "jct_app_000000000000.nope") as stranger:
        with pytest.raises(Unauthorized) as refused:
            stranger.evaluate("alice", "view")
        assert refused.value.code.startswith("auth.")
        assert stranger.breaker.state == "closed"  # the server answered: it is up


def test_a_stopped_server_fails_closed_then_the_breaker_opens_and_recovers(world: World):
    breaker = CircuitBreaker(threshold=2, cooldown=1.0)
    client = Client(world.url, world.app_key, retries=1, breaker=breaker)
    denying = Client(world.url, world.app_key, retries=0, on_unavailable="deny",
                     breaker=CircuitBreaker(threshold=1, cooldown=60))  # fmt: skip
    session = logged_in(client)
    assert client.evaluate("alice", "view", session_id=session).allowed
    world.server.stop()

    with pytest.raises(JunctureUnavailable) as down:  # two attempts: two failures, it opens
        client.evaluate("alice", "view", session_id=session)
    assert down.value.code == "unavailable.connect" and not isinstance(down.value, CircuitOpen)
    assert breaker.state == "open"
    started = time.monotonic()
    for _ in range(50):
        with pytest.raises(CircuitOpen):
            client.evaluate("alice", "view", session_id=session)
    assert time.monotonic() - started < 0.5  # failing fast, not waiting on the network
    assert denying.evaluate("alice", "view", session_id=session) == Decision(
        outcome="deny", reason="unavailable"
    )
    assert denying.evaluate("alice", "view").reason == "unavailable"  # its breaker: open
    with pytest.raises(CircuitOpen):
        client.start_session("alice", proofs=["password"])  # never a silent success either

    world.server.start()  # the same database and port
    time.sleep(1.0)
    assert breaker.state == "half_open"
    probe = client.evaluate("alice", "view", session_id=session)
    assert probe.allowed and breaker.state == "closed"
    client.close()
    denying.close()


def test_a_server_that_never_answers_times_out_within_the_budget():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections (the backlog) and never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        client = Client(url, "jct_app_x.y", timeout=0.2, retries=5, retry_budget=0.7)
        started = time.monotonic()
        with pytest.raises(JunctureUnavailable) as slow:
            client.evaluate("alice", "view")
        took = time.monotonic() - started
        assert slow.value.code == "unavailable.timeout"
        assert 0.2 <= took < 1.2  # stopped by the budget, not after six timeouts
        denying = Client(url, "jct_app_x.y", timeout=0.2, retries=0, on_unavailable="deny")
        assert denying.evaluate("alice", "view") == Decision.unavailable()
        client.close()
        denying.close()


def test_a_verification_is_never_sent_twice(world: World):
    """A challenge's verify is not retried, even with retries left: each try spends one."""
    with Client(world.url, world.app_key, retries=3) as client:
        session = logged_in(client)
        asked = client.evaluate("alice", "change_email", session_id=session)
        assert asked.challenge_id
        world.server.stop()
        with pytest.raises(JunctureUnavailable):
            client.verify_challenge(asked.challenge_id, "totp", "000000")
        assert client.breaker._failures == 1
