"""Subjects and their authenticators: the admin API (`/admin/v1/subjects`, scope
`manage_subjects`) and the self-service API (`/v1/subjects/{id}/authenticators`, an app key
and a session of that subject), plus the start of a challenge's ceremony.

Self-service enrollment and removal are checkpoints (`authenticator.enroll`,
`authenticator.remove`): the answer is the decision, and the change happens only on allow.
Nothing here ever returns a stored secret; what enrollment shows once is shown once.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from juncture.api.auth import authenticate_admin, authenticate_app
from juncture.api.hashing import hash_pool
from juncture.api.problems import ApiError, convert, json_body
from juncture.api.views import decision_view, session_body, to_json
from juncture.methods.base import MethodError
from juncture.records import App, Authenticator, Session, Subject
from juncture.service.agents import parse_scopes
from juncture.service.authn import authenticator_view, shown_view
from juncture.service.directory import ENROLL, REMOVE
from juncture.service.outcome import Outcome
from juncture.service.runtime import Runtime

SUBJECT_TYPES = ("user", "service", "agent")
_OWNER = re.compile(r"^(user|team):[A-Za-z0-9][A-Za-z0-9._@/-]{0,127}$")


class NewSubject(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    type: Literal["user", "service", "agent"] = "user"
    attributes: dict[str, Any] = {}
    status: Literal["active", "disabled"] = "active"
    #: Services and agents: who answers for it (``user:<id>`` or ``team:<name>``).
    owner: str | None = None
    description: str = ""


class SubjectChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    attributes: dict[str, Any] | None = None
    status: Literal["active", "disabled"] | None = None
    owner: str | None = None
    description: str | None = None


class NewKey(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An API key to issue: a label, the checkpoints it reaches (globs; none: any), a life."""

    label: Annotated[str, msgspec.Meta(max_length=200)] = ""
    scopes: list[str] = []
    expires_in: int | str | None = None


class Rotate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How long the old key keeps working beside the new one (``0s``: not at all)."""

    overlap: int | str = "24h"


class NewAssertionKeys(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Public keys (a JWK Set) a service signs its client assertions with."""

    jwks: dict[str, Any]
    label: Annotated[str, msgspec.Meta(max_length=200)] = ""
    scopes: list[str] = []
    expires_in: int | str | None = None


