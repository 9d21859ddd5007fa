"""Observation: what each request tells about where it comes from and on what device, turned
into the ``network``, ``geo`` and ``device`` facts of this decision, and remembered for the next.

Apps report what they see of the end user (``network.ip``, ``device.id``, ``device.platform``,
``device.user_agent``, a device posture); Juncture observes the rest itself (geolocation,
reputation labels, distance and speed, whether the device is known, whether the user agent
changed) with the enrichers of `juncture.signals` (plug-in enrichers add their own sections).
What the app reports is taken per request; what the session remembers fills in only while it
is fresh:

- the IP last reported for the session counts for ``context_max_age`` after it was reported;
  after that, a request that reports none has no IP (and so no segment, no geo): missing;
- a device posture counts for ``posture_max_age``; after that it is missing;
- geo comes only from the geolocation database: an app cannot report it.

Remembering writes only when something changed (a new IP, device, user agent or posture),
so steady traffic costs no write; two concurrent requests of one session from different IPs
are both observed (each decision is logged with its facts; both locations join the subject's
recent ones).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec

from juncture.errors import RequestError
from juncture.records import Located, Observed, Posture, Session, SubjectSeen
from juncture.signals import Enricher, EnricherSettings, History, Observation
from juncture.signals.client_ip import reported_ip
from juncture.signals.velocity import Located as LocatedView

#: Located observations kept per subject (for speed from the subject's other sessions).
RECENT_LOCATIONS = 10
#: Devices remembered per subject, at most (the oldest sightings are forgotten first).
KNOWN_DEVICES = 200


class ObserveSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The server's settings for observation (``juncture serve`` options)."""

    enrichers: EnricherSettings = EnricherSettings()
    #: Read the client IP from the connection (through trusted proxies) when the app reports
    #: none. Off by default: the peer of an app's call is the app's server, not its user.
    connection_ip: bool = False
    #: How long an IP reported for a session keeps counting for requests that report none.
    context_max_age: float = 15 * 60.0
    #: How long a device posture counts before it is stale (missing).
    posture_max_age: float = 60 * 60.0


class Connection(msgspec.Struct, frozen=True, kw_only=True):
    """The HTTP connection a request came on (used only with ``connection_ip``)."""

    peer: str | None = None
    forwarded: tuple[str, ...] = ()
    x_forwarded_for: tuple[str, ...] = ()


