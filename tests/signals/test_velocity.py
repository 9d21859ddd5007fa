"""Velocity: haversine distance and implied speed, with same-instant and clock-skew rules."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from juncture.signals.velocity import (
    EARTH_RADIUS_KM,
    Located,
    distance_km,
    speed_kmh,
    travel,
    travel_from,
)

T = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
BERLIN = (52.52, 13.405)
PARIS = (48.8566, 2.3522)
NEW_YORK = (40.7128, -74.006)


def at(place, delta=timedelta(0)):
    return Located(lat=place[0], lon=place[1], at=T + delta)


def test_known_distances():
    assert distance_km(*BERLIN, *PARIS) == pytest.approx(878, abs=2)
    assert distance_km(*PARIS, *NEW_YORK) == pytest.approx(5837, abs=5)
    assert distance_km(*BERLIN, *BERLIN) == 0.0
    # antipodes: half the circumference, no math domain error from rounding
    assert distance_km(0, 0, 0, 180) == pytest.approx(math.pi * EARTH_RADIUS_KM)
    assert distance_km(90, 0, -90, 0) == pytest.approx(math.pi * EARTH_RADIUS_KM)


def test_speed_between_two_observations():
    moved = travel(at(BERLIN), at(PARIS, timedelta(hours=2)))
    assert moved is not None
    assert moved.distance_km == pytest.approx(878, abs=2)
    assert moved.speed_kmh == pytest.approx(439, abs=1)


def test_no_previous_observation_no_travel():
    assert travel(None, at(PARIS)) is None
    assert travel_from([], at(PARIS)) is None


def test_the_same_instant_is_an_impossible_speed_not_a_division_by_zero():
    moved = travel(at(BERLIN), at(PARIS))
    assert moved is not None
    assert moved.speed_kmh == pytest.approx(moved.distance_km * 3600)  # as if in one second
    assert moved.speed_kmh > 1_000_000


def test_a_clock_that_put_the_previous_one_later_counts_the_time_between():
    # the earlier observation was stamped 30 minutes after this one (skewed node clocks)
    moved = travel(at(BERLIN, timedelta(minutes=30)), at(PARIS))
    assert moved is not None
    assert moved.speed_kmh == pytest.approx(moved.distance_km * 2)
    # a fraction of a second either way is one second
    assert speed_kmh(10.0, -0.2) == speed_kmh(10.0, 0.0) == speed_kmh(10.0, 0.9) == 36_000.0


def test_staying_put_is_no_speed_whatever_the_time():
    assert travel(at(BERLIN), at(BERLIN)).speed_kmh == 0.0
    assert speed_kmh(0.5, 0.0) == 0.0  # under NEGLIGIBLE_KM: the same city, geolocated
    assert speed_kmh(1.0, 3600.0) == 1.0


def test_over_recent_observations_the_fastest_and_the_distance_to_the_latest():
    recent = [
        at(NEW_YORK, timedelta(hours=-1)),  # an hour ago in New York: 6400 km/h to Berlin
        at(PARIS, timedelta(minutes=-30)),  # the most recent: Paris half an hour ago
        at(BERLIN, timedelta(hours=-48)),
    ]
    moved = travel_from(recent, at(BERLIN))
    assert moved is not None
    assert moved.distance_km == pytest.approx(distance_km(*PARIS, *BERLIN))
    assert moved.speed_kmh == pytest.approx(distance_km(*NEW_YORK, *BERLIN), rel=1e-9)


def test_recent_observations_all_here():
    moved = travel_from([at(BERLIN, timedelta(hours=-1))], at(BERLIN))
    assert (moved.distance_km, moved.speed_kmh) == (0.0, 0.0)


coords = st.tuples(st.floats(-90, 90, allow_nan=False), st.floats(-180, 180, allow_nan=False))


@given(coords, coords, st.integers(-(10**7), 10**7))
def test_distance_and_speed_are_finite_symmetric_and_bounded(a, b, seconds):
    d = distance_km(*a, *b)
    assert 0.0 <= d <= math.pi * EARTH_RADIUS_KM + 1e-6
    assert d == pytest.approx(distance_km(*b, *a), abs=1e-6)
    s = speed_kmh(d, seconds)
    assert math.isfinite(s)
    assert s >= 0.0


def located(lat, lon, seconds):
    return Located(lat=lat, lon=lon, at=T + timedelta(seconds=seconds))


points = st.builds(
    located,
    st.floats(-90, 90, allow_nan=False),
    st.floats(-180, 180, allow_nan=False),
    st.integers(-(10**6), 10**6),
)


@given(st.lists(points, max_size=8), points)
def test_travel_from_agrees_with_distance_and_speed_point_by_point(recent, current):
    moved = travel_from(recent, current)
    if not recent:
        assert moved is None
        return
    speeds = [
        speed_kmh(
            distance_km(p.lat, p.lon, current.lat, current.lon), (current.at - p.at).total_seconds()
        )
        for p in recent
    ]
    latest = max(recent, key=lambda p: p.at)
    assert moved.speed_kmh == pytest.approx(max(speeds), rel=1e-9, abs=1e-9)
    assert moved.distance_km == pytest.approx(
        distance_km(latest.lat, latest.lon, current.lat, current.lon), rel=1e-9, abs=1e-9
    )