class Enroll(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to enroll: the journey's method name, and the input its kind needs."""

    method: str
    session_id: str | None = None  # self-service: the subject's session
    journey: str | None = None  # admin: which journey's method (when several could)
    label: str = ""
    password: str | None = None  # password
    account: str | None = None  # totp: the label in the authenticator app
    address: str | None = None  # email_code
    user_name: str | None = None  # webauthn
    display_name: str | None = None  # webauthn
    #: A plug-in kind's own fields, handed to its enrol step as ``given["input"]``.
    input: dict[str, Any] = msgspec.field(default_factory=dict)


class Confirm(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    proof: Any
    session_id: str | None = None
    journey: str | None = None


class Start(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    method: str


# -- the shapes of the answers (documented in /openapi.json) -----------------------------------


class SubjectRef(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    id: str


class AuthenticatorView(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticator (`service.authn.authenticator_view`): never its record."""

    id: str
    subject: SubjectRef
    method: str
    kind: str
    label: str
    created_at: datetime
    confirmed: bool
    confirmed_at: datetime | None
    last_used_at: datetime | None
    last_used_from: str | None
    expires_at: datetime | None
    scopes: list[str]


class SubjectShown(msgspec.Struct, frozen=True, kw_only=True):
    """A subject; `owner` and `description` for services and agents only."""

    type: str
    id: str
    status: str
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    owner: str | msgspec.UnsetType | None = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET


class SubjectDetail(SubjectShown, frozen=True, kw_only=True):
    authenticators: list[AuthenticatorView]


class SubjectList(msgspec.Struct, frozen=True, kw_only=True):
    """A page of subjects; `next` (the `after` of the next page) when the page is full."""

    subjects: list[SubjectShown]
    next: str | msgspec.UnsetType = msgspec.UNSET


class AuthenticatorList(msgspec.Struct, frozen=True, kw_only=True):
    authenticators: list[AuthenticatorView]


class Enrolled(msgspec.Struct, frozen=True, kw_only=True):
    """A new authenticator and what is shown of it this once (a TOTP secret, ...)."""

    authenticator: AuthenticatorView
    shown: Any


class AuthenticatorAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticator confirmed, or registered (assertion keys)."""

    authenticator: AuthenticatorView


class Removed(msgspec.Struct, frozen=True, kw_only=True):
    removed: AuthenticatorView
    sessions_revoked: int


class IssuedKey(msgspec.Struct, frozen=True, kw_only=True):
    """A new API key (shown this once); `retired`: the key a rotation replaces."""

    authenticator: AuthenticatorView
    key: str
    retired: AuthenticatorView | msgspec.UnsetType = msgspec.UNSET


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _json(body: Any, status: int = 200) -> Response:
    return Response(to_json(body), status_code=status, media_type="application/json")


def subject_view(subject: Subject) -> dict[str, Any]:
    view = {
        "type": subject.type,
        "id": subject.id,
        "status": subject.status,
        "attributes": subject.attributes,
        "created_at": subject.created_at,
        "updated_at": subject.updated_at,
    }
    if subject.type != "user":
        view["owner"] = subject.owner
        view["description"] = subject.description
    return view


def _check_owner(owner: str | None, description: str | None) -> None:
    if owner is not None and not _OWNER.match(owner):
        raise ApiError(400, "request.invalid", "`owner` is `user:<id>` or `team:<name>`")
    if description is not None and len(description) > 1000:
        raise ApiError(400, "request.invalid", "`description` is at most 1000 characters")


def _type(request: Request) -> str:
    kind = request.query_params.get("type", "user")
    if kind not in SUBJECT_TYPES:
        raise ApiError(400, "request.invalid", f"unknown subject type `{kind}`")
    return kind


def _subject(runtime: Runtime, subject_type: str, subject_id: str) -> Subject:
    return runtime.directory.subject(subject_type, subject_id)


def _authenticator(runtime: Runtime, subject: Subject, authenticator_id: str) -> Authenticator:
    return runtime.directory.authenticator(subject, authenticator_id)


async def _send(enrolled_or_started: Any) -> None:
    """Hand an email code to the mail server (async: it is the one call that waits)."""
    message, method = enrolled_or_started
    if message is None:
        return
    try:
        await method.send(message)
    except MethodError as exc:  # not the caller's doing: whatever the method says, 503
        raise ApiError(503, exc.code, str(exc)) from None


# -- admin ---------------------------------------------------------------------------------


async def create_subject(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "manage_subjects")
    body = convert(await json_body(request), NewSubject)
    if not body.id or len(body.id) > 256:
        raise ApiError(400, "request.invalid", "`id` must be 1 to 256 characters")
    _check_owner(body.owner, body.description)
    if body.type == "user" and (body.owner is not None or body.description):
        raise ApiError(400, "request.invalid", "`owner` and `description` are for services "
                       "and agents")  # fmt: skip
    made = runtime.directory.create_subject(
        body.type, body.id, attributes=body.attributes, status=body.status,
        owner=body.owner, description=body.description,
    )  # fmt: skip
    return _json(subject_view(made), 201)


async def list_subjects(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    try:
        limit = max(1, min(int(request.query_params.get("limit", "100")), 1000))
    except ValueError:
        raise ApiError(400, "request.invalid", "`limit` must be a number") from None
    status = request.query_params.get("status")
    found = runtime.directory.subjects(
        subject_type=request.query_params.get("type"),
        status=status,
        limit=limit,
        after=request.query_params.get("after"),
    )
    body: dict[str, Any] = {"subjects": [subject_view(s) for s in found]}
    if len(found) == limit:
        body["next"] = f"{found[-1].type}:{found[-1].id}"
    return _json(body)


async def read_subject(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    subject = _subject(runtime, _type(request), request.path_params["subject_id"])
    view = subject_view(subject)
    view["authenticators"] = [
        authenticator_view(a) for a in runtime.directory.authenticators(subject)
    ]
    return _json(view)


async def change_subject(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "manage_subjects")
    body = convert(await json_body(request), SubjectChange)
    _check_owner(body.owner, body.description)
    kind = _type(request)
    if kind == "user" and (body.owner is not None or body.description is not None):
        raise ApiError(400, "request.invalid", "`owner` and `description` are for services "
                       "and agents")  # fmt: skip
    changed = runtime.directory.update_subject(
        kind,
        request.path_params["subject_id"],
        attributes=body.attributes,
        status=body.status,
        owner=body.owner,
        description=body.description,
    )
    return _json(subject_view(changed))


async def admin_enroll(request: Request) -> Response:
    """Enroll for a subject without a checkpoint (an administrator's act, e.g. onboarding)."""
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "manage_subjects")
    body = convert(await json_body(request), Enroll)
    subject = _subject(runtime, _type(request), request.path_params["subject_id"])
    plan, journey = runtime.directory.journey(
        None, subject.type, body.journey, method=body.method
    )
    enrolled = await hash_pool(request).run(  # a password or recovery codes are hashed
        lambda: runtime.directory.enroll(
            plan, journey, subject, body.method, msgspec.to_builtins(body), label=body.label
        )
    )
    await _send((enrolled.message, enrolled.method))
    return _json(
        {
            "authenticator": authenticator_view(enrolled.authenticator),
            "shown": shown_view(enrolled.shown),
        },
        201,
    )


async def admin_confirm(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "manage_subjects")
    body = convert(await json_body(request), Confirm)
    subject = _subject(runtime, _type(request), request.path_params["subject_id"])
    found = _authenticator(runtime, subject, request.path_params["authenticator_id"])
    plan, journey = runtime.directory.journey(
        None, subject.type, body.journey, method=found.method
    )
    confirmed = runtime.directory.confirm(plan, journey, found, body.proof)
    return _json({"authenticator": authenticator_view(confirmed)})


async def admin_remove(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "manage_subjects")
    subject = _subject(runtime, _type(request), request.path_params["subject_id"])
    found = _authenticator(runtime, subject, request.path_params["authenticator_id"])
    runtime.directory.remove(found)
    ended = runtime.changes.end_credential_sessions(found, "credential_removed")
    return _json({"removed": authenticator_view(found), "sessions_revoked": ended})


async def issue_key(request: Request) -> Response:
    """Issue an API key to a service or an agent: the key is in this answer only."""
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "manage_subjects")
    body = convert(await json_body(request), NewKey)
    subject = _subject(runtime, _type(request), request.path_params["subject_id"])
    made, key = runtime.agents.issue_key(
        subject, label=body.label, scopes=parse_scopes(body.scopes),
        expires_in=body.expires_in, now=runtime.now(),
    )  # fmt: skip
    return _json({"authenticator": authenticator_view(made), "key": key}, 201)


async def rotate_key(request: Request) -> Response:
    """A new key for an old one; the old one works on for the overlap, then ends."""
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "manage_subjects")
    body = convert(await json_body(request, required=False), Rotate)
    subject = _subject(runtime, _type(request), request.path_params["subject_id"])
    made, key, retired = runtime.agents.rotate_key(
        subject, request.path_params["authenticator_id"], overlap=body.overlap,
        now=runtime.now(),
    )  # fmt: skip
    return _json(
        {"authenticator": authenticator_view(made), "key": key,
         "retired": authenticator_view(retired)},
        201,
    )  # fmt: skip


async def register_assertion_keys(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "manage_subjects")
    body = convert(await json_body(request), NewAssertionKeys)
    subject = _subject(runtime, _type(request), request.path_params["subject_id"])
    made = runtime.agents.register_assertion_keys(
        subject, body.jwks, label=body.label, scopes=parse_scopes(body.scopes),
        expires_in=body.expires_in, now=runtime.now(),
    )  # fmt: skip
    return _json({"authenticator": authenticator_view(made)}, 201)


# -- self-service ----------------------------------------------------------------------------


def _own_session(
    runtime: Runtime, app: App, session_id: str | None, subject_id: str
) -> tuple[Session, Subject]:
    """The app's live session of ``subject_id``, and the subject in the directory."""
    if not session_id:
        raise ApiError(400, "request.invalid", "`session_id` (a session of the subject) is needed")
    session = runtime.sessions.get(app, session_id)
    if session.subject_id != subject_id:
        raise ApiError(403, "session.subject_mismatch", "the session is not the subject's")
    if session.status != "active":
        raise ApiError(409, "session.not_active", f"the session is {session.status}")
    return session, _subject(runtime, session.subject_type, subject_id)


def _gate(
    runtime: Runtime, app: App, session: Session, action: str, found: dict[str, Any]
) -> Outcome:
    return runtime.decisions.decide(
        app, action, {"resource": {"type": "authenticator", **found}}, session_id=session.id
    )


def _answer(runtime: Runtime, outcome: Outcome) -> dict[str, Any]:
    out: dict[str, Any] = {"decision": decision_view(outcome.decision, outcome.challenge)}
    if outcome.session is not None:
        out["session"] = session_body(outcome.session, runtime.facts.session_aal(outcome.session))
    return out


async def list_authenticators(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    subject_id = request.path_params["subject_id"]
    _, subject = _own_session(runtime, app, request.query_params.get("session_id"), subject_id)
    found = runtime.directory.authenticators(subject)
    return _json({"authenticators": [authenticator_view(a) for a in found]})


async def enroll(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    body = convert(await json_body(request), Enroll)
    subject_id = request.path_params["subject_id"]
    session, subject = _own_session(runtime, app, body.session_id, subject_id)
    plan, journey = runtime.directory.journey(app.name, subject.type)
    info = journey.methods.get(body.method)
    if info is None:
        raise ApiError(
            400,
            "authenticator.unknown_method",
            f"journey `{journey.name}` declares no method `{body.method}`",
        )
    runtime.directory.methods.get(plan, journey, body.method)  # configured: or 503 now
    properties = {"method": body.method, "kind": info.kind, "aal": info.aal}
    outcome = _gate(runtime, app, session, ENROLL, {"id": body.method, "properties": properties})
    answer = _answer(runtime, outcome)
    if outcome.decision.outcome != "allow":
        return _json(answer)
    enrolled = await hash_pool(request).run(  # a password or recovery codes are hashed
        lambda: runtime.directory.enroll(
            plan, journey, subject, body.method, msgspec.to_builtins(body), label=body.label
        )
    )
    await _send((enrolled.message, enrolled.method))
    answer["authenticator"] = authenticator_view(enrolled.authenticator)
    answer["shown"] = shown_view(enrolled.shown)
    return _json(answer, 201)


async def confirm(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    body = convert(await json_body(request), Confirm)
    subject_id = request.path_params["subject_id"]
    _, subject = _own_session(runtime, app, body.session_id, subject_id)
    found = _authenticator(runtime, subject, request.path_params["authenticator_id"])
    plan, journey = runtime.directory.journey(app.name, subject.type)
    confirmed = runtime.directory.confirm(plan, journey, found, body.proof)
    return _json({"authenticator": authenticator_view(confirmed)})


async def remove(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    subject_id = request.path_params["subject_id"]
    session, subject = _own_session(
        runtime, app, request.query_params.get("session_id"), subject_id
    )
    found = _authenticator(runtime, subject, request.path_params["authenticator_id"])
    _, journey = runtime.directory.journey(app.name, subject.type)
    info = journey.methods.get(found.method)
    properties = {"method": found.method, "kind": found.kind, "aal": info.aal if info else 3}
    outcome = _gate(runtime, app, session, REMOVE, {"id": found.id, "properties": properties})
    answer = _answer(runtime, outcome)
    if outcome.decision.outcome == "allow":
        runtime.directory.remove(found)
        answer["removed"] = authenticator_view(found)
    return _json(answer)


async def start_challenge(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    body = convert(await json_body(request), Start)
    challenge_id = request.path_params["challenge_id"]
    public, to_send = runtime.challenges.start(app, challenge_id, body.method)
    await _send(to_send)
    return _json({"method": body.method, "start": public})


ROUTES = [
    ("/admin/v1/subjects", create_subject, ["POST"]),
    ("/admin/v1/subjects", list_subjects, ["GET"]),
    ("/admin/v1/subjects/{subject_id}", read_subject, ["GET"]),
    ("/admin/v1/subjects/{subject_id}", change_subject, ["PATCH"]),
    ("/admin/v1/subjects/{subject_id}/authenticators", admin_enroll, ["POST"]),
    (
        "/admin/v1/subjects/{subject_id}/authenticators/{authenticator_id}/confirm",
        admin_confirm,
        ["POST"],
    ),
    ("/admin/v1/subjects/{subject_id}/authenticators/{authenticator_id}", admin_remove, ["DELETE"]),
    ("/admin/v1/subjects/{subject_id}/keys", issue_key, ["POST"]),
    ("/admin/v1/subjects/{subject_id}/keys/{authenticator_id}/rotate", rotate_key, ["POST"]),
    ("/admin/v1/subjects/{subject_id}/assertion-keys", register_assertion_keys, ["POST"]),
    ("/v1/subjects/{subject_id}/authenticators", list_authenticators, ["GET"]),
    ("/v1/subjects/{subject_id}/authenticators", enroll, ["POST"]),
    ("/v1/subjects/{subject_id}/authenticators/{authenticator_id}/confirm", confirm, ["POST"]),
    ("/v1/subjects/{subject_id}/authenticators/{authenticator_id}", remove, ["DELETE"]),
    ("/v1/challenges/{challenge_id}/start", start_challenge, ["POST"]),
]
