"""Client assertions: JWTs signed by the client's own key, pinned, checked, used once.

The assertions are signed here with `cryptography` and assembled by hand, not with the
JOSE library the method uses: a shared bug could not make both sides agree.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from juncture.methods import Context, Environment
from juncture.methods.base import (
    PUBLIC_FAILURE,
    ConfigError,
    EnrollmentError,
    ProofError,
    StateError,
)
from juncture.methods.client_assertion import (
    MAX_USED,
    AssertionKeysRecord,
    ClientAssertion,
)

from .conftest import NOW, make

SUBJECT = "agent-7"
AUDIENCE = "https://juncture.example.com"
T = int(NOW.timestamp())

# RSA key generation is slow: one set of keys for the module.
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SMALL_RSA = rsa.generate_private_key(public_exponent=65537, key_size=1024)
P256 = ec.generate_private_key(ec.SECP256R1())
OTHER_P256 = ec.generate_private_key(ec.SECP256R1())
P384 = ec.generate_private_key(ec.SECP384R1())
K256 = ec.generate_private_key(ec.SECP256K1())
ED = ed25519.Ed25519PrivateKey.generate()
ED448 = ed448.Ed448PrivateKey.generate()
_JTI = itertools.count()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(value: int, size: int | None = None) -> str:
    return b64(value.to_bytes(size or (value.bit_length() + 7) // 8, "big"))


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "n": uint(numbers.n), "e": uint(numbers.e), **extra}


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    size = (key.curve.key_size + 7) // 8
    crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp256k1": "secp256k1"}[key.curve.name]
    return {
        "kty": "EC",
        "kid": kid,
        "crv": crv,
        "x": uint(numbers.x, size),
        "y": uint(numbers.y, size),
        **extra,
    }


def okp_jwk(key: Any, kid: str, crv: str = "Ed25519", **extra: Any) -> dict[str, Any]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "kid": kid, "crv": crv, "x": b64(raw), **extra}


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for SUBJECT at NOW; a change to None removes the claim."""
    base = {
        "iss": SUBJECT,
        "sub": SUBJECT,
        "aud": AUDIENCE,
        "iat": T,
        "exp": T + 60,
        "jti": f"jti-{next(_JTI)}",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def raw_signature(key: Any, alg: str, data: bytes) -> bytes:
    if alg == "RS256":
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if alg == "PS256":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return key.sign(data, pss, hashes.SHA256())
    if alg in ("ES256", "ES384"):
        digest = hashes.SHA256() if alg == "ES256" else hashes.SHA384()
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg in ("EdDSA", "Ed25519"):
        return key.sign(data)
    raise AssertionError(alg)


def sign(
    key: Any, payload: dict[str, Any], *, alg: Any, kid: Any, sign_as: str = "", **header: Any
) -> str:
    """A compact JWS by hand: ``alg`` goes in the header, ``sign_as`` (default alg) signs."""
    head = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid is not None else {}), **header}
    data = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{data}.{b64(raw_signature(key, sign_as or alg, data.encode()))}"


def refused(result: Any, code: str) -> None:
    assert (result.ok, result.code, result.message) == (False, code, PUBLIC_FAILURE)
    assert result.record is None and result.proof is None


def method(**options: Any) -> ClientAssertion:
    made: ClientAssertion = make("client_assertion", **{"audience": AUDIENCE, **options})
    return made


def enrolled(*keys: dict[str, Any], subject: str = SUBJECT) -> AssertionKeysRecord:
    return method().enroll(subject=subject, jwks={"keys": list(keys)}, now=NOW).record


ALL_KEYS = (
    rsa_jwk(RSA, "rsa"),
    rsa_jwk(OTHER_RSA, "rsa-pss", alg="PS256"),
    ec_jwk(P256, "p256"),
    ec_jwk(P384, "p384"),
    okp_jwk(ED, "ed"),
    okp_jwk(ED, "ed-new", alg="Ed25519"),
)