class ReportedNetwork(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    ip: str | None = None


class ReportedDevice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What an app may report of the device: its id, platform and user agent, and a posture
    (``managed``, ``compliant``, observed at ``posture_at``, now when not given)."""

    id: str | None = None
    platform: str | None = None
    user_agent: str | None = None
    managed: bool | None = None
    compliant: bool | None = None
    posture_at: datetime | None = None


class Reported(msgspec.Struct, frozen=True, kw_only=True):
    """What the app reported in one request."""

    ip: str | None = None
    device: ReportedDevice | None = None


class ReportError(RequestError, ValueError):
    """A reported section that is not well-typed: 400 ``facts.invalid``."""

    code = "facts.invalid"


def take_reported(doc: dict[str, Any]) -> Reported:
    """Take the app's ``network`` and ``device`` sections out of a facts document.

    ``geo`` is dropped as well: it is observed from the IP, never taken from a caller.

    Raises:
        ReportError: a section that is not well-typed.
    """
    network = doc.pop("network", None)
    device = doc.pop("device", None)
    doc.pop("geo", None)
    try:
        net = msgspec.convert(network, ReportedNetwork) if network is not None else None
        dev = msgspec.convert(device, ReportedDevice) if device is not None else None
    except msgspec.ValidationError as exc:
        raise ReportError(f"invalid reported context: {exc}") from None
    if dev is not None and dev.posture_at is not None and dev.posture_at.tzinfo is None:
        raise ReportError("`device.posture_at` needs a time zone (for example `Z`)")
    return Reported(ip=net.ip if net is not None else None, device=dev)


class Seen(msgspec.Struct, frozen=True, kw_only=True):
    """The facts observed for one decision and what to remember of them."""

    network: dict[str, Any]
    geo: dict[str, Any]
    device: dict[str, Any]
    observed: Observed
    #: The session's remembered observation changed (a write is due).
    changed: bool = False
    #: A new place for the subject's recent locations, a device first seen now.
    new_location: Located | None = None
    new_device: str | None = None
    #: The sections plug-in enrichers provided (`juncture.signals.register_enricher`).
    extra: dict[str, dict[str, Any]] = {}

    def sections(self) -> dict[str, Any]:
        """The facts sections, only those observed."""
        out: dict[str, Any] = {}
        for name in ("network", "geo", "device"):
            value = getattr(self, name)
            if value:
                out[name] = value
        out.update((name, value) for name, value in self.extra.items() if value)
        return out


def _present(struct: msgspec.Struct) -> dict[str, Any]:
    return {f: v for f in struct.__struct_fields__ if (v := getattr(struct, f)) is not None}


def _located(view: LocatedView) -> Located:
    return Located(lat=view.lat, lon=view.lon, at=view.at, ip=view.ip, country=view.country)


def _view(located: Located) -> LocatedView:
    return LocatedView(
        lat=located.lat, lon=located.lon, at=located.at, ip=located.ip, country=located.country
    )


class Observer:
    """Observes each decision's context; configured once per server."""

    def __init__(self, settings: ObserveSettings, *, now: datetime | None = None) -> None:
        """Open the enrichers' sources.

        Raises:
            ValueError: a bad trusted proxy, interval or cache size.
            ReputationError: a missing or invalid reputation file.
        """
        self.settings = settings
        self.enricher = Enricher(settings.enrichers, now=now)
        self.context_max_age = timedelta(seconds=settings.context_max_age)
        self.posture_max_age = timedelta(seconds=settings.posture_max_age)

    def observe(
        self,
        reported: Reported,
        session: Session | None,
        now: datetime,
        *,
        connection: Connection | None = None,
        subject_seen: Callable[[], SubjectSeen | None] = lambda: None,
    ) -> Seen:
        """The facts of this request (see the module's rules); ``subject_seen`` is called only
        when the request brings something new (a new IP or device) or has no session."""
        prev = session.observed if session is not None else Observed()
        device = reported.device
        report_ip = reported.ip
        if report_ip is None and prev.ip is not None and prev.ip_at is not None:
            if now - prev.ip_at <= self.context_max_age:
                report_ip = prev.ip  # remembered and still fresh
        device_id = (device.id if device is not None else None) or prev.device_id
        platform = (device.platform if device is not None else None) or prev.platform
        user_agent = device.user_agent if device is not None else None
        posture = prev.posture
        if device is not None and (device.managed is not None or device.compliant is not None):
            posture = Posture(
                device_id=device_id,
                managed=device.managed,
                compliant=device.compliant,
                at=device.posture_at or now,
                source="app",
                platform=platform,
            )
        address = None
        enriched_ip: str | None = None
        if report_ip is not None and report_ip == prev.ip:
            enriched_ip = prev.ip  # remembered in canonical form when it was first seen
        elif report_ip is not None:
            address = reported_ip(report_ip)  # an invalid report is missing, no fallback
        elif self.settings.connection_ip and connection is not None:
            address = self.enricher.client_ip.resolve(
                connection.peer,
                forwarded=connection.forwarded,
                x_forwarded_for=connection.x_forwarded_for,
            )
        if address is not None:
            enriched_ip = str(address)
        # A new place: the move into it is measured now, and stays the session's last move
        # for as long as the session stays there.
        new_ip = enriched_ip is not None and enriched_ip != prev.ip
        # The subject's record is read only when it can tell something: whether a device not
        # seen in this session is known, or where the subject was before a new place (which
        # needs a geolocation database). Steady traffic reads nothing more than the session.
        other_device = device_id is not None and device_id != prev.device_id
        seen: SubjectSeen | None = None
        if other_device or (new_ip and self.enricher.geo is not None):
            seen = subject_seen()
        known: bool | None = None
        if device_id is not None:
            if device_id == prev.device_id and prev.device_known is not None:
                known = prev.device_known
            else:
                first = seen.devices.get(device_id) if seen is not None else None
                started = session.started_at if session is not None else now
                known = first is not None and first < started
        history = History(
            previous=_view(prev.located) if new_ip and prev.located is not None else None,
            previous_user_agent=prev.user_agent if user_agent is not None else None,
            recent=tuple(_view(p) for p in seen.located) if seen is not None and new_ip else (),
            known_devices=frozenset([device_id]) if known and device_id else frozenset(),
            posture=self._fresh(posture, now),
        )
        enriched = self.enricher.enrich(
            Observation(
                at=now,
                reported_ip=enriched_ip,
                address=address,
                user_agent=user_agent,
                device_id=device_id,
                platform=platform,
            )
            if enriched_ip is not None
            else Observation(at=now, user_agent=user_agent, device_id=device_id, platform=platform),
            history,
        )
        network = _present(enriched.network)
        geo = _present(enriched.geo)
        located, distance, speed = prev.located, prev.distance_km, prev.speed_kmh
        if new_ip:
            located = _located(enriched.located) if enriched.located is not None else None
            distance, speed = geo.get("distance_km"), geo.get("speed_kmh")
        elif enriched_ip is not None and "lat" in geo:  # still at the place of the last move
            for key, value in (("distance_km", distance), ("speed_kmh", speed)):
                if value is not None:
                    geo[key] = value
        ip, ip_at = prev.ip, prev.ip_at
        if enriched_ip is not None and (
            new_ip or ip_at is None or now - ip_at >= self.context_max_age / 2
        ):
            ip, ip_at = enriched_ip, now  # re-dated only now and then: that is a write
        observed = Observed(
            ip=ip,
            ip_at=ip_at,
            user_agent=user_agent or prev.user_agent,
            device_id=device_id,
            platform=platform,
            device_known=known,
            located=located,
            distance_km=distance,
            speed_kmh=speed,
            posture=posture,
        )
        in_session = session is not None
        return Seen(
            network=network,
            geo=geo,
            device=_present(enriched.device),
            extra=enriched.extra,
            observed=observed,
            changed=in_session and observed != prev,
            new_location=located if in_session and new_ip and located is not None else None,
            new_device=(
                device_id
                if in_session and other_device and (seen is None or device_id not in seen.devices)
                else None
            ),
        )

    def _fresh(self, posture: Posture | None, now: datetime) -> Posture | None:
        if posture is None or now - posture.at > self.posture_max_age:
            return None  # stale is missing
        return posture


def remember_subject(
    seen: SubjectSeen | None, result: Seen, session: Session, now: datetime
) -> SubjectSeen | None:
    """The subject's record with this observation's new place and device (None: no change)."""
    if result.new_location is None and result.new_device is None:
        return None
    base = seen or SubjectSeen(subject_type=session.subject_type, subject_id=session.subject_id)
    devices = dict(base.devices)
    if result.new_device is not None and result.new_device not in devices:
        devices[result.new_device] = now
        if len(devices) > KNOWN_DEVICES:
            for stale in sorted(devices, key=devices.__getitem__)[: len(devices) - KNOWN_DEVICES]:
                del devices[stale]
    located = base.located
    if result.new_location is not None:
        located = (*located, result.new_location)[-RECENT_LOCATIONS:]
    return msgspec.structs.replace(base, devices=devices, located=located, updated_at=now)
