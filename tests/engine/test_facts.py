"""Facts: strict decoding, relative times, what is known and what is missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from juncture.engine import Facts
from juncture.engine.facts import parse_now
from juncture.errors import FactsError
from juncture.policy.schema import SIGNAL_DEFAULTS

from .helpers import NOW


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"colour": "red"}, "colour"),
        ({"device": {"managed": "true"}}, "$.device.managed"),
        ({"device": {"managed": 1}}, "$.device.managed"),
        ({"device": {"trusted": True}}, "trusted"),
        ({"geo": {"asn": "13335"}}, "$.geo.asn"),
        ({"geo": {"asn": True}}, "$.geo.asn"),
        ({"session": {"proofs": [{"method": "totp"}]}}, "at"),
        ({"session": {"proofs": [{"method": "totp", "at": "yesterday"}]}}, "proofs[0].at"),
        ({"session": {"proofs": [{"method": "totp", "at": "-5m"}]}}, "proofs[0].at"),
        ({"signals": ["credential_compromised"]}, "$.signals"),
        ({"subject": {"type": "user", "role": "admin"}}, "role"),
        ({"action": {"properties": {}}}, "name"),
        ({"app": 7}, "$.app"),
        ([], "object"),
    ],
)
def test_wrong_shapes_are_facts_invalid(document, where):
    with pytest.raises(FactsError) as info:
        Facts.from_document(document)
    assert info.value.code == "facts.invalid"
    assert info.value.http_status == 400
    assert where in info.value.message
    assert info.value.message.startswith("invalid facts: ")


def test_a_bad_relative_duration_is_facts_invalid():
    with pytest.raises(FactsError) as info:
        Facts.from_document({"session": {"proofs": [{"method": "totp", "at": "-5 minutes"}]}}, NOW)
    assert info.value.code == "facts.invalid"
    assert "5 minutes" in info.value.message


@pytest.mark.parametrize("document", [
    {"session": {"proofs": [{"method": "totp", "at": ""}]}},
    {"session": {"started_at": ""}},
    {"app": {"at": ""}},  # found by the property tests: an empty time is no relative time
])  # fmt: skip
def test_an_empty_time_is_facts_invalid_or_left_alone_never_a_crash(document: dict):
    try:
        Facts.from_document(document, NOW)
    except FactsError as error:
        assert error.code == "facts.invalid"


def test_relative_times_resolve_against_now():
    doc = {
        "session": {
            "started_at": "-1h",
            "proofs": [{"method": "totp", "at": "-5m"}, {"method": "pw", "at": "+1m"}],
        },
        "device": {"posture_at": "-1d"},
        "context": {"at": "-5m", "note": "-5m"},
    }
    facts = Facts.from_document(doc, NOW)
    assert facts.session.started_at == NOW - timedelta(hours=1)
    assert [p.at for p in facts.proofs] == [NOW - timedelta(minutes=5), NOW + timedelta(minutes=1)]
    assert facts.device_posture_at == NOW - timedelta(days=1)
    assert facts.base["device"] == {}
    # any `at` key is resolved (to RFC 3339 text where the shape has no timestamp); others not
    assert facts.base["context"] == {"at": (NOW - timedelta(minutes=5)).isoformat(), "note": "-5m"}


def test_naive_datetimes_given_directly_are_taken_as_utc():
    naive = datetime(2026, 11, 29, 9, 0)
    facts = Facts.from_document({"session": {"proofs": [{"method": "totp", "at": naive}]}}, NOW)
    assert facts.proofs[0].at == datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    aware = datetime(2026, 11, 29, 9, 0, tzinfo=timezone(timedelta(hours=2)))
    facts = Facts.from_document({"session": {"proofs": [{"method": "totp", "at": aware}]}}, NOW)
    assert facts.proofs[0].at == aware


def test_what_was_not_observed_is_absent():
    facts = Facts.from_document({})
    assert set(facts.base) == {"subject", "signals"}
    # The subject type defaults to user, the same type journey selection assumes.
    assert facts.base["subject"] == {"properties": {}, "type": "user"}
    assert facts.base["signals"] == SIGNAL_DEFAULTS
    assert facts.subject_type == "user"
    assert (facts.app, facts.ip, facts.session, facts.proofs) == (None, None, None, ())
    assert facts.device_posture_at is None


def test_assembled_facts():
    facts = Facts.from_document(
        {
            "app": "shop-web",
            "subject": {"type": "agent", "id": "bot-1", "properties": {"owner": "alice"}},
            "action": {"name": "transfer", "properties": {"amount": 10}},
            "resource": {"type": "account", "id": "acc-1"},
            "context": {"ticket": "T-1"},
            "agent": {"task": "pay"},
            "grants": [{"scope": "pay"}],
            "geo": {"country": "DE", "lat": 52.5},
            "device": {"id": "d1", "managed": True},
            "network": {"ip": "2001:DB8::1"},
            "signals": {"credential_compromised": True, "custom": 3},
        }
    )
    base = facts.base
    assert facts.subject_type == "agent"
    assert base["subject"] == {"type": "agent", "id": "bot-1", "properties": {"owner": "alice"}}
    assert base["action"] == {"name": "transfer", "properties": {"amount": 10}}
    assert base["resource"] == {"type": "account", "id": "acc-1", "properties": {}}
    assert base["context"] == {"ticket": "T-1"}
    assert base["agent"] == {"task": "pay"}
    assert base["grants"] == [{"scope": "pay"}]
    assert base["geo"] == {"country": "DE", "lat": 52.5}
    assert base["device"] == {"id": "d1", "managed": True}
    assert base["network"] == {"ip": "2001:db8::1", "version": 6}
    assert base["signals"]["credential_compromised"] is True
    assert base["signals"]["custom"] == 3
    assert base["signals"]["risk_elevated"] is False


def test_unparsable_ip_is_dropped_not_defaulted():
    facts = Facts.from_document({"network": {"ip": "10.0.0.256", "segment": "x"}})
    assert facts.ip is None
    assert facts.base["network"] == {"segment": "x"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-29T10:00:00Z", NOW),
        ("2026-11-29T12:00:00+02:00", NOW),
        (datetime(2026, 11, 29, 11, 0, tzinfo=timezone(timedelta(hours=1))), NOW),
    ],
)
def test_parse_now(value, expected):
    moment = parse_now(value)
    assert moment == expected
    assert moment.tzinfo == UTC


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tomorrow", "`tomorrow` is not an RFC 3339 timestamp"),
        ("2026-11-29T10:00:00", "`now` needs a time zone (for example `Z`)"),
        (1764410400, "`now` must be an RFC 3339 timestamp"),
        (None, "`now` must be an RFC 3339 timestamp"),
    ],
)
def test_parse_now_rejects(value, message):
    with pytest.raises(FactsError) as info:
        parse_now(value)
    assert info.value.message == message
    assert info.value.code == "facts.invalid"
