"""The variables a condition may read, and the static type of every known fact.

The engine assembles facts to this schema (and validates their types), so the
compiler may rely on these types to emit plain Python operators. ``None`` as a
type means *dynamic*: any CEL value, checked at run time.
"""

from __future__ import annotations

from typing import Final

#: A closed variable: its fields are known and misspelt fields are reported by `check`.
CLOSED: Final[dict[str, dict[str, str | None]]] = {
    "session": {
        "id": "string",
        "started_at": "timestamp",
        "age": "duration",
        "aal": "int",
        "methods": None,  # map: method name -> {kind, aal, at, age}
        "amr": None,  # list of RFC 8176 amr values proven
        "proofs": None,  # list of {method, at}, every proof the session holds
    },
    "network": {
        "ip": "string",
        "segment": "string",
        "segments": None,  # list: every journey network holding the IP, most specific first
        "version": "int",
        "labels": None,  # list: reputation labels of the IP or its ASN (anonymizing_proxy, ...)
    },
    "geo": {
        "country": "string",
        "region": "string",
        "city": "string",
        "lat": "double",
        "lon": "double",
        "asn": "int",
        "distance_km": "double",
        "speed_kmh": "double",
    },
    "device": {
        "id": "string",
        "known": "bool",
        "managed": "bool",
        "compliant": "bool",
        "posture_age": "duration",
        "platform": "string",
        "user_agent_changed": "bool",
    },
    "risk": {"score": "int", "level": "string", "reasons": None},
}

#: Open variables: any field may be read; their values are dynamic.
OPEN: Final[frozenset[str]] = frozenset(
    {"subject", "action", "resource", "context", "agent", "grants", "signals", "data"}
)

#: Every variable a condition may name.
VARIABLES: Final[frozenset[str]] = frozenset(CLOSED) | OPEN | {"now"}

#: The static type of a top-level variable that is not a map.
SCALAR_VARIABLES: Final[dict[str, str]] = {"now": "timestamp"}

#: Signals with a defined default: when no event has said otherwise, they read as this value.
SIGNAL_DEFAULTS: Final[dict[str, bool]] = {
    "credential_compromised": False,
    "account_disabled": False,
    "account_purged": False,
    "session_revoked": False,
    "sessions_revoked": False,
    "credential_changed": False,
    "device_noncompliant": False,
    "assurance_lowered": False,
    "risk_elevated": False,
}


def field_type(variable: str, field: str) -> str | None:
    """The static type of ``variable.field``, or None when it is dynamic."""
    fields = CLOSED.get(variable)
    return fields.get(field) if fields is not None else None


#: The facts Juncture owns in the decision service: it observes, computes or records them, and no
#: application input (AuthZEN context or subject properties, a session's start, a context or
#: signal update) may set or shadow them. A variable mapped to None is owned whole. A facts
#: document given to `juncture explain` or a policy test may still write them: it describes a
#: moment, it does not report one.
OWNED: Final[dict[str, frozenset[str] | None]] = {
    "session": None,  # id, start, proofs, AAL, AMR: from the sessions Juncture keeps
    "geo": None,  # from the IP (the geolocation database), distance and speed from history
    "risk": None,  # the journey's risk rules' result
    "agent": None,  # delegation and task of an agent's session
    "grants": None,  # the live grants Juncture's own decisions made
    "network": frozenset({"segment", "segments", "version", "labels"}),  # from the IP
    "device": frozenset({"known", "user_agent_changed", "posture_age"}),  # the subject's history
    # Shared Signals: an app may raise these (report `true`), never lower or replace them.
    "signals": frozenset(SIGNAL_DEFAULTS),
}


def owned(variable: str, field: str | None = None) -> bool:
    """Whether Juncture owns ``variable`` (whole) or its ``field``."""
    if variable not in OWNED:
        return False
    fields = OWNED[variable]
    return fields is None or (field is not None and field in fields)
