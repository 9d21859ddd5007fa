"""The fact schema: every variable a condition may read, said once.

`VARIABLE_TABLE` is the one source. Each closed variable lists its fields, and each field says
three things: its static type in conditions (``None``: dynamic, any CEL value checked at run
time), the type a facts document writes it as (``written``; ``None``: Juncture computes it and
nobody writes it), and whether Juncture owns it (no application input may set it). Everything
else is derived from the table:

- what the condition compiler reads (`CLOSED`, `OPEN`, `VARIABLES`, `SCALAR_VARIABLES`,
  `field_type`): the engine assembles facts to these types (and validates them), so compiled
  conditions may use plain Python operators;
- what the decision service refuses from apps (`OWNED`, `owned`);
- the strict structs a facts document is decoded into (`juncture.engine.facts` builds them
  from ``written``), so the document and the conditions cannot disagree.

An enricher that provides new facts (`juncture.signals.register_enricher`, a plug-in's)
registers its variable here (`register_variable`) before any journey that reads it is loaded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec

#: A timestamp must say its time zone: a naive one is ambiguous, so it is refused.
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    """One field of a closed variable."""

    #: Its static type in conditions: string, int, double, bool, timestamp, duration, or
    #: None (dynamic).
    type: str | None
    #: The type a facts document writes it as; None: computed by Juncture, never written.
    written: Any = None
    #: Written but not read under this name (``device.posture_at`` is read as ``posture_age``).
    readable: bool = True
    #: Juncture observes or computes it: no application input may set it.
    owned: bool = False
    #: Its values are names the journey declares (``networks``, ``methods``, ``risk_levels``,
    #: ``risk_reasons``): a string literal compared with it must be one of them (for a map,
    #: its keys; for a list, its items). `juncture.policy.literals` checks it.
    names: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Variable:
    """A top-level variable: closed (its fields known) or open (any field, dynamic)."""

    name: str
    fields: Mapping[str, Field] = field(default_factory=dict)
    closed: bool = True
    #: Owned whole: no application input may set any of it.
    owned: bool = False


def _f(
    type_: str | None, written: Any = None, *, owned: bool = False, names: str | None = None
) -> Field:
    return Field(type=type_, written=written, owned=owned, names=names)


_BUILT_IN: Final[tuple[Variable, ...]] = (
    Variable(  # id, start, proofs, AAL, AMR: from the sessions Juncture keeps
        name="session",
        owned=True,
        fields={
            "id": _f("string", str),
            "started_at": _f("timestamp", Timestamp),
            "age": _f("duration"),
            "aal": _f("int"),
            "methods": _f(None, names="methods"),  # map: method name -> {kind, aal, at, age}
            "amr": _f(None),  # list of RFC 8176 amr values proven
            "proofs": _f(None, Any),  # list of {method, at}, every proof the session holds
        },
    ),
    Variable(  # the IP: reported by the app or observed; the rest from the IP
        name="network",
        fields={
            "ip": _f("string", str),
            "segment": _f("string", str, owned=True, names="networks"),
            "segments": _f(None, owned=True, names="networks"),  # every network holding the IP
            "version": _f("int", owned=True),
            "labels": _f(None, list[str], owned=True),  # reputation labels of the IP or ASN
        },
    ),
    Variable(  # from the IP (the geolocation database), distance and speed from history
        name="geo",
        owned=True,
        fields={
            "country": _f("string", str),
            "region": _f("string", str),
            "city": _f("string", str),
            "lat": _f("double", float),
            "lon": _f("double", float),
            "asn": _f("int", int),
            "distance_km": _f("double", float),
            "speed_kmh": _f("double", float),
        },
    ),
    Variable(  # reported by the app, and the subject's history
        name="device",
        fields={
            "id": _f("string", str),
            "known": _f("bool", bool, owned=True),
            "managed": _f("bool", bool),
            "compliant": _f("bool", bool),
            "posture_at": Field(type="timestamp", written=Timestamp, readable=False),
            "posture_age": _f("duration", owned=True),
            "platform": _f("string", str),
            "user_agent_changed": _f("bool", bool, owned=True),
        },
    ),
    Variable(  # the journey's risk rules' result
        name="risk",
        owned=True,
        fields={
            "score": _f("int"),
            "level": _f("string", names="risk_levels"),
            "reasons": _f(None, names="risk_reasons"),
        },
    ),
    Variable(name="subject", closed=False),
    Variable(name="action", closed=False),
    Variable(name="resource", closed=False),
    Variable(name="context", closed=False),
    Variable(name="agent", closed=False, owned=True),  # delegation and task of an agent
    Variable(name="grants", closed=False, owned=True),  # live grants of Juncture's decisions
    Variable(name="signals", closed=False),
    Variable(name="data", closed=False),
)

#: name -> variable: the built-in ones and those enrichers registered (the one source).
VARIABLE_TABLE: Final[dict[str, Variable]] = {v.name: v for v in _BUILT_IN}
_BUILT_IN_NAMES: Final[frozenset[str]] = frozenset(VARIABLE_TABLE)

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

#: A closed variable: its fields are known and misspelt fields are reported by `check`.
CLOSED: Final[dict[str, dict[str, str | None]]] = {}
#: Open variables: any field may be read; their values are dynamic.
OPEN: Final[frozenset[str]] = frozenset(v.name for v in _BUILT_IN if not v.closed)
#: The facts Juncture owns in the decision service: it observes, computes or records them, and
#: no application input (AuthZEN context or subject properties, a session's start, a context
#: or signal update) may set or shadow them. A variable mapped to None is owned whole. A facts
#: document given to `juncture explain` or a policy test may still write them: it describes a
#: moment, it does not report one. Shared Signals: an app may raise these (report `true`),
#: never lower or replace them.
OWNED: Final[dict[str, frozenset[str] | None]] = {}


class _Names(AbstractSet[str]):
    """Every variable a condition may name, as the table says now."""

    def __contains__(self, name: object) -> bool:
        return name in VARIABLE_TABLE or name in SCALAR_VARIABLES

    def __iter__(self) -> Iterator[str]:
        return iter([*VARIABLE_TABLE, *SCALAR_VARIABLES])

    def __len__(self) -> int:
        return len(VARIABLE_TABLE) + len(SCALAR_VARIABLES)


#: Every variable a condition may name.
VARIABLES: Final[AbstractSet[str]] = _Names()


def _derive(variable: Variable) -> None:
    """Add a variable's rows to the derived tables."""
    if variable.closed:
        CLOSED[variable.name] = {n: f.type for n, f in variable.fields.items() if f.readable}
    if variable.owned:
        OWNED[variable.name] = None
    else:
        mine = frozenset(n for n, f in variable.fields.items() if f.owned)
        if mine:
            OWNED[variable.name] = mine


