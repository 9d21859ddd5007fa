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
from typing import Annotated, Any, Literal

import msgspec

from juncture.errors import FactsError
from juncture.policy.duration import parse_duration
from juncture.policy.prefixes import parse_ip_text
from juncture.policy.schema import SIGNAL_DEFAULTS

SubjectType = Literal["user", "service", "agent"]
#: A timestamp must say its time zone: a naive one is ambiguous, so it is refused.
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]


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


class NetworkIn(_In, frozen=True):
    ip: str | None = None
    segment: str | None = None
    labels: list[str] | None = None


class GeoIn(_In, frozen=True):
    country: str | None = None
    region: str | None = None
    city: str | None = None
    lat: float | None = None
    lon: float | None = None
    asn: int | None = None
    distance_km: float | None = None
    speed_kmh: float | None = None


class DeviceIn(_In, frozen=True):
    id: str | None = None
    known: bool | None = None
    managed: bool | None = None
    compliant: bool | None = None
    posture_at: Timestamp | None = None
    platform: str | None = None
    user_agent_changed: bool | None = None


class FactsDocument(_In, frozen=True):
    """The facts of one request, as callers write them."""

    app: str | None = None
    subject: Entity = Entity()
    action: ActionIn | None = None
    resource: Entity | None = None
    context: dict[str, Any] | None = None
    session: SessionIn | None = None
    network: NetworkIn | None = None
    geo: GeoIn | None = None
    device: DeviceIn | None = None
    agent: dict[str, Any] | None = None
    grants: list[Any] | dict[str, Any] | None = None
    signals: dict[str, Any] = {}


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

    def __init__(self, document: FactsDocument) -> None:
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
            return cls(msgspec.convert(resolved, FactsDocument, strict=True))
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
