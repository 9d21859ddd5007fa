"""Facts: what is known about a request and its session, ready for conditions to read.

A facts document (the shape the CLI, policy tests and the API take) is decoded
strictly: unknown fields and wrong types are errors, never guesses. What was
not observed is simply absent; reading it in a condition is an evaluation error,
which denies. Signals with a defined default (`schema.SIGNAL_DEFAULTS`) are
known even when no event has been received.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Optional, Union

import msgspec

from juncture.errors import FactsError
from juncture.policy import schema
from juncture.policy.duration import parse_duration
from juncture.policy.prefixes import parse_ip_text
from juncture.policy.schema import SIGNAL_DEFAULTS, Timestamp

SubjectType = Literal["user", "service", "agent"]


class _In(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """Base of the facts document's parts: strict, unknown fields refused."""


class Entity(_In, frozen=True):
    type: str | None = None
    id: str | None = None
    properties: dict[str, Any] = {}


class ActionIn(_In, frozen=True):
    name: str
    properties: dict[str, Any] = {}


class Proof(_In, frozen=True):
    """A method the session has proven, and when."""

    method: str
    at: Timestamp
    kind: str | None = None
    aal: int | None = None
    amr: tuple[str, ...] = ()


class SessionIn(_In, frozen=True):
    id: str | None = None
    started_at: Timestamp | None = None
    proofs: tuple[Proof, ...] = ()


def section_type(variable: schema.Variable) -> Any:
    """The strict struct a facts document writes a closed variable as: its written fields
    (`schema.Field.written`), each optional (what was not observed is absent)."""
    return msgspec.defstruct(
        f"{variable.name.title().replace('_', '')}In",
        [
            (name, Optional[f.written], None)  # noqa: UP045 (`Any | None` is not a type)
            for name, f in variable.fields.items()
            if f.written is not None
        ],
        bases=(_In,),
        module=__name__,
        frozen=True,
        kw_only=True,
        forbid_unknown_fields=True,
        omit_defaults=True,
    )


#: The observed sections, derived from the fact schema (`juncture.policy.schema`).
NetworkIn: Any = section_type(schema.VARIABLE_TABLE["network"])
GeoIn: Any = section_type(schema.VARIABLE_TABLE["geo"])
DeviceIn: Any = section_type(schema.VARIABLE_TABLE["device"])
_SECTIONS: dict[str, Any] = {"network": NetworkIn, "geo": GeoIn, "device": DeviceIn}
#: The parts of the document before and after the closed sections, as callers write them.
_HEAD: tuple[tuple[str, Any, Any], ...] = (
    ("app", Optional[str], None),  # noqa: UP045
    ("subject", Entity, Entity()),
    ("action", Optional[ActionIn], None),  # noqa: UP045
    ("resource", Optional[Entity], None),  # noqa: UP045
    ("context", Optional[dict[str, Any]], None),  # noqa: UP045
    ("session", Optional[SessionIn], None),  # noqa: UP045
)
_TAIL: tuple[tuple[str, Any, Any], ...] = (
    ("agent", Optional[dict[str, Any]], None),  # noqa: UP045
    ("grants", Union[list[Any], dict[str, Any], None], None),  # noqa: UP007
    ("signals", dict[str, Any], {}),
)
_documents: dict[tuple[tuple[str, int], ...], Any] = {}


def document_type() -> Any:
    """The facts document's struct for the schema as it is now: the built-in sections and
    those enrichers registered (built once per set of registered variables)."""
    extra = schema.registered()
    key = tuple((v.name, id(v)) for v in extra)
    found = _documents.get(key)
    if found is None:
        sections = [(n, Optional[_SECTIONS[n]], None) for n in ("network", "geo", "device")]  # noqa: UP045
        sections += [(v.name, Optional[section_type(v)], None) for v in extra]  # noqa: UP045
        found = msgspec.defstruct(
            "FactsDocument",
            [*_HEAD, *sections, *_TAIL],
            bases=(_In,),
            module=__name__,
            frozen=True,
            kw_only=True,
            forbid_unknown_fields=True,
            omit_defaults=True,
        )
        found.__doc__ = "The facts of one request, as callers write them."
        _documents[key] = found
    return found


