"""Helpers for the enricher tests: real MaxMind databases written with mmdb_writer."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet


def city(
    country: str | None = None,
    region: str | None = None,
    name: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    asn: int | None = None,
) -> dict[str, Any]:
    """A record shaped like GeoIP2-City's (only the parts given)."""
    record: dict[str, Any] = {}
    if country is not None:
        record["country"] = {"iso_code": country, "names": {"en": country}}
    if region is not None:
        record["subdivisions"] = [{"iso_code": region, "names": {"en": region}}]
    if name is not None:
        record["city"] = {"names": {"en": name, "de": name.upper()}}
    if lat is not None and lon is not None:
        record["location"] = {"latitude": lat, "longitude": lon, "accuracy_radius": 20}
    if asn is not None:
        record["traits"] = {"autonomous_system_number": asn}
    return record


def write_mmdb(
    path: Path,
    records: Iterable[tuple[str, dict[str, Any]]],
    *,
    database_type: str = "GeoIP2-City",
    ip_version: int = 6,
) -> Path:
    """Write a MaxMind DB holding ``(cidr, record)`` pairs (IPv4 ranges in an IPv6 tree)."""
    writer = MMDBWriter(
        ip_version=ip_version,
        ipv4_compatible=ip_version == 6,
        database_type=database_type,
    )
    for cidr, record in records:
        writer.insert_network(IPSet([cidr]), record)
    tmp = path.with_name(path.name + ".tmp")
    writer.to_db_file(str(tmp))
    tmp.replace(path)  # atomically, as geoipupdate does
    return path


BERLIN = city("DE", "BE", "Berlin", 52.52, 13.405)
PARIS = city("FR", "IDF", "Paris", 48.8566, 2.3522)
NEW_YORK = city("US", "NY", "New York", 40.7128, -74.006)
TOKYO = city("JP", "13", "Tokyo", 35.6762, 139.6503)

CITY_RECORDS = [
    ("81.0.0.0/16", BERLIN),
    ("82.0.0.0/16", PARIS),
    ("2001:db8:1::/48", NEW_YORK),
    ("83.0.0.0/16", TOKYO),
    ("84.0.0.0/16", city("GB")),  # a country and nothing else
]
