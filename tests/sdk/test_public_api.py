"""The SDK's public API, pinned: a change here is a change for every application using it,
so it must be deliberate (update this test with it)."""

from __future__ import annotations

import inspect

import pytest

import juncture.sdk as sdk
from juncture.sdk import Client, Decision, JunctureProtocolError
from juncture.sdk.answers import from_authzen, from_native

NAMES = [
    "ApiError", "AsyncClient", "BadRequest", "Busy", "CircuitBreaker", "CircuitOpen", "Client",
    "Conflict", "Decision", "Forbidden", "JunctureError", "JunctureProtocolError",
    "JunctureUnavailable", "NotFound", "SessionAnswer", "StepUp", "StepUpHint", "Unauthorized",
    "step_up_challenge", "step_up_hint",
]  # fmt: skip

SIGNATURES = {
    "__init__": "(self, base_url: 'str', app_key: 'str', *, timeout: 'float' = 2.0, "
    "retries: 'int' = 2, retry_budget: 'float' = 5.0, backoff: 'float' = 0.05, "
    "on_unavailable: 'OnUnavailable' = 'raise', breaker: 'CircuitBreaker | None' = None, "
    "transport: 'httpx.{}BaseTransport | None' = None) -> 'None'",
    "evaluate": "(self, subject: 'Subject', action: 'str', *, resource: "
    "'Mapping[str, Any] | None' = None, session_id: 'str | None' = None, "
    "context: 'Mapping[str, Any] | None' = None) -> 'Decision'",
    "start_session": "(self, subject: 'Subject | None' = None, *, proofs: 'Sequence[Proof]' = (), "
    "context: 'Mapping[str, Any] | None' = None, action: 'str | None' = None, **extra: 'Any') "
    "-> 'SessionAnswer'",
    "read_session": "(self, session_id: 'str') -> 'dict[str, Any]'",
    "update_context": "(self, session_id: 'str', *, context: 'Mapping[str, Any] | None' = None, "
    "signals: 'Mapping[str, Any] | None' = None) -> 'SessionAnswer'",
    "end_session": "(self, session_id: 'str', *, revoke_reason: 'str | None' = None) "
    "-> 'dict[str, Any]'",
    "start_challenge": "(self, challenge_id: 'str', method: 'str') -> 'dict[str, Any]'",
    "verify_challenge": "(self, challenge_id: 'str', method: 'str', proof: 'Any' = None) "
    "-> 'SessionAnswer'",
}


def test_the_exported_names_are_pinned():
    assert sorted(sdk.__all__) == NAMES
    assert all(hasattr(sdk, name) for name in NAMES)


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_both_clients_have_the_pinned_signatures(name: str):
    for client, prefix in ((sdk.Client, ""), (sdk.AsyncClient, "Async")):
        expected = SIGNATURES[name].replace("{}", prefix)
        assert str(inspect.signature(getattr(client, name))) == expected
    if name != "__init__":
        assert inspect.iscoroutinefunction(getattr(sdk.AsyncClient, name))


def test_the_middleware_names_are_pinned():
    from juncture.sdk import asgi, enforce, ssf, wsgi

    assert asgi.__all__ == ["JunctureMiddleware", "checkpoint"]
    assert wsgi.__all__ == ["JunctureWSGIMiddleware"]
    assert ssf.__all__ == ["InvalidSET", "PollReceiver", "SecurityEvent", "SeenEvents",
                           "SetVerifier", "push_endpoint"]  # fmt: skip
    assert enforce.__all__ == ["HOSTED_STEP_UP", "Identity", "Incoming", "routes"]
    assert str(inspect.signature(asgi.JunctureMiddleware)) == (
        "(app: 'ASGIApp', client: 'AsyncClient', identify: 'Identify', *, "
        "checkpoint_for: 'CheckpointFor | None' = None, "
        "step_up_url: 'str' = '/hosted/v1/step-up') -> 'None'"
    )
    assert str(inspect.signature(wsgi.JunctureWSGIMiddleware)) == (
        "(app: 'WSGIApp', client: 'Client', identify: 'Identify', *, "
        "checkpoint_for: 'CheckpointFor', step_up_url: 'str' = '/hosted/v1/step-up') -> 'None'"
    )


def test_decision_fields_are_pinned():
    fields = list(Decision.__dataclass_fields__)
    assert fields == ["outcome", "reason", "id", "version", "scopes", "path", "step_up",
                      "challenge_id", "www_authenticate", "ttl", "missing"]  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        None, [], {"decision": True}, {"decision": True, "context": {"outcome": "deny"}},
        {"decision": False, "context": {"outcome": "allow"}},
        {"decision": 1, "context": {"outcome": "allow"}},
        {"decision": False, "context": {"outcome": "maybe"}},
        {"decision": True, "context": {"outcome": "allow", "scopes": "a"}},
        {"decision": False, "context": {"outcome": "step_up", "max_age": -1, "methods": []}},
        {"decision": False, "context": {"outcome": "step_up", "methods": [1]}},
        {"decision": False, "context": {"outcome": "deny", "reason": 5}},
    ],
)  # fmt: skip
def test_an_evaluation_answer_of_another_shape_is_refused_not_guessed(body: object):
    with pytest.raises(JunctureProtocolError):
        from_authzen(body)


@pytest.mark.parametrize(
    "body",
    [
        {"outcome": "allow"}, {"outcome": "allow", "permitted": False},
        {"outcome": "deny", "permitted": True}, {"outcome": "step_up", "permitted": False},
        {"outcome": "step_up", "permitted": False, "challenge": [], "step_up": {"methods": []}},
    ],
)  # fmt: skip
def test_a_native_decision_of_another_shape_is_refused(body: object):
    with pytest.raises(JunctureProtocolError):
        from_native(body)


def test_bad_arguments_are_refused_before_anything_is_sent():
    with pytest.raises(ValueError):
        Client("http://127.0.0.1:1", "k", on_unavailable="allow")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Client("http://127.0.0.1:1", "k", timeout=0)
    with pytest.raises(ValueError):
        sdk.CircuitBreaker(threshold=0)
    with Client("http://127.0.0.1:1", "k") as client, pytest.raises(ValueError):
        client.read_session("")