# -- configuration ------------------------------------------------------------------------------


def test_the_audience_is_required_from_the_journey_or_the_defaults() -> None:
    with pytest.raises(ConfigError, match="`audience` is required") as raised:
        make("client_assertion")
    assert raised.value.code == "method.config.missing_option"
    env = Environment(defaults={"client_assertion": {"audience": "https://default"}})
    assert make("client_assertion", env).audience == "https://default"
    assert make("client_assertion", env, audience=AUDIENCE).audience == AUDIENCE
    direct = ClientAssertion.configure(name="agent", aal=2, options={}, env=env)
    assert (direct.audience, direct.max_lifetime, direct.leeway) == ("https://default", 300, 60)
    assert direct.amr == ("swk",)


@pytest.mark.parametrize(
    ("options", "code", "text"),
    [
        ({"max_lifetime": "2h"}, "method.config.value", "at most 1h"),
        ({"max_lifetime": 0}, "method.config.value", "more than 0s"),
        ({"leeway": "10m"}, "method.config.value", "at most 5m"),
        ({"leeway": "soon"}, "method.config.value", "not a duration"),
        ({"audience": ""}, "method.config.value", "must not be empty"),
        ({"audience": 7}, "method.config.type", "expected `str"),
        ({"issuer": "x"}, "method.config.unknown_option", "unknown option `issuer`"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], code: str, text: str) -> None:
    with pytest.raises(ConfigError, match=text) as raised:
        method(**options)
    assert raised.value.code == code


# -- enrollment ---------------------------------------------------------------------------------


def test_enrollment_stores_public_keys_with_pinned_algorithms() -> None:
    jwks = {"keys": [dict(k, use="sig", key_ops=["verify"], x5t="abc") for k in ALL_KEYS]}
    enrollment = method().enroll(subject=SUBJECT, jwks=jwks, now=NOW)
    assert enrollment.shown.kids == ("rsa", "rsa-pss", "p256", "p384", "ed", "ed-new")
    record = enrollment.record
    assert (record.subject, record.used, record.created_at) == (SUBJECT, {}, NOW)
    algs = {key["kid"]: key["alg"] for key in record.keys}
    assert algs == {
        "rsa": "RS256",
        "rsa-pss": "PS256",
        "p256": "ES256",
        "p384": "ES384",
        "ed": "EdDSA",
        "ed-new": "Ed25519",
    }
    members = [sorted(key) for key in record.keys]
    assert members[0] == members[1] == ["alg", "e", "kid", "kty", "n"]
    assert members[2] == members[3] == ["alg", "crv", "kid", "kty", "x", "y"]
    assert members[4] == members[5] == ["alg", "crv", "kid", "kty", "x"]
    assert record.keys[0]["n"] == ALL_KEYS[0]["n"]


def test_a_record_round_trips_through_json() -> None:
    record = enrolled(*ALL_KEYS)
    result = method().verify(record, sign(P256, claims(), alg="ES256", kid="p256"), now=NOW)
    assert result.ok and result.record is not None and result.record.used
    for one in (record, result.record):
        encoded = msgspec.json.encode(one)
        assert msgspec.json.decode(encoded, type=AssertionKeysRecord) == one


def private_rsa() -> dict[str, Any]:
    numbers = RSA.private_numbers()
    return rsa_jwk(RSA, "k", d=uint(numbers.d), p=uint(numbers.p), q=uint(numbers.q))


@pytest.mark.parametrize(
    ("keys", "text"),
    [
        ([private_rsa()], "private key"),
        ([rsa_jwk(RSA, "k", d="AQAB")], "private key"),
        ([ec_jwk(P256, "k", d=uint(P256.private_numbers().private_value, 32))], "private key"),
        ([okp_jwk(ED, "k", d="AAAA")], "private key"),
        ([{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}], "symmetric"),
        ([{"kty": "oct", "kid": "k"}], "symmetric"),
        ([{"kty": "XYZ", "kid": "k"}], "`kty` must be"),
        ([{"kid": "k", "n": "AQAB", "e": "AQAB"}], "`kty` must be"),
        ([{**rsa_jwk(RSA, "k"), "kty": ["RSA"]}], "`kty` must be"),
        ([rsa_jwk(SMALL_RSA, "k")], "2048..8192 bits"),
        ([rsa_jwk(RSA, "k"), ec_jwk(P256, "k")], "used twice"),
        ([rsa_jwk(RSA, "k", alg="HS256")], "`alg` must be one of RS256, PS256"),
        ([rsa_jwk(RSA, "k", alg="none")], "`alg` must be one of"),
        ([rsa_jwk(RSA, "k", alg="RS512")], "`alg` must be one of"),
        ([rsa_jwk(RSA, "k", alg="ES256")], "`alg` must be one of"),
        ([ec_jwk(P256, "k", alg="ES384")], "`alg` must be one of ES256"),
        ([ec_jwk(P384, "k", alg="RS256")], "`alg` must be one of ES384"),
        ([okp_jwk(ED, "k", alg="ES256")], "`alg` must be one of EdDSA, Ed25519"),
        ([ec_jwk(K256, "k")], "`crv` must be"),
        ([okp_jwk(ED448, "k", crv="Ed448")], "`crv` must be"),
        ([okp_jwk(ED, "k", crv="X25519")], "`crv` must be"),
        ([{**ec_jwk(P256, "k"), "y": ec_jwk(OTHER_P256, "k")["y"]}], "not a valid EC"),
        ([{**rsa_jwk(RSA, "k"), "n": 12345}], "not a valid RSA"),
        ([{**rsa_jwk(RSA, "k"), "n": "a+b"}], "not a valid RSA"),
        ([{**rsa_jwk(RSA, "k"), "n": "A" * 2001}], "not a valid RSA"),
        ([{**rsa_jwk(RSA, "k"), "e": "AAAA"}], "not a valid RSA"),
        ([{**rsa_jwk(RSA, "k"), "n": "A" * 2000}], "2048..8192 bits, not 0"),
        ([{**rsa_jwk(RSA, "k"), "n": "_" * 1400}], "2048..8192 bits, not 8400"),
        ([{**okp_jwk(ED, "k"), "x": "AAAA"}], "not a valid OKP"),
        ([rsa_jwk(RSA, "k", use="enc")], "`use` must be `sig`"),
        ([{k: v for k, v in rsa_jwk(RSA, "k").items() if k != "kid"}], "`kid` must be"),
        ([rsa_jwk(RSA, "")], "`kid` must be"),
        ([rsa_jwk(RSA, "k" * 129)], "`kid` must be"),
        ([rsa_jwk(RSA, "a\nb")], "`kid` must be"),
        ([{**rsa_jwk(RSA, "k"), "kid": 7}], "`kid` must be"),
        (["not a key"], "must be an object"),
        ([], "1..10 keys"),
        ([ec_jwk(P256, f"k{i}") for i in range(11)], "1..10 keys"),
    ],
)
def test_enrollment_refuses_bad_keys(keys: list[Any], text: str) -> None:
    with pytest.raises(EnrollmentError, match=text) as raised:
        method().enroll(subject=SUBJECT, jwks={"keys": keys}, now=NOW)
    assert raised.value.code == "method.enrollment.invalid"
    assert "AQAB" not in raised.value.message


@pytest.mark.parametrize("jwks", [None, [], {"keys": "x"}, {"key": []}, "{}"])
def test_enrollment_needs_a_jwk_set(jwks: object) -> None:
    with pytest.raises(EnrollmentError, match="JWK Set"):
        method().enroll(subject=SUBJECT, jwks=jwks, now=NOW)


def test_enrollment_needs_a_subject_and_an_aware_time() -> None:
    with pytest.raises(EnrollmentError, match="subject"):
        method().enroll(subject="", jwks={"keys": [ec_jwk(P256, "k")]}, now=NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        method().enroll(
            subject=SUBJECT, jwks={"keys": [ec_jwk(P256, "k")]}, now=NOW.replace(tzinfo=None)
        )


# -- verification: what succeeds ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "alg", "kid"),
    [
        (RSA, "RS256", "rsa"),
        (OTHER_RSA, "PS256", "rsa-pss"),
        (P256, "ES256", "p256"),
        (P384, "ES384", "p384"),
        (ED, "EdDSA", "ed"),
        (ED, "Ed25519", "ed-new"),
    ],
)
def test_a_valid_assertion_verifies_and_its_jti_is_remembered(key: Any, alg: str, kid: str) -> None:
    record = enrolled(*ALL_KEYS)
    payload = claims()
    result = method().verify(
        record, sign(key, payload, alg=alg, kid=kid), now=NOW, context=Context(subject=SUBJECT)
    )
    assert (result.ok, result.code) == (True, "ok")
    proof = result.proof
    assert proof is not None
    assert (proof.method, proof.kind, proof.aal, proof.amr, proof.at) == (
        "client_assertion",
        "client_assertion",
        2,
        ("swk",),
        NOW,
    )
    assert result.record is not None
    assert result.record.used == {payload["jti"]: T + 60}
    assert result.record.keys == record.keys and record.used == {}


def test_one_key_needs_no_kid_and_aud_may_be_a_list() -> None:
    record = enrolled(ec_jwk(P256, "only"))
    payload = claims(aud=["https://other", AUDIENCE])
    assert method().verify(record, sign(P256, payload, alg="ES256", kid=None), now=NOW).ok


def test_a_replayed_assertion_is_refused_and_a_new_jti_accepted() -> None:
    m = method()
    record = enrolled(ec_jwk(P256, "p256"))
    first = sign(P256, claims(jti="one"), alg="ES256", kid="p256")
    result = m.verify(record, first, now=NOW)
    assert result.ok and result.record is not None
    record = result.record
    refused(m.verify(record, first, now=NOW + timedelta(seconds=5)), "method.failed.replay")
    # a new assertion with the old jti is a replay too
    again = sign(P256, claims(jti="one", iat=T + 10, exp=T + 70), alg="ES256", kid="p256")
    refused(m.verify(record, again, now=NOW + timedelta(seconds=10)), "method.failed.replay")
    second = sign(P256, claims(jti="two", exp=T + 90), alg="ES256", kid="p256")
    result = m.verify(record, second, now=NOW + timedelta(seconds=5))
    assert result.ok and result.record is not None
    assert result.record.used == {"one": T + 60, "two": T + 90}


def test_expired_jtis_are_pruned_only_once_their_assertion_is_refused() -> None:
    m = method(leeway="60s")
    record = enrolled(ec_jwk(P256, "p256"))
    first = sign(P256, claims(jti="one"), alg="ES256", kid="p256")
    result = m.verify(record, first, now=NOW)
    assert result.record is not None
    record = msgspec.structs.replace(result.record, used={**result.record.used, "old": T - 200})
    # at exp + leeway the assertion is expired, and its jti still kept
    edge = NOW + timedelta(seconds=120)
    refused(m.verify(record, first, now=edge), "method.failed.expired")
    later = sign(P256, claims(jti="two", iat=T + 119, exp=T + 150), alg="ES256", kid="p256")
    result = m.verify(record, later, now=edge)
    assert result.ok and result.record is not None
    assert result.record.used == {"one": T + 60, "two": T + 150}
    # a second later it is forgotten
    last = sign(P256, claims(jti="three", iat=T + 121, exp=T + 160), alg="ES256", kid="p256")
    result = m.verify(result.record, last, now=edge + timedelta(seconds=1))
    assert result.ok and result.record is not None
    assert result.record.used == {"two": T + 150, "three": T + 160}


def test_a_fractional_exp_is_remembered_rounded_up() -> None:
    record = enrolled(ec_jwk(P256, "p256"))
    payload = claims(exp=T + 59.25, iat=T - 0.5)
    result = method().verify(record, sign(P256, payload, alg="ES256", kid="p256"), now=NOW)
    assert result.ok and result.record is not None
    assert result.record.used == {payload["jti"]: T + 60}


def test_the_replay_cache_is_bounded() -> None:
    m = method()
    record = enrolled(ec_jwk(P256, "p256"))
    full = msgspec.structs.replace(record, used={f"j{i}": T + 60 for i in range(MAX_USED)})
    token = sign(P256, claims(), alg="ES256", kid="p256")
    refused(m.verify(full, token, now=NOW), "method.failed.cache_full")
    # expired entries do not count
    stale = {**full.used, "j0": T - 100}
    result = m.verify(msgspec.structs.replace(full, used=stale), token, now=NOW)
    assert result.ok and result.record is not None and len(result.record.used) == MAX_USED


# -- verification: what fails -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "now", "code"),
    [
        ({"exp": T - 61, "iat": T - 100}, NOW, "method.failed.expired"),
        ({"exp": T - 60, "iat": T - 100}, NOW, "method.failed.expired"),
        ({}, NOW + timedelta(seconds=120), "method.failed.expired"),
        ({"iat": T + 61, "exp": T + 100}, NOW, "method.failed.not_yet_valid"),
        ({"nbf": T + 61}, NOW, "method.failed.not_yet_valid"),
        ({"exp": T + 301}, NOW, "method.failed.lifetime"),
        ({"iat": T - 250, "exp": T + 51}, NOW, "method.failed.lifetime"),
        ({"iat": T + 30, "exp": T + 20}, NOW, "method.failed.lifetime"),
        ({"aud": "https://other"}, NOW, "method.failed.audience"),
        ({"aud": ["https://other", 7]}, NOW, "method.failed.audience"),
        ({"aud": []}, NOW, "method.failed.audience"),
        ({"iss": "agent-8"}, NOW, "method.failed.subject"),
        ({"sub": "agent-8"}, NOW, "method.failed.subject"),
        ({"iss": "agent-8", "sub": "agent-8"}, NOW, "method.failed.subject"),
        ({"iss": None}, NOW, "method.failed.claims"),
        ({"sub": None}, NOW, "method.failed.claims"),
        ({"sub": 7}, NOW, "method.failed.claims"),
        ({"aud": None}, NOW, "method.failed.claims"),
        ({"aud": {"a": AUDIENCE}}, NOW, "method.failed.claims"),
        ({"exp": None}, NOW, "method.failed.claims"),
        ({"iat": None}, NOW, "method.failed.claims"),
        ({"exp": str(T + 60)}, NOW, "method.failed.claims"),
        ({"exp": True}, NOW, "method.failed.claims"),
        ({"iat": 1e300, "exp": 1e300}, NOW, "method.failed.claims"),
        ({"nbf": "now"}, NOW, "method.failed.claims"),
        ({"jti": None}, NOW, "method.failed.claims"),
        ({"jti": ""}, NOW, "method.failed.claims"),
        ({"jti": "j" * 257}, NOW, "method.failed.claims"),
        ({"jti": 42}, NOW, "method.failed.claims"),
    ],
)
def test_claims_are_checked(changes: dict[str, Any], now: Any, code: str) -> None:
    record = enrolled(ec_jwk(P256, "p256"))
    token = sign(P256, claims(**changes), alg="ES256", kid="p256")
    refused(method(leeway="60s", max_lifetime="5m").verify(record, token, now=now), code)