#: The facts document of the built-in schema (`document_type` adds enrichers' sections).
FactsDocument: Any = document_type()


def _parse_ip(text: str) -> tuple[Any, str, int] | None:
    """(address, canonical text, version) of an IP, or None (the parse is cached)."""
    address = parse_ip_text(text)
    if address is None:
        return None
    # A dotted quad that parses is already canonical; IPv6 has many spellings.
    return address, text if address.version == 4 else str(address), address.version


def _present(struct: msgspec.Struct) -> dict[str, Any]:
    """The fields of a struct that were observed (not None)."""
    return {f: v for f in struct.__struct_fields__ if (v := getattr(struct, f)) is not None}


class Facts:
    """Assembled facts, independent of journey and time; `evaluate` adds the rest per decision."""

    __slots__ = ("app", "base", "device_posture_at", "ip", "proofs", "session", "subject_type")

    def __init__(self, document: Any) -> None:
        self.app = document.app
        self.subject_type = document.subject.type or "user"
        subject = _present(document.subject)
        subject.setdefault("properties", {})
        subject["type"] = self.subject_type  # the type journey selection used
        base: dict[str, Any] = {
            "subject": subject,
            "signals": {**SIGNAL_DEFAULTS, **document.signals},
        }
        if document.action is not None:
            base["action"] = {
                "name": document.action.name,
                "properties": document.action.properties,
            }
        if document.resource is not None:
            base["resource"] = {"properties": {}, **_present(document.resource)}
        for name in ("context", "agent", "grants"):
            value = getattr(document, name)
            if value is not None:
                base[name] = value
        if document.geo is not None:
            base["geo"] = _present(document.geo)
        self.device_posture_at: datetime | None = None
        if document.device is not None:
            device = _present(document.device)
            self.device_posture_at = device.pop("posture_at", None)
            base["device"] = device
        self.ip: Any = None
        if document.network is not None:
            network = _present(document.network)
            if "ip" in network:
                parsed = _parse_ip(network["ip"])
                if parsed is None:
                    network.pop("ip")  # unparsable: a missing fact, never a default
                else:
                    self.ip, network["ip"], network["version"] = parsed
            base["network"] = network
        for variable in schema.registered():  # the sections enrichers provide
            value = getattr(document, variable.name, None)
            if value is not None:
                base[variable.name] = _present(value)
        self.base = base
        self.session = document.session
        self.proofs = document.session.proofs if document.session is not None else ()

    @classmethod
    def from_document(cls, document: Mapping[str, Any], now: datetime | None = None) -> Facts:
        """Decode a facts mapping (as read from JSON or YAML).

        Timestamps are RFC 3339 strings; with ``now`` given, a relative offset such
        as ``-5m`` means five minutes before ``now`` (handy in policy tests).

        Raises:
            FactsError: ``facts.invalid`` with the JSON path of the problem.
        """
        try:
            resolved = _resolve_relative(document, now) if now is not None else document
            return cls(msgspec.convert(resolved, document_type(), strict=True))
        except msgspec.ValidationError as exc:
            raise FactsError(f"invalid facts: {exc}") from None
        except ValueError as exc:
            raise FactsError(f"invalid facts: {exc}") from None


def _resolve_relative(value: Any, now: datetime, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _resolve_relative(v, now, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_relative(v, now, key) for v in value]
    if (
        key in ("at", "started_at", "posture_at")
        and isinstance(value, str)
        and value[:1]
        in (
            "-",
            "+",
        )
    ):  # (an empty string is `in "-+"`: it is not a relative time)
        sign = -1 if value[0] == "-" else 1
        return (now + sign * timedelta(seconds=parse_duration(value[1:]))).isoformat()
    if key in ("at", "started_at", "posture_at") and isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return value


def parse_now(value: Any) -> datetime:
    """An RFC 3339 timestamp (string or datetime) as an aware UTC datetime.

    Raises:
        FactsError: when it is not one.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise FactsError(f"`{value}` is not an RFC 3339 timestamp") from None
    else:
        raise FactsError("`now` must be an RFC 3339 timestamp")
    if moment.tzinfo is None:
        raise FactsError("`now` needs a time zone (for example `Z`)")
    return moment.astimezone(UTC)
