"""What the members of an event payload must be: the checks a spec names for each member,
and the values CAEP, RISC and SSF enumerate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class MemberCheck:
    test: Callable[[object], bool]
    expected: str


def is_string(value: object) -> bool:
    return isinstance(value, str) and value != ""


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def is_reason(value: object) -> bool:
    if isinstance(value, str):
        return value != ""  # SSF drafts sent a bare string
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and k and isinstance(v, str) for k, v in value.items())
    )


def is_strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def is_object(value: object) -> bool:
    return isinstance(value, dict) and bool(value)


def one_of(*values: str) -> MemberCheck:
    return MemberCheck(lambda v: v in values, "one of " + ", ".join(f"`{v}`" for v in values))


STRING = MemberCheck(is_string, "a non-empty string")
TIMESTAMP = MemberCheck(is_number, "a NumericDate")
REASON = MemberCheck(is_reason, "an object of language tag to text")
STRINGS = MemberCheck(is_strings, "an array of strings")
OBJECT = MemberCheck(is_object, "a non-empty object")

#: name -> (required, check)
Spec = dict[str, tuple[bool, MemberCheck]]

TIME_MEMBERS: Spec = {"event_timestamp": (False, TIMESTAMP)}
CAEP_MEMBERS: Spec = {
    **TIME_MEMBERS,
    "initiating_entity": (False, one_of(*INITIATING_ENTITIES)),
    "reason_admin": (False, REASON),
    "reason_user": (False, REASON),
}