def test_times_within_the_leeway_pass() -> None:
    record = enrolled(ec_jwk(P256, "p256"))
    for changes in (
        {"exp": T - 59, "iat": T - 100},
        {"iat": T + 60, "exp": T + 100},
        {"nbf": T + 60},
        {"exp": T + 300},
        {"jti": "j" * 256},
    ):
        token = sign(P256, claims(**changes), alg="ES256", kid="p256")
        assert method().verify(record, token, now=NOW).ok, changes


def test_nan_times_are_refused() -> None:
    record = enrolled(ec_jwk(P256, "p256"))
    head = b64(json.dumps({"alg": "ES256", "kid": "p256"}).encode())
    body = json.dumps(claims()).replace(f'"exp": {T + 60}', '"exp": NaN')
    assert "NaN" in body
    data = f"{head}.{b64(body.encode())}"
    token = f"{data}.{b64(raw_signature(P256, 'ES256', data.encode()))}"
    refused(method().verify(record, token, now=NOW), "method.failed.claims")


def test_the_challenge_subject_must_be_the_record_subject() -> None:
    record = enrolled(ec_jwk(P256, "p256"))
    token = sign(P256, claims(), alg="ES256", kid="p256")
    refused(
        method().verify(record, token, now=NOW, context=Context(subject="agent-8")),
        "method.failed.subject",
    )
    # an assertion naming another subject, on that subject's challenge, with my key
    theirs = sign(P256, claims(iss="agent-8", sub="agent-8"), alg="ES256", kid="p256")
    refused(
        method().verify(record, theirs, now=NOW, context=Context(subject="agent-8")),
        "method.failed.subject",
    )