for _variable in _BUILT_IN:
    _derive(_variable)
OWNED["signals"] = frozenset(SIGNAL_DEFAULTS)


def register_variable(variable: Variable) -> Variable:
    """Add a closed variable an enricher provides; the same one again is a no-op.

    Raises:
        ValueError: the name is taken (by a built-in or another enricher's variable), or the
            variable is open.
    """
    known = VARIABLE_TABLE.get(variable.name)
    if known is not None and known != variable:
        raise ValueError(f"fact variable `{variable.name}` is defined already")
    if not variable.closed or variable.name in SCALAR_VARIABLES:
        raise ValueError(f"fact variable `{variable.name}`: an enricher's variable is closed")
    VARIABLE_TABLE[variable.name] = variable
    _derive(variable)
    _refresh_registered()
    return variable


def unregister_variable(name: str) -> None:
    """Forget a variable an enricher registered (tests); built-in ones stay."""
    if name in VARIABLE_TABLE and name not in _BUILT_IN_NAMES:
        del VARIABLE_TABLE[name]
        CLOSED.pop(name, None)
        OWNED.pop(name, None)
        _refresh_registered()


#: The variables enrichers registered, and the sections only Juncture writes (those owned
#: whole), kept derived: every decision reads them.
_registered: tuple[Variable, ...] = ()
_owned_sections: frozenset[str] = frozenset()


def _refresh_registered() -> None:
    global _registered, _owned_sections
    _registered = tuple(v for n, v in VARIABLE_TABLE.items() if n not in _BUILT_IN_NAMES)
    _owned_sections = frozenset(name for name, fields in OWNED.items() if fields is None)


def owned_sections() -> frozenset[str]:
    """Top-level facts sections only Juncture writes (`OWNED`, those owned whole; the
    sections plug-in enrichers provide join when they register)."""
    return _owned_sections


_refresh_registered()


def registered() -> tuple[Variable, ...]:
    """The variables enrichers registered, beyond the built-in ones."""
    return _registered


def field_type(variable: str, field: str) -> str | None:
    """The static type of ``variable.field``, or None when it is dynamic."""
    fields = CLOSED.get(variable)
    return fields.get(field) if fields is not None else None


def owned(variable: str, field: str | None = None) -> bool:
    """Whether Juncture owns ``variable`` (whole) or its ``field``."""
    if variable not in OWNED:
        return False
    fields = OWNED[variable]
    return fields is None or (field is not None and field in fields)
