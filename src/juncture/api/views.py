"""Read models: what the API shows of sessions, challenges and decisions (never secrets)."""

from __future__ import annotations

from typing import Any

import msgspec

from juncture.api.authzen import www_authenticate
from juncture.engine import Decision
from juncture.store.models import App, Challenge, Session


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
    }


def to_json(value: Any) -> bytes:
    return msgspec.json.encode(value)
