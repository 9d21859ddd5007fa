"""Velocity: how far and how fast a session or subject moved between located requests.

``geo.distance_km`` is the great-circle (haversine) distance from the most recent earlier
located observation to this one; ``geo.speed_kmh`` the highest speed implied by any of the
earlier observations compared (a jump from a city the subject was in an hour ago counts,
even if a nearer observation came in between).

Times that do not separate two observations (the same instant, or a clock that put the
earlier one later) are taken as one second apart, whichever way: a real move within a
second is an impossible speed, and a large number, never a division by zero. Moves under
`NEGLIGIBLE_KM` (geolocation places one city at one point) are no move at all: speed 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

import msgspec

#: Mean Earth radius (IUGG), km.
EARTH_RADIUS_KM = 6371.0088
#: Distances below this are no movement (speed 0), whatever the time between.
NEGLIGIBLE_KM = 1.0
#: The shortest time between two observations that speeds are computed over, seconds.
MIN_SECONDS = 1.0


class Located(msgspec.Struct, frozen=True, kw_only=True):
    """Where a request came from as geolocated, and when: the basis of distance and speed.

    The same fields as the store's record of it, so one converts into the other.
    """

    lat: float
    lon: float
    at: datetime
    ip: str | None = None
    country: str | None = None


class Travel(msgspec.Struct, frozen=True, kw_only=True):
    """Distance to the most recent earlier observation, and the highest implied speed."""

    distance_km: float
    speed_kmh: float


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points (degrees), km (haversine formula)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def speed_kmh(distance: float, seconds: float) -> float:
    """The speed of covering ``distance`` km in ``seconds`` (see the module's rules for
    negligible distances and for times under a second, or negative)."""
    if distance < NEGLIGIBLE_KM:
        return 0.0
    return distance / (max(abs(seconds), MIN_SECONDS) / 3600.0)


def travel(previous: Located | None, current: Located) -> Travel | None:
    """Distance and implied speed from the session's previous located observation."""
    if previous is None:
        return None
    km = distance_km(previous.lat, previous.lon, current.lat, current.lon)
    return Travel(
        distance_km=km, speed_kmh=speed_kmh(km, (current.at - previous.at).total_seconds())
    )


def travel_from(recent: Iterable[Located], current: Located) -> Travel | None:
    """Over the subject's recent located observations: the highest implied speed, and the
    distance to the most recent one (the latest ``at``). None when there are none."""
    # The haversine formula of `distance_km`, inlined: the current point's terms computed
    # once, since a subject's recent observations are many and this runs every decision.
    radians, sin, cos, asin, sqrt = math.radians, math.sin, math.cos, math.asin, math.sqrt
    two_r = 2 * EARTH_RADIUS_KM
    p2, l2 = radians(current.lat), radians(current.lon)
    cos_p2, at = cos(p2), current.at
    latest: Located | None = None
    latest_km = fastest = 0.0
    for seen in recent:
        p1 = radians(seen.lat)
        h = sin((p2 - p1) * 0.5) ** 2 + cos(p1) * cos_p2 * sin((l2 - radians(seen.lon)) * 0.5) ** 2
        km = two_r * asin(sqrt(h) if h < 1.0 else 1.0)
        seen_at = seen.at
        if km >= NEGLIGIBLE_KM:  # as `speed_kmh`
            seconds = abs((at - seen_at).total_seconds())
            speed = km * 3600.0 / (seconds if seconds > MIN_SECONDS else MIN_SECONDS)
            if speed > fastest:
                fastest = speed
        if latest is None or seen_at > latest.at:
            latest, latest_km = seen, km
    if latest is None:
        return None
    return Travel(distance_km=latest_km, speed_kmh=fastest)
