"""Client assertions: a service or agent proves possession of a private key by signing a JWT.

This is the ``private_key_jwt`` client authentication of OpenID Connect Core §9 and RFC 7523
§2.2, for subjects that are not people. Enrollment registers the subject's public keys (a
JWK Set); the private keys never leave the client, and a private or symmetric key sent to
enrollment is refused rather than stored.

Accepted keys and algorithms, pinned per key at enrollment (RFC 8725 §3.1):

| key | ``alg`` |
|---|---|
| RSA, 2048..8192 bits | ``RS256`` (the default) or ``PS256`` |
| EC P-256 | ``ES256`` |
| EC P-384 | ``ES384`` |
| OKP Ed25519 | ``EdDSA`` (the default) or ``Ed25519`` (RFC 9864's name) |

Verification of an assertion (a compact JWS of at most 8192 characters):

- The header's ``kid`` picks the registered key (with one key, it may be absent), and the
  header's ``alg`` must be the one pinned for that key: the token never chooses the
  algorithm, so ``none``, HMAC with a public key as the secret, or RS256 against an EC key
  never verify. ``crit`` and ``b64`` headers are refused; keys embedded in the header
  (``jwk``, ``jku``, ``x5c``) are never used. The signature is checked with joserfc.
- ``iss`` and ``sub`` are the subject (and `Context.subject` when given); ``aud`` (a string
  or a list) names the configured audience; ``exp`` and ``iat`` are required, checked
  against ``now`` with the leeway, and ``exp - iat`` is at most ``max_lifetime``; ``nbf`` is
  honoured when present; ``jti`` is a string of 1..256 characters.
- Replay: the record keeps the ``jti`` of every accepted assertion with its ``exp`` until
  ``exp`` plus the leeway has passed (by then the assertion itself is refused as expired,
  so forgetting its ``jti`` is safe). A ``jti`` already there fails with
  ``method.failed.replay``.

A success returns the record with the new ``jti`` (and expired ones pruned), to store. The
service writes it at the revision it read (optimistic concurrency): of two requests racing
with the same assertion, one write wins and the other verification is retried against the
new record, or fails. That write, not this module, is what makes a ``jti`` single-use across
concurrent requests and servers.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Self

import msgspec
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from juncture.jose import json_segment
from juncture.methods.base import (
    NO_CONTEXT,
    ConfigError,
    Context,
    Enrollment,
    EnrollmentError,
    Environment,
    MethodKind,
    Options,
    Proof,
    ProofError,
    Result,
    StateError,
    default_amr,
    duration_option,
    failure,
    parse_options,
    require_aware,
)
from juncture.methods.tokens import Refused
from juncture.policy.kinds import built_in

MAX_ASSERTION = 8192
MAX_KEYS = 10
MAX_KID = 128
MAX_JTI = 256
#: Unexpired ``jti`` values a record keeps at most (see `ClientAssertion.verify`).
MAX_USED = 10_000
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192

#: (kty, crv) -> the algorithms a key of that type may be pinned to; the first is the default.
ALGORITHMS: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("RSA", None): ("RS256", "PS256"),
    ("EC", "P-256"): ("ES256",),
    ("EC", "P-384"): ("ES384",),
    ("OKP", "Ed25519"): ("EdDSA", "Ed25519"),
}
#: The public members kept per key type (with ``kid`` and ``alg``); everything else is dropped.
_PUBLIC = {"RSA": ("kty", "n", "e"), "EC": ("kty", "crv", "x", "y"), "OKP": ("kty", "crv", "x")}
#: Members only a private or symmetric JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: ``EdDSA`` with an Ed25519 key is exactly ``Ed25519`` (RFC 9864 §2); joserfc warns about the
#: old name, so the signature is checked with the new one. The pinned name is what counts.
_VERIFY_AS = {"EdDSA": "Ed25519"}
_REFUSED_HEADERS = ("crit", "b64")
_PART = re.compile(r"[A-Za-z0-9_-]*")
_SHAPE = (
    f"a client assertion must be a compact JWS (three base64url parts separated by dots) "
    f"of at most {MAX_ASSERTION} characters"
)
PublicKey = RSAKey | ECKey | OKPKey


class ClientAssertionOptions(Options, frozen=True, kw_only=True, forbid_unknown_fields=True):
    audience: str | None = None
    max_lifetime: int | str = "5m"
    leeway: int | str = "60s"


class AssertionKeysRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A subject's registered public keys and the replay cache of accepted assertions.

    ``keys`` are public JWKs, each with ``kid`` and the pinned ``alg``. ``used`` maps the
    ``jti`` of each accepted, not yet expired assertion to its ``exp`` (epoch seconds).
    """

    subject: str
    keys: tuple[dict[str, Any], ...]
    used: dict[str, int] = {}
    created_at: datetime


