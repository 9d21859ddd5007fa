"""The Enricher: one observation and its history in, the network/geo/device facts out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from juncture.engine import Facts, FactsDocument, evaluate
from juncture.engine.facts import DeviceIn, GeoIn, NetworkIn
from juncture.policy import compile_plan, load_sources
from juncture.signals.device import Posture
from juncture.signals.enrich import Enricher, EnricherSettings, History, Observation
from juncture.signals.reputation import ReputationError
from juncture.signals.velocity import Located

from .helpers import PARIS, write_mmdb

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
REPUTATION = """\
labels:
  known_bad:
    cidrs: [82.0.66.0/24]
  cloud_hosting:
    asns: [2516]
"""


@pytest.fixture
def settings(city_db, asn_db, tmp_path):
    rep = tmp_path / "reputation.yaml"
    rep.write_text(REPUTATION)
    return EnricherSettings(
        trusted_proxies=("10.0.0.0/8",),
        geo_city_db=str(city_db),
        geo_asn_db=str(asn_db),
        geo_check_interval=0,
        reputation_file=str(rep),
        reputation_check_interval=0,
    )


@pytest.fixture
def enricher(settings):
    return Enricher(settings, now=NOW)


def test_a_first_request_from_behind_the_proxy(enricher):
    seen = enricher.enrich(
        Observation(
            at=NOW,
            peer="10.0.0.5",
            x_forwarded_for=("6.6.6.6, 81.0.1.2",),  # the client forged the left one
            user_agent=UA,
            device_id="d1",
        )
    )
    assert seen.ip_source == "connection"
    assert seen.network == NetworkIn(ip="81.0.1.2", labels=[])  # on no list
    assert seen.geo == GeoIn(
        country="DE", region="BE", city="Berlin", lat=52.52, lon=13.405, asn=3320
    )
    assert seen.device == DeviceIn(id="d1", known=False)
    assert seen.labels == ()
    assert seen.observed_at == NOW
    assert seen.located == Located(lat=52.52, lon=13.405, at=NOW, ip="81.0.1.2", country="DE")


def test_the_next_request_compares_with_the_history(enricher):
    previous = Located(lat=52.52, lon=13.405, at=NOW - timedelta(minutes=30), ip="81.0.1.2")
    posture = Posture(device_id="d1", managed=True, compliant=True, at=NOW - timedelta(minutes=5))
    seen = enricher.enrich(
        Observation(at=NOW, reported_ip="82.0.0.9", user_agent=UA + " changed", device_id="d1"),
        History(
            previous=previous,
            previous_user_agent=UA,
            known_devices=frozenset({"d1"}),
            posture=posture,
        ),
    )
    assert seen.ip_source == "reported"
    assert seen.geo.city == "Paris"
    assert seen.geo.distance_km == pytest.approx(878, abs=2)
    assert seen.geo.speed_kmh == pytest.approx(1756, abs=4)  # Berlin to Paris in 30 minutes
    assert seen.device == DeviceIn(
        id="d1",
        known=True,
        managed=True,
        compliant=True,
        posture_at=posture.at,
        user_agent_changed=True,
    )


def test_the_subjects_recent_locations_count_too(enricher):
    recent = (
        Located(lat=40.7128, lon=-74.006, at=NOW - timedelta(hours=1)),  # New York
        Located(lat=48.8566, lon=2.3522, at=NOW - timedelta(days=1)),
    )
    seen = enricher.enrich(Observation(at=NOW, reported_ip="81.0.0.1"), History(recent=recent))
    assert seen.geo.speed_kmh == pytest.approx(6385, abs=10)  # New York an hour ago
    assert seen.geo.distance_km == pytest.approx(6385, abs=10)  # the latest: New York
    # with the session's previous request too, the distance is to the latest of all
    previous = Located(lat=52.52, lon=13.405, at=NOW - timedelta(minutes=1))
    seen = enricher.enrich(
        Observation(at=NOW, reported_ip="81.0.0.1"), History(previous=previous, recent=recent)
    )
    assert seen.geo.distance_km == 0.0
    assert seen.geo.speed_kmh == pytest.approx(6385, abs=10)


def test_reputation_labels_by_address_and_by_as(enricher):
    seen = enricher.enrich(Observation(at=NOW, reported_ip="82.0.66.1"))
    assert seen.network == NetworkIn(ip="82.0.66.1", labels=["known_bad"])
    assert seen.labels == ("known_bad",)
    # Tokyo's range: its AS number (from the ASN database) is on the cloud list
    assert enricher.enrich(Observation(at=NOW, reported_ip="83.0.0.1")).labels == ("cloud_hosting",)


@pytest.mark.parametrize("reported", ["82.0.0.9:443", "unknown", "", "10.0.0.5, 82.0.0.9"])
def test_an_invalid_reported_ip_is_missing_not_the_connections(enricher, reported):
    seen = enricher.enrich(Observation(at=NOW, reported_ip=reported, peer="81.0.0.1"))
    assert (seen.ip_source, seen.network, seen.geo, seen.labels) == (
        "reported",
        NetworkIn(),
        GeoIn(),
        (),
    )
    assert seen.located is None


def test_an_ip_without_location_has_no_travel(enricher):
    previous = Located(lat=52.52, lon=13.405, at=NOW - timedelta(minutes=1))
    seen = enricher.enrich(Observation(at=NOW, reported_ip="84.0.0.1"), History(previous=previous))
    assert seen.geo == GeoIn(country="GB")
    assert seen.located is None
    seen = enricher.enrich(Observation(at=NOW, reported_ip="8.8.8.8"), History(previous=previous))
    assert seen.geo == GeoIn()


def test_the_database_removed_at_run_time(enricher, city_db, asn_db):
    city_db.unlink()
    asn_db.unlink()
    seen = enricher.enrich(Observation(at=NOW, reported_ip="81.0.0.1"))
    assert seen.network == NetworkIn(ip="81.0.0.1", labels=[])
    assert seen.geo == GeoIn()
    assert [s.state for s in enricher.status()] == ["missing", "missing", "ok"]
    write_mmdb(city_db, [("81.0.0.0/16", PARIS)])
    seen = enricher.enrich(Observation(at=NOW + timedelta(seconds=1), reported_ip="81.0.0.1"))
    assert seen.geo.city == "Paris"


def test_labels_are_not_observed_without_a_reputation_file_or_an_ip(enricher):
    assert Enricher(EnricherSettings()).enrich(Observation(at=NOW, peer="82.0.66.1")).network == (
        NetworkIn(ip="82.0.66.1")
    )
    # an unknown address is not on no list: it is unknown
    assert enricher.enrich(Observation(at=NOW, reported_ip="nope")).network == NetworkIn()


def test_without_sources_only_the_ip_and_the_device():
    enricher = Enricher(EnricherSettings())
    seen = enricher.enrich(Observation(at=NOW, peer="::ffff:81.0.0.1", device_id="d1"))
    assert seen.network == NetworkIn(ip="81.0.0.1")
    assert (seen.geo, seen.labels, seen.located) == (GeoIn(), (), None)
    assert seen.device == DeviceIn(id="d1", known=False)
    assert enricher.status() == []


def test_the_sections_make_a_valid_facts_document(enricher):
    previous = Located(lat=48.8566, lon=2.3522, at=NOW - timedelta(hours=1))
    seen = enricher.enrich(
        Observation(at=NOW, reported_ip="2001:db8:1::1", device_id="d1"),
        History(previous=previous, posture=Posture(device_id="d1", managed=True, at=NOW)),
    )
    document = FactsDocument(network=seen.network, geo=seen.geo, device=seen.device)
    facts = Facts(document)
    assert facts.base["geo"]["city"] == "New York"
    assert facts.base["network"] == {"ip": "2001:db8:1::1", "version": 6, "labels": []}
    assert facts.device_posture_at == NOW
    # and survive a round trip through JSON, as decision records do
    encoded = msgspec.json.encode(document)
    Facts.from_document(msgspec.json.decode(encoded))


def test_a_naive_observation_time_is_refused(enricher):
    with pytest.raises(ValueError, match="needs a time zone"):
        enricher.enrich(Observation(at=datetime(2026, 11, 29, 10, 0), peer="81.0.0.1"))


def test_bad_settings_are_refused_at_start(tmp_path):
    with pytest.raises(ValueError, match="trusted proxy `nope`"):
        Enricher(EnricherSettings(trusted_proxies=("nope",)))
    bad = tmp_path / "r.yaml"
    bad.write_text("labels: {Bad: {}}\n")
    with pytest.raises(ReputationError):
        Enricher(EnricherSettings(reputation_file=str(bad)))
    with pytest.raises(ReputationError):
        Enricher(EnricherSettings(reputation_file=str(tmp_path / "absent.yaml")))


def test_settings_decode_strictly():
    settings = msgspec.json.decode(
        b'{"trusted_proxies": ["10.0.0.0/8"], "forwarded_headers": ["forwarded"]}',
        type=EnricherSettings,
    )
    assert settings.forwarded_headers == ("forwarded",)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"trusted_proxy": []}', type=EnricherSettings)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"forwarded_headers": ["x-real-ip"]}', type=EnricherSettings)


JOURNEY = b"""\
journey: j
networks:
  office: [81.0.0.0/16]
