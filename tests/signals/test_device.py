"""Device facts: id, known, posture (only the reported device's), platform, user agent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from juncture.signals.device import Posture, clean_id, device_facts, user_agent_changed

AT = datetime(2026, 11, 29, 9, 55, tzinfo=UTC)
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15"


def test_a_known_device_with_posture():
    posture = Posture(device_id="d1", managed=True, compliant=False, at=AT, platform="macos")
    facts = device_facts(
        device_id="d1",
        known_devices={"d0", "d1"},
        posture=posture,
        user_agent=UA,
        previous_user_agent=UA,
    )
    assert facts == {
        "id": "d1",
        "known": True,
        "managed": True,
        "compliant": False,
        "posture_at": AT,
        "platform": "macos",
        "user_agent_changed": False,
    }


def test_a_new_device():
    assert device_facts(device_id="d9", known_devices=["d1"]) == {"id": "d9", "known": False}


def test_no_device_id_is_neither_known_nor_new():
    assert device_facts(device_id=None, known_devices={"d1"}) == {}
    assert device_facts(device_id="  ", known_devices={"  "}) == {}


def test_a_posture_of_another_device_says_nothing_about_this_one():
    posture = Posture(device_id="d1", managed=True, compliant=True, at=AT, platform="ios")
    assert device_facts(device_id="d2", posture=posture) == {"id": "d2", "known": False}
    assert device_facts(device_id=None, posture=posture) == {}


def test_a_session_bound_posture_applies_to_the_session_device():
    posture = Posture(managed=True, at=AT, source="attestation")
    assert device_facts(device_id=None, posture=posture) == {"managed": True, "posture_at": AT}


def test_platform_from_the_posture_before_the_apps_report():
    attested = Posture(device_id="d1", at=AT, platform="windows")
    assert device_facts(device_id="d1", posture=attested, platform="linux")["platform"] == (
        "windows"
    )
    silent = Posture(device_id="d1", at=AT)
    assert device_facts(device_id="d1", posture=silent, platform="linux")["platform"] == "linux"
    assert "platform" not in device_facts(device_id="d1", platform="\x00bad")


@pytest.mark.parametrize(
    ("previous", "current", "changed"),
    [
        (UA, UA, False),
        (UA, UA + " Edge/1", True),
        (f" {UA} ", UA, False),
        (None, UA, None),  # the session's first request
        (UA, None, None),
        (UA, "", None),
        (UA, "x" * 2000, None),  # not a user agent but noise
    ],
)
def test_user_agent_changed(previous, current, changed):
    assert user_agent_changed(previous, current) is changed
    facts = device_facts(device_id=None, user_agent=current, previous_user_agent=previous)
    assert facts.get("user_agent_changed") is changed


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", "abc"), (" abc ", "abc"), ("", None), ("a\nb", None), ("x" * 257, None), (7, None)],
)
def test_clean_id(value, expected):
    assert clean_id(value) == expected