class AssertionKeysShown(msgspec.Struct, frozen=True, kw_only=True):
    """Shown at enrollment: the key ids registered (nothing secret was made)."""

    kids: tuple[str, ...]


class ClientAssertion:
    """A JWT the client signed with its own private key (``private_key_jwt``)."""

    kind: ClassVar[str] = "client_assertion"

    def __init__(
        self,
        *,
        name: str,
        aal: int,
        options: ClientAssertionOptions,
        audience: str,
        max_lifetime: int,
        leeway: int,
    ) -> None:
        self.name = name
        self.aal = aal
        self.amr = options.amr if options.amr is not None else default_amr(self.kind)
        self.options = options
        self.audience = audience
        self.max_lifetime = max_lifetime
        self.leeway = leeway

    @classmethod
    def configure(
        cls, *, name: str, aal: int, options: Mapping[str, Any], env: Environment
    ) -> Self:
        opts = parse_options(name, cls.kind, options, ClientAssertionOptions)
        audience = opts.audience
        if audience is None:
            default = env.defaults.get(cls.kind, {}).get("audience")
            audience = default if isinstance(default, str) else None
        if audience is None:
            raise ConfigError(
                f"method `{name}` (kind `{cls.kind}`): option `audience` is required (in the "
                "journey or the server's defaults for the kind)",
                code="method.config.missing_option",
            )
        if not audience:
            raise ConfigError(f"method `{name}`: option `audience` must not be empty")
        max_lifetime = duration_option(name, "max_lifetime", opts.max_lifetime)
        if max_lifetime > 3600:
            raise ConfigError(f"method `{name}`: option `max_lifetime` must be at most 1h")
        leeway = duration_option(name, "leeway", opts.leeway)
        if leeway > 300:
            raise ConfigError(f"method `{name}`: option `leeway` must be at most 5m")
        return cls(
            name=name,
            aal=aal,
            options=opts,
            audience=audience,
            max_lifetime=max_lifetime,
            leeway=leeway,
        )

    def enroll(
        self, *, subject: str, jwks: object, now: datetime
    ) -> Enrollment[AssertionKeysRecord, AssertionKeysShown]:
        """Register a JWK Set of 1..10 public keys (replacing earlier keys is the caller's).

        Raises:
            EnrollmentError: the set or one of its keys is refused; the message says which
                key and why, and never repeats key material.
        """
        require_aware(now)
        if not subject:
            raise EnrollmentError("client assertion keys need a subject")
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise EnrollmentError("the keys must be a JWK Set: an object with a `keys` list")
        listed = jwks["keys"]
        if not 1 <= len(listed) <= MAX_KEYS:
            raise EnrollmentError(f"a JWK Set must hold 1..{MAX_KEYS} keys, not {len(listed)}")
        keys: list[dict[str, Any]] = []
        for index, jwk in enumerate(listed):
            key = _public_jwk(index, jwk)
            if any(k["kid"] == key["kid"] for k in keys):
                raise EnrollmentError(f"key {index}: `kid` `{key['kid']}` is used twice")
            keys.append(key)
        record = AssertionKeysRecord(subject=subject, keys=tuple(keys), created_at=now)
        return Enrollment(
            record=record, shown=AssertionKeysShown(kids=tuple(k["kid"] for k in keys))
        )

    def verify(
        self,
        record: AssertionKeysRecord,
        proof: object,
        *,
        now: datetime,
        context: Context = NO_CONTEXT,
    ) -> Result[AssertionKeysRecord]:
        """Verify an assertion; the record comes back with its ``jti`` remembered.

        Raises:
            ProofError: the proof is not a compact JWS with JSON header and payload.
            StateError: a stored key cannot be read.
        """
        require_aware(now)
        header, claims, signing_input, signature = _split(proof)
        if context.subject is not None and context.subject != record.subject:
            return failure("method.failed.subject")
        if any(name in header for name in _REFUSED_HEADERS):
            return failure("method.failed.algorithm")
        stored = _pick(record.keys, header.get("kid"))
        if stored is None:
            return failure("method.failed.key")
        pinned = stored.get("alg")
        if header.get("alg") != pinned or not isinstance(pinned, str):
            return failure("method.failed.algorithm")
        if not _signed(stored, pinned, signing_input, signature):
            return failure("method.failed.signature")
        # the payload is now known to be signed: check its claims
        clock = now.timestamp()
        try:
            exp = _check_claims(
                claims,
                subject=record.subject,
                audience=self.audience,
                now=clock,
                leeway=self.leeway,
                max_lifetime=self.max_lifetime,
            )
        except Refused as refused:
            return failure(refused.code)
        jti: str = claims["jti"]

        # replay: forget what has expired (an expired assertion is refused anyway), then look
        used = {j: e for j, e in record.used.items() if e + self.leeway >= clock}
        if jti in used:
            return failure("method.failed.replay")
        if len(used) >= MAX_USED:
            # The cache is bounded so a record stays small: a client sending more than
            # MAX_USED assertions within max_lifetime (5m by default: over 30 a second) is
            # refused until old ones expire, rather than growing the record without limit.
            return failure("method.failed.cache_full")
        used[jti] = math.ceil(exp)
        updated = msgspec.structs.replace(record, used=used)
        proof_ = Proof(method=self.name, kind=self.kind, aal=self.aal, amr=self.amr, at=now)
        return Result(ok=True, code="ok", record=updated, proof=proof_)