def test_the_kid_must_name_a_registered_key() -> None:
    two = enrolled(ec_jwk(P256, "p256"), rsa_jwk(RSA, "rsa"))
    one = enrolled(ec_jwk(P256, "p256"))
    m = method()
    for record, kid in ((two, "nope"), (two, None), (one, "nope"), (one, 7), (one, "")):
        token = sign(P256, claims(), alg="ES256", kid=kid)
        refused(m.verify(record, token, now=NOW), "method.failed.key")


def hmac_token(secret: bytes, kid: str) -> str:
    """HS256 with a public key as the secret: the classic algorithm confusion."""
    head = b64(json.dumps({"alg": "HS256", "kid": kid}).encode())
    data = f"{head}.{b64(json.dumps(claims()).encode())}"
    return f"{data}.{b64(hmac.new(secret, data.encode(), hashlib.sha256).digest())}"


def none_token(kid: str) -> str:
    head = b64(json.dumps({"alg": "none", "kid": kid}).encode())
    return f"{head}.{b64(json.dumps(claims()).encode())}."


def test_the_token_never_chooses_the_algorithm() -> None:
    record = enrolled(rsa_jwk(RSA, "rsa"), ec_jwk(P256, "p256"), okp_jwk(ED, "ed"))
    public_pem = RSA.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    m = method()
    for token in (
        hmac_token(public_pem, "rsa"),
        hmac_token(json.dumps(record.keys[0]).encode(), "rsa"),
        none_token("rsa"),
        none_token("p256"),
        # RS256 claimed for the EC key (signed with the RSA key), ES256 for the RSA key
        sign(RSA, claims(), alg="RS256", kid="p256"),
        sign(P256, claims(), alg="ES256", kid="rsa"),
        # another algorithm of the right key type than the one pinned
        sign(RSA, claims(), alg="PS256", kid="rsa"),
        sign(ED, claims(), alg="Ed25519", kid="ed"),
        # the header's alg missing, or not a string
        sign(P256, claims(), alg=None, kid="p256", sign_as="ES256"),
        sign(P256, claims(), alg=["ES256"], kid="p256", sign_as="ES256"),
        # headers that change how the token is read
        sign(P256, claims(), alg="ES256", kid="p256", crit=["exp"]),
        sign(P256, claims(), alg="ES256", kid="p256", b64=False),
    ):
        refused(m.verify(record, token, now=NOW), "method.failed.algorithm")


