"""What each event type does to the sessions its subject matches: one reaction per type,
from the payload and subject to a `Reaction` (the table in `catalog`'s docstring)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import msgspec

from juncture.events.subjects import Complex, Subject

Scope = Literal["session", "subject", "account"]
_AAL = re.compile(r"(?:nist-)?aal([0-3])|([0-3])", re.IGNORECASE)


class Effect(msgspec.Struct, frozen=True, kw_only=True):
    """What one event does to the sessions it matches (the table in `catalog`'s docstring)."""

    #: The event's short name, e.g. ``caep.session_revoked``.
    event: str
    #: When the change happened (``event_timestamp``, else ``toe``, else ``iat``).
    event_time: datetime
    scope: Scope = "subject"
    revoke: bool = False
    #: Why, for a revocation: the event's short name.
    reason: str | None = None
    #: Signal values to set on every matched session.
    signals: dict[str, Any] = {}
    #: Standing outcomes of the matched sessions must be evaluated again (never with revoke:
    #: a revoked session has none).
    recheck: bool = False
    #: A stream-control event (SSF verification, stream-updated): no session is touched.
    stream: bool = False


@dataclass(frozen=True, slots=True)
class Reaction:
    """What an event type's reaction says of one event: its `Effect` before the event's
    name and time are added."""

    scope: Scope
    revoke: bool = False
    signals: Mapping[str, Any] | None = None
    recheck: bool = False
    stream: bool = False


def nothing(scope: Scope) -> Callable[[Mapping[str, Any], Subject], Reaction]:
    """The reaction of an event that is recorded only: it changes no session."""
    return lambda payload, subject: Reaction(scope=scope)


def sets(
    scope: Scope, *, revoke: bool = False, recheck: bool = False, **signals: Any
) -> Callable[[Mapping[str, Any], Subject], Reaction]:
    """The reaction that sets fixed ``signals`` (and revokes or re-checks), whatever the payload."""
    return lambda payload, subject: Reaction(
        scope=scope, revoke=revoke, recheck=recheck, signals=signals
    )


def on_session_revoked(payload: Mapping[str, Any], subject: Subject) -> Reaction:
    # CAEP "Session Revoked": a session member names the session; otherwise every matching session.
    if isinstance(subject, Complex) and subject.session is not None:
        return Reaction(scope="session", revoke=True, signals={"session_revoked": True})
    return Reaction(
        scope="subject",
        revoke=True,
        signals={"session_revoked": True, "sessions_revoked": True},
    )


def on_claims_change(payload: Mapping[str, Any], subject: Subject) -> Reaction:
    return Reaction(scope="subject", recheck=True, signals={"claims_changed": payload["claims"]})


def on_credential_change(payload: Mapping[str, Any], subject: Subject) -> Reaction:
    change = payload["change_type"]
    credential = {"type": payload["credential_type"], "change": change}
    if change == "create":  # a new credential weakens nothing
        return Reaction(scope="account", signals={"credential": credential})
    return Reaction(
        scope="account",
        recheck=True,
        signals={"credential_changed": True, "credential": credential},
    )


def on_assurance_level_change(payload: Mapping[str, Any], subject: Subject) -> Reaction:
    namespace = payload["namespace"]
    current = payload["current_level"]
    previous = payload.get("previous_level")
    direction = payload.get("change_direction")
    aal = _aal(current) if namespace == "NIST-AAL" else None
    if direction is None and namespace == "NIST-AAL" and previous is not None:
        before = _aal(previous)
        if aal is not None and before is not None and aal != before:
            direction = "increase" if aal > before else "decrease"
    signals: dict[str, Any] = {
        "assurance_level": {
            "namespace": namespace,
            "current": current,
            "previous": previous,
            "direction": direction,
            "aal": aal,
        }
    }
    if direction is not None:
        signals["assurance_lowered"] = direction == "decrease"
    return Reaction(scope="subject", recheck=True, signals=signals)


def _aal(level: object) -> int | None:
    found = _AAL.fullmatch(level) if isinstance(level, str) else None
    if found is None:
        return None
    return int(found.group(1) or found.group(2))


def on_device_compliance(payload: Mapping[str, Any], subject: Subject) -> Reaction:
    noncompliant = payload["current_status"] == "not-compliant"
    return Reaction(scope="subject", recheck=True, signals={"device_noncompliant": noncompliant})


def on_risk_level_change(payload: Mapping[str, Any], subject: Subject) -> Reaction:
    level = payload["current_level"]
    signals: dict[str, Any] = {
        "risk_level": level,
        "risk_elevated": level != "LOW",
        "risk_principal": payload["principal"],
    }
    if "risk_reason" in payload:
        signals["risk_reason"] = payload["risk_reason"]
    return Reaction(scope="subject", recheck=True, signals=signals)


def on_account_disabled(payload: Mapping[str, Any], subject: Subject) -> Reaction:
    signals: dict[str, Any] = {"account_disabled": True}
    if "reason" in payload:
        signals["account_disabled_reason"] = payload["reason"]
    return Reaction(scope="account", revoke=True, signals=signals)


def on_credential_compromise(payload: Mapping[str, Any], subject: Subject) -> Reaction:
    return Reaction(
        scope="account",
        revoke=True,
        signals={
            "credential_compromised": True,
            "credential": {"type": payload["credential_type"], "change": "compromise"},
        },
    )


def on_stream_control(payload: Mapping[str, Any], subject: Subject) -> Reaction:
    return Reaction(scope="subject", stream=True)
