"""Client errors are 4xx problems, never 500s: hostile tokens and out-of-order challenge steps.

Over real HTTP against `juncture serve`. A JOSE header or payload nesting thousands of levels
made JSON parsing raise RecursionError (a 500); an email code verified before its challenge
was started found no challenge state (a 500). Each must be a 4xx problem with a registered
code, spend no attempt and change nothing (I6).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from juncture.errors import CODES
from juncture.store.sqlite import SqliteStore
from service.test_agents_http import Signer
from service.test_agents_http import World as AgentsWorld
from service.test_methods_http import (
    AUDIENCE,
    ISSUER,
    MDM,
    World,
    enroll,
    passkey_enrolled,
    step_up,
)

DEEP = 2500  # past Python's recursion limit, within the 8 KiB of a client assertion


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def nested(depth: int) -> bytes:
    """A JSON object whose one member nests ``depth`` arrays: {"x": [[[...]]]}."""
    return b'{"alg":"ES256","x":' + b"[" * depth + b"]" * depth + b"}"


def deep_tokens(claims: dict[str, Any]) -> dict[str, str]:
    """Compact JWS-shaped tokens whose header or payload nests far deeper than any stack."""
    header = _b64(json.dumps({"alg": "ES256", "kid": "ec1"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = _b64(b"\x00" * 64)
    return {
        "header": f"{_b64(nested(DEEP))}.{payload}.{signature}",
        "payload": f"{header}.{_b64(nested(DEEP))}.{signature}",
        "shallow-but-over-the-limit": f"{_b64(nested(100))}.{payload}.{signature}",
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("methods"))
    try:
        made.subject()
        made.enroll_password()
        yield made
    finally:
        made.stop()


def _refused_and_nothing_spent(world: World, challenge: str, answer: Any) -> None:
    assert 400 <= answer.status_code < 500, answer.text
    problem = answer.json()
    assert problem["code"] in CODES, problem
    store = SqliteStore(world.server.db)
    try:
        stored = store.get_challenge(challenge)
    finally:
        store.close()
    assert stored is not None and stored.attempts_left == 5 and stored.consumed_at is None


@pytest.mark.parametrize("where", ["header", "payload", "shallow-but-over-the-limit"])
def test_deeply_nested_external_jwt_refused(world: World, where: str):
    """I6: a token nesting thousands of levels is a malformed proof (400), not a 500."""
    started = world.login()
    challenge = started["decision"]["challenge"]["id"]
    now = int(time.time())
    token = deep_tokens({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now,
                         "exp": now + 300})[where]  # fmt: skip
    answer = world.verify(challenge, "sso", token)
    assert (answer.status_code, answer.json()["code"]) == (400, "challenge.proof_malformed")
    _refused_and_nothing_spent(world, challenge, answer)
    session = world.app.get(f"/v1/sessions/{started['session']['id']}").json()
    assert session["proofs"] == [] and session["aal"] == 0


@pytest.mark.parametrize("where", ["header", "payload", "shallow-but-over-the-limit"])
def test_deeply_nested_device_attestation_refused(world: World, where: str):
    """I6: a device statement nesting thousands of levels is a malformed proof (400)."""
    session = world.logged_in()
    asked = world.ask(session, "dashboard")
    assert asked["outcome"] == "step_up"
    now = int(time.time())
    statement = deep_tokens({"iss": MDM, "sub": "alice", "device_id": "d", "managed": True,
                             "compliant": True, "observed_at": now})[where]  # fmt: skip
    answer = world.verify(asked["challenge_id"], "mdm", statement)
    assert (answer.status_code, answer.json()["code"]) == (400, "challenge.proof_malformed")
    _refused_and_nothing_spent(world, asked["challenge_id"], answer)


def test_email_code_verified_before_start_refused(world: World):
    """I6: an email code sent to a challenge nobody started is a 409, spending nothing."""
    session = world.logged_in()
    body = enroll(world, session, "email", address="alice@example.com")
    code = world.mailbox.code(len(world.mailbox.messages) or 1)
    confirmed = world.app.post(
        f"/v1/subjects/alice/authenticators/{body['authenticator']['id']}/confirm",
        json={"session_id": session, "proof": code},
    )
    assert confirmed.status_code == 200, confirmed.text
    asked = step_up(world, session)
    answer = world.verify(asked["challenge_id"], "email", "123456")
    assert (answer.status_code, answer.json()["code"]) == (409, "challenge.not_started")
    _refused_and_nothing_spent(world, asked["challenge_id"], answer)
    # a passkey verified before its start step is refused the same way
    passkey = world.verify(asked["challenge_id"], "passkey", {"id": "AAAA", "rawId": "AAAA",
                           "type": "public-key", "response": {}})  # fmt: skip
    assert 400 <= passkey.status_code < 500, passkey.text
    assert passkey.json()["code"] in CODES


def test_deeply_nested_passkey_response_refused(world: World):
    """I6: a WebAuthn response nesting thousands of levels is a malformed proof (400)."""
    session = world.logged_in()
    key = passkey_enrolled(world, session)
    asked = step_up(world, session)
    begun = world.app.post(
        f"/v1/challenges/{asked['challenge_id']}/start", json={"method": "passkey"}
    )
    assert begun.status_code == 200, begun.text
    real = key.get(begun.json()["start"])
    deep_client_data = {**real, "response": {**real["response"],
                                             "clientDataJSON": _b64(nested(DEEP))}}  # fmt: skip
    deep_string = "[" * DEEP + "]" * DEEP  # the response as a JSON string
    for proof in (deep_client_data, deep_string):
        answer = world.verify(asked["challenge_id"], "passkey", proof)
        assert (answer.status_code, answer.json()["code"]) == (400, "challenge.proof_malformed")
        _refused_and_nothing_spent(world, asked["challenge_id"], answer)


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentsWorld]:
    made = AgentsWorld(tmp_path_factory.mktemp("agents"))
    try:
        made.nhi("service", "ledger", owner="team:finance")
        registered = made.admin.post("/admin/v1/subjects/ledger/assertion-keys",
                                     params={"type": "service"},
                                     json={"jwks": {"keys": [Signer().jwk()]}})  # fmt: skip
        assert registered.status_code == 201, registered.text
        yield made
    finally:
        made.stop()


@pytest.mark.parametrize("where", ["header", "payload", "shallow-but-over-the-limit"])
def test_deeply_nested_client_assertion_refused(agents: AgentsWorld, where: str):
    """I6: a client assertion nesting thousands of levels is refused (401), not a 500."""
    now = int(time.time())
    assertion = deep_tokens({"iss": "ledger", "sub": "ledger", "aud": "x", "iat": now,
                             "exp": now + 60, "jti": "j"})[where]  # fmt: skip
    answer = agents.app.post("/v1/sessions", json={
        "subject": {"type": "service", "id": "ledger"},
        "credential": {"client_assertion": assertion}})  # fmt: skip
    assert (answer.status_code, answer.json()["code"]) == (401, "credential.invalid")
