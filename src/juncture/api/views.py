"""Read models: what the API shows of sessions, challenges and decisions (never secrets)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from juncture.api.authzen import www_authenticate
from juncture.engine import Decision
from juncture.engine.decision import StepUp
from juncture.records import (
    App,
    CacheState,
    Challenge,
    Delegation,
    Observed,
    Session,
    Standing,
    Task,
)
from juncture.service.clock import ClockState
from juncture.signals.watch import SourceStatus

# -- the shapes of the answers (documented in /openapi.json; the builders below fill them) -----


class ChallengeView(msgspec.Struct, frozen=True, kw_only=True):
    """A step-up challenge: what answers it and until when."""

    id: str
    session_id: str
    checkpoint: str
    methods: list[str]
    mode: str
    within: int | None
    aal: int | None
    expires_at: datetime
    attempts_left: int


class StepUpView(StepUp, frozen=True, kw_only=True, omit_defaults=True):
    """What would satisfy the gate; `max_age` repeats `within` (RFC 9470)."""

    max_age: int | None = None


class DecisionView(Decision, frozen=True, kw_only=True, omit_defaults=True):
    """A decision as the API shows it: the engine's, with `permitted`, the RFC 9470
    `www_authenticate` challenge of a step-up and the challenge to answer."""

    step_up: StepUpView | None = None
    permitted: bool
    www_authenticate: str | None = None
    challenge: ChallengeView | None = None


class SubjectView(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    id: str
    properties: dict[str, Any]


class ProofView(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    at: datetime
    asserted_by: str | None


class CredentialView(msgspec.Struct, frozen=True, kw_only=True):
    """The credential a service's or agent's session started with."""

    id: str
    scopes: list[str]


class SessionView(msgspec.Struct, frozen=True, kw_only=True):
    """A session (never its secrets); `handle` only in the answer that starts it."""

    id: str
    status: str
    status_reason: str | None
    subject: SubjectView
    started_at: datetime
    updated_at: datetime
    aal: int
    proofs: list[ProofView]
    signals: dict[str, Any]
    context: dict[str, Any]
    observed: Observed
    path: str | None
    scopes: list[str]
    standing: dict[str, Standing]
    delegation: Delegation | msgspec.UnsetType = msgspec.UNSET
    task: Task | msgspec.UnsetType = msgspec.UNSET
    credential: CredentialView | msgspec.UnsetType = msgspec.UNSET
    handle: str | msgspec.UnsetType = msgspec.UNSET


class LastDecision(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    at: datetime
    action: str
    outcome: str
    reason: str | None
    version: str


class SessionRead(SessionView, frozen=True, kw_only=True):
    """A session with its last decision (and that decision's risk) and the security events
    received about it."""

    last_decision: LastDecision | msgspec.UnsetType = msgspec.UNSET
    risk: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
    events: list[dict[str, Any]]


class DecisionAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """A decision and, when one goes on or was made, the session it is about."""

    decision: DecisionView
    session: SessionView | msgspec.UnsetType = msgspec.UNSET


class AppKeyView(msgspec.Struct, frozen=True, kw_only=True):
    prefix: str
    created_at: datetime
    expires_at: datetime | None


class AppView(msgspec.Struct, frozen=True, kw_only=True):
    """A registered app (its keys by prefix only)."""

    id: str
    name: str
    created_at: datetime
    journeys: list[str]
    assertable_methods: list[str]
    disabled: bool
    keys: list[AppKeyView]
    origins: list[str]
    identity_headers: dict[str, str]
    #: The hosted pages' theme as set (fields left out are the defaults); null: none.
    theme: dict[str, str] | None


class DevClockView(msgspec.Struct, frozen=True, kw_only=True):
    """Development mode's test clock: decision time, the real time, the offset between."""

    now: datetime
    real_now: datetime
    offset_seconds: float


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """`ok`, or `unavailable` (503) while this node's clock is off the store's."""

    status: str
    #: The active policy version (null: none yet).
    version: str | None
    #: The files the enrichers read (geo databases, reputation list) and their state.
    signals: list[SourceStatus]
    decision_log: str
    dev: bool
    dev_clock: DevClockView | msgspec.UnsetType = msgspec.UNSET
    clock: ClockState | msgspec.UnsetType = msgspec.UNSET
    #: The caches of what every decision reads: ``live``, ``bypassed`` (each read goes to the
    #: store: the node cannot tell that every change reached it) or ``off`` (none).
    caches: CacheState | msgspec.UnsetType = msgspec.UNSET


def decision_view(decision: Decision, challenge: Challenge | None) -> dict[str, Any]:
    out = decision.to_dict()
    out["permitted"] = decision.permitted
    if decision.step_up is not None:
        out["www_authenticate"] = www_authenticate(decision.step_up)
    if challenge is not None:
        out["challenge"] = challenge_view(challenge)
    return out


def challenge_view(challenge: Challenge) -> dict[str, Any]:
    return {
        "id": challenge.id,
        "session_id": challenge.session_id,
        "checkpoint": challenge.checkpoint,
        "methods": list(challenge.methods),
        "mode": challenge.mode,
        "within": challenge.within,
        "aal": challenge.aal,
        "expires_at": challenge.expires_at,
        "attempts_left": challenge.attempts_left,
    }


def session_body(session: Session, aal: int, *, with_handle: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": session.id,
        "status": session.status,
        "status_reason": session.status_reason,
        "subject": {
            "type": session.subject_type,
            "id": session.subject_id,
            "properties": session.subject_properties,
        },
        "started_at": session.started_at,
        "updated_at": session.updated_at,
        "aal": aal,
        "proofs": [
            {"method": p.method, "at": p.at, "asserted_by": p.asserted_by} for p in session.proofs
        ],
        "signals": session.signals,
        "context": session.context,
        "observed": msgspec.to_builtins(session.observed),
        "path": session.path,
        "scopes": list(session.scopes),
        "standing": {k: msgspec.to_builtins(v) for k, v in session.standing.items()},
    }
    if session.delegation is not None:
        out["delegation"] = msgspec.to_builtins(session.delegation)
    if session.task is not None:
        out["task"] = msgspec.to_builtins(session.task)
    if session.credential is not None:
        out["credential"] = {"id": session.credential, "scopes": list(session.credential_scopes)}
    if with_handle:
        out["handle"] = session.handle
    return out


def app_view(app: App) -> dict[str, Any]:
    return {
        "id": app.id,
        "name": app.name,
        "created_at": app.created_at,
        "journeys": list(app.journeys),
        "assertable_methods": list(app.assertable_methods),
        "disabled": app.disabled,
        "keys": [
            {"prefix": k.prefix, "created_at": k.created_at, "expires_at": k.expires_at}
            for k in app.keys
        ],
        "origins": list(app.origins),
        "identity_headers": dict(app.identity_headers),
        "theme": msgspec.to_builtins(app.theme) if app.theme is not None else None,
    }


def to_json(value: Any) -> bytes:
    return msgspec.json.encode(value)
