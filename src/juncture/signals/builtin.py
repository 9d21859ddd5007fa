"""The built-in enrichers (`juncture.signals.enrichers.FactEnricher`) over the signal sources:
geolocation and travel (``geo``), reputation labels (``network.labels``), device facts
(``device``). `juncture.signals.enrich.Enricher` configures them from the server's settings and
runs them in this order, before the plug-in enrichers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from juncture.policy.schema import VARIABLE_TABLE, Variable
from juncture.signals.device import device_facts
from juncture.signals.enrichers import Request
from juncture.signals.geo import GeoDatabase
from juncture.signals.reputation import ReputationFile
from juncture.signals.velocity import Located, travel_from


def located_at(geo: Mapping[str, Any], at: datetime, ip: str | None) -> Located:
    """A located observation from geo facts that have ``lat`` and ``lon``."""
    return Located(lat=geo["lat"], lon=geo["lon"], at=at, ip=ip, country=geo.get("country"))


class GeoEnricher:
    """``geo``: the geolocation database's answer for the IP, and the distance and speed
    from the session's previous place and the subject's recent ones."""

    provides: Variable = VARIABLE_TABLE["geo"]

    def __init__(self, database: GeoDatabase) -> None:
        self.database = database

    def enrich(self, request: Request) -> Mapping[str, Any]:
        text = request.ip_text
        if not text:
            return {}
        geo = self.database.lookup(text, now=request.observation.at.timestamp())
        if "lat" in geo and "lon" in geo:
            history = request.history
            earlier = history.recent
            if history.previous is not None:
                earlier = (*earlier, history.previous)
            moved = travel_from(earlier, located_at(geo, request.observation.at, text))
            if moved is not None:
                geo["distance_km"] = round(moved.distance_km, 3)
                geo["speed_kmh"] = round(moved.speed_kmh, 3)
        return geo


class ReputationEnricher:
    """``network.labels``: the reputation lists holding the IP or its ASN. Only for a known
    IP: an unknown address is not "on no list", it is unknown."""

    provides: Variable = VARIABLE_TABLE["network"]

    def __init__(self, file: ReputationFile) -> None:
        self.file = file

    def enrich(self, request: Request) -> Mapping[str, Any]:
        if request.ip is None:
            return {}
        asn = request.facts.get("geo", {}).get("asn")
        labels = self.file.labels(request.ip, asn, now=request.observation.at.timestamp())
        return {"labels": labels}


class DeviceEnricher:
    """``device``: the device reported, whether the subject used it before, its posture,
    whether the user agent changed (`juncture.signals.device`)."""

    provides: Variable = VARIABLE_TABLE["device"]

    def enrich(self, request: Request) -> Mapping[str, Any]:
        observation, history = request.observation, request.history
        return device_facts(
            device_id=observation.device_id,
            known_devices=history.known_devices,
            posture=history.posture,
            platform=observation.platform,
            user_agent=observation.user_agent,
            previous_user_agent=history.previous_user_agent,
        )
