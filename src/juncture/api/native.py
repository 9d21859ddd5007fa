"""The native API (`/v1`): sessions, their context updates, and challenges."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from juncture.api.auth import authenticate_app, connection_of
from juncture.api.hashing import hash_pool
from juncture.api.problems import ApiError, convert, json_body
from juncture.api.views import decision_view, session_body, to_json
from juncture.records import DecisionQuery, StoredProof
from juncture.service.agents import Credential
from juncture.service.challenges import NO_PROOF
from juncture.service.outcome import Outcome
from juncture.service.runtime import Runtime


class SubjectIn(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str = "user"
    properties: dict[str, Any] = {}


class ProofIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    method: str


class DelegationIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The user session an agent acts for (a live session of the same app)."""

    session_id: str


class StartSession(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: Optional only with an API key (the key names its subject).
    subject: SubjectIn | None = None
    context: dict[str, Any] = {}
    proofs: list[ProofIn] = []
    action: str = "login"
    #: A service's or an agent's credential, checked by Juncture (service/agents.py).
    credential: Credential | None = None
    delegation: DelegationIn | None = None
    task: dict[str, Any] | None = None


class TaskChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    task: dict[str, Any]


class ContextUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    context: dict[str, Any] = {}
    signals: dict[str, Any] = {}


class EndSession(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    revoke_reason: str | None = None


class Verify(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    method: str
    #: The proof Juncture verifies (a password, a code, a WebAuthn assertion, a token); absent:
    #: the app asserts the method (its own IdP did the authentication).
    proof: Any = msgspec.UNSET


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _json(body: Any, status: int = 200) -> Response:
    return Response(to_json(body), status_code=status, media_type="application/json")


def _answer(runtime: Runtime, outcome: Outcome, *, with_handle: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"decision": decision_view(outcome.decision, outcome.challenge)}
    if outcome.session is not None:
        out["session"] = session_body(
            outcome.session, runtime.facts.session_aal(outcome.session), with_handle=with_handle
        )
    return out


async def start_session(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    body = convert(await json_body(request), StartSession)
    now = runtime.now()
    proofs = [StoredProof(method=p.method, at=now, asserted_by=app.id) for p in body.proofs]
    if body.subject is None and (body.credential is None or body.credential.api_key is None):
        raise ApiError(400, "request.invalid", "`subject` is required (only an API key names "
                       "its own)")  # fmt: skip
    outcome = runtime.sessions.start(
        app,
        msgspec.to_builtins(body.subject) if body.subject is not None else {},
        body.context,
        proofs,
        action=body.action,
        connection=connection_of(request, runtime),
        credential=body.credential,
        delegation=body.delegation.session_id if body.delegation is not None else None,
        task=body.task,
    )
    # A login that does not go on (deny, revoke) makes no session: 200 with the decision alone.
    return _json(_answer(runtime, outcome, with_handle=True),
                 201 if outcome.session is not None else 200)  # fmt: skip


async def change_task(request: Request) -> Response:
    """Give an agent session its new task: the next decisions follow it."""
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    body = convert(await json_body(request), TaskChange)
    outcome = runtime.sessions.change_task(app, request.path_params["session_id"], body.task)
    return _json(_answer(runtime, outcome))


async def read_session(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    session = runtime.sessions.get(app, request.path_params["session_id"])
    view = session_body(session, runtime.facts.session_aal(session))
    last = runtime.log.writer.query(DecisionQuery(session_id=session.id, limit=1))
    if last:
        view["last_decision"] = {
            "id": last[0].id,
            "at": last[0].at,
            "action": last[0].action,
            "outcome": last[0].outcome,
            "reason": last[0].reason,
            "version": last[0].version,
        }
        view["risk"] = last[0].decision.get("risk")
    view["events"] = [
        msgspec.to_builtins(e) for e in runtime.sessions.received(session)
    ]
    return _json(view)


async def end_session(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    body = convert(await json_body(request, required=False), EndSession)
    session = runtime.sessions.end(
        app, request.path_params["session_id"], revoke_reason=body.revoke_reason
    )
    return _json(session_body(session, runtime.facts.session_aal(session)))


async def update_context(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    body = convert(await json_body(request), ContextUpdate)
    if not body.context and not body.signals:
        raise ApiError(400, "request.invalid", "give `context` or `signals`")
    outcome = runtime.sessions.update_context(
        app,
        request.path_params["session_id"],
        context=body.context,
        signals=body.signals,
        connection=connection_of(request, runtime),
    )
    return _json(_answer(runtime, outcome))


async def verify_challenge(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    body = convert(await json_body(request), Verify)
    proof = NO_PROOF if body.proof is msgspec.UNSET else body.proof
    challenge_id = request.path_params["challenge_id"]
    # A password is hashed here: in the bounded hashing pool, off the event loop.
    outcome = await hash_pool(request).run(
        lambda: runtime.challenges.verify(app, challenge_id, body.method, proof)
    )
    return _json(_answer(runtime, outcome, with_handle=True))


ROUTES = [
    ("/v1/sessions", start_session, ["POST"]),
    ("/v1/sessions/{session_id}", read_session, ["GET"]),
    ("/v1/sessions/{session_id}/end", end_session, ["POST"]),
    ("/v1/sessions/{session_id}/signals", update_context, ["POST"]),
    ("/v1/sessions/{session_id}/task", change_task, ["POST"]),
    ("/v1/challenges/{challenge_id}/verify", verify_challenge, ["POST"]),
]
