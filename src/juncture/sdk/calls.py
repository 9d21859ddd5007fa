"""The requests the clients send and how their answers are read, shared by `Client` and
`AsyncClient` (which differ only in how they wait)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx

from juncture.sdk.errors import JunctureProtocolError, JunctureUnavailable, api_error

OnUnavailable = Literal["raise", "deny"]
Subject = str | Mapping[str, Any]
Proof = str | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Call:
    """One request: ``safe`` ones (decisions, reads) may be sent again after a failure; the
    others (a session's start, a challenge's verification) never are: a second send could do
    it twice or spend an attempt."""

    method: str
    path: str
    body: Mapping[str, Any] | None
    safe: bool


def segment(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("an id must be a non-empty string")
    return quote(value, safe="")


def subject_body(subject: Subject) -> dict[str, Any]:
    if isinstance(subject, str):
        return {"type": "user", "id": subject}
    return dict(subject)


def evaluation(
    subject: Subject,
    action: str,
    resource: Mapping[str, Any] | None,
    session_id: str | None,
    context: Mapping[str, Any] | None,
) -> Call:
    ctx = dict(context or {})
    if session_id is not None:
        ctx["session_id"] = session_id
    if resource is None:
        resource = {"type": "checkpoint", "id": action}
    body = {
        "subject": subject_body(subject),
        "action": {"name": action},
        "resource": dict(resource),
        "context": ctx,
    }
    return Call("POST", "/access/v1/evaluation", body, safe=True)


def start_session(
    subject: Subject | None,
    proofs: Sequence[Proof],
    context: Mapping[str, Any] | None,
    action: str | None,
    extra: Mapping[str, Any],
) -> Call:
    body: dict[str, Any] = dict(extra)
    if subject is not None:
        body["subject"] = subject_body(subject)
    body["proofs"] = [{"method": p} if isinstance(p, str) else dict(p) for p in proofs]
    if context:
        body["context"] = dict(context)
    if action is not None:
        body["action"] = action
    return Call("POST", "/v1/sessions", body, safe=False)


def read_session(session_id: str) -> Call:
    return Call("GET", f"/v1/sessions/{segment(session_id)}", None, safe=True)


def update_context(
    session_id: str, context: Mapping[str, Any] | None, signals: Mapping[str, Any] | None
) -> Call:
    body: dict[str, Any] = {}
    if context is not None:
        body["context"] = dict(context)
    if signals is not None:
        body["signals"] = dict(signals)
    return Call("POST", f"/v1/sessions/{segment(session_id)}/signals", body, safe=False)


def end_session(session_id: str, revoke_reason: str | None) -> Call:
    body = None if revoke_reason is None else {"revoke_reason": revoke_reason}
    return Call("POST", f"/v1/sessions/{segment(session_id)}/end", body, safe=False)


def start_challenge(challenge_id: str, method: str) -> Call:
    path = f"/v1/challenges/{segment(challenge_id)}/start"
    return Call("POST", path, {"method": method}, safe=False)


def verify_challenge(challenge_id: str, method: str, proof: Any) -> Call:
    body: dict[str, Any] = {"method": method}
    if proof is not None:
        body["proof"] = proof
    return Call("POST", f"/v1/challenges/{segment(challenge_id)}/verify", body, safe=False)


def request_args(call: Call) -> dict[str, Any]:
    if call.body is None:
        return {}
    return {
        "content": json.dumps(call.body).encode(),
        "headers": {"Content-Type": "application/json"},
    }


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 60 else None


def read(response: httpx.Response) -> Any:
    """The answer's JSON body; a problem document is raised: 5xx as `JunctureUnavailable`,
    others as the `ApiError` of its status, with its ``code``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 500:
        code = body.get("code") if isinstance(body, dict) else None
        raise JunctureUnavailable(
            f"Juncture answered {response.status_code}",
            code=code if isinstance(code, str) else "unavailable.server",
            status=response.status_code,
        )
    if response.status_code >= 400:
        error = api_error(response.status_code, body if isinstance(body, dict) else {})
        if response.status_code == 429:
            error.retry_after = retry_after(response)  # type: ignore[attr-defined]
        raise error
    if not isinstance(body, dict) or response.status_code not in (200, 201):
        raise JunctureProtocolError(f"unexpected answer: {response.status_code}")
    return body


def transport_error(exc: httpx.HTTPError) -> JunctureUnavailable:
    if isinstance(exc, httpx.TimeoutException):
        return JunctureUnavailable(f"Juncture timed out: {exc!r}", code="unavailable.timeout")
    return JunctureUnavailable(f"Juncture cannot be reached: {exc!r}", code="unavailable.connect")