checkpoints:
  read:
    - {if: "'known_bad' in network.labels", deny: blocked}
    - {if: "has(geo.speed_kmh) && geo.speed_kmh > 900", deny: impossible_travel}
    - {if: "network.segment == 'office' && geo.country == 'DE'", allow: {}}
    - {deny: elsewhere}
"""


@pytest.mark.parametrize(
    ("reported", "previous", "outcome"),
    [
        ("81.0.0.1", None, ("allow", None)),
        ("::ffff:81.0.0.1", None, ("allow", None)),
        ("82.0.0.1", None, ("deny", "elsewhere")),
        ("82.0.66.1", None, ("deny", "blocked")),
        ("81.0.0.1", (40.7128, -74.006), ("deny", "impossible_travel")),
        ("nope", None, ("deny", "evaluation_error")),  # no IP: the conditions fail closed
    ],
)
def test_a_journey_decides_on_the_enriched_facts(enricher, reported, previous, outcome):
    plan = compile_plan(load_sources({"j.yaml": JOURNEY}))
    history = History()
    if previous is not None:
        history = History(
            previous=Located(lat=previous[0], lon=previous[1], at=NOW - timedelta(hours=1))
        )
    seen = enricher.enrich(Observation(at=NOW, reported_ip=reported), history)
    facts = Facts(FactsDocument(network=seen.network, geo=seen.geo, device=seen.device))
    decision = evaluate(plan, "read", facts, NOW)
    assert decision.outcome == outcome[0]
    if outcome[1] is not None:
        assert decision.reason == outcome[1]


def test_the_engine_puts_a_mapped_address_in_its_ipv4_network():
    plan = compile_plan(load_sources({"j.yaml": JOURNEY}))
    document = {"network": {"ip": "::ffff:81.0.0.1", "labels": []}, "geo": {"country": "DE"}}
    decision = evaluate(plan, "read", Facts.from_document(document), NOW)
    assert decision.outcome == "allow"
