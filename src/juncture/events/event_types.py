"""The event types Juncture understands, by URI: each one's short name, payload spec and
reaction, and `validate`, which holds a payload (and subject) to its type's spec."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from juncture.events.effects import (
    Reaction,
    nothing,
    on_account_disabled,
    on_assurance_level_change,
    on_claims_change,
    on_credential_change,
    on_credential_compromise,
    on_device_compliance,
    on_risk_level_change,
    on_session_revoked,
    on_stream_control,
    sets,
)
from juncture.events.members import (
    CAEP_MEMBERS,
    CHANGE_TYPES,
    OBJECT,
    RISK_LEVELS,
    STREAM_STATUSES,
    STRING,
    STRINGS,
    TIME_MEMBERS,
    Spec,
    one_of,
)
from juncture.events.set import SetError
from juncture.events.subjects import Complex, Email, PhoneNumber, Subject

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


@dataclass(frozen=True, slots=True)
class EventType:
    """One event type: its URI, short name, payload spec and effect."""

    uri: str
    name: str
    spec: Spec
    react: Callable[[Mapping[str, Any], Subject], Reaction]
    deprecated: bool = False
    #: The subject must be an email or phone identifier (RISC identifier-* events).
    identifier_subject: bool = False


def _types() -> dict[str, EventType]:
    credential_type = (True, STRING)  # CAEP: the listed values or one agreed by both sides
    caep = [
        ("session-revoked", CAEP_MEMBERS, on_session_revoked),
        ("token-claims-change", {**CAEP_MEMBERS, "claims": (True, OBJECT)}, on_claims_change),
        (
            "credential-change",
            {
                **CAEP_MEMBERS,
                "credential_type": credential_type,
                "change_type": (True, one_of(*CHANGE_TYPES)),
                "friendly_name": (False, STRING),
                "x509_issuer": (False, STRING),
                "x509_serial": (False, STRING),
                "fido2_aaguid": (False, STRING),
            },
            on_credential_change,
        ),
        (
            "assurance-level-change",
            {
                **CAEP_MEMBERS,
                "namespace": (True, STRING),
                "current_level": (True, STRING),
                "previous_level": (False, STRING),
                "change_direction": (False, one_of("increase", "decrease")),
            },
            on_assurance_level_change,
        ),
        (
            "device-compliance-change",
            {
                **CAEP_MEMBERS,
                "previous_status": (True, one_of("compliant", "not-compliant")),
                "current_status": (True, one_of("compliant", "not-compliant")),
            },
            on_device_compliance,
        ),
        (
            "session-established",
            {
                **CAEP_MEMBERS,
                "fp_ua": (False, STRING),
                "acr": (False, STRING),
                "amr": (False, STRINGS),
                "ext_id": (False, STRING),
            },
            nothing("subject"),
        ),
        (
            "session-presented",
            {**CAEP_MEMBERS, "fp_ua": (False, STRING), "ext_id": (False, STRING)},
            nothing("subject"),
        ),
        (
            "risk-level-change",
            {
                **CAEP_MEMBERS,
                "principal": (True, STRING),
                "current_level": (True, one_of(*RISK_LEVELS)),
                "previous_level": (False, one_of(*RISK_LEVELS)),
                "risk_reason": (False, STRING),
            },
            on_risk_level_change,
        ),
    ]
    risc: list[tuple[str, Spec, Callable[[Mapping[str, Any], Subject], Reaction]]] = [
        (
            "account-credential-change-required",
            TIME_MEMBERS,
            sets("account", recheck=True, credential_change_required=True),
        ),
        ("account-purged", TIME_MEMBERS, sets("account", revoke=True, account_purged=True)),
        (
            "account-disabled",
            {**TIME_MEMBERS, "reason": (False, one_of("hijacking", "bulk-account"))},
            on_account_disabled,
        ),
        ("account-enabled", TIME_MEMBERS, sets("account", recheck=True, account_disabled=False)),
        ("identifier-changed", {**TIME_MEMBERS, "new-value": (False, STRING)}, nothing("account")),
        (
            "identifier-recycled",
            TIME_MEMBERS,
            sets("account", revoke=True, identifier_recycled=True),
        ),
        (
            "credential-compromise",
            {**CAEP_MEMBERS, "credential_type": credential_type},
            on_credential_compromise,
        ),
        ("opt-in", TIME_MEMBERS, nothing("account")),
        ("opt-out-initiated", TIME_MEMBERS, nothing("account")),
        ("opt-out-cancelled", TIME_MEMBERS, nothing("account")),
        ("opt-out-effective", TIME_MEMBERS, nothing("account")),
        (
            "recovery-activated",
            TIME_MEMBERS,
            sets("account", recheck=True, recovery_activated=True),
        ),
        (
            "recovery-information-changed",
            TIME_MEMBERS,
            sets("account", recheck=True, recovery_information_changed=True),
        ),
        (
            "sessions-revoked",
            TIME_MEMBERS,
            sets("account", revoke=True, sessions_revoked=True),
        ),
    ]
    ssf = [
        ("verification", {**TIME_MEMBERS, "state": (False, STRING)}, on_stream_control),
        (
            "stream-updated",
            {**TIME_MEMBERS, "status": (True, one_of(*STREAM_STATUSES)), "reason": (False, STRING)},
            on_stream_control,
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


def _clip(text: str) -> str:
    return text if len(text) <= 96 else text[:93] + "..."
