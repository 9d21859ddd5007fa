"""A test transmitter that owes nothing to joserfc: SETs signed by hand with `cryptography`.

RS256 is RSA PKCS#1 v1.5 over SHA-256; ES256 is ECDSA P-256 whose DER signature is turned into
the raw ``r || s`` JWS wants (RFC 7518 §3.4). Header and claims are base64url JSON, written
here, so any header an attacker might write can be written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from juncture.events.set import TransmitterConfig
from juncture.jose import KeySource

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
ISSUER = "https://idp.example.com/"
AUDIENCE = "https://pdp.example.com/ssf"
SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"

# RSA key generation is slow: one set of keys for the whole run.
RSA_KEY = rsa.generate_private_key(65537, 2048)
OTHER_RSA = rsa.generate_private_key(65537, 2048)
SMALL_RSA = rsa.generate_private_key(65537, 1024)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC = ec.generate_private_key(ec.SECP256R1())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


def _uint(number: int, size: int | None = None) -> str:
    size = size or (number.bit_length() + 7) // 8
    return b64(number.to_bytes(size, "big"))


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "n": _uint(numbers.n), "e": _uint(numbers.e), **extra}


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "kid": kid,
        "x": _uint(numbers.x, 32),
        "y": _uint(numbers.y, 32),
        **extra,
    }


def sign_rs256(header: dict[str, Any], claims: dict[str, Any], key: Any = RSA_KEY) -> str:
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def sign_es256(header: dict[str, Any], claims: dict[str, Any], key: Any = EC_KEY) -> str:
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def sign_hs256_with_public_key(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """The classic confusion: the RSA public key (PEM) used as an HMAC secret."""
    secret = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64json(header)}.{b64json(claims)}."


def header(alg: str = "RS256", kid: str | None = "rsa1", **extra: Any) -> dict[str, Any]:
    head: dict[str, Any] = {"typ": "secevent+jwt", "alg": alg, **extra}
    if kid is not None:
        head["kid"] = kid
    return head


def claims(**override: Any) -> dict[str, Any]:
    """A good session-revoked SET's claims; ``None`` removes a claim."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "jti": "4f8a1c",
        "iat": int(NOW.timestamp()) - 10,
        "aud": AUDIENCE,
        "txn": "risk-2026-0042",
        "sub_id": {
            "format": "complex",
            "user": {"format": "iss_sub", "iss": ISSUER, "sub": "alice"},
            "session": {"format": "opaque", "id": "s-7f3"},
        },
        "events": {
            SESSION_REVOKED: {
                "event_timestamp": int(NOW.timestamp()) - 20,
                "initiating_entity": "policy",
                "reason_admin": {"en": "Impossible travel: DE->SG in 20 min"},
            }
        },
    }
    base.update(override)
    return {k: v for k, v in base.items() if v is not None}


def jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(keys)}


def config(
    *keys: dict[str, Any],
    algorithms: tuple[str, ...] = ("RS256", "ES256"),
    **options: Any,
) -> TransmitterConfig:
    """A transmitter whose keys are the given JWKs (default: the RSA and EC test keys)."""
    found = keys or (rsa_jwk(RSA_KEY, "rsa1"), ec_jwk(EC_KEY, "ec1"))
    return TransmitterConfig(
        issuer=ISSUER,
        audiences=(AUDIENCE,),
        algorithms=algorithms,
        keys=KeySource(inline=jwks(*found)),
        **options,
    )


def ago(**delta: float) -> int:
    return int((NOW - timedelta(**delta)).timestamp())


def ahead(**delta: float) -> int:
    return int((NOW + timedelta(**delta)).timestamp())
