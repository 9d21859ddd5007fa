"""verify_set: what a receiver accepts, and the RFC 8935 `err` of everything it refuses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from juncture.events.set import MAX_SET_BYTES, SetError, TransmitterConfig, verify_set
from juncture.events.subjects import Complex, Email, IssSub, Opaque
from juncture.jose import KeySource
from juncture.methods.base import ConfigError, MethodUnavailable

from .transmitter import (
    AUDIENCE,
    EC_KEY,
    ISSUER,
    NOW,
    OTHER_EC,
    OTHER_RSA,
    RSA_KEY,
    SESSION_REVOKED,
    SMALL_RSA,
    ago,
    ahead,
    b64,
    b64json,
    claims,
    config,
    ec_jwk,
    header,
    rsa_jwk,
    sign_es256,
    sign_hs256_with_public_key,
    sign_rs256,
    unsigned,
)

REPEATED_KEY = b'{"typ": "secevent+jwt", "typ": "JWT", "alg": "RS256"}'
NAN = b'{"iat": NaN}'


def refused(token: str | bytes, err: str, transmitter: TransmitterConfig | None = None) -> str:
    with pytest.raises(SetError) as caught:
        verify_set(token, transmitter or config(), now=NOW)
    assert caught.value.err == err, caught.value.description
    return caught.value.description


# -- what verifies -------------------------------------------------------------------------


def test_a_good_rs256_set_verifies():
    event = verify_set(sign_rs256(header(), claims()), config(), now=NOW)
    assert event.iss == ISSUER
    assert event.jti == "4f8a1c"
    assert event.iat == NOW - timedelta(seconds=10)
    assert event.aud == (AUDIENCE,)
    assert event.txn == "risk-2026-0042"
    assert event.toe is None
    assert event.event_type == SESSION_REVOKED
    assert event.payload["initiating_entity"] == "policy"
    assert event.sub_id == claims()["sub_id"]
    assert event.subject == Complex(
        user=IssSub(iss=ISSUER, sub="alice"), session=Opaque(id="s-7f3")
    )
    assert event.claims == claims()


def test_a_good_es256_set_verifies():
    event = verify_set(sign_es256(header("ES256", "ec1"), claims()), config(), now=NOW)
    assert event.jti == "4f8a1c"


def test_bytes_with_a_trailing_newline_verify():
    token = sign_rs256(header(), claims()) + "\r\n"
    assert verify_set(token.encode(), config(), now=NOW).jti == "4f8a1c"


@pytest.mark.parametrize("typ", ["secevent+jwt", "SecEvent+JWT", "application/secevent+jwt"])
def test_typ_is_case_insensitive_with_or_without_application(typ: str):
    verify_set(sign_rs256(header(typ=typ), claims()), config(), now=NOW)


def test_an_audience_array_naming_us_verifies():
    token = sign_rs256(header(), claims(aud=["https://other.example", AUDIENCE]))
    assert verify_set(token, config(), now=NOW).aud == ("https://other.example", AUDIENCE)


def test_without_kid_every_key_of_the_type_is_tried():
    transmitter = config(rsa_jwk(OTHER_RSA, "old"), rsa_jwk(RSA_KEY, "new"))
    verify_set(sign_rs256(header(kid=None), claims()), transmitter, now=NOW)


def test_toe_and_unknown_claims_are_carried():
    token = sign_rs256(header(), claims(toe=ago(minutes=1), extra={"x": 1}))
    event = verify_set(token, config(), now=NOW)
    assert event.toe == NOW - timedelta(minutes=1)
    assert event.claims["extra"] == {"x": 1}


def test_iat_a_little_ahead_is_within_the_skew():
    verify_set(sign_rs256(header(), claims(iat=ahead(minutes=4))), config(), now=NOW)


def test_the_legacy_subject_inside_the_event_is_read():
    event_claims = claims(sub_id=None)
    event_claims["events"][SESSION_REVOKED]["subject"] = {"format": "email", "email": "A@x.org"}
    event = verify_set(sign_rs256(header(), event_claims), config(), now=NOW)
    assert event.subject == Email(email="a@x.org")
    assert event.sub_id == {"format": "email", "email": "A@x.org"}


def test_sub_id_wins_over_the_legacy_subject():
    event_claims = claims()
    event_claims["events"][SESSION_REVOKED]["subject"] = {"format": "email", "email": "b@x.org"}
    event = verify_set(sign_rs256(header(), event_claims), config(), now=NOW)
    assert isinstance(event.subject, Complex)


def test_keys_in_the_header_are_ignored():
    # a jku/x5u/jwk pointing elsewhere changes nothing when our key signed
    token = sign_rs256(
        header(jku="https://evil.example/jwks", x5u="https://evil.example/c", jwk={"kty": "RSA"}),
        claims(),
    )
    verify_set(token, config(), now=NOW)


# -- invalid_key ---------------------------------------------------------------------------


def test_an_unsigned_set_is_invalid_key():
    refused(unsigned(header("none", None), claims()), "invalid_key")


def test_alg_none_with_a_signature_is_invalid_key():
    token = unsigned(header("none"), claims()) + "c2ln"
    refused(token, "invalid_key")


def test_hmac_signed_with_the_public_key_is_invalid_key():
    refused(sign_hs256_with_public_key(header("HS256"), claims()), "invalid_key")


def test_an_algorithm_not_pinned_is_invalid_key():
    token = sign_es256(header("ES256", "ec1"), claims())
    refused(token, "invalid_key", config(algorithms=("RS256",)))


def test_a_wrong_key_with_our_kid_is_invalid_key():
    refused(sign_rs256(header(), claims(), key=OTHER_RSA), "invalid_key")
    refused(sign_es256(header("ES256", "ec1"), claims(), key=OTHER_EC), "invalid_key")


def test_an_unknown_kid_is_invalid_key():
    refused(sign_rs256(header(kid="rsa9"), claims()), "invalid_key")


def test_a_non_string_kid_is_invalid_key():
    refused(sign_rs256(header(kid=7), claims()), "invalid_key")


def test_an_attackers_embedded_jwk_is_never_used():
    token = sign_rs256(header(jwk=rsa_jwk(OTHER_RSA, "rsa1")), claims(), key=OTHER_RSA)
    refused(token, "invalid_key")
    token = sign_rs256(header(kid="evil", jwk=rsa_jwk(OTHER_RSA, "evil")), claims(), OTHER_RSA)
    refused(token, "invalid_key")


@pytest.mark.filterwarnings("ignore:Key size should be:joserfc.errors.SecurityWarning")
def test_an_rsa_key_under_2048_bits_is_never_used():
    transmitter = config(rsa_jwk(SMALL_RSA, "small"), rsa_jwk(RSA_KEY, "rsa1"))
    refused(sign_rs256(header(kid="small"), claims(), key=SMALL_RSA), "invalid_key", transmitter)
    with pytest.raises(MethodUnavailable, match="under 2048 bits"):  # no other key: none
        config(rsa_jwk(SMALL_RSA, "small")).keys.keys(NOW)


def test_a_key_bound_to_another_alg_is_not_used():
    transmitter = config(rsa_jwk(RSA_KEY, "rsa1", alg="RS512"))
    refused(sign_rs256(header(), claims()), "invalid_key", transmitter)


def test_a_key_of_the_wrong_type_is_not_used():
    transmitter = config(ec_jwk(EC_KEY, "rsa1"))
    refused(sign_rs256(header(), claims()), "invalid_key", transmitter)


def test_a_signature_over_other_claims_is_invalid_key():
    good = sign_rs256(header(), claims()).split(".")
    forged = f"{good[0]}.{b64json(claims(jti='other'))}.{good[2]}"
    refused(forged, "invalid_key")


# -- invalid_issuer / invalid_audience -----------------------------------------------------


def test_a_wrong_issuer_is_invalid_issuer():
    refused(sign_rs256(header(), claims(iss="https://evil.example/")), "invalid_issuer")


def test_a_wrong_audience_is_invalid_audience():
    refused(sign_rs256(header(), claims(aud="https://other.example")), "invalid_audience")
    refused(sign_rs256(header(), claims(aud=["https://other.example"])), "invalid_audience")


def test_a_missing_audience_is_invalid_audience():
    refused(sign_rs256(header(), claims(aud=None)), "invalid_audience")


# -- invalid_request -----------------------------------------------------------------------


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "secevent", 7])
def test_a_wrong_typ_is_invalid_request(typ: Any):
    head = header()
    if typ is None:
        del head["typ"]
    else:
        head["typ"] = typ
    refused(sign_rs256(head, claims()), "invalid_request")


@pytest.mark.parametrize("name", ["crit", "b64"])
def test_crit_and_b64_headers_are_invalid_request(name: str):
    value: Any = ["exp"] if name == "crit" else False
    refused(sign_rs256(header(**{name: value}), claims()), "invalid_request")


def test_a_missing_alg_is_invalid_request():
    head = header()
    del head["alg"]
    refused(sign_rs256(head, claims()), "invalid_request")


@pytest.mark.parametrize("name", ["iss", "jti", "iat", "events"])
def test_a_missing_required_claim_is_invalid_request(name: str):
    refused(sign_rs256(header(), claims(**{name: None})), "invalid_request")


def test_a_missing_subject_is_invalid_request():
    refused(sign_rs256(header(), claims(sub_id=None)), "invalid_request")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("iss", 7),
        ("iss", ""),
        ("jti", ""),
        ("jti", 42),
        ("jti", "x" * 257),
        ("iat", "1767000500"),
        ("iat", True),
        ("iat", 1e300),
        ("toe", "yesterday"),
        ("txn", 5),
        ("aud", 5),
        ("aud", []),
        ("aud", [AUDIENCE, 5]),
        ("events", []),
        ("events", {}),
        ("events", {SESSION_REVOKED: "revoked"}),
    ],
)
def test_a_mistyped_claim_is_invalid_request(name: str, value: Any):
    refused(sign_rs256(header(), claims(**{name: value})), "invalid_request")


@pytest.mark.parametrize("name", ["exp", "sub"])
def test_exp_or_sub_present_is_invalid_request(name: str):
    value = ahead(hours=1) if name == "exp" else "alice"
    description = refused(sign_rs256(header(), claims(**{name: value})), "invalid_request")
    assert f"`{name}`" in description


def test_two_events_are_invalid_request():
    events = {
        SESSION_REVOKED: {},
        "https://schemas.openid.net/secevent/risc/event-type/account-disabled": {},
    }
    refused(sign_rs256(header(), claims(events=events)), "invalid_request")


def test_an_iat_too_far_ahead_is_invalid_request():
    refused(sign_rs256(header(), claims(iat=ahead(minutes=6))), "invalid_request")


def test_an_iat_too_old_is_invalid_request():
    refused(sign_rs256(header(), claims(iat=ago(days=8))), "invalid_request")
    verify_set(sign_rs256(header(), claims(iat=ago(days=6))), config(), now=NOW)


def test_the_iat_window_is_configurable():
    transmitter = config(max_age=timedelta(hours=1), max_future=timedelta(0))
    refused(sign_rs256(header(), claims(iat=ago(hours=2))), "invalid_request", transmitter)
    refused(sign_rs256(header(), claims(iat=ahead(seconds=5))), "invalid_request", transmitter)


def test_a_malformed_subject_is_invalid_request():
    bad = {"format": "email", "email": "not an address"}
    description = refused(sign_rs256(header(), claims(sub_id=bad)), "invalid_request")
    assert "email" in description


def test_an_unknown_critical_subject_member_is_invalid_request():
    sub_id = {
        "format": "complex",
        "user": {"format": "email", "email": "a@x.org"},
        "region": {"format": "opaque", "id": "eu"},
    }
    token = sign_rs256(header(), claims(sub_id=sub_id))
    verify_set(token, config(), now=NOW)  # not critical: carried, not refused
    refused(token, "invalid_request", config(critical_subject_members=("region",)))
    verify_set(token, config(critical_subject_members=("user", "tenant")), now=NOW)


def test_an_oversized_set_is_invalid_request():
    padding = "x" * MAX_SET_BYTES
    token = sign_rs256(header(), claims(padding=padding))
    refused(token, "invalid_request")
    refused(token.encode(), "invalid_request")
    small = sign_rs256(header(), claims())
    with pytest.raises(SetError) as caught:
        verify_set(small, config(), now=NOW, max_bytes=100)
    assert caught.value.err == "invalid_request"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not a jwt",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",  # a JWE
        "!!!.###.$$$",
        f"{b64json(header())}=.{b64json(claims())}.c2ln",  # padding
        f"{b64json(header())}.{b64json(claims())}.c2ln+",  # not url-safe
        f"{b64(b'{not json')}.{b64json(claims())}.c2ln",
        f"{b64json(header())}.{b64(b'[1, 2]')}.c2ln",
        f"{b64json(['typ'])}.{b64json(claims())}.c2ln",
        f"{b64(REPEATED_KEY)}.{b64json(claims())}.c2ln",
        f"{b64json(header())}.{b64(NAN)}.c2ln",
        f"{b64json(header())}.{b64(b'[' * 5000 + b']' * 5000)}.c2ln",
        f".{b64json(claims())}.c2ln",
    ],
)
def test_malformed_tokens_are_invalid_request(token: str):
    refused(token, "invalid_request")


def test_a_token_that_is_not_text_is_invalid_request():
    refused(5, "invalid_request")  # type: ignore[arg-type]


def test_a_key_on_another_curve_is_not_used():
    from cryptography.hazmat.primitives.asymmetric import ec

    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-384",
        "kid": "ec1",
        "x": b64(p384.x.to_bytes(48, "big")),
        "y": b64(p384.y.to_bytes(48, "big")),
    }
    refused(sign_es256(header("ES256", "ec1"), claims()), "invalid_key", config(jwk))


def test_non_ascii_is_invalid_request():
    refused("é.é.é", "invalid_request")
    refused("é.é.é".encode(), "invalid_request")


def test_a_non_canonical_base64_spelling_is_invalid_request():
    head, body, signature = sign_rs256(header(), claims()).split(".")
    # 256 signature bytes end in 4 unused bits: flipping them spells the same bytes
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    twin = signature[:-1] + alphabet[last ^ 1]
    refused(f"{head}.{body}.{twin}", "invalid_request")


def test_the_event_object_must_be_an_object():
    refused(sign_rs256(header(), claims(events={SESSION_REVOKED: [1]})), "invalid_request")


# -- errors and configuration --------------------------------------------------------------


def test_now_must_be_aware():
    with pytest.raises(ValueError, match="aware"):
        verify_set(sign_rs256(header(), claims()), config(), now=NOW.replace(tzinfo=None))


def test_set_error_carries_the_rfc_8935_body():
    error = SetError("invalid_key", "the SET's signature does not verify")
    assert error.body() == {
        "err": "invalid_key",
        "description": "the SET's signature does not verify",
    }
    with pytest.raises(ValueError, match="unknown SET error code"):
        SetError("nope", "x")
    for err in ("authentication_failed", "access_denied", "invalid_state"):
        assert SetError(err, "x").body()["err"] == err


def test_keys_that_cannot_be_had_are_unavailable_not_a_transmitter_error():
    transmitter = TransmitterConfig.configure(
        issuer=ISSUER, audience=AUDIENCE, jwks_uri="http://127.0.0.1:9/jwks"
    )
    with pytest.raises(MethodUnavailable):
        verify_set(sign_rs256(header(), claims()), transmitter, now=NOW)


def test_configure_builds_from_options_like_a_token_issuer():
    transmitter = TransmitterConfig.configure(
        issuer=ISSUER,
        audience=(AUDIENCE, "https://pdp.example.com/other"),
        algorithms=("RS256",),
        jwks={"keys": [rsa_jwk(RSA_KEY, "rsa1")]},
        critical_subject_members=("tenant",),
    )
    assert transmitter.audiences == (AUDIENCE, "https://pdp.example.com/other")
    verify_set(sign_rs256(header(), claims()), transmitter, now=NOW)


@pytest.mark.parametrize(
    "options",
    [
        {"audience": ()},
        {"algorithms": ("HS256",)},
        {"algorithms": ("none",)},
        {"algorithms": ()},
        {"jwks_uri": "https://idp.example.com/jwks", "jwks": {"keys": []}},
        {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}},
        {"jwks_uri": "http://idp.example.com/jwks"},
        {"jwks_uri": None, "jwks": None},
    ],
)
def test_configure_refuses_bad_options(options: dict[str, Any]):
    base: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwks": {"keys": [rsa_jwk(RSA_KEY, "rsa1")]},
    }
    with pytest.raises(ConfigError):
        TransmitterConfig.configure(**{**base, **options})


@pytest.mark.parametrize(
    "options",
    [
        {"issuer": ""},
        {"audiences": ()},
        {"audiences": ("",)},
        {"algorithms": ("HS256",)},
        {"algorithms": ()},
        {"max_age": timedelta(0)},
        {"max_future": timedelta(seconds=-1)},
    ],
)
def test_a_transmitter_config_checks_itself(options: dict[str, Any]):
    base: dict[str, Any] = {
        "issuer": ISSUER,
        "audiences": (AUDIENCE,),
        "keys": KeySource(inline={"keys": [rsa_jwk(RSA_KEY, "rsa1")]}),
    }
    with pytest.raises(ConfigError):
        TransmitterConfig(**{**base, **options})