def _public_jwk(index: int, jwk: object) -> dict[str, Any]:
    """One enrolled key checked, imported with joserfc and reduced to its public members."""
    where = f"key {index}"
    if not isinstance(jwk, dict):
        raise EnrollmentError(f"{where}: a JWK must be an object")
    kty = jwk.get("kty")
    if kty == "oct":
        raise EnrollmentError(f"{where}: symmetric (`oct`) keys are refused: register a public key")
    if not isinstance(kty, str) or kty not in _PUBLIC:
        raise EnrollmentError(f"{where}: `kty` must be `RSA`, `EC` or `OKP`")
    if _PRIVATE.intersection(jwk):
        raise EnrollmentError(
            f"{where}: this is a private key; register only its public part (and keep the "
            "private key where it was made)"
        )
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not 1 <= len(kid) <= MAX_KID or not kid.isprintable():
        raise EnrollmentError(f"{where}: `kid` must be a string of 1..{MAX_KID} characters")
    if jwk.get("use", "sig") != "sig":
        raise EnrollmentError(f"{where}: `use` must be `sig`")
    crv = jwk.get("crv") if kty != "RSA" else None
    allowed = ALGORITHMS.get((kty, crv if isinstance(crv, str) else None))
    if allowed is None:
        raise EnrollmentError(f"{where}: `crv` must be P-256 or P-384 (EC) or Ed25519 (OKP)")
    alg = jwk.get("alg", allowed[0])
    if alg not in allowed:
        raise EnrollmentError(f"{where}: `alg` must be one of {', '.join(allowed)} for this key")
    if kty == "RSA":
        # checked before joserfc sees the key: it only warns about small ones
        bits = _bits(jwk.get("n"))
        if bits is None:
            raise EnrollmentError(f"{where}: not a valid RSA public key")
        if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
            raise EnrollmentError(
                f"{where}: an RSA key must have {MIN_RSA_BITS}..{MAX_RSA_BITS} bits, not {bits}"
            )
    members = {m: jwk.get(m) for m in _PUBLIC[kty]}
    try:
        key = _import(members)
    except (JoseError, ValueError, TypeError):
        raise EnrollmentError(f"{where}: not a valid {kty} public key") from None
    public = key.as_dict(private=False)
    return {**{m: public[m] for m in _PUBLIC[kty]}, "kid": kid, "alg": alg}


def _bits(modulus: object) -> int | None:
    """The size of an RSA modulus given as base64url, None when it is not one."""
    if not isinstance(modulus, str) or not modulus or not _PART.fullmatch(modulus):
        return None
    try:
        return int.from_bytes(_b64(modulus), "big").bit_length()
    except (ValueError, binascii.Error):
        return None


