"""The events Juncture transmits: `session_revoked`, `assurance_level_change`,
`token_claims_change`, `verification` and `stream_updated` build their payloads, each
checked by `validate` before it is returned."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from juncture.events.event_types import (
    ASSURANCE_LEVEL_CHANGE,
    SESSION_REVOKED,
    STREAM_UPDATED,
    TOKEN_CLAIMS_CHANGE,
    VERIFICATION,
    validate,
)
from juncture.events.members import is_reason
from juncture.events.set import SetError
from juncture.events.subjects import Opaque


class Outgoing(msgspec.Struct, frozen=True, kw_only=True):
    """An event Juncture transmits: its type URI and its payload (give both to `SetSigner`)."""

    event_type: str
    payload: dict[str, Any]


def _reason(text: str | Mapping[str, str]) -> dict[str, str]:
    reason = {"en": text} if isinstance(text, str) else dict(text)
    if not is_reason(reason) or not all(reason.values()):
        raise ValueError("a reason must be non-empty text, or an object of language tag to text")
    return reason


def _caep_common(
    event_timestamp: datetime,
    initiating_entity: str | None,
    reason_admin: str | Mapping[str, str] | None,
    reason_user: str | Mapping[str, str] | None = None,
) -> dict[str, Any]:
    if event_timestamp.tzinfo is None:
        raise ValueError("`event_timestamp` must be an aware datetime")
    payload: dict[str, Any] = {"event_timestamp": int(event_timestamp.timestamp())}
    if initiating_entity is not None:
        payload["initiating_entity"] = initiating_entity
    if reason_admin is not None:
        payload["reason_admin"] = _reason(reason_admin)
    if reason_user is not None:
        payload["reason_user"] = _reason(reason_user)
    return payload


def _checked(event_type: str, payload: dict[str, Any]) -> Outgoing:
    try:
        validate(event_type, payload)
    except SetError as error:
        raise ValueError(error.description) from None
    return Outgoing(event_type=event_type, payload=payload)


def session_revoked(
    *,
    reason_admin: str | Mapping[str, str],
    event_timestamp: datetime,
    reason_user: str | Mapping[str, str] | None = None,
    initiating_entity: str = "policy",
) -> Outgoing:
    """CAEP session-revoked, with the non-empty ``reason_admin`` the interop profile asks for."""
    return _checked(
        SESSION_REVOKED,
        _caep_common(event_timestamp, initiating_entity, reason_admin, reason_user),
    )


def assurance_level_change(
    *,
    current_aal: int,
    event_timestamp: datetime,
    previous_aal: int | None = None,
    initiating_entity: str = "policy",
    reason_admin: str | Mapping[str, str] | None = None,
) -> Outgoing:
    """CAEP assurance-level-change in the ``NIST-AAL`` namespace (``nist-aal1``..``nist-aal3``);
    ``change_direction`` is given whenever ``previous_aal`` is and differs."""
    for level in (current_aal, previous_aal):
        if level is not None and level not in (1, 2, 3):
            raise ValueError("an AAL is 1, 2 or 3")
    payload = _caep_common(event_timestamp, initiating_entity, reason_admin)
    payload.update(namespace="NIST-AAL", current_level=f"nist-aal{current_aal}")
    if previous_aal is not None:
        payload["previous_level"] = f"nist-aal{previous_aal}"
        if previous_aal != current_aal:
            payload["change_direction"] = "increase" if current_aal > previous_aal else "decrease"
    return _checked(ASSURANCE_LEVEL_CHANGE, payload)


def token_claims_change(
    *,
    claims: Mapping[str, Any],
    event_timestamp: datetime,
    initiating_entity: str = "policy",
    reason_admin: str | Mapping[str, str] | None = None,
) -> Outgoing:
    """CAEP token-claims-change: ``claims`` holds the new values, e.g.
    ``{"juncture_path": "limited", "scope": "read"}``."""
    payload = _caep_common(event_timestamp, initiating_entity, reason_admin)
    payload["claims"] = dict(claims)
    return _checked(TOKEN_CLAIMS_CHANGE, payload)


def verification(state: str | None = None) -> Outgoing:
    """SSF verification, echoing the receiver's ``state``; its subject is `stream_subject`."""
    return _checked(VERIFICATION, {} if state is None else {"state": state})


def stream_updated(status: str, reason: str | None = None) -> Outgoing:
    """SSF stream-updated (``enabled``/``paused``/``disabled``); its subject is
    `stream_subject`. Sent before a transmitter pauses or disables a stream by itself."""
    payload: dict[str, Any] = {"status": status}
    if reason is not None:
        payload["reason"] = reason
    return _checked(STREAM_UPDATED, payload)


def stream_subject(stream_id: str) -> Opaque:
    """The subject of a stream-control event: ``{"format": "opaque", "id": <stream_id>}``."""
    if not stream_id:
        raise ValueError("a stream id must not be empty")
    return Opaque(id=stream_id)
