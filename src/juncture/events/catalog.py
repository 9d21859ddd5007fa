"""The event types Juncture understands, what each payload must hold, and what each does.

**Validation** (`validate`): each known event type's payload is checked against its spec —
the members it requires, and the type or the enumerated values of every member it defines;
members it does not define are ignored (SSF, "Additional fields"). A violation is `SetError`
``invalid_request`` (RFC 8935: "the payload breaks the event definition"). Every event may
carry ``event_timestamp`` (a NumericDate); the CAEP events and RISC credential-compromise
may also carry ``initiating_entity`` (``admin``/``user``/``policy``/``system``) and
``reason_admin``/``reason_user`` (an object of BCP 47 tag → text; a bare string, as SSF
drafts wrote, is read too). An event type outside the catalog is ``invalid_request``.

**Effects** (`effect_of`): what a verified, valid event does to the sessions its subject
matches, as a pure value. The service finds the sessions (`subjects.keys` then
`subjects.matches`), applies ``signals`` (names from `juncture.policy.schema.SIGNAL_DEFAULTS`
plus richer ones), revokes when ``revoke`` and re-checks standing outcomes when
``recheck``. ``scope`` says which sessions:

- ``session``: only the session(s) the subject's ``session`` member names;
- ``subject``: every session that matches the whole subject (a user alone: all the user's
  sessions; a user and a device: the user's sessions on that device);
- ``account``: every session of the account, whatever narrower members (session, device,
  application) the subject also names — see `account_subject`.

=====================================  =====  ========  =================================
event                                  scope  revoke    signals set (on every match)
=====================================  =====  ========  =================================
caep session-revoked, session member   sess.  yes       session_revoked
caep session-revoked, no session       subj.  yes       session_revoked, sessions_revoked
caep token-claims-change               subj.  recheck   claims_changed = the claims
caep credential-change create          acct.  no        credential = {type, change}
caep credential-change update/revoke/  acct.  recheck   credential_changed, credential
delete
caep assurance-level-change            subj.  recheck   assurance_level = {namespace, current,
                                                        previous, direction, aal};
                                                        assurance_lowered true on decrease,
                                                        false on increase
caep device-compliance-change          subj.  recheck   device_noncompliant = current is
                                                        ``not-compliant``
caep session-established / -presented  subj.  no        none (inventory, liveness)
caep risk-level-change                 subj.  recheck   risk_level, risk_principal,
                                                        risk_reason; risk_elevated = level
                                                        is MEDIUM or HIGH
risc account-disabled                  acct.  yes       account_disabled (+ reason)
risc account-enabled                   acct.  recheck   account_disabled = false
risc account-purged                    acct.  yes       account_purged
risc credential-compromise             acct.  yes       credential_compromised, credential
risc sessions-revoked (deprecated)     acct.  yes       sessions_revoked
risc identifier-recycled               acct.  yes       identifier_recycled
risc account-credential-change-        acct.  recheck   credential_change_required
required
risc recovery-activated                acct.  recheck   recovery_activated
risc recovery-information-changed      acct.  recheck   recovery_information_changed
risc identifier-changed, opt-in,       acct.  no        none (recorded only)
opt-out-*
ssf verification, stream-updated       —      no        none: ``stream`` is true, no
                                                        session is touched
=====================================  =====  ========  =================================

credential-change does not revoke by itself: ``credential_changed`` is the signal a journey
guard turns into a step-up or a revocation (CAEP leaves the reaction to the receiver; ASVS
7.4.3). A revoking effect carries ``reason`` = the event's short name (``caep.session_revoked``,
``risc.account_disabled``, …).

**Event time** is ``event_timestamp`` when the payload has it, else the SET's ``toe``, else
its ``iat``, and never later than ``iat``.

**Out of order** (`newer`): the service keeps, per (subject, signal), the time of the last
event applied; an event strictly older than that is ignored for that signal, an
equal or newer one applies (arrival order breaks ties: a transmitter keeps one subject's
events in order). The rule is for signals, which a later event may reverse; a revocation is
never undone by ordering, so ``revoke`` always applies.

**Emitting**: `session_revoked`, `assurance_level_change`, `token_claims_change`,
`verification` and `stream_updated` build the payloads Juncture transmits; each is checked
by `validate` before it is returned.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from juncture.events.set import SecurityEvent, SetError
from juncture.events.subjects import Complex, Email, Opaque, PhoneNumber, Subject

__all__ = [
    "ASSURANCE_LEVEL_CHANGE",
    "CAEP",
    "CATALOG",
    "RISC",
    "SESSION_REVOKED",
    "SSF",
    "STREAM_UPDATED",
    "TOKEN_CLAIMS_CHANGE",
    "VERIFICATION",
    "Effect",
    "EventType",
    "Outgoing",
    "Scope",
    "account_subject",
    "assurance_level_change",
    "effect_of",
    "event_time",
    "newer",
    "session_revoked",
    "stream_subject",
    "stream_updated",
    "token_claims_change",
    "validate",
    "verification",
]

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SSF = "https://schemas.openid.net/secevent/ssf/event-type/"

SESSION_REVOKED = CAEP + "session-revoked"
TOKEN_CLAIMS_CHANGE = CAEP + "token-claims-change"
CREDENTIAL_CHANGE = CAEP + "credential-change"
ASSURANCE_LEVEL_CHANGE = CAEP + "assurance-level-change"
DEVICE_COMPLIANCE_CHANGE = CAEP + "device-compliance-change"
SESSION_ESTABLISHED = CAEP + "session-established"
SESSION_PRESENTED = CAEP + "session-presented"
RISK_LEVEL_CHANGE = CAEP + "risk-level-change"
VERIFICATION = SSF + "verification"
STREAM_UPDATED = SSF + "stream-updated"

Scope = Literal["session", "subject", "account"]

CREDENTIAL_TYPES = (
    "password",
    "pin",
    "x509",
    "fido2-platform",
    "fido2-roaming",
    "fido-u2f",
    "verifiable-credential",
    "phone-voice",
    "phone-sms",
    "app",
)
CHANGE_TYPES = ("create", "revoke", "update", "delete")
INITIATING_ENTITIES = ("admin", "user", "policy", "system")
ASSURANCE_NAMESPACES = ("RFC8176", "RFC6711", "ISO-IEC-29115", "NIST-IAL", "NIST-AAL", "NIST-FAL")
RISK_LEVELS = ("LOW", "MEDIUM", "HIGH")
STREAM_STATUSES = ("enabled", "paused", "disabled")
_AAL = re.compile(r"(?:nist-)?aal([0-3])|([0-3])", re.IGNORECASE)


class Effect(msgspec.Struct, frozen=True, kw_only=True):
    """What one event does to the sessions it matches (the table in the module docstring)."""

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


class Outgoing(msgspec.Struct, frozen=True, kw_only=True):
    """An event Juncture transmits: its type URI and its payload (give both to `SetSigner`)."""

    event_type: str
    payload: dict[str, Any]


# -- member checks -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Check:
    test: Callable[[object], bool]
    expected: str


def _is_string(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _is_reason(value: object) -> bool:
    if isinstance(value, str):
        return value != ""  # SSF drafts sent a bare string
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and k and isinstance(v, str) for k, v in value.items())
    )


def _is_strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_object(value: object) -> bool:
    return isinstance(value, dict) and bool(value)


def _one_of(*values: str) -> _Check:
    return _Check(lambda v: v in values, "one of " + ", ".join(f"`{v}`" for v in values))


STRING = _Check(_is_string, "a non-empty string")
TIMESTAMP = _Check(_is_number, "a NumericDate")
REASON = _Check(_is_reason, "an object of language tag to text")
STRINGS = _Check(_is_strings, "an array of strings")
OBJECT = _Check(_is_object, "a non-empty object")

#: name -> (required, check)
Spec = dict[str, tuple[bool, _Check]]

_TIME: Spec = {"event_timestamp": (False, TIMESTAMP)}
_CAEP: Spec = {
    **_TIME,
    "initiating_entity": (False, _one_of(*INITIATING_ENTITIES)),
    "reason_admin": (False, REASON),
    "reason_user": (False, REASON),
}


# -- the catalog ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Partial:
    scope: Scope
    revoke: bool = False
    signals: Mapping[str, Any] | None = None
    recheck: bool = False
    stream: bool = False


@dataclass(frozen=True, slots=True)
class EventType:
    """One event type: its URI, short name, payload spec and effect."""

    uri: str
    name: str
    spec: Spec
    react: Callable[[Mapping[str, Any], Subject], _Partial]
    deprecated: bool = False
    #: The subject must be an email or phone identifier (RISC identifier-* events).
    identifier_subject: bool = False


def _nothing(scope: Scope) -> Callable[[Mapping[str, Any], Subject], _Partial]:
    return lambda payload, subject: _Partial(scope=scope)


def _set(
    scope: Scope, *, revoke: bool = False, recheck: bool = False, **signals: Any
) -> Callable[[Mapping[str, Any], Subject], _Partial]:
    return lambda payload, subject: _Partial(
        scope=scope, revoke=revoke, recheck=recheck, signals=signals
    )


def _session_revoked(payload: Mapping[str, Any], subject: Subject) -> _Partial:
    # CAEP "Session Revoked": a session member names the session; otherwise every matching session.
    if isinstance(subject, Complex) and subject.session is not None:
        return _Partial(scope="session", revoke=True, signals={"session_revoked": True})
    return _Partial(
        scope="subject",
        revoke=True,
        signals={"session_revoked": True, "sessions_revoked": True},
    )


def _claims_change(payload: Mapping[str, Any], subject: Subject) -> _Partial:
    return _Partial(scope="subject", recheck=True, signals={"claims_changed": payload["claims"]})


def _credential_change(payload: Mapping[str, Any], subject: Subject) -> _Partial:
    change = payload["change_type"]
    credential = {"type": payload["credential_type"], "change": change}
    if change == "create":  # a new credential weakens nothing
        return _Partial(scope="account", signals={"credential": credential})
    return _Partial(
        scope="account",
        recheck=True,
        signals={"credential_changed": True, "credential": credential},
    )


def _assurance(payload: Mapping[str, Any], subject: Subject) -> _Partial:
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
    return _Partial(scope="subject", recheck=True, signals=signals)


def _aal(level: object) -> int | None:
    found = _AAL.fullmatch(level) if isinstance(level, str) else None
    if found is None:
        return None
    return int(found.group(1) or found.group(2))


def _device_compliance(payload: Mapping[str, Any], subject: Subject) -> _Partial:
    noncompliant = payload["current_status"] == "not-compliant"
    return _Partial(scope="subject", recheck=True, signals={"device_noncompliant": noncompliant})


def _risk(payload: Mapping[str, Any], subject: Subject) -> _Partial:
    level = payload["current_level"]
    signals: dict[str, Any] = {
        "risk_level": level,
        "risk_elevated": level != "LOW",
        "risk_principal": payload["principal"],
    }
    if "risk_reason" in payload:
        signals["risk_reason"] = payload["risk_reason"]
    return _Partial(scope="subject", recheck=True, signals=signals)


def _account_disabled(payload: Mapping[str, Any], subject: Subject) -> _Partial:
    signals: dict[str, Any] = {"account_disabled": True}
    if "reason" in payload:
        signals["account_disabled_reason"] = payload["reason"]
    return _Partial(scope="account", revoke=True, signals=signals)


def _credential_compromise(payload: Mapping[str, Any], subject: Subject) -> _Partial:
    return _Partial(
        scope="account",
        revoke=True,
        signals={
            "credential_compromised": True,
            "credential": {"type": payload["credential_type"], "change": "compromise"},
        },
    )


def _stream(payload: Mapping[str, Any], subject: Subject) -> _Partial:
    return _Partial(scope="subject", stream=True)


def _types() -> dict[str, EventType]:
    credential_type = (True, STRING)  # CAEP: the listed values or one agreed by both sides
    caep = [
        ("session-revoked", _CAEP, _session_revoked),
        ("token-claims-change", {**_CAEP, "claims": (True, OBJECT)}, _claims_change),
        (
            "credential-change",
            {
                **_CAEP,
                "credential_type": credential_type,
                "change_type": (True, _one_of(*CHANGE_TYPES)),
                "friendly_name": (False, STRING),
                "x509_issuer": (False, STRING),
                "x509_serial": (False, STRING),
                "fido2_aaguid": (False, STRING),
            },
            _credential_change,
        ),
        (
            "assurance-level-change",
            {
                **_CAEP,
                "namespace": (True, STRING),
                "current_level": (True, STRING),
                "previous_level": (False, STRING),
                "change_direction": (False, _one_of("increase", "decrease")),
            },
            _assurance,
        ),
        (
            "device-compliance-change",
            {
                **_CAEP,
                "previous_status": (True, _one_of("compliant", "not-compliant")),
                "current_status": (True, _one_of("compliant", "not-compliant")),
            },
            _device_compliance,
        ),
        (
            "session-established",
            {
                **_CAEP,
                "fp_ua": (False, STRING),
                "acr": (False, STRING),
                "amr": (False, STRINGS),
                "ext_id": (False, STRING),
            },
            _nothing("subject"),
        ),
        (
            "session-presented",
            {**_CAEP, "fp_ua": (False, STRING), "ext_id": (False, STRING)},
            _nothing("subject"),
        ),
        (
            "risk-level-change",
            {
                **_CAEP,
                "principal": (True, STRING),
                "current_level": (True, _one_of(*RISK_LEVELS)),
                "previous_level": (False, _one_of(*RISK_LEVELS)),
                "risk_reason": (False, STRING),
            },
            _risk,
        ),
    ]
    risc: list[tuple[str, Spec, Callable[[Mapping[str, Any], Subject], _Partial]]] = [
        (
            "account-credential-change-required",
            _TIME,
            _set("account", recheck=True, credential_change_required=True),
        ),
        ("account-purged", _TIME, _set("account", revoke=True, account_purged=True)),
        (
            "account-disabled",
            {**_TIME, "reason": (False, _one_of("hijacking", "bulk-account"))},
            _account_disabled,
        ),
        ("account-enabled", _TIME, _set("account", recheck=True, account_disabled=False)),
        ("identifier-changed", {**_TIME, "new-value": (False, STRING)}, _nothing("account")),
        (
            "identifier-recycled",
            _TIME,
            _set("account", revoke=True, identifier_recycled=True),
        ),
        (
            "credential-compromise",
            {**_CAEP, "credential_type": credential_type},
            _credential_compromise,
        ),
        ("opt-in", _TIME, _nothing("account")),
        ("opt-out-initiated", _TIME, _nothing("account")),
        ("opt-out-cancelled", _TIME, _nothing("account")),
        ("opt-out-effective", _TIME, _nothing("account")),
        ("recovery-activated", _TIME, _set("account", recheck=True, recovery_activated=True)),
        (
            "recovery-information-changed",
            _TIME,
            _set("account", recheck=True, recovery_information_changed=True),
        ),
        (
            "sessions-revoked",
            _TIME,
            _set("account", revoke=True, sessions_revoked=True),
        ),
    ]
    ssf = [
        ("verification", {**_TIME, "state": (False, STRING)}, _stream),
        (
            "stream-updated",
            {**_TIME, "status": (True, _one_of(*STREAM_STATUSES)), "reason": (False, STRING)},
            _stream,
        ),
    ]
    found: dict[str, EventType] = {}
    for family, base, entries in (("caep", CAEP, caep), ("risc", RISC, risc), ("ssf", SSF, ssf)):
        for suffix, spec, react in entries:
            found[base + suffix] = EventType(
                uri=base + suffix,
                name=f"{family}.{suffix.replace('-', '_')}",
                spec=spec,
                react=react,
                deprecated=suffix == "sessions-revoked",
                identifier_subject=suffix in ("identifier-changed", "identifier-recycled"),
            )
    return found


#: Every event type Juncture understands, by URI.
CATALOG: Mapping[str, EventType] = _types()


# -- validation and effects ----------------------------------------------------------------


def validate(event_type: str, payload: Mapping[str, Any], subject: Subject | None = None) -> None:
    """Check a payload (and, where the event constrains it, the subject) against its spec.

    Raises:
        SetError: ``invalid_request``, naming the event and the member.
    """
    known = CATALOG.get(event_type)
    if known is None:
        raise SetError("invalid_request", f"event type `{_clip(event_type)}` is not supported")
    where = f"event `{known.name}`"
    for name, (required, check) in known.spec.items():
        if name not in payload:
            if required:
                raise SetError("invalid_request", f"{where}: `{name}` is required")
            continue
        if not check.test(payload[name]):
            raise SetError("invalid_request", f"{where}: `{name}` must be {check.expected}")
    if known.identifier_subject and subject is not None:
        principal = subject.user if isinstance(subject, Complex) else subject
        if not isinstance(principal, Email | PhoneNumber):
            raise SetError(
                "invalid_request", f"{where}: the subject must be an email or a phone number"
            )


def effect_of(event: SecurityEvent) -> Effect:
    """Validate a verified event and say what it does (the table in the module docstring).

    Raises:
        SetError: ``invalid_request`` when the event type is unknown or its payload invalid.
    """
    validate(event.event_type, event.payload, event.subject)
    known = CATALOG[event.event_type]
    partial = known.react(event.payload, event.subject)
    return Effect(
        event=known.name,
        event_time=event_time(event),
        scope=partial.scope,
        revoke=partial.revoke,
        reason=known.name if partial.revoke else None,
        signals=dict(partial.signals or {}),
        recheck=partial.recheck and not partial.revoke,
        stream=partial.stream,
    )


def event_time(event: SecurityEvent) -> datetime:
    """When the change happened: ``event_timestamp``, else ``toe``, else ``iat``; never later
    than ``iat`` (an event cannot postdate the SET that reports it, and a transmitter clock
    running ahead must not make the service ignore the events that follow)."""
    found = event.toe or event.iat
    stamp = event.payload.get("event_timestamp")
    if _is_number(stamp):
        assert isinstance(stamp, int | float)
        # A stamp no date can hold is ignored: the SET's own times stand.
        with contextlib.suppress(OverflowError, OSError, ValueError):
            found = datetime.fromtimestamp(stamp, UTC)
    return min(found, event.iat)


def newer(event_time: datetime, last_time: datetime | None) -> bool:
    """Whether an event at ``event_time`` may set a signal last set at ``last_time``.

    Strictly older events are ignored; equal times apply (arrival order breaks the tie).
    """
    return last_time is None or event_time >= last_time


def account_subject(subject: Subject) -> Subject:
    """The subject an ``account``-scoped effect matches sessions against: a complex subject
    without its ``session``, ``device`` and ``application`` members (they narrow, the account
    is wider). A complex subject with nothing else left is returned as it is."""
    if not isinstance(subject, Complex):
        return subject
    wider = msgspec.structs.replace(subject, session=None, device=None, application=None)
    return wider if wider.members() else subject


# -- emitting ------------------------------------------------------------------------------


def _reason(text: str | Mapping[str, str]) -> dict[str, str]:
    reason = {"en": text} if isinstance(text, str) else dict(text)
    if not _is_reason(reason) or not all(reason.values()):
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


def _clip(text: str) -> str:
    return text if len(text) <= 96 else text[:93] + "..."