def _import(members: Mapping[str, Any]) -> PublicKey:
    kty = members.get("kty")
    key: PublicKey
    if kty == "RSA":
        key = RSAKey.import_key(dict(members))
    elif kty == "EC":
        key = ECKey.import_key(dict(members))
    elif kty == "OKP":
        key = OKPKey.import_key(dict(members))
    else:
        raise ValueError("unsupported key type")
    if key.is_private:
        raise ValueError("a private key")
    return key


def _pick(keys: tuple[dict[str, Any], ...], kid: object) -> dict[str, Any] | None:
    """The registered key the header's ``kid`` names; with one key, a missing kid is that key."""
    if kid is None:
        return keys[0] if len(keys) == 1 else None
    if not isinstance(kid, str):
        return None
    return next((key for key in keys if key.get("kid") == kid), None)


def _signed(stored: Mapping[str, Any], alg: str, signing_input: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the pinned algorithm's signature by the stored key."""
    kty = stored.get("kty")
    if not isinstance(kty, str) or kty not in _PUBLIC:
        raise StateError("a stored client assertion key cannot be read")
    try:
        key = _import({m: stored.get(m) for m in _PUBLIC[kty]})
    except (JoseError, ValueError, TypeError):
        raise StateError("a stored client assertion key cannot be read") from None
    crv = stored.get("crv")
    model = JWSRegistry.algorithms.get(_VERIFY_AS.get(alg, alg))
    if model is None or alg not in ALGORITHMS.get((kty, crv if isinstance(crv, str) else None), ()):
        raise StateError("a stored client assertion key has an algorithm not accepted")
    try:
        model.check_key(key)
        return bool(model.verify(signing_input, signature, key))
    except (JoseError, ValueError, TypeError):
        return False


def _check_claims(
    claims: Mapping[str, Any],
    *,
    subject: str,
    audience: str,
    now: float,
    leeway: int,
    max_lifetime: int,
) -> float:
    """Check the signed claims (times in epoch seconds); return ``exp``.

    Raises:
        Refused: with the ``method.failed.*`` code of the first problem.
    """
    issuer, sub, jti, aud = (
        claims.get("iss"),
        claims.get("sub"),
        claims.get("jti"),
        claims.get("aud"),
    )
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else None
    exp, iat, nbf = _seconds(claims, "exp"), _seconds(claims, "iat"), _seconds(claims, "nbf")
    if (
        not isinstance(issuer, str)
        or not isinstance(sub, str)
        or not isinstance(jti, str)
        or not 1 <= len(jti) <= MAX_JTI
        or audiences is None
        or exp is None
        or iat is None
    ):
        raise Refused("method.failed.claims")
    if issuer != subject or sub != subject:
        raise Refused("method.failed.subject")
    if not any(isinstance(a, str) and a == audience for a in audiences):
        raise Refused("method.failed.audience")
    if not now < exp + leeway:
        raise Refused("method.failed.expired")
    if iat > now + leeway or (nbf is not None and nbf > now + leeway):
        raise Refused("method.failed.not_yet_valid")
    if not 0 <= exp - iat <= max_lifetime:
        raise Refused("method.failed.lifetime")
    return exp


def _seconds(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim in epoch seconds, None when absent.

    Raises:
        Refused: ``method.failed.claims`` when it is not a finite number (a bool, a string,
            NaN or infinity, which every comparison would get wrong).
    """
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Refused("method.failed.claims")
    if not -1e13 < value < 1e13 or not math.isfinite(value):
        raise Refused("method.failed.claims")
    return float(value)


def _split(proof: object) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, claims, signing input and signature of a compact JWS (unverified)."""
    if not isinstance(proof, str) or not 0 < len(proof) <= MAX_ASSERTION:
        raise ProofError(_SHAPE)
    parts = proof.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise ProofError(_SHAPE)
    if not all(_PART.fullmatch(part) for part in parts):
        raise ProofError(_SHAPE)
    header = json_segment(parts[0], "a client assertion")
    claims = json_segment(parts[1], "a client assertion")
    try:
        signature = _b64(parts[2])
    except (ValueError, binascii.Error):
        raise ProofError(_SHAPE) from None
    return header, claims, f"{parts[0]}.{parts[1]}".encode(), signature


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


KIND = MethodKind.of(
    built_in("client_assertion"),
    implementation=ClientAssertion,
    record=AssertionKeysRecord,
    issued_by_admin=True,
)
