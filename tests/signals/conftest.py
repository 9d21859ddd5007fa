"""Fixtures for the enricher tests: real MaxMind databases in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import CITY_RECORDS, write_mmdb


@pytest.fixture
def city_db(tmp_path: Path) -> Path:
    return write_mmdb(tmp_path / "city.mmdb", CITY_RECORDS)


@pytest.fixture
def asn_db(tmp_path: Path) -> Path:
    return write_mmdb(
        tmp_path / "asn.mmdb",
        [
            (
                "81.0.0.0/16",
                {"autonomous_system_number": 3320, "autonomous_system_organization": "DTAG"},
            ),
            ("83.0.0.0/16", {"autonomous_system_number": 2516}),
            ("2001:db8::/32", {"autonomous_system_number": 64500}),
        ],
        database_type="GeoLite2-ASN",
    )
