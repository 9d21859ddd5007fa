"""WebAuthn: real registration and authentication ceremonies with a software authenticator."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from juncture.methods import Context
from juncture.methods.base import PUBLIC_FAILURE, ConfigError, ProofError, StateError
from juncture.methods.webauthn import PasskeyRecord, WebAuthn

from .authenticator import SoftAuthenticator, b64url
from .conftest import NOW, make

ORIGIN = "https://shop.example.com"


def passkey(**options: Any) -> WebAuthn:
    options = {"rp_id": "example.com", "origins": [ORIGIN], "rp_name": "Shop", **options}
    return make("webauthn", name="passkey", **options)


def register(method: WebAuthn, device: SoftAuthenticator, subject: str = "u1") -> PasskeyRecord:
    issued = method.begin_registration(subject=subject, user_name="ada@example.com", now=NOW)
    result = method.finish_registration(device.create(issued.public), state=issued.state, now=NOW)
    assert result.ok, result.code
    assert result.record is not None and result.proof is None
    return result.record


def login(method: WebAuthn, device: SoftAuthenticator, record: PasskeyRecord, **kw: Any) -> Any:
    issued = method.begin_authentication(now=NOW, credentials=[record])
    response = device.get(issued.public, **kw)
    return method.verify(record, response, now=NOW, context=Context(state=issued.state))


def refused(result: Any, code: str) -> None:
    assert (result.ok, result.code, result.message) == (False, code, PUBLIC_FAILURE)
    assert result.proof is None and result.record is None


# -- success paths -----------------------------------------------------------------------------


def test_register_then_authenticate_with_user_verification_is_aal2_mfa() -> None:
    method = passkey()
    device = SoftAuthenticator(origin=ORIGIN)
    record = register(method, device)
    assert record.credential_id == device.credential_id
    assert record.subject == "u1" and record.sign_count == 0
    assert record.transports == ("internal", "hybrid")
    assert record.backup_eligible is False

    result = login(method, device, record)
    assert result.ok and result.code == "ok"
    assert result.proof.aal == 2  # journey says 3; no hardware_bound option: capped at 2
    assert result.proof.amr == ("swk", "user", "mfa")
    assert result.proof.method == "passkey" and result.proof.kind == "webauthn"
    assert result.proof.at == NOW
    assert result.record.sign_count == 1 and result.record.last_used_at == NOW

    again = login(method, device, result.record)
    assert again.ok and again.record.sign_count == 2


def test_hardware_bound_option_gives_aal3_hwk_but_not_for_synced_credentials() -> None:
    method = passkey(hardware_bound=True)
    key = SoftAuthenticator(origin=ORIGIN)
    result = login(method, key, register(method, key))
    assert (result.proof.aal, result.proof.amr) == (3, ("hwk", "user", "mfa"))

    synced = SoftAuthenticator(origin=ORIGIN, backup_eligible=True)
    record = register(method, synced)
    assert record.backup_eligible and record.backed_up
    result = login(method, synced, record)
    assert (result.proof.aal, result.proof.amr) == (2, ("swk", "user", "mfa"))


def test_the_journey_aal_caps_the_assessed_level() -> None:
    method = passkey(hardware_bound=True)
    method.aal = 2
    device = SoftAuthenticator(origin=ORIGIN)
    assert login(method, device, register(method, device)).proof.aal == 2


def test_without_user_verification_when_preferred_is_single_factor_aal1() -> None:
    method = passkey(user_verification="preferred")
    device = SoftAuthenticator(origin=ORIGIN, user_verified=False)
    result = login(method, device, register(method, device))
    assert result.ok and (result.proof.aal, result.proof.amr) == (1, ("swk", "user"))


def test_an_authenticator_without_a_counter_keeps_zero() -> None:
    method = passkey()
    device = SoftAuthenticator(origin=ORIGIN, counting=False)
    record = register(method, device)
    for _ in range(2):
        result = login(method, device, record)
        assert result.ok and result.record.sign_count == 0
        record = result.record


def test_options_carry_the_configuration_and_exclude_existing_credentials() -> None:
    method = passkey(user_verification="preferred", attachment="cross-platform", timeout="2m")
    device = SoftAuthenticator(origin=ORIGIN)
    record = register(method, device)
    issued = method.begin_registration(
        subject="u1", user_name="ada", now=NOW, user_handle=b"h" * 16, existing=[record]
    )
    public = issued.public
    assert public["rp"] == {"id": "example.com", "name": "Shop"}
    assert public["user"]["id"] == b64url(b"h" * 16)
    assert public["authenticatorSelection"]["userVerification"] == "preferred"
    assert public["authenticatorSelection"]["authenticatorAttachment"] == "cross-platform"
    assert public["excludeCredentials"][0]["id"] == b64url(record.credential_id)
    assert public["timeout"] == 120_000
    assert issued.expires_at == NOW + timedelta(minutes=2)
    request = method.begin_authentication(now=NOW, credentials=[record]).public
    assert request["rpId"] == "example.com" and request["userVerification"] == "preferred"
    assert request["allowCredentials"][0]["id"] == b64url(record.credential_id)
    assert "allowCredentials" not in method.begin_authentication(now=NOW).public or (
        method.begin_authentication(now=NOW).public["allowCredentials"] == []
    )


def test_credential_id_reads_the_assertion() -> None:
    method = passkey()
    device = SoftAuthenticator(origin=ORIGIN)
    record = register(method, device)
    issued = method.begin_authentication(now=NOW)
    assert WebAuthn.credential_id(device.get(issued.public)) == record.credential_id
    with pytest.raises(ProofError):
        WebAuthn.credential_id({"id": "x"})


def test_discoverable_login_without_an_allow_list() -> None:
    method = passkey()
    device = SoftAuthenticator(origin=ORIGIN)
    record = register(method, device)
    issued = method.begin_authentication(now=NOW)
    response = device.get(issued.public)
    result = method.verify(record, response, now=NOW, context=Context(state=issued.state))
    assert result.ok


# -- registration refusals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "kw", "code"),
    [
        (SoftAuthenticator(origin="https://evil.example.net"), {}, "method.failed.origin"),
        (SoftAuthenticator(origin=ORIGIN, rp_id="evil.example"), {}, "method.failed.rp_id"),
        (
            SoftAuthenticator(origin=ORIGIN, user_verified=False),
            {},
            "method.failed.user_verification",
        ),
        (SoftAuthenticator(origin=ORIGIN), {"present": False}, "method.failed.user_presence"),
        (SoftAuthenticator(origin=ORIGIN), {"kind": "webauthn.get"}, "method.failed.challenge"),
    ],
)
def test_registration_refusals(device: SoftAuthenticator, kw: dict[str, Any], code: str) -> None:
    method = passkey()
    issued = method.begin_registration(subject="u1", user_name="ada", now=NOW)
    result = method.finish_registration(
        device.create(issued.public, **kw), state=issued.state, now=NOW
    )
    refused(result, code)


def test_registration_answering_another_challenge_or_too_late_is_refused() -> None:
    method = passkey()
    device = SoftAuthenticator(origin=ORIGIN)
    first = method.begin_registration(subject="u1", user_name="ada", now=NOW)
    second = method.begin_registration(subject="u1", user_name="ada", now=NOW)
    response = device.create(first.public)
    refused(
        method.finish_registration(response, state=second.state, now=NOW), "method.failed.challenge"
    )
    late = NOW + timedelta(minutes=6)
    refused(
        method.finish_registration(response, state=first.state, now=late), "method.failed.expired"
    )


def test_a_tampered_attestation_is_refused() -> None:
    method = passkey()
    device = SoftAuthenticator(origin=ORIGIN)
    issued = method.begin_registration(subject="u1", user_name="ada", now=NOW)
    response = device.create(issued.public)
    import cbor2

    from .authenticator import unb64url

    attestation = cbor2.loads(unb64url(response["response"]["attestationObject"]))
    attestation["attStmt"] = {"sig": b"forged"}  # a "none" statement must be empty
    response["response"]["attestationObject"] = b64url(cbor2.dumps(attestation))
    refused(
        method.finish_registration(response, state=issued.state, now=NOW),
        "method.failed.attestation",
    )


# -- authentication refusals --------------------------------------------------------------------


@pytest.fixture
def enrolled() -> tuple[WebAuthn, SoftAuthenticator, PasskeyRecord]:
    method = passkey()
    device = SoftAuthenticator(origin=ORIGIN)
    return method, device, register(method, device)


def test_wrong_origin_is_refused(enrolled: Any) -> None:
    method, device, record = enrolled
    refused(
        login(method, device, record, origin="https://shop.example.com.evil.net"),
        "method.failed.origin",
    )


def test_wrong_rp_id_is_refused(enrolled: Any) -> None:
    method, device, record = enrolled
    device.rp_id = "other.example"
    refused(login(method, device, record), "method.failed.rp_id")


def test_sign_count_regression_is_refused(enrolled: Any) -> None:
    method, device, record = enrolled
    result = login(method, device, record)
    assert result.ok
    record = result.record
    for _ in range(3):
        record = login(method, device, record).record
    assert record.sign_count == 4
    clone = SoftAuthenticator(
        origin=ORIGIN,
        key=device.key,
        credential_id=device.credential_id,
        user_handle=device.user_handle,
        sign_count=2,
    )
    refused(login(method, clone, record), "method.failed.sign_count")
    clone.sign_count = 3  # the next use would be 4: equal is a regression too
    refused(login(method, clone, record), "method.failed.sign_count")
    stalled = SoftAuthenticator(
        origin=ORIGIN,
        key=device.key,
        credential_id=device.credential_id,
        user_handle=device.user_handle,
        counting=False,
    )
    refused(login(method, stalled, record), "method.failed.sign_count")


def test_an_old_assertion_does_not_answer_a_new_challenge(enrolled: Any) -> None:
    method, device, record = enrolled
    first = method.begin_authentication(now=NOW, credentials=[record])
    response = device.get(first.public)
    second = method.begin_authentication(now=NOW, credentials=[record])
    result = method.verify(record, response, now=NOW, context=Context(state=second.state))
    refused(result, "method.failed.challenge")


def test_a_registration_client_data_type_is_refused(enrolled: Any) -> None:
    method, device, record = enrolled
    refused(login(method, device, record, kind="webauthn.create"), "method.failed.challenge")


def test_a_signature_by_another_key_is_refused(enrolled: Any) -> None:
    method, device, record = enrolled
    other = ec.generate_private_key(ec.SECP256R1())
    refused(login(method, device, record, key=other), "method.failed.signature")


def test_a_tampered_authenticator_data_breaks_the_signature(enrolled: Any) -> None:
    method, device, record = enrolled
    issued = method.begin_authentication(now=NOW, credentials=[record])
    response = device.get(issued.public)
    from .authenticator import unb64url

    data = bytearray(unb64url(response["response"]["authenticatorData"]))
    data[-1] ^= 0xFF  # raise the counter without re-signing
    response["response"]["authenticatorData"] = b64url(bytes(data))
    result = method.verify(record, response, now=NOW, context=Context(state=issued.state))
    refused(result, "method.failed.signature")


def test_presence_and_verification_flags_are_required(enrolled: Any) -> None:
    method, device, record = enrolled
    refused(login(method, device, record, present=False), "method.failed.user_presence")
    device.user_verified = False
    refused(login(method, device, record), "method.failed.user_verification")


def test_an_expired_challenge_is_refused(enrolled: Any) -> None:
    method, device, record = enrolled
    issued = method.begin_authentication(now=NOW, credentials=[record])
    response = device.get(issued.public)
    late = NOW + timedelta(minutes=5, seconds=1)
    refused(
        method.verify(record, response, now=late, context=Context(state=issued.state)),
        "method.failed.expired",
    )


def test_another_credential_or_user_or_subject_is_refused(enrolled: Any) -> None:
    method, device, record = enrolled
    other_device = SoftAuthenticator(origin=ORIGIN)
    other = register(method, other_device, subject="u2")
    issued = method.begin_authentication(now=NOW, credentials=[record])
    response = other_device.get(issued.public)
    # the other credential's own record, but the challenge allowed only the first one
    refused(
        method.verify(other, response, now=NOW, context=Context(state=issued.state)),
        "method.failed.credential",
    )
    # the first record with the other credential's assertion
    refused(
        method.verify(record, response, now=NOW, context=Context(state=issued.state)),
        "method.failed.credential",
    )
    device.user_handle = b"someone else"
    refused(login(method, device, record), "method.failed.credential")
    device.user_handle = record.user_handle
    issued = method.begin_authentication(now=NOW, credentials=[record])
    context = Context(state=issued.state, subject="u2")
    refused(
        method.verify(record, device.get(issued.public), now=NOW, context=context),
        "method.failed.subject",
    )


@pytest.mark.parametrize(
    "proof",
    [
        None,
        "",
        42,
        [],
        {},
        "not json",
        {"id": "AA", "rawId": "AA", "type": "public-key"},
        {
            "id": "AA",
            "rawId": "AA",
            "type": "public-key",
            "response": {"clientDataJSON": "%%", "authenticatorData": "AA", "signature": "AA"},
        },
        {
            "id": "AA",
            "rawId": "AA",
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(b"[]"),
                "authenticatorData": "AA",
                "signature": "AA",
            },
        },
    ],
)
def test_malformed_assertions_are_clear_errors(enrolled: Any, proof: object) -> None:
    method, _device, record = enrolled
    issued = method.begin_authentication(now=NOW)
    with pytest.raises(ProofError) as caught:
        method.verify(record, proof, now=NOW, context=Context(state=issued.state))
    assert caught.value.code == "method.proof.malformed"


@pytest.mark.parametrize("proof", [None, {}, "x", {"id": "AA"}])
def test_malformed_registrations_are_clear_errors(proof: object) -> None:
    method = passkey()
    issued = method.begin_registration(subject="u1", user_name="ada", now=NOW)
    with pytest.raises(ProofError):
        method.finish_registration(proof, state=issued.state, now=NOW)


def test_missing_or_foreign_state_is_a_state_error(enrolled: Any) -> None:
    method, device, record = enrolled
    registration = method.begin_registration(subject="u1", user_name="ada", now=NOW)
    response = device.get(method.begin_authentication(now=NOW).public)
    for state in (None, b"", b"{}", registration.state):
        with pytest.raises(StateError) as caught:
            method.verify(record, response, now=NOW, context=Context(state=state))
        assert caught.value.code == "method.state.invalid"
    with pytest.raises(StateError):
        method.finish_registration({}, state=msgspec.json.encode({"x": 1}), now=NOW)


def test_a_naive_now_is_refused(enrolled: Any) -> None:
    method, _device, _record = enrolled
    with pytest.raises(ValueError, match="timezone-aware"):
        method.begin_authentication(now=NOW.replace(tzinfo=None))


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "code", "text"),
    [
        ({"origins": [ORIGIN]}, "method.config.missing_option", "rp_id"),
        (
            {"rp_id": "example.com", "origins": [ORIGIN], "rp": 1},
            "method.config.unknown_option",
            "`rp`",
        ),
        ({"rp_id": "example.com", "origins": ORIGIN}, "method.config.type", "origins"),
        (
            {"rp_id": "example.com", "origins": [ORIGIN], "hardware_bound": "yes"},
            "method.config.type",
            "hardware_bound",
        ),
        (
            {"rp_id": "example.com", "origins": [ORIGIN], "user_verification": "always"},
            "method.config.value",
            "user_verification",
        ),
        (
            {"rp_id": "example.com", "origins": ["http://shop.example.com"]},
            "method.config.value",
            "origin",
        ),
        (
            {"rp_id": "example.com", "origins": ["https://example.net"]},
            "method.config.value",
            "origin",
        ),
        (
            {"rp_id": "example.com", "origins": ["https://notexample.com"]},
            "method.config.value",
            "origin",
        ),
        ({"rp_id": "https://example.com", "origins": [ORIGIN]}, "method.config.value", "rp_id"),
        ({"rp_id": "example.com", "origins": []}, "method.config.value", "origins"),
        (
            {"rp_id": "example.com", "origins": [ORIGIN], "algorithms": [-65535]},
            "method.config.value",
            "COSE",
        ),
        (
            {"rp_id": "example.com", "origins": [ORIGIN], "timeout": "soon"},
            "method.config.value",
            "timeout",
        ),
    ],
)
def test_configuration_errors_are_clear(options: dict[str, Any], code: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make("webauthn", name="passkey", **options)
    assert caught.value.code == code
    assert text in caught.value.message and "passkey" in caught.value.message


def test_localhost_origins_may_be_plain_http() -> None:
    method = make("webauthn", rp_id="localhost", origins=["http://localhost:8000"])
    device = SoftAuthenticator(origin="http://localhost:8000")
    assert login(method, device, register(method, device)).ok
