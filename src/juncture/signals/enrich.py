"""Enrich one request: what it tells (an `Observation`) and what came before (a `History`)
become the ``network``, ``geo`` and ``device`` facts, observed afresh for this decision, and
the sections plug-in enrichers provide.

The enrichers (`juncture.signals.enrichers.FactEnricher`) run in order: the built-in ones
(`juncture.signals.builtin`: geolocation and travel, reputation labels, device facts; each only
when its source is configured), then the registered plug-in ones, each reading what those
before it found.

`Enricher.enrich` is pure apart from reading the geolocation databases and the reputation
file (and reloading them when they change, as of the observation's time): it reads no
clock and stores nothing. What it returns includes the located observation to keep for
the next request's distance and speed; keeping it is the caller's business.

Which IP: when the app reported the end user's IP (``reported_ip``; the app is the
enforcement point and sees the user's connection), that one, validated, and nothing else:
an invalid report is a missing IP, never the address of the app's own server. Otherwise the
connection's peer, read through trusted proxies (`juncture.signals.client_ip`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from juncture.engine.facts import DeviceIn, GeoIn, NetworkIn
from juncture.signals.builtin import DeviceEnricher, GeoEnricher, ReputationEnricher, located_at
from juncture.signals.client_ip import ClientIP, ForwardedHeader, reported_ip
from juncture.signals.enrichers import FactEnricher, History, Observation, Request, registered
from juncture.signals.geo import DEFAULT_CACHE_SIZE, GeoDatabase, Mode
from juncture.signals.reputation import ReputationFile
from juncture.signals.velocity import Located
from juncture.signals.watch import SourceStatus

IpSource = Literal["reported", "connection"]
#: The sections the built-in enrichers fill (the others are plug-ins').
_BUILT_IN_SECTIONS = frozenset({"network", "geo", "device"})
__all__ = ["Enricher", "EnricherSettings", "Enrichment", "History", "Observation"]


#: The history of a subject and session seen for the first time.
_NO_HISTORY = History()


class EnricherSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the enrichers are configured (see docs/signals.md). Every source is optional:
    without a geolocation database the geo facts are missing, without a reputation file
    there are no labels."""

    #: CIDRs of the reverse proxies in front of Juncture, trusted to forward client IPs.
    trusted_proxies: tuple[str, ...] = ()
    #: The forwarding headers the trusted proxies write, in order of preference.
    forwarded_headers: tuple[ForwardedHeader, ...] = ("x-forwarded-for",)
    #: A MaxMind-format City (or Country) database.
    geo_city_db: str | None = None
    #: A MaxMind-format ASN database, when the City database has no AS numbers.
    geo_asn_db: str | None = None
    #: Seconds between looks at the geo database files for a new version.
    geo_check_interval: float = 60.0
    #: Recent geo lookups kept (0: none).
    geo_cache_size: int = DEFAULT_CACHE_SIZE
    #: ``copy``: read the database into a private copy; ``mmap``: map the file itself.
    geo_mode: Mode = "copy"
    #: The reputation lists (YAML, or JSON when the name ends in ``.json``).
    reputation_file: str | None = None
    #: Seconds between looks at the reputation file for a new version.
    reputation_check_interval: float = 60.0


class Enrichment(msgspec.Struct, frozen=True, kw_only=True):
    """The facts observed for one request, and the located observation to keep."""

    observed_at: datetime
    #: Where ``network.ip`` came from.
    ip_source: IpSource
    #: ``ip``, and ``labels`` (sorted) when a reputation file is configured and the IP known.
    network: NetworkIn
    geo: GeoIn
    device: DeviceIn
    #: This request's location, to store as the next request's ``History.previous``.
    located: Located | None = None
    #: The sections plug-in enrichers provided (variable -> fields).
    extra: dict[str, dict[str, Any]] = {}

    @property
    def labels(self) -> tuple[str, ...]:
        """The reputation labels (``network.labels``); empty when none or not observed."""
        return tuple(self.network.labels or ())


class Enricher:
    """All enrichers, configured once; `enrich` is called for every decision."""

    def __init__(self, settings: EnricherSettings, *, now: datetime | None = None) -> None:
        """Open the sources the settings name (``now``: when, for `status`).

        Raises:
            ValueError: a trusted proxy that is not a CIDR, a bad interval or cache size.
            ReputationError: the reputation file is missing or not valid.
        """
        loaded_at = now.timestamp() if now is not None else None
        self.settings = settings
        self.client_ip = ClientIP(settings.trusted_proxies, settings.forwarded_headers)
        self.geo: GeoDatabase | None = None
        if settings.geo_city_db is not None or settings.geo_asn_db is not None:
            self.geo = GeoDatabase(
                settings.geo_city_db,
                settings.geo_asn_db,
                check_interval=settings.geo_check_interval,
                cache_size=settings.geo_cache_size,
                mode=settings.geo_mode,
                now=loaded_at,
            )
        self.reputation: ReputationFile | None = None
        if settings.reputation_file is not None:
            self.reputation = ReputationFile(
                settings.reputation_file,
                check_interval=settings.reputation_check_interval,
                now=loaded_at,
            )
        #: The built-in enrichers, in the order they run.
        self.enrichers: tuple[FactEnricher, ...] = (
            *((GeoEnricher(self.geo),) if self.geo is not None else ()),
            *((ReputationEnricher(self.reputation),) if self.reputation is not None else ()),
            DeviceEnricher(),
        )

    def enrich(self, observation: Observation, history: History = _NO_HISTORY) -> Enrichment:
        """The facts of one request (see the module's rules for which IP is used): the
        built-in enrichers', then the registered plug-in enrichers' (`registered`).

        Raises:
            ValueError: an observation time without a time zone.
        """
        at = observation.at
        if at.tzinfo is None:
            raise ValueError("the observation time needs a time zone")
        source: IpSource
        if observation.reported_ip is not None:
            source = "reported"
            ip = observation.address or reported_ip(observation.reported_ip)
        else:
            source = "connection"
            ip = self.client_ip.resolve(
                observation.peer,
                forwarded=observation.forwarded,
                x_forwarded_for=observation.x_forwarded_for,
            )
        text = str(ip) if ip is not None else None
        facts: dict[str, dict[str, Any]] = {"network": {"ip": text} if text else {}}
        plugins = registered()
        request = Request(observation=observation, history=history, ip=ip, facts=facts)
        for enricher in self.enrichers + plugins if plugins else self.enrichers:
            found = enricher.enrich(request)
            if found:
                facts.setdefault(enricher.provides.name, {}).update(found)
        geo = facts.get("geo", {})
        located = None
        if "lat" in geo and "lon" in geo:
            located = located_at(geo, at, text)
        return Enrichment(
            observed_at=at,
            ip_source=source,
            network=NetworkIn(**facts["network"]),
            geo=GeoIn(**geo),
            device=DeviceIn(**facts.get("device", {})),
            located=located,
            extra=(
                {k: v for k, v in facts.items() if k not in _BUILT_IN_SECTIONS} if plugins else {}
            ),
        )

    def status(self) -> list[SourceStatus]:
        """The state of every file the enrichers read (geo databases, reputation file)."""
        out = list(self.geo.status()) if self.geo is not None else []
        if self.reputation is not None:
            out.append(self.reputation.status())
        return out