def test_an_embedded_key_is_never_used() -> None:
    record = enrolled(ec_jwk(P256, "p256"))
    token = sign(OTHER_P256, claims(), alg="ES256", kid="p256", jwk=ec_jwk(OTHER_P256, "p256"))
    refused(method().verify(record, token, now=NOW), "method.failed.signature")


def test_a_signature_by_another_key_or_over_other_bytes_fails() -> None:
    record = enrolled(rsa_jwk(RSA, "rsa"), ec_jwk(P256, "p256"), okp_jwk(ED, "ed"))
    m = method()
    other_ed = ed25519.Ed25519PrivateKey.generate()
    for token in (
        sign(OTHER_RSA, claims(), alg="RS256", kid="rsa"),
        sign(OTHER_P256, claims(), alg="ES256", kid="p256"),
        sign(other_ed, claims(), alg="EdDSA", kid="ed"),
    ):
        refused(m.verify(record, token, now=NOW), "method.failed.signature")
    good = sign(P256, claims(), alg="ES256", kid="p256")
    head, _body, sig = good.split(".")
    swapped = f"{head}.{b64(json.dumps(claims(sub=SUBJECT)).encode())}.{sig}"
    refused(m.verify(record, swapped, now=NOW), "method.failed.signature")
    for bad_sig in ("", "AAAA", sig[:-4], b64(b"\x00" * 64)):
        refused(m.verify(record, f"{head}.{_body}.{bad_sig}", now=NOW), "method.failed.signature")


