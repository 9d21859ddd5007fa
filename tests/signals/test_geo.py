"""GeoDatabase over real MaxMind DB files: lookups, reload on change, missing files."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from juncture.signals.geo import GeoDatabase, facts_of

from .helpers import BERLIN, CITY_RECORDS, PARIS, city, write_mmdb

T0 = 1_800_000_000.0


def test_city_facts(city_db):
    db = GeoDatabase(city_db)
    assert db.lookup("81.0.3.4") == {
        "country": "DE",
        "region": "BE",
        "city": "Berlin",
        "lat": 52.52,
        "lon": 13.405,
    }
    assert db.lookup("2001:db8:1::9")["city"] == "New York"
    assert db.lookup("84.0.0.1") == {"country": "GB"}  # only the keys the database has
    assert db.lookup("8.8.8.8") == {}
    assert db.available


def test_addresses_as_objects_and_mapped_ipv6(city_db):
    db = GeoDatabase(city_db)
    assert db.lookup(ipaddress.ip_address("82.0.0.1"))["city"] == "Paris"
    assert db.lookup("::ffff:82.0.0.1")["city"] == "Paris"
    assert db.lookup(ipaddress.ip_address("::ffff:82.0.0.1"))["city"] == "Paris"


@pytest.mark.parametrize("text", ["nope", "", "82.0.0.1:80", "82.0.0.300"])
def test_not_an_address_has_no_facts(city_db, text):
    assert GeoDatabase(city_db).lookup(text) == {}


def test_asn_from_a_separate_database(city_db, asn_db):
    db = GeoDatabase(city_db, asn_db)
    assert db.lookup("81.0.0.1") == {**facts_of(BERLIN), "asn": 3320}
    assert db.lookup("2001:db8:1::1")["asn"] == 64500
    assert db.lookup("82.0.0.1") == facts_of(PARIS)  # no AS known for it
    assert GeoDatabase(None, asn_db).lookup("83.0.0.1") == {"asn": 2516}


def test_asn_from_the_city_database_traits(tmp_path):
    path = write_mmdb(tmp_path / "c.mmdb", [("81.0.0.0/16", city("DE", asn=3320))])
    assert GeoDatabase(path).lookup("81.0.0.1") == {"country": "DE", "asn": 3320}


def test_an_ipv6_address_in_an_ipv4_only_database(tmp_path):
    path = write_mmdb(tmp_path / "v4.mmdb", [("81.0.0.0/16", BERLIN)], ip_version=4)
    db = GeoDatabase(path)
    assert db.lookup("81.0.0.1")["city"] == "Berlin"
    assert db.lookup("2001:db8::1") == {}


def test_a_changed_file_is_reloaded_and_the_cache_dropped(tmp_path):
    path = write_mmdb(tmp_path / "city.mmdb", CITY_RECORDS)
    db = GeoDatabase(path, check_interval=0, now=T0)
    assert db.lookup("81.0.0.1", now=T0)["city"] == "Berlin"
    assert db.cache_info()[2] == 1
    write_mmdb(path, [("81.0.0.0/16", PARIS)])
    assert db.lookup("81.0.0.1", now=T0 + 1)["city"] == "Paris"
    assert db.cache_info() == (0, 1, 1)
    assert db.status()[0].loaded_at == T0 + 1


def test_files_are_looked_at_once_per_check_interval(tmp_path):
    path = write_mmdb(tmp_path / "city.mmdb", CITY_RECORDS)
    db = GeoDatabase(path, check_interval=60)
    assert db.refresh(T0) is False  # the first look: nothing changed since the start
    write_mmdb(path, [("81.0.0.0/16", PARIS)])
    assert db.lookup("81.0.0.1", now=T0 + 30)["city"] == "Berlin"  # not looked at yet
    assert db.lookup("81.0.0.1", now=T0 + 60)["city"] == "Paris"
    write_mmdb(path, [("81.0.0.0/16", BERLIN)])
    # a clock that went back (another node, a replay) looks again rather than waiting
    assert db.refresh(T0 - 5) is True
    assert db.lookup("81.0.0.1")["city"] == "Berlin"


def test_a_database_removed_at_run_time_gives_empty_lookups(tmp_path, caplog):
    path = write_mmdb(tmp_path / "city.mmdb", CITY_RECORDS)
    db = GeoDatabase(path, check_interval=0)
    assert db.lookup("81.0.0.1", now=T0)["city"] == "Berlin"
    path.unlink()
    with caplog.at_level(logging.WARNING, logger="juncture.signals.geo"):
        assert db.lookup("81.0.0.1", now=T0 + 1) == {}
    assert "does not exist" in caplog.text
    (status,) = db.status()
    assert (status.name, status.state) == ("geo.city", "missing")
    assert "does not exist" in (status.error or "")
    assert not db.available
    write_mmdb(path, CITY_RECORDS)  # put back: used again at the next look
    assert db.lookup("81.0.0.1", now=T0 + 2)["city"] == "Berlin"
    assert db.status()[0].state == "ok"


def test_a_missing_file_at_start_is_reported_not_raised(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="juncture.signals.geo"):
        db = GeoDatabase(tmp_path / "absent.mmdb", check_interval=0)
    assert db.lookup("81.0.0.1", now=T0) == {}
    assert db.status()[0].state == "missing"
    assert "absent.mmdb" in caplog.text
    write_mmdb(tmp_path / "absent.mmdb", CITY_RECORDS)
    assert db.lookup("81.0.0.1", now=T0 + 1)["city"] == "Berlin"


def test_an_invalid_file_is_reported(tmp_path):
    path = tmp_path / "city.mmdb"
    path.write_bytes(b"this is not a maxmind database" * 100)
    db = GeoDatabase(path, check_interval=0)
    assert db.lookup("81.0.0.1", now=T0) == {}
    (status,) = db.status()
    assert status.state == "error"
    assert "not a valid MaxMind database" in (status.error or "")


def test_an_unreadable_file_is_missing(tmp_path):
    path = tmp_path / "city.mmdb"
    path.mkdir()  # there, but not a file that can be read
    db = GeoDatabase(path)
    assert db.lookup("81.0.0.1") == {}
    (status,) = db.status()
    assert status.state == "missing"
    assert "cannot be read" in (status.error or "")


def test_a_file_overwritten_in_place_cannot_hurt_the_copy_in_use(tmp_path):
    path = write_mmdb(tmp_path / "city.mmdb", CITY_RECORDS)
    db = GeoDatabase(path, check_interval=3600)
    assert db.refresh(T0) is False
    with open(path, "r+b") as f:  # what `cp new.mmdb city.mmdb` does: truncate, write
        f.truncate(0)
    assert db.lookup("81.0.0.1", now=T0 + 1)["city"] == "Berlin"
    assert db.lookup("82.0.0.1")["city"] == "Paris"


def test_mmap_mode(tmp_path):
    path = write_mmdb(tmp_path / "city.mmdb", CITY_RECORDS)
    db = GeoDatabase(path, mode="mmap", check_interval=0)
    assert db.lookup("81.0.0.1")["city"] == "Berlin"
    write_mmdb(path, [("81.0.0.0/16", PARIS)])
    assert db.lookup("81.0.0.1", now=T0)["city"] == "Paris"


def test_the_cache_is_bounded(city_db):
    db = GeoDatabase(city_db, cache_size=2)
    for address in ("81.0.0.1", "82.0.0.1", "83.0.0.1", "81.0.0.1"):
        db.lookup(address)
    hits, misses, entries = db.cache_info()
    assert (hits, misses, entries) == (0, 4, 2)
    db.lookup("81.0.0.1")
    assert db.cache_info()[0] == 1


def test_without_a_cache(city_db):
    db = GeoDatabase(city_db, cache_size=0)
    assert db.lookup("81.0.0.1")["city"] == "Berlin"
    assert db.cache_info() == (0, 0, 0)


def test_a_lookup_result_is_the_callers_own(city_db):
    db = GeoDatabase(city_db)
    db.lookup("81.0.0.1")["city"] = "Mutated"
    assert db.lookup("81.0.0.1")["city"] == "Berlin"


def test_status_names_the_database(city_db, asn_db):
    db = GeoDatabase(city_db, asn_db, now=T0)
    city_status, asn_status = db.status()
    assert (city_status.name, city_status.state, city_status.loaded_at) == ("geo.city", "ok", T0)
    assert city_status.detail["database_type"] == "GeoIP2-City"
    assert asn_status.detail["database_type"] == "GeoLite2-ASN"
    assert GeoDatabase().status() == []
    assert GeoDatabase().lookup("81.0.0.1") == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "mapped"}, "unknown geo database mode `mapped`"),
        ({"cache_size": -1}, "cache size must be 0 or more"),
        ({"check_interval": -1}, "check interval must be 0 or more"),
        ({"check_interval": float("nan")}, "check interval must be 0 or more"),
    ],
)
def test_bad_arguments(city_db, kwargs, message):
    with pytest.raises(ValueError, match=message):
        GeoDatabase(city_db, **kwargs)


@pytest.mark.parametrize(
    ("record", "facts"),
    [
        (None, {}),
        ("text", {}),
        ({"country": "DE"}, {}),
        ({"country": {"iso_code": ""}}, {}),
        ({"country": {"iso_code": 276}}, {}),
        ({"subdivisions": []}, {}),
        ({"subdivisions": {"iso_code": "BE"}}, {}),
        ({"subdivisions": [{"iso_code": "BE"}, {"iso_code": "X"}]}, {"region": "BE"}),
        ({"location": {"latitude": 91.0, "longitude": 10}}, {"lon": 10.0}),
        ({"location": {"latitude": True, "longitude": float("nan")}}, {}),
        ({"autonomous_system_number": True}, {}),
        ({"autonomous_system_number": 0}, {}),
        ({"autonomous_system_number": 1 << 32}, {}),
        ({"traits": {"autonomous_system_number": 7}}, {"asn": 7}),
    ],
)
def test_facts_of_odd_records(record, facts):
    assert facts_of(record) == facts
