"""SetSigner -> verify_set, checked both ways against an independent implementation."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey

from juncture.events import catalog
from juncture.events.catalog import effect_of
from juncture.events.set import (
    SetError,
    SetSigner,
    TransmitterConfig,
    new_signing_key,
    public_jwks,
    verify_set,
)
from juncture.events.subjects import Complex, IssSub, Opaque, SubjectError
from juncture.jose import KeySource
from juncture.methods.base import ConfigError

from .transmitter import AUDIENCE, EC_KEY, ISSUER, NOW, RSA_KEY, SMALL_RSA, ec_jwk

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SUBJECT = {
    "format": "complex",
    "user": {"format": "iss_sub", "iss": ISSUER, "sub": "alice"},
    "session": {"format": "opaque", "id": "s-7f3"},
}
RS_SIGNER = SetSigner(new_signing_key())
ES_SIGNER = SetSigner(new_signing_key("ES256"), alg="ES256")


def receiver(*signers: SetSigner, **options: Any) -> TransmitterConfig:
    algorithms = tuple(sorted({s.alg for s in signers}))
    return TransmitterConfig(
        issuer=ISSUER,
        audiences=(AUDIENCE,),
        algorithms=algorithms,
        keys=KeySource(inline=public_jwks(*signers)),
        **options,
    )


def issue(signer: SetSigner = RS_SIGNER, **override: Any) -> str:
    revoked = catalog.session_revoked(reason_admin="impossible travel", event_timestamp=NOW)
    options: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "event_type": revoked.event_type,
        "payload": revoked.payload,
        "subject": SUBJECT,
        "now": NOW,
        "jti": "jti-1",
        "txn": "txn-1",
    }
    return signer.issue(**{**options, **override})


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    head, body, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(head))),
        json.loads(base64.urlsafe_b64decode(pad(body))),
        base64.urlsafe_b64decode(pad(signature)),
    )


@pytest.mark.parametrize("signer", [RS_SIGNER, ES_SIGNER], ids=["RS256", "ES256"])
def test_an_issued_set_verifies_and_has_the_effect(signer: SetSigner):
    event = verify_set(issue(signer), receiver(signer), now=NOW)
    assert (event.iss, event.jti, event.txn, event.aud) == (ISSUER, "jti-1", "txn-1", (AUDIENCE,))
    assert event.iat == NOW
    assert event.subject == Complex(
        user=IssSub(iss=ISSUER, sub="alice"), session=Opaque(id="s-7f3")
    )
    found = effect_of(event)
    assert (found.event, found.scope, found.revoke) == ("caep.session_revoked", "session", True)


def test_the_header_and_claims_follow_the_ssf_profile():
    header, claims, _ = parts(issue())
    assert header == {"typ": "secevent+jwt", "alg": "RS256", "kid": RS_SIGNER.kid}
    assert set(claims) == {"iss", "jti", "iat", "aud", "txn", "sub_id", "events"}
    assert claims["aud"] == AUDIENCE
    assert claims["iat"] == int(NOW.timestamp())
    assert claims["sub_id"] == SUBJECT
    assert list(claims["events"]) == [catalog.SESSION_REVOKED]


def test_several_audiences_toe_and_a_default_txn():
    token = issue(audience=(AUDIENCE, "https://pdp.example.com/b"), toe=NOW, txn=None, jti=None)
    _, claims, _ = parts(token)
    assert claims["aud"] == [AUDIENCE, "https://pdp.example.com/b"]
    assert claims["toe"] == int(NOW.timestamp())
    assert claims["txn"] == claims["jti"]
    assert len(claims["jti"]) >= 16
    assert verify_set(token, receiver(RS_SIGNER), now=NOW).toe == NOW


def test_the_subject_may_be_a_typed_identifier():
    token = issue(subject=catalog.stream_subject("stream-1"), **_verification())
    event = verify_set(token, receiver(RS_SIGNER), now=NOW)
    assert event.sub_id == {"format": "opaque", "id": "stream-1"}
    assert effect_of(event).stream


def _verification() -> dict[str, Any]:
    out = catalog.verification("state-1")
    return {"event_type": out.event_type, "payload": out.payload}


def test_an_rs256_set_verifies_with_plain_cryptography():
    token = issue()
    head, body, _ = token.split(".")
    _, _, signature = parts(token)
    numbers = RS_SIGNER.public_jwk()
    n = int.from_bytes(base64.urlsafe_b64decode(numbers["n"] + "=="), "big")
    e = int.from_bytes(base64.urlsafe_b64decode(numbers["e"] + "=="), "big")
    key = rsa.RSAPublicNumbers(e, n).public_key()
    key.verify(signature, f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())


def test_an_es256_set_verifies_with_plain_cryptography():
    token = issue(ES_SIGNER)
    head, body, _ = token.split(".")
    _, _, raw = parts(token)
    assert len(raw) == 64
    jwk = ES_SIGNER.public_jwk()
    x = int.from_bytes(base64.urlsafe_b64decode(jwk["x"] + "="), "big")
    y = int.from_bytes(base64.urlsafe_b64decode(jwk["y"] + "="), "big")
    key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))


def test_a_hand_made_es256_key_signs_through_set_signer():
    signer = SetSigner(EC_KEY, kid="ec1", alg="ES256")
    transmitter = TransmitterConfig(
        issuer=ISSUER,
        audiences=(AUDIENCE,),
        algorithms=("ES256",),
        keys=KeySource(inline={"keys": [ec_jwk(EC_KEY, "ec1")]}),
    )
    verify_set(issue(signer), transmitter, now=NOW)


def test_rotation_publishes_both_keys():
    new = SetSigner(new_signing_key("ES256", kid="next"), alg="ES256")
    transmitter = receiver(ES_SIGNER, new)
    verify_set(issue(ES_SIGNER), transmitter, now=NOW)
    verify_set(issue(new), transmitter, now=NOW)
    assert [k["kid"] for k in public_jwks(ES_SIGNER, new)["keys"]] == [ES_SIGNER.kid, "next"]


def test_another_signers_set_is_invalid_key():
    other = SetSigner(new_signing_key("ES256"), kid=ES_SIGNER.kid, alg="ES256")
    with pytest.raises(SetError) as caught:
        verify_set(issue(other), receiver(ES_SIGNER), now=NOW)
    assert caught.value.err == "invalid_key"


# -- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alg", "kty", "curve"),
    [
        ("RS256", "RSA", None),
        ("ES256", "EC", "P-256"),
        ("ES384", "EC", "P-384"),
        ("Ed25519", "OKP", "Ed25519"),
        ("Ed448", "OKP", "Ed448"),
    ],
)
def test_new_signing_keys(alg: str, kty: str, curve: str | None):
    jwk = RS_SIGNER.public_jwk() if alg == "RS256" else new_signing_key(alg)
    if alg != "RS256":
        assert "d" in jwk
        assert jwk["alg"] == alg
        assert jwk["use"] == "sig"
        assert jwk["kid"]
        signer = SetSigner(jwk, alg=alg)
        assert signer.kid == jwk["kid"]
        verify_set(issue(signer), receiver(signer), now=NOW)
    assert jwk["kty"] == kty
    assert jwk.get("crv") == curve


def test_the_default_signing_key_is_rsa_2048():
    jwk = RS_SIGNER.public_jwk()
    assert len(base64.urlsafe_b64decode(jwk["n"] + "==")) * 8 == 2048
    assert RS_SIGNER.alg == "RS256"


def test_the_published_key_set_holds_no_private_member():
    for signer in (RS_SIGNER, ES_SIGNER):
        jwk = public_jwks(signer)["keys"][0]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
        assert (jwk["use"], jwk["alg"], jwk["kid"]) == ("sig", signer.alg, signer.kid)


def test_a_signer_takes_cryptography_or_joserfc_keys_and_defaults_kid_to_the_thumbprint():
    signer = SetSigner(RSA_KEY)
    assert signer.kid == SetSigner(RSA_KEY).kid  # the RFC 7638 thumbprint: stable
    joserfc_key = ECKey.import_key(EC_KEY)
    assert SetSigner(joserfc_key, alg="ES256").kid == joserfc_key.thumbprint()
    edwards = SetSigner(Ed25519PrivateKey.generate(), alg="Ed25519")
    verify_set(issue(edwards), receiver(edwards), now=NOW)


def test_one_audience_given_as_a_tuple_is_written_as_a_string():
    _, claims, _ = parts(issue(audience=(AUDIENCE,)))
    assert claims["aud"] == AUDIENCE


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (EC_KEY, "HS256"),
        (EC_KEY, "none"),
        (EC_KEY, "RS256"),
        (RSA_KEY, "ES256"),
        (ec.generate_private_key(ec.SECP384R1()), "ES256"),
        ({"kty": "oct", "k": "c2VjcmV0"}, "RS256"),
        ({"kty": "RSA", "n": "AQAB"}, "RS256"),
        ({"kty": "EC", **ec_jwk(EC_KEY, "x")}, "ES256"),  # public only
    ],
)
def test_a_signer_refuses_keys_that_do_not_fit(key: Any, alg: str):
    with pytest.raises(ConfigError):
        SetSigner(key, alg=alg)


@pytest.mark.filterwarnings("ignore:Key size should be:joserfc.errors.SecurityWarning")
def test_a_signer_refuses_small_rsa_keys():
    with pytest.raises(ConfigError, match="2048"):
        SetSigner(SMALL_RSA)


def test_new_signing_key_refuses_symmetric_algorithms():
    with pytest.raises(ConfigError):
        new_signing_key("HS256")


def test_issue_refuses_what_a_set_cannot_be():
    with pytest.raises(ValueError, match="aware"):
        issue(now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="aware"):
        issue(toe=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError):
        issue(issuer="")
    with pytest.raises(ValueError):
        issue(audience=())
    with pytest.raises(SubjectError):
        issue(subject={"format": "email", "email": "nope"})


def test_a_set_issued_long_ago_no_longer_verifies():
    token = issue(now=NOW - timedelta(days=8))
    with pytest.raises(SetError) as caught:
        verify_set(token, receiver(RS_SIGNER), now=NOW)
    assert caught.value.err == "invalid_request"


# -- tampering -----------------------------------------------------------------------------

ES_TOKEN = issue(ES_SIGNER)
RS_TOKEN = issue(RS_SIGNER)
ES_RECEIVER = receiver(ES_SIGNER)
RS_RECEIVER = receiver(RS_SIGNER)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."


@SETTINGS
@given(st.data(), st.sampled_from(["ES256", "RS256"]))
def test_no_changed_character_ever_verifies(data: st.DataObject, alg: str):
    token, transmitter = (ES_TOKEN, ES_RECEIVER) if alg == "ES256" else (RS_TOKEN, RS_RECEIVER)
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from(ALPHABET).filter(lambda c: c != token[index]))
    mutated = token[:index] + replacement + token[index + 1 :]
    with pytest.raises(SetError):
        verify_set(mutated, transmitter, now=NOW)


@SETTINGS
@given(st.data())
def test_no_changed_byte_ever_verifies(data: st.DataObject):
    token = ES_TOKEN.encode()
    index = data.draw(st.integers(0, len(token) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda b: b != token[index]))
    mutated = token[:index] + bytes([value]) + token[index + 1 :]
    stripped = mutated.strip()
    if stripped == token:  # whitespace added at either end: the same token
        return
    with pytest.raises(SetError):
        verify_set(mutated, ES_RECEIVER, now=NOW)


@SETTINGS
@given(st.binary(max_size=512) | st.text(max_size=512))
def test_garbage_is_always_a_set_error(garbage: bytes | str):
    with pytest.raises(SetError):
        verify_set(garbage, ES_RECEIVER, now=NOW)


def test_a_truncated_or_extended_token_never_verifies():
    for token in (ES_TOKEN[:-1], ES_TOKEN + "A", ES_TOKEN.replace(".", "..", 1), "." + ES_TOKEN):
        with pytest.raises(SetError):
            verify_set(token, ES_RECEIVER, now=NOW)
