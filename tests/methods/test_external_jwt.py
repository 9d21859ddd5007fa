"""External JWTs: pinned algorithms, the issuer's keys, claims, and what the token proves."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from juncture.methods import Context
from juncture.methods.base import PUBLIC_FAILURE, ConfigError, ProofError
from juncture.methods.external_jwt import ExternalJwt

from .conftest import NOW, make
from .issuer import (
    AUDIENCE,
    EC_KEY,
    ISSUER,
    NEW_EC,
    OTHER_EC,
    RSA_KEY,
    b64,
    claims,
    hmac_with_public_key,
    jwks,
    sign,
    sign_raw,
    unsigned,
)

T = int(NOW.timestamp())


def idp(aal: int = 3, **options: Any) -> ExternalJwt:
    base = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "algorithms": ["ES256", "RS256"],
        "jwks": jwks(EC_KEY, RSA_KEY),
    }
    return make("external_jwt", name="okta", aal=aal, **{**base, **options})


def refused(result: Any, code: str) -> None:
    assert (result.ok, result.code, result.message) == (False, code, PUBLIC_FAILURE)
    assert result.proof is None and result.claims == {}


# -- success and what it proves -----------------------------------------------------------------


def test_a_valid_token_proves_its_amr_and_time() -> None:
    token = sign(claims(NOW, amr=["pwd"], auth_time=T - 120, acr="urn:basic"))
    result = idp().verify(None, token, now=NOW, context=Context(subject="u1"))
    assert result.ok and result.code == "ok"
    proof = result.proof
    assert (proof.method, proof.kind, proof.aal, proof.amr) == ("okta", "external_jwt", 1, ("pwd",))
    assert proof.at == NOW - timedelta(minutes=2) and proof.acr == "urn:basic"
    assert result.claims["sub"] == "u1"


def test_rs256_with_the_rsa_key() -> None:
    result = idp().verify(None, sign(claims(NOW), key=RSA_KEY), now=NOW)
    assert result.ok and result.proof.at == NOW  # no auth_time: iat


@pytest.mark.parametrize(
    ("amr", "acr", "journey_aal", "expected"),
    [
        (["pwd"], None, 3, 1),
        (["pwd", "mfa"], None, 3, 2),
        (["hwk"], None, 3, 2),
        (["pwd", "otp", "mfa"], None, 1, 1),  # the journey's aal caps it
        (["pwd"], "urn:example:mfa", 3, 2),  # the acr mapping wins over amr
        (["pwd", "mfa"], "urn:example:phr", 3, 3),
        (["pwd", "mfa"], "urn:example:phr", 2, 2),
        (["pwd", "mfa"], "urn:example:weak", 3, 1),
        ([], "urn:unknown", 3, 1),
    ],
)
def test_aal_from_acr_mapping_or_amr(
    amr: list[str], acr: str | None, journey_aal: int, expected: int
) -> None:
    method = idp(
        aal=journey_aal, acr_aal={"urn:example:mfa": 2, "urn:example:phr": 3, "urn:example:weak": 1}
    )
    result = method.verify(None, sign(claims(NOW, amr=amr, acr=acr)), now=NOW)
    assert result.ok and result.proof.aal == expected


def test_an_auth_time_in_the_future_counts_as_now() -> None:
    result = idp().verify(None, sign(claims(NOW, auth_time=T + 30)), now=NOW)
    assert result.proof.at == NOW


def test_a_key_set_file_and_several_issuers(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(EC_KEY)))
    method = make(
        "external_jwt",
        issuers=[
            {
                "issuer": ISSUER,
                "audience": [AUDIENCE, "other"],
                "algorithms": ["ES256"],
                "jwks_file": str(path),
            },
            {
                "issuer": "https://ci.example",
                "audience": "deploy",
                "algorithms": ["RS256"],
                "jwks": jwks(RSA_KEY),
                "subject_claim": "repository",
            },
        ],
    )
    assert method.verify(None, sign(claims(NOW, aud="other")), now=NOW).ok
    ci = claims(NOW, iss="https://ci.example", aud="deploy", repository="org/app", sub=None)
    result = method.verify(None, sign(ci, key=RSA_KEY), now=NOW, context=Context(subject="org/app"))
    assert result.ok
    # each issuer's keys alone: the CI issuer's claims signed with the IdP's key fail
    refused(method.verify(None, sign(ci, key=EC_KEY), now=NOW), "method.failed.algorithm")


def test_the_amr_option_overrides_the_tokens_values() -> None:
    result = idp(amr=["fed"]).verify(None, sign(claims(NOW, amr=["pwd"])), now=NOW)
    assert result.proof.amr == ("fed",)


# -- forgeries ----------------------------------------------------------------------------------


def test_an_unsigned_alg_none_token_is_refused() -> None:
    refused(idp().verify(None, unsigned(claims(NOW)), now=NOW), "method.failed.algorithm")
    refused(
        idp().verify(None, unsigned(claims(NOW), alg="None"), now=NOW), "method.failed.algorithm"
    )


@pytest.mark.parametrize(
    "secret",
    [
        RSA_KEY.as_pem(private=False),
        json.dumps(RSA_KEY.as_dict(private=False)).encode(),
        RSA_KEY.as_der(private=False),
    ],
    ids=["pem", "jwk", "der"],
)
def test_hmac_signed_with_the_public_key_is_refused(secret: bytes) -> None:
    forged = hmac_with_public_key(claims(NOW), secret)
    refused(idp().verify(None, forged, now=NOW), "method.failed.algorithm")
    # an operator who pins the victim's alg still gets a failed signature, not a pass
    relabelled = forged.split(".")
    relabelled[0] = b64(json.dumps({"alg": "RS256", "kid": "rsa1"}).encode())
    refused(idp().verify(None, ".".join(relabelled), now=NOW), "method.failed.signature")


def test_a_signature_by_another_key_is_refused() -> None:
    refused(idp().verify(None, sign(claims(NOW), key=OTHER_EC), now=NOW), "method.failed.signature")


def test_a_tampered_payload_is_refused() -> None:
    token = sign(claims(NOW, sub="u1")).split(".")
    token[1] = b64(json.dumps(claims(NOW, sub="admin")).encode())
    refused(idp().verify(None, ".".join(token), now=NOW), "method.failed.signature")


def test_a_key_embedded_in_the_token_is_never_used() -> None:
    header = {"jwk": OTHER_EC.as_dict(private=False), "kid": None}
    refused(
        idp().verify(None, sign(claims(NOW), key=OTHER_EC, **header), now=NOW),
        "method.failed.signature",
    )


def test_unknown_kid_wrong_key_type_and_unpinned_alg() -> None:
    refused(idp().verify(None, sign(claims(NOW), key=NEW_EC), now=NOW), "method.failed.key")
    only_rsa = idp(jwks=jwks(RSA_KEY))
    refused(only_rsa.verify(None, sign(claims(NOW), key=EC_KEY), now=NOW), "method.failed.key")
    es_only = idp(algorithms=["ES256"])
    refused(
        es_only.verify(None, sign(claims(NOW), key=RSA_KEY), now=NOW), "method.failed.algorithm"
    )
    refused(
        idp().verify(None, sign(claims(NOW), key=RSA_KEY, alg="PS256"), now=NOW),
        "method.failed.algorithm",
    )


def test_crit_and_typ_headers() -> None:
    good = sign_raw({"alg": "ES256", "kid": "ec1"}, claims(NOW))
    assert idp().verify(None, good, now=NOW).ok  # the hand signer is right
    crit = sign_raw({"alg": "ES256", "kid": "ec1", "crit": ["x-bind"], "x-bind": 1}, claims(NOW))
    refused(idp().verify(None, crit, now=NOW), "method.failed.algorithm")
    detached = sign_raw({"alg": "ES256", "kid": "ec1", "b64": False, "crit": ["b64"]}, claims(NOW))
    refused(idp().verify(None, detached, now=NOW), "method.failed.algorithm")
    typed = idp(types=["at+jwt"])
    refused(typed.verify(None, sign(claims(NOW)), now=NOW), "method.failed.algorithm")
    assert typed.verify(None, sign(claims(NOW), typ="at+jwt"), now=NOW).ok
    assert typed.verify(None, sign(claims(NOW), typ="application/at+jwt"), now=NOW).ok


# -- claims -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"aud": "https://other.example"}, "method.failed.audience"),
        ({"aud": ["a", "b"]}, "method.failed.audience"),
        ({"aud": None}, "method.failed.audience"),
        ({"iss": "https://evil.example"}, "method.failed.issuer"),
        ({"iss": None}, "method.failed.issuer"),
        ({"exp": T - 60}, "method.failed.expired"),  # the default leeway is 60 s
        ({"exp": T - 3600}, "method.failed.expired"),
        ({"exp": None}, "method.failed.claims"),
        ({"exp": "tomorrow"}, "method.failed.claims"),
        ({"exp": True}, "method.failed.claims"),
        ({"exp": 1e300}, "method.failed.claims"),
        ({"nbf": T + 61}, "method.failed.not_yet_valid"),
        ({"iat": T + 61}, "method.failed.not_yet_valid"),
        ({"sub": None}, "method.failed.claims"),
        ({"sub": 42}, "method.failed.claims"),
        ({"acr": 2}, "method.failed.claims"),
        ({"amr": "pwd"}, "method.failed.claims"),
        ({"auth_time": "x"}, "method.failed.claims"),
    ],
)
def test_claim_refusals(extra: dict[str, Any], code: str) -> None:
    refused(idp().verify(None, sign(claims(NOW, **extra)), now=NOW), code)


def test_the_leeway_forgives_small_clock_skew() -> None:
    method = idp(leeway="30s")
    assert method.verify(None, sign(claims(NOW, exp=T - 29)), now=NOW).ok
    assert method.verify(None, sign(claims(NOW, nbf=T + 29, iat=T + 29)), now=NOW).ok
    refused(method.verify(None, sign(claims(NOW, exp=T - 30)), now=NOW), "method.failed.expired")


def test_subject_and_nonce() -> None:
    token = sign(claims(NOW, nonce="n-123"))
    refused(
        idp().verify(None, token, now=NOW, context=Context(subject="u2")), "method.failed.subject"
    )
    assert idp().verify(None, token, now=NOW, context=Context(nonce="n-123")).ok
    refused(
        idp().verify(None, token, now=NOW, context=Context(nonce="n-999")), "method.failed.nonce"
    )
    no_nonce = sign(claims(NOW))
    refused(
        idp().verify(None, no_nonce, now=NOW, context=Context(nonce="n-1")), "method.failed.nonce"
    )
    with pytest.raises(ValueError, match="nonce"):
        idp(require_nonce=True).verify(None, token, now=NOW)


@pytest.mark.parametrize(
    "proof",
    [
        None,
        "",
        42,
        b"a.b.c",
        "a.b",
        "a.b.c.d.e",
        "!!.??.##",
        f"{b64(b'not json')}.{b64(b'{}')}.",
        f"{b64(b'[]')}.{b64(b'{}')}.",
        f"{b64(b'{}')}.{b64(b'[1]')}.",
        "x" * 20000,
        f"{b64(b'{}')}=.{b64(b'{}')}.",
        "é.b.c",
    ],
)
def test_malformed_tokens_are_clear_errors(proof: object) -> None:
    with pytest.raises(ProofError) as caught:
        idp().verify(None, proof, now=NOW)
    assert caught.value.code == "method.proof.malformed"


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "code", "text"),
    [
        ({}, "method.config.missing_option", "issuer"),
        (
            {"issuer": ISSUER, "algorithms": ["ES256"], "jwks": jwks(EC_KEY)},
            "method.config.missing_option",
            "audience",
        ),
        (
            {"issuer": ISSUER, "audience": "a", "algorithms": ["none"], "jwks": jwks(EC_KEY)},
            "method.config.value",
            "none",
        ),
        (
            {"issuer": ISSUER, "audience": "a", "algorithms": ["HS256"], "jwks": jwks(EC_KEY)},
            "method.config.value",
            "HS256",
        ),
        (
            {"issuer": ISSUER, "audience": "a", "algorithms": ["EdDSA"], "jwks": jwks(EC_KEY)},
            "method.config.value",
            "EdDSA",
        ),
        ({"issuer": ISSUER, "audience": "a"}, "method.config.missing_option", "jwks"),
        (
            {"issuer": ISSUER, "audience": "a", "jwks": jwks(EC_KEY), "jwks_uri": "https://x/j"},
            "method.config.value",
            "exactly one",
        ),
        (
            {"issuer": ISSUER, "audience": "a", "jwks_uri": "http://idp.example.com/jwks"},
            "method.config.value",
            "https",
        ),
        (
            {"issuer": ISSUER, "audience": "a", "jwks_file": "/nonexistent/jwks.json"},
            "method.config.value",
            "cannot be read",
        ),
        (
            {"issuer": ISSUER, "audience": "a", "jwks": {"keys": [{"kty": "oct", "k": "AAAA"}]}},
            "method.config.value",
            "no usable public key",
        ),
        (
            {"issuer": ISSUER, "audience": "a", "jwks": jwks(EC_KEY), "acr_aal": {"x": 4}},
            "method.config.value",
            "acr_aal",
        ),
        (
            {"issuer": ISSUER, "audience": "a", "jwks": jwks(EC_KEY), "leeway": "10m"},
            "method.config.value",
            "leeway",
        ),
        (
            {"issuer": ISSUER, "audience": "a", "jwks": jwks(EC_KEY), "leeway": 1.5},
            "method.config.type",
            "leeway",
        ),
        (
            {"issuer": ISSUER, "audience": "a", "jwks": jwks(EC_KEY), "audiences": ["a"]},
            "method.config.unknown_option",
            "`audience`",
        ),
        ({"issuer": ISSUER, "issuers": [{"issuer": "x"}]}, "method.config.value", "not both"),
        ({"issuers": "x"}, "method.config.type", "issuers"),
        (
            {"issuers": [{"issuer": "x", "audience": "a", "jwks": jwks(EC_KEY)}] * 2},
            "method.config.value",
            "twice",
        ),
        (
            {"issuers": [{"issuer": "x", "audience": "a", "jwks": jwks(EC_KEY), "bogus": 1}]},
            "method.config.unknown_option",
            "bogus",
        ),
    ],
)
def test_configuration_errors(options: dict[str, Any], code: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make("external_jwt", name="okta", **options)
    assert caught.value.code == code, caught.value.message
    assert text in caught.value.message
