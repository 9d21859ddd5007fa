"""The event catalog: each payload's checks, each event's effect, and the events Juncture sends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from juncture.events import catalog
from juncture.events.catalog import (
    CAEP,
    CATALOG,
    RISC,
    SSF,
    Effect,
    account_subject,
    effect_of,
    event_time,
    newer,
    validate,
)
from juncture.events.set import SecurityEvent, SetError
from juncture.events.subjects import Complex, Opaque, parse_subject
from juncture.policy.schema import SIGNAL_DEFAULTS

from .transmitter import NOW

ISS = "https://idp.example.com/"
USER = {"format": "iss_sub", "iss": ISS, "sub": "alice"}
EMAIL = {"format": "email", "email": "alice@example.com"}
SESSION = {"format": "opaque", "id": "s-7f3"}
DEVICE = {"format": "iss_sub", "iss": ISS, "sub": "device-9"}


def event(
    event_type: str,
    payload: dict[str, Any] | None = None,
    subject: dict[str, Any] | None = None,
    *,
    toe: Any = None,
) -> SecurityEvent:
    sub_id = subject or USER
    return SecurityEvent(
        iss=ISS,
        jti="j1",
        iat=NOW,
        aud=("https://pdp.example.com",),
        toe=toe,
        sub_id=sub_id,
        subject=parse_subject(sub_id),
        event_type=event_type,
        payload=payload or {},
        claims={},
    )


def refused(event_type: str, payload: dict[str, Any], subject: dict[str, Any] | None = None) -> str:
    with pytest.raises(SetError) as caught:
        effect_of(event(event_type, payload, subject))
    assert caught.value.err == "invalid_request"
    return caught.value.description


#: The smallest valid payload of every event type in the catalog.
MINIMAL: dict[str, dict[str, Any]] = {
    CAEP + "session-revoked": {},
    CAEP + "token-claims-change": {"claims": {"role": "ro-admin"}},
    CAEP + "credential-change": {"credential_type": "password", "change_type": "update"},
    CAEP + "assurance-level-change": {"namespace": "NIST-AAL", "current_level": "nist-aal2"},
    CAEP + "device-compliance-change": {
        "previous_status": "compliant",
        "current_status": "not-compliant",
    },
    CAEP + "session-established": {},
    CAEP + "session-presented": {},
    CAEP + "risk-level-change": {"principal": "USER", "current_level": "HIGH"},
    RISC + "account-credential-change-required": {},
    RISC + "account-purged": {},
    RISC + "account-disabled": {},
    RISC + "account-enabled": {},
    RISC + "identifier-changed": {},
    RISC + "identifier-recycled": {},
    RISC + "credential-compromise": {"credential_type": "password"},
    RISC + "opt-in": {},
    RISC + "opt-out-initiated": {},
    RISC + "opt-out-cancelled": {},
    RISC + "opt-out-effective": {},
    RISC + "recovery-activated": {},
    RISC + "recovery-information-changed": {},
    RISC + "sessions-revoked": {},
    SSF + "verification": {},
    SSF + "stream-updated": {"status": "paused"},
}


def test_the_catalog_holds_every_caep_risc_and_ssf_event():
    assert set(MINIMAL) == set(CATALOG)
    assert CATALOG[RISC + "sessions-revoked"].deprecated
    assert sum(t.deprecated for t in CATALOG.values()) == 1
    assert CATALOG[CAEP + "session-revoked"].name == "caep.session_revoked"
    assert CATALOG[RISC + "account-credential-change-required"].name == (
        "risc.account_credential_change_required"
    )


@pytest.mark.parametrize("uri", sorted(MINIMAL))
def test_every_event_type_accepts_its_minimal_payload(uri: str):
    subject = EMAIL if "identifier-" in uri else USER
    effect = effect_of(event(uri, MINIMAL[uri], subject))
    assert effect.event == CATALOG[uri].name
    assert effect.event_time == NOW
    assert effect.reason == (effect.event if effect.revoke else None)
    assert not (effect.revoke and effect.recheck)


@pytest.mark.parametrize("uri", sorted(MINIMAL))
def test_unknown_members_are_ignored(uri: str):
    subject = EMAIL if "identifier-" in uri else USER
    payload = {**MINIMAL[uri], "https://vendor.example/extra": {"x": 1}, "note": 5}
    assert effect_of(event(uri, payload, subject)) == effect_of(event(uri, MINIMAL[uri], subject))


@pytest.mark.parametrize(
    ("uri", "member"),
    [(uri, name) for uri, payload in MINIMAL.items() for name in payload],
)
def test_each_required_member_is_required(uri: str, member: str):
    payload = {k: v for k, v in MINIMAL[uri].items() if k != member}
    assert f"`{member}` is required" in refused(uri, payload)


@pytest.mark.parametrize(
    ("uri", "member", "value"),
    [
        (CAEP + "session-revoked", "event_timestamp", "yesterday"),
        (CAEP + "session-revoked", "event_timestamp", True),
        (CAEP + "session-revoked", "event_timestamp", -5),
        (CAEP + "session-revoked", "initiating_entity", "robot"),
        (CAEP + "session-revoked", "reason_admin", {}),
        (CAEP + "session-revoked", "reason_admin", {"en": 5}),
        (CAEP + "session-revoked", "reason_admin", ""),
        (CAEP + "session-revoked", "reason_user", ["en", "x"]),
        (CAEP + "token-claims-change", "claims", {}),
        (CAEP + "token-claims-change", "claims", "role=admin"),
        (CAEP + "credential-change", "credential_type", ""),
        (CAEP + "credential-change", "change_type", "rotate"),
        (CAEP + "credential-change", "friendly_name", 7),
        (CAEP + "credential-change", "fido2_aaguid", None),
        (CAEP + "assurance-level-change", "namespace", ""),
        (CAEP + "assurance-level-change", "current_level", 2),
        (CAEP + "assurance-level-change", "previous_level", 1),
        (CAEP + "assurance-level-change", "change_direction", "up"),
        (CAEP + "device-compliance-change", "current_status", "compliant-ish"),
        (CAEP + "device-compliance-change", "previous_status", None),
        (CAEP + "session-established", "amr", "pwd"),
        (CAEP + "session-established", "amr", ["pwd", 1]),
        (CAEP + "session-established", "acr", 2),
        (CAEP + "session-presented", "fp_ua", 5),
        (CAEP + "risk-level-change", "current_level", "low"),
        (CAEP + "risk-level-change", "current_level", "CRITICAL"),
        (CAEP + "risk-level-change", "previous_level", "EXTREME"),
        (CAEP + "risk-level-change", "principal", ""),
        (CAEP + "risk-level-change", "risk_reason", 5),
        (RISC + "account-disabled", "reason", "fraud"),
        (RISC + "account-purged", "event_timestamp", "now"),
        (RISC + "credential-compromise", "credential_type", 5),
        (RISC + "credential-compromise", "reason_admin", 5),
        (SSF + "verification", "state", 5),
        (SSF + "stream-updated", "status", "stopped"),
        (SSF + "stream-updated", "reason", 5),
    ],
)
def test_mistyped_members_are_invalid_request(uri: str, member: str, value: Any):
    payload = {**MINIMAL[uri], member: value}
    description = refused(uri, payload)
    assert f"`{member}` must be" in description
    assert CATALOG[uri].name in description


def test_an_unknown_event_type_is_invalid_request():
    assert "not supported" in refused(CAEP + "session-revokd", {})
    with pytest.raises(SetError):
        validate("urn:example:event", {})


def test_a_legacy_string_reason_is_read():
    effect_of(event(CAEP + "session-revoked", {"reason_admin": "Policy Violation: C076E82F"}))


@pytest.mark.parametrize("uri", [RISC + "identifier-changed", RISC + "identifier-recycled"])
def test_identifier_events_need_an_email_or_phone_subject(uri: str):
    effect_of(event(uri, {}, EMAIL))
    effect_of(event(uri, {}, {"format": "phone_number", "phone_number": "+12065550100"}))
    effect_of(event(uri, {}, {"format": "complex", "user": EMAIL, "tenant": SESSION}))
    assert "email or a phone" in refused(uri, {}, USER)
    assert "email or a phone" in refused(uri, {}, {"format": "complex", "session": SESSION})


# -- effects -------------------------------------------------------------------------------


def effect(uri: str, payload: dict[str, Any] | None = None, subject: Any = None) -> Effect:
    return effect_of(event(uri, payload if payload is not None else MINIMAL[uri], subject))


def test_session_revoked_with_a_session_member_revokes_that_session():
    found = effect(
        CAEP + "session-revoked",
        {"reason_admin": {"en": "Landspeed"}},
        {"format": "complex", "user": USER, "session": SESSION},
    )
    assert found.scope == "session"
    assert found.revoke
    assert found.reason == "caep.session_revoked"
    assert found.signals == {"session_revoked": True}


@pytest.mark.parametrize(
    "subject",
    [USER, SESSION, {"format": "complex", "user": USER, "device": DEVICE}],
)
def test_session_revoked_without_a_session_member_revokes_every_match(subject: Any):
    found = effect(CAEP + "session-revoked", {}, subject)
    assert found.scope == "subject"
    assert found.revoke
    assert found.signals == {"session_revoked": True, "sessions_revoked": True}


def test_token_claims_change_sets_the_claims_and_rechecks():
    claims = {"role": "ro-admin", "trusted_network": False}
    found = effect(CAEP + "token-claims-change", {"claims": claims})
    assert (found.scope, found.revoke, found.recheck) == ("subject", False, True)
    assert found.signals == {"claims_changed": claims}


@pytest.mark.parametrize("change", ["update", "revoke", "delete"])
def test_credential_change_that_weakens_sets_credential_changed(change: str):
    found = effect(
        CAEP + "credential-change", {"credential_type": "fido2-roaming", "change_type": change}
    )
    assert (found.scope, found.revoke, found.recheck) == ("account", False, True)
    assert found.signals == {
        "credential_changed": True,
        "credential": {"type": "fido2-roaming", "change": change},
    }


def test_credential_creation_changes_nothing_but_is_recorded():
    found = effect(CAEP + "credential-change", {"credential_type": "x509", "change_type": "create"})
    assert (found.revoke, found.recheck) == (False, False)
    assert found.signals == {"credential": {"type": "x509", "change": "create"}}


def test_credential_change_accepts_a_type_agreed_between_the_parties():
    found = effect(
        CAEP + "credential-change", {"credential_type": "smart-card", "change_type": "revoke"}
    )
    assert found.signals["credential_changed"] is True


@pytest.mark.parametrize(
    ("payload", "lowered", "aal", "direction"),
    [
        (
            {"namespace": "NIST-AAL", "current_level": "nist-aal1", "change_direction": "decrease"},
            True,
            1,
            "decrease",
        ),
        (
            {"namespace": "NIST-AAL", "current_level": "nist-aal3", "change_direction": "increase"},
            False,
            3,
            "increase",
        ),
        (  # no direction: derived from the two NIST levels
            {"namespace": "NIST-AAL", "current_level": "aal1", "previous_level": "AAL2"},
            True,
            1,
            "decrease",
        ),
        (
            {"namespace": "NIST-AAL", "current_level": "2", "previous_level": "nist-aal1"},
            False,
            2,
            "increase",
        ),
        ({"namespace": "NIST-AAL", "current_level": "nist-aal2"}, None, 2, None),
        ({"namespace": "NIST-AAL", "current_level": "gold"}, None, None, None),
        (  # a custom namespace: carried, not interpreted
            {"namespace": "Retinal Scan", "current_level": "hi-res-scan", "previous_level": "x"},
            None,
            None,
            None,
        ),
        (
            {"namespace": "RFC8176", "current_level": "mfa", "change_direction": "decrease"},
            True,
            None,
            "decrease",
        ),
    ],
)
def test_assurance_level_change(
    payload: dict[str, Any], lowered: bool | None, aal: int | None, direction: str | None
):
    found = effect(CAEP + "assurance-level-change", payload)
    assert (found.scope, found.revoke, found.recheck) == ("subject", False, True)
    assert found.signals.get("assurance_lowered") is lowered
    level = found.signals["assurance_level"]
    assert level == {
        "namespace": payload["namespace"],
        "current": payload["current_level"],
        "previous": payload.get("previous_level"),
        "direction": direction,
        "aal": aal,
    }


@pytest.mark.parametrize(
    ("current", "noncompliant"), [("not-compliant", True), ("compliant", False)]
)
def test_device_compliance_change(current: str, noncompliant: bool):
    previous = "compliant" if noncompliant else "not-compliant"
    found = effect(
        CAEP + "device-compliance-change",
        {"previous_status": previous, "current_status": current},
        {"format": "complex", "device": DEVICE},
    )
    assert (found.scope, found.revoke, found.recheck) == ("subject", False, True)
    assert found.signals == {"device_noncompliant": noncompliant}


@pytest.mark.parametrize(("level", "elevated"), [("LOW", False), ("MEDIUM", True), ("HIGH", True)])
def test_risk_level_change(level: str, elevated: bool):
    found = effect(
        CAEP + "risk-level-change",
        {
            "principal": "USER",
            "current_level": level,
            "previous_level": "LOW",
            "risk_reason": "PASSWORD_FOUND_IN_DATA_BREACH",
        },
    )
    assert (found.scope, found.revoke, found.recheck) == ("subject", False, True)
    assert found.signals == {
        "risk_level": level,
        "risk_elevated": elevated,
        "risk_principal": "USER",
        "risk_reason": "PASSWORD_FOUND_IN_DATA_BREACH",
    }


def test_risk_reason_is_optional():
    assert "risk_reason" not in effect(CAEP + "risk-level-change").signals


@pytest.mark.parametrize("uri", [CAEP + "session-established", CAEP + "session-presented"])
def test_inventory_events_change_nothing(uri: str):
    found = effect(uri, {"fp_ua": "abb0b6e7", "ext_id": "12345"})
    assert (found.revoke, found.recheck, found.signals, found.stream) == (False, False, {}, False)


@pytest.mark.parametrize(
    ("suffix", "payload", "revoke", "recheck", "signals"),
    [
        ("account-disabled", {}, True, False, {"account_disabled": True}),
        (
            "account-disabled",
            {"reason": "hijacking"},
            True,
            False,
            {"account_disabled": True, "account_disabled_reason": "hijacking"},
        ),
        ("account-enabled", {}, False, True, {"account_disabled": False}),
        ("account-purged", {}, True, False, {"account_purged": True}),
        (
            "credential-compromise",
            {"credential_type": "password", "reason_admin": {"en": "found in a breach"}},
            True,
            False,
            {
                "credential_compromised": True,
                "credential": {"type": "password", "change": "compromise"},
            },
        ),
        ("sessions-revoked", {}, True, False, {"sessions_revoked": True}),
        ("identifier-recycled", {}, True, False, {"identifier_recycled": True}),
        (
            "account-credential-change-required",
            {},
            False,
            True,
            {"credential_change_required": True},
        ),
        ("recovery-activated", {}, False, True, {"recovery_activated": True}),
        (
            "recovery-information-changed",
            {},
            False,
            True,
            {"recovery_information_changed": True},
        ),
        ("identifier-changed", {"new-value": "john.roe@example.com"}, False, False, {}),
        ("opt-in", {}, False, False, {}),
        ("opt-out-initiated", {}, False, False, {}),
        ("opt-out-cancelled", {}, False, False, {}),
        ("opt-out-effective", {}, False, False, {}),
    ],
)
def test_risc_events_apply_to_the_whole_account(
    suffix: str, payload: dict[str, Any], revoke: bool, recheck: bool, signals: dict[str, Any]
):
    subject = EMAIL if suffix.startswith("identifier-") else USER
    found = effect(RISC + suffix, payload, subject)
    assert found.scope == "account"
    assert (found.revoke, found.recheck, found.signals) == (revoke, recheck, signals)
    assert found.reason == (f"risc.{suffix.replace('-', '_')}" if revoke else None)


@pytest.mark.parametrize(
    ("suffix", "payload"),
    [("verification", {"state": "VGhpcyBpcyBh"}), ("stream-updated", {"status": "disabled"})],
)
def test_stream_events_touch_no_session(suffix: str, payload: dict[str, Any]):
    found = effect(SSF + suffix, payload, {"format": "opaque", "id": "stream-1"})
    assert found.stream
    assert (found.revoke, found.recheck, found.signals) == (False, False, {})


def test_every_policy_signal_is_set_by_some_event():
    seen: set[str] = set()
    for uri, payload in MINIMAL.items():
        subject = EMAIL if "identifier-" in uri else USER
        seen |= set(effect_of(event(uri, payload, subject)).signals)
    lowered = {"namespace": "NIST-AAL", "current_level": "nist-aal1", "previous_level": "aal2"}
    seen |= set(effect(CAEP + "assurance-level-change", lowered).signals)
    assert set(SIGNAL_DEFAULTS) <= seen


# -- time and order ------------------------------------------------------------------------


def test_event_time_prefers_event_timestamp_then_toe_then_iat():
    stamp = int((NOW - timedelta(minutes=3)).timestamp())
    toe = NOW - timedelta(minutes=2)
    uri = CAEP + "session-revoked"
    assert event_time(event(uri, {"event_timestamp": stamp}, toe=toe)) == NOW - timedelta(minutes=3)
    assert event_time(event(uri, {}, toe=toe)) == toe
    assert event_time(event(uri, {})) == NOW
    assert event_time(event(uri, {"event_timestamp": 1e300})) == NOW  # unusable: iat
    later = int((NOW + timedelta(days=365)).timestamp())
    assert event_time(event(uri, {"event_timestamp": later})) == NOW  # never after iat
    assert event_time(event(uri, {}, toe=NOW + timedelta(hours=1))) == NOW
    found = effect_of(event(uri, {"event_timestamp": stamp}, toe=toe))
    assert found.event_time == NOW - timedelta(minutes=3)


def test_newer_ignores_strictly_older_events_only():
    assert newer(NOW, None)
    assert newer(NOW, NOW - timedelta(seconds=1))
    assert newer(NOW, NOW)  # arrival order breaks the tie
    assert not newer(NOW - timedelta(seconds=1), NOW)


def test_out_of_order_compliance_events_keep_the_latest_state():
    # the service's loop, in miniature: per (subject, signal) keep the time last applied
    state: dict[str, Any] = {}
    applied_at: dict[str, Any] = {}
    uri = CAEP + "device-compliance-change"
    arrivals = [
        ({"previous_status": "compliant", "current_status": "not-compliant"}, 10),
        ({"previous_status": "not-compliant", "current_status": "compliant"}, 30),  # late
    ]
    for payload, seconds_ago in arrivals:
        stamp = int((NOW - timedelta(seconds=seconds_ago)).timestamp())
        found = effect_of(event(uri, {**payload, "event_timestamp": stamp}))
        for name, value in found.signals.items():
            if newer(found.event_time, applied_at.get(name)):
                state[name], applied_at[name] = value, found.event_time
    assert state == {"device_noncompliant": True}


def test_account_subject_drops_the_narrowing_members():
    wide = parse_subject(
        {
            "format": "complex",
            "user": USER,
            "session": SESSION,
            "device": DEVICE,
            "application": SESSION,
            "tenant": SESSION,
        }
    )
    found = account_subject(wide)
    assert isinstance(found, Complex)
    assert set(found.members()) == {"user", "tenant"}
    only_session = parse_subject({"format": "complex", "session": SESSION})
    assert account_subject(only_session) == only_session
    assert account_subject(parse_subject(USER)) == parse_subject(USER)


# -- emitting ------------------------------------------------------------------------------


def test_session_revoked_payload():
    out = catalog.session_revoked(
        reason_admin="Impossible travel", reason_user={"de": "Sitzung beendet"}, event_timestamp=NOW
    )
    assert out.event_type == CAEP + "session-revoked"
    assert out.payload == {
        "event_timestamp": int(NOW.timestamp()),
        "initiating_entity": "policy",
        "reason_admin": {"en": "Impossible travel"},
        "reason_user": {"de": "Sitzung beendet"},
    }


@pytest.mark.parametrize(
    ("current", "previous", "expected"),
    [
        (2, 1, {"previous_level": "nist-aal1", "change_direction": "increase"}),
        (1, 3, {"previous_level": "nist-aal3", "change_direction": "decrease"}),
        (2, 2, {"previous_level": "nist-aal2"}),
        (3, None, {}),
    ],
)
def test_assurance_level_change_payload(current: int, previous: int | None, expected: Any):
    out = catalog.assurance_level_change(
        current_aal=current, previous_aal=previous, event_timestamp=NOW
    )
    assert out.event_type == CAEP + "assurance-level-change"
    assert out.payload == {
        "event_timestamp": int(NOW.timestamp()),
        "initiating_entity": "policy",
        "namespace": "NIST-AAL",
        "current_level": f"nist-aal{current}",
        **expected,
    }


def test_token_claims_change_payload():
    out = catalog.token_claims_change(
        claims={"juncture_path": "limited", "scope": "read"},
        event_timestamp=NOW,
        reason_admin="rerouted: unfamiliar network",
    )
    assert out.event_type == CAEP + "token-claims-change"
    assert out.payload["claims"] == {"juncture_path": "limited", "scope": "read"}
    assert out.payload["reason_admin"] == {"en": "rerouted: unfamiliar network"}


def test_stream_control_payloads():
    assert catalog.verification("abc").payload == {"state": "abc"}
    assert catalog.verification().payload == {}
    assert catalog.verification().event_type == SSF + "verification"
    updated = catalog.stream_updated("paused", "receiver inactive")
    assert updated.event_type == SSF + "stream-updated"
    assert updated.payload == {"status": "paused", "reason": "receiver inactive"}
    assert catalog.stream_updated("enabled").payload == {"status": "enabled"}
    assert catalog.stream_subject("stream-1") == Opaque(id="stream-1")


@pytest.mark.parametrize(
    "call",
    [
        lambda: catalog.session_revoked(reason_admin="", event_timestamp=NOW),
        lambda: catalog.session_revoked(reason_admin={}, event_timestamp=NOW),
        lambda: catalog.session_revoked(reason_admin="x", event_timestamp=NOW.replace(tzinfo=None)),
        lambda: catalog.session_revoked(
            reason_admin="x", event_timestamp=NOW, initiating_entity="robot"
        ),
        lambda: catalog.assurance_level_change(current_aal=4, event_timestamp=NOW),
        lambda: catalog.assurance_level_change(current_aal=0, event_timestamp=NOW),
        lambda: catalog.assurance_level_change(current_aal=2, previous_aal=0, event_timestamp=NOW),
        lambda: catalog.token_claims_change(claims={}, event_timestamp=NOW),
        lambda: catalog.stream_updated("stopped"),
        lambda: catalog.verification(""),
        lambda: catalog.stream_subject(""),
    ],
)
def test_builders_refuse_what_receivers_would(call: Any):
    with pytest.raises(ValueError):
        call()
