"""The enricher protocol: a source of facts about one request, declared with the facts it
provides, and the registry of plug-in enrichers.

An enricher declares ``provides``, a variable of the one fact schema
(`juncture.policy.schema.Variable`: its fields, their types, which Juncture owns), and
computes those fields from a `Request`: what the request tells (`Observation`), what came
before (`History`), the client IP chosen by Juncture's rules, and the facts the enrichers
before it provided (reputation labels read the ASN the geolocation found). It returns only
what it observed: a missing field is a missing fact, never a default. It reads no clock
(``observation.at`` is the time) and stores nothing.

The built-in enrichers (geolocation and travel, reputation labels, device facts) are
configured by the server's settings and run first, in that order (`juncture.signals.enrich`);
then the plug-in enrichers registered with `register_enricher`, in order of registration. A
plug-in registers once per process, before the runtime is composed (`juncture.plugins`);
registering adds its variable to the fact schema, so journeys may read it (``fraud.score``),
`juncture check` knows its fields and types, and facts documents may write it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import msgspec

from juncture.policy import schema
from juncture.records import Posture
from juncture.signals.velocity import Located

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Observation(msgspec.Struct, frozen=True, kw_only=True):
    """What one request tells. ``at`` is the time of the request (aware: it has a zone)."""

    at: datetime
    #: The connection's peer address (the socket's remote end).
    peer: str | None = None
    #: The values of the RFC 7239 ``Forwarded`` header lines, in order.
    forwarded: tuple[str, ...] = ()
    #: The values of the ``X-Forwarded-For`` header lines, in order.
    x_forwarded_for: tuple[str, ...] = ()
    #: The end user's IP as the calling app reported it (its request context).
    reported_ip: str | None = None
    #: ``reported_ip`` already parsed and canonical (the caller checked it): not parsed again.
    address: Any = None
    user_agent: str | None = None
    device_id: str | None = None
    #: The platform as the app reported it (a posture record's platform wins).
    platform: str | None = None


class History(msgspec.Struct, frozen=True, kw_only=True):
    """What was observed before this request, as the store keeps it."""

    #: The session's previous located observation.
    previous: Located | None = None
    #: The user agent of the session's previous request.
    previous_user_agent: str | None = None
    #: The subject's recent located observations, across its sessions.
    recent: tuple[Located, ...] = ()
    #: The device ids the subject used before.
    known_devices: frozenset[str] = frozenset()
    #: The latest posture record (device attestation or device signal).
    posture: Posture | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What an enricher reads of one request."""

    observation: Observation
    history: History
    #: The client IP (see `juncture.signals.enrich` for which), or None when unknown.
    ip: IPAddress | None
    #: variable -> fields: what the enrichers before this one provided.
    facts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def ip_text(self) -> str | None:
        return str(self.ip) if self.ip is not None else None


class FactEnricher(Protocol):
    """A source of facts: the variable it fills, and how."""

    #: The facts it provides: a variable of the fact schema (its fields and their types).
    provides: schema.Variable

    def enrich(self, request: Request) -> Mapping[str, Any]:
        """The fields of ``provides`` observed for this request (only those observed)."""
        ...


_REGISTERED: list[FactEnricher] = []


def register_enricher(enricher: FactEnricher) -> FactEnricher:
    """Run ``enricher`` for every request from now on, and add the variable it provides to
    the fact schema. Every field it provides must be written (a facts document carries it)
    and owned by Juncture (no app may set it).

    Raises:
        ValueError: the variable clashes with a built-in or another enricher's, or a field
            that is not written or not owned.
    """
    variable = enricher.provides
    for name, spec in variable.fields.items():
        if spec.written is None or not (spec.owned or variable.owned):
            raise ValueError(
                f"enricher of `{variable.name}`: field `{name}` must be written and owned"
            )
    schema.register_variable(variable)
    _REGISTERED.append(enricher)
    return enricher


def unregister_enricher(enricher: FactEnricher) -> None:
    """Stop running an enricher and forget its variable (tests)."""
    if enricher in _REGISTERED:
        _REGISTERED.remove(enricher)
        schema.unregister_variable(enricher.provides.name)


def registered() -> tuple[FactEnricher, ...]:
    """The plug-in enrichers, in order of registration."""
    return tuple(_REGISTERED)