@pytest.mark.parametrize(
    "proof",
    [
        None,
        42,
        b"a.b.c",
        {"alg": "ES256"},
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "..",
        ".e30.",
        "e30..",
        "e30.e30.c+d",
        "e30.e30.c/d",
        "e30.e30.c=",
        "e30 .e30.c",
        "bm90IGpzb24.e30.AAAA",  # "not json"
        "W10.e30.AAAA",  # a JSON list
        "e30.W10.AAAA",
        "e30.e.AAAA",
        "e30.e30.A",
        "é30.e30.AAAA",
        "e30.e30." + "A" * 8188,
    ],
)
def test_malformed_assertions_are_clear_errors(proof: object) -> None:
    record = enrolled(ec_jwk(P256, "p256"))
    with pytest.raises(ProofError, match="client assertion") as raised:
        method().verify(record, proof, now=NOW)
    assert raised.value.code == "method.proof.malformed"
    if isinstance(proof, str) and len(proof) > 3:
        assert proof not in raised.value.message


def test_an_unreadable_stored_key_is_a_state_error() -> None:
    record = enrolled(ec_jwk(P256, "p256"))
    broken = msgspec.structs.replace(record, keys=({**record.keys[0], "x": "AAAA"},))
    token = sign(P256, claims(), alg="ES256", kid="p256")
    with pytest.raises(StateError) as raised:
        method().verify(broken, token, now=NOW)
    assert raised.value.code == "method.record.invalid"
    odd = msgspec.structs.replace(record, keys=({**record.keys[0], "kty": "oct"},))
    with pytest.raises(StateError):
        method().verify(odd, token, now=NOW)
    # a record whose pinned alg was changed to HMAC still never verifies HMAC
    hmac_pinned = msgspec.structs.replace(record, keys=({**record.keys[0], "alg": "HS256"},))
    secret = json.dumps(record.keys[0]).encode()
    with pytest.raises(StateError, match="algorithm not accepted"):
        method().verify(hmac_pinned, hmac_token(secret, "p256"), now=NOW)


def test_verification_needs_an_aware_time() -> None:
    record = enrolled(ec_jwk(P256, "p256"))
    token = sign(P256, claims(), alg="ES256", kid="p256")
    with pytest.raises(ValueError, match="timezone-aware"):
        method().verify(record, token, now=NOW.replace(tzinfo=None))
