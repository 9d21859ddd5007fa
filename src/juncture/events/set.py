"""Security Event Tokens (RFC 8417) as SSF 1.0 profiles them: issue and verify.

A SET is a compact JWS whose header says ``typ: secevent+jwt`` and whose claims are ``iss``,
``jti``, ``iat``, ``aud``, optional ``txn`` and ``toe``, the subject in ``sub_id`` and exactly
one event in ``events`` (the CAEP interoperability profile makes "exactly one" a MUST).
``exp`` and ``sub`` are forbidden (SSF, "Distinguishing SETs from other Kinds of JWTs").
Unknown claims are ignored.

`verify_set` checks a received SET and raises `SetError` whose ``err`` is the RFC 8935
error code a push receiver answers with (``400 {"err", "description"}``) or a poll receiver puts in
``setErrs`` (RFC 8936):

=====================  =====================================================================
err                    when
=====================  =====================================================================
``invalid_request``    larger than ``max_bytes``; not three canonical base64url parts
                       (a JWE is refused); header or claims not JSON objects, or with a
                       repeated key; ``typ`` not ``secevent+jwt`` (case-insensitive,
                       ``application/`` optional); a ``crit`` or ``b64`` header; ``iss``,
                       ``jti``, ``iat``, ``events`` or the subject missing or mistyped;
                       ``aud`` mistyped; ``exp`` or ``sub`` present; ``events`` not exactly
                       one object; ``iat`` more than ``max_future`` ahead or more than
                       ``max_age`` old; ``toe`` not a NumericDate; a malformed subject, or
                       one with a critical member Juncture does not understand
``invalid_key``        ``alg`` not pinned for the transmitter (so never ``none`` or HMAC);
                       an unknown ``kid``; no key of the algorithm's type and curve; an RSA
                       key under 2048 bits; the signature does not verify
``invalid_issuer``     ``iss`` is not the transmitter's issuer
``invalid_audience``   ``aud`` is absent or names none of the audiences accepted
=====================  =====================================================================

Checks run in that order of concern: the token's shape and header, then ``iss``, then the
signature, then every other claim, so nothing but the issuer is judged before the signature
holds. Keys come only from the transmitter's configured key set (``jwks_uri``, a file or
inline, through `juncture.jose.KeySource`); keys named in the token (``jwk``,
``jku``, ``x5u``, ``x5c``) are never used. When the key set cannot be had at all,
`juncture.errors.MethodUnavailable` (503) propagates: the transmitter is not at fault
and should retry.

The subject is ``sub_id``; when it is absent, the legacy ``events.<uri>.subject`` that older
CAEP and RISC transmitters send is read instead (SSF, "Subject Members"). Deduplication by
``jti`` is the caller's: it needs state.

`SetSigner` issues SETs the same way round: RS256 with a 2048-bit key by default (the CAEP
interoperability profile), ES256 or another asymmetric algorithm on request.
"""

from __future__ import annotations

import binascii
import json
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from juncture.errors import ConfigError, JunctureError
from juncture.events.subjects import Subject, SubjectError, dump, parse_subject
from juncture.jose import (
    ALGORITHMS,
    REFUSED_HEADERS,
    IssuerOptions,
    KeySource,
    PrivateKey,
    b64decode,
    build_issuer,
    candidates,
    new_signing_key,
    sign_compact,
    signing_key,
    verify_compact,
)
from juncture.outbound import Fetcher

__all__ = [
    "ERR_CODES",
    "MAX_SET_BYTES",
    "TYP",
    "SecurityEvent",
    "SetError",
    "SetSigner",
    "TransmitterConfig",
    "new_signing_key",
    "public_jwks",
    "verify_set",
]

TYP = "secevent+jwt"
MAX_SET_BYTES = 64 * 1024
#: The codes `SetError.err` takes: the IANA "Security Event Token Error Codes" (RFC 8935) and
#: SSF's ``invalid_state``. `verify_set` raises only the first four; the rest are for the
#: receiver around it (endpoint authentication, authorization, a verification's state).
ERR_CODES = frozenset(
    {
        "invalid_request",
        "invalid_key",
        "invalid_issuer",
        "invalid_audience",
        "authentication_failed",
        "access_denied",
        "invalid_state",
    }
)


class SetError(JunctureError):
    """A SET that is refused; ``err`` is the RFC 8935 code, ``description`` says why.

    Not a `Refusal`: it is answered in RFC 8935's form (``body``), not as a problem."""

    def __init__(self, err: str, description: str) -> None:
        if err not in ERR_CODES:
            raise ValueError(f"unknown SET error code `{err}`")
        super().__init__(f"{err}: {description}", code="request.invalid", status=400)
        self.err = err
        self.description = description

    def body(self) -> dict[str, str]:
        """The RFC 8935 error body: ``{"err": ..., "description": ...}``."""
        return {"err": self.err, "description": self.description}


class SecurityEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A verified SET: its envelope, its one event and its subject."""

    iss: str
    jti: str
    iat: datetime
    aud: tuple[str, ...]
    txn: str | None = None
    toe: datetime | None = None
    #: The subject object as sent (``sub_id``, or the legacy ``events.<uri>.subject``).
    sub_id: dict[str, Any]
    #: The same subject, parsed and in canonical form.
    subject: Subject
    event_type: str
    payload: dict[str, Any]
    #: Every claim of the SET, as sent (unknown ones included).
    claims: dict[str, Any]


# -- receiving -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransmitterConfig:
    """What a receiver knows of one transmitter: whom to believe, for whom, with which keys.

    ``audiences`` are the ``aud`` values that name this receiver; ``algorithms`` are pinned
    (asymmetric only); ``max_age`` and ``max_future`` bound ``iat``;
    ``critical_subject_members`` is the transmitter metadata's list (SSF, "Transmitter
    Configuration Metadata").
    """

    issuer: str
    audiences: tuple[str, ...]
    keys: KeySource
    algorithms: tuple[str, ...] = ("RS256",)
    max_age: timedelta = timedelta(days=7)
    max_future: timedelta = timedelta(minutes=5)
    critical_subject_members: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"transmitter `{self.issuer}`"
        if not self.issuer:
            raise ConfigError("a transmitter needs an `issuer`")
        if not self.audiences or not all(self.audiences):
            raise ConfigError(f"{where}: at least one non-empty `audience` is required")
        if not self.algorithms:
            raise ConfigError(f"{where}: `algorithms` needs at least one algorithm")
        for alg in self.algorithms:
            if alg not in ALGORITHMS:
                raise ConfigError(
                    f"{where}: algorithm `{alg}` is not accepted (asymmetric only: "
                    f"{', '.join(ALGORITHMS)})"
                )
        if self.max_age <= timedelta(0) or self.max_future < timedelta(0):
            raise ConfigError(f"{where}: `max_age` must be positive, `max_future` not negative")

    @classmethod
    def configure(
        cls,
        *,
        issuer: str,
        audience: str | tuple[str, ...],
        algorithms: tuple[str, ...] = ("RS256",),
        jwks_uri: str | None = None,
        jwks_file: str | None = None,
        jwks: dict[str, Any] | None = None,
        jwks_ttl: int | str = "1h",
        max_age: timedelta = timedelta(days=7),
        max_future: timedelta = timedelta(minutes=5),
        critical_subject_members: tuple[str, ...] = (),
        fetch: Fetcher | None = None,
    ) -> TransmitterConfig:
        """Build from options, with exactly one key source, by `juncture.jose.build_issuer`.

        A ``jwks_uri`` must be https (plain http only for loopback), and is fetched with
        ``fetch`` (the SSRF guard) when given; a file or inline set is loaded now. Raises
        `ConfigError` on any problem.
        """
        built = build_issuer(
            "ssf",
            IssuerOptions(
                issuer=issuer,
                audience=audience,
                algorithms=algorithms,
                jwks_uri=jwks_uri,
                jwks_file=jwks_file,
                jwks=jwks,
                jwks_ttl=jwks_ttl,
            ),
            need_audience=True,
            fetch=fetch,
        )
        return cls(
            issuer=built.issuer,
            audiences=built.audiences,
            algorithms=built.algorithms,
            keys=built.keys,
            max_age=max_age,
            max_future=max_future,
            critical_subject_members=critical_subject_members,
        )


def verify_set(
    token: str | bytes,
    transmitter: TransmitterConfig,
    *,
    now: datetime,
    max_bytes: int = MAX_SET_BYTES,
) -> SecurityEvent:
    """Verify a compact SET from ``transmitter`` and return its event.

    Raises:
        SetError: with the ``err`` of the table in the module docstring.
        MethodUnavailable: the transmitter's key set cannot be had (answer 503).
    """
    if now.tzinfo is None:
        raise ValueError("`now` must be an aware datetime")
    text = _text(token, max_bytes)
    header, claims = _split(text)
    alg = _check_header(header, transmitter)
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise SetError("invalid_request", "`iss` must be a non-empty string")
    if iss != transmitter.issuer:
        raise SetError("invalid_issuer", "`iss` is not the transmitter's issuer")
    claims = _verify_signature(text, header, alg, transmitter, now)
    return _event(claims, transmitter, now)


def _text(token: str | bytes, max_bytes: int) -> str:
    if isinstance(token, bytes | bytearray):
        if len(token) > max_bytes:
            raise SetError("invalid_request", f"a SET must be at most {max_bytes} bytes")
        try:
            token = bytes(token).decode("ascii")
        except UnicodeDecodeError:
            raise SetError("invalid_request", "a SET must be ASCII") from None
    if not isinstance(token, str):
        raise SetError("invalid_request", "a SET must be a compact JWS string")
    if len(token) > max_bytes:
        raise SetError("invalid_request", f"a SET must be at most {max_bytes} bytes")
    if not token.isascii():
        raise SetError("invalid_request", "a SET must be ASCII")
    return token.strip()


def _split(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    parts = token.split(".")
    if len(parts) == 5:
        raise SetError("invalid_request", "encrypted SETs (JWE) are not accepted")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise SetError("invalid_request", "a SET must be a compact JWS: three base64url parts")
    try:
        _b64(parts[2])  # only canonical base64url: one token, one spelling
        header = _json(_b64(parts[0]))
        claims = _json(_b64(parts[1]))
    except (ValueError, binascii.Error, RecursionError):
        raise SetError(
            "invalid_request", "the SET's header and claims must be base64url JSON"
        ) from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise SetError("invalid_request", "the SET's header and claims must be JSON objects")
    return header, claims


def _check_header(header: Mapping[str, Any], transmitter: TransmitterConfig) -> str:
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower().removeprefix("application/") != TYP:
        raise SetError("invalid_request", f"the SET's `typ` header must be `{TYP}`")
    for name in REFUSED_HEADERS:
        if name in header:
            raise SetError("invalid_request", f"the `{name}` header is not accepted")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise SetError("invalid_request", "the SET's `alg` header must be a string")
    if alg not in transmitter.algorithms:
        raise SetError("invalid_key", f"algorithm `{_clip(alg)}` is not accepted from this issuer")
    if "kid" in header and not isinstance(header["kid"], str):
        raise SetError("invalid_key", "the `kid` header must be a string")
    return alg


def _verify_signature(
    token: str, header: Mapping[str, Any], alg: str, transmitter: TransmitterConfig, now: datetime
) -> dict[str, Any]:
    kid = header.get("kid")
    keys = candidates(transmitter.keys.keys(now), alg, kid)
    if not keys and kid is not None:  # perhaps rotated: refetch (rate-limited)
        keys = candidates(transmitter.keys.keys(now, refresh=True), alg, kid)
    if not keys:
        raise SetError("invalid_key", "no key of the transmitter fits the SET's `kid` and `alg`")
    payload = verify_compact(token, keys, alg)
    if payload is None:
        raise SetError("invalid_key", "the SET's signature does not verify")
    claims = _json(payload)
    assert isinstance(claims, dict)  # the same bytes `_split` decoded
    return claims


def _event(claims: dict[str, Any], transmitter: TransmitterConfig, now: datetime) -> SecurityEvent:
    aud = _audiences(claims.get("aud"))
    if not any(a in transmitter.audiences for a in aud):
        raise SetError("invalid_audience", "`aud` does not name this receiver")
    for forbidden in ("exp", "sub"):
        if forbidden in claims:
            raise SetError("invalid_request", f"a SET must not carry `{forbidden}` (SSF)")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise SetError(
            "invalid_request", "`jti` must be a non-empty string of at most 256 characters"
        )
    iat = _numeric_date(claims, "iat")
    if iat is None:
        raise SetError("invalid_request", "`iat` is required")
    if iat > now + transmitter.max_future:
        raise SetError("invalid_request", "`iat` is in the future")
    if iat < now - transmitter.max_age:
        raise SetError("invalid_request", "`iat` is older than the accepted age")
    toe = _numeric_date(claims, "toe")
    txn = claims.get("txn")
    if txn is not None and not isinstance(txn, str):
        raise SetError("invalid_request", "`txn` must be a string")
    events = claims.get("events")
    if not isinstance(events, dict) or not events:
        raise SetError("invalid_request", "`events` must be an object holding one event")
    if len(events) != 1:
        raise SetError("invalid_request", "`events` must hold exactly one event")
    ((event_type, payload),) = events.items()
    if not event_type or not isinstance(payload, dict):
        raise SetError("invalid_request", "an event must be an object under its type URI")
    sub_id = claims.get("sub_id")
    if sub_id is None:
        sub_id = payload.get("subject")  # legacy CAEP/RISC events (SSF, "Subject Members")
    if sub_id is None:
        raise SetError("invalid_request", "`sub_id` is required")
    try:
        subject = parse_subject(sub_id, critical=transmitter.critical_subject_members)
    except SubjectError as error:
        raise SetError(error.err, error.description) from None
    assert isinstance(sub_id, dict)  # parse_subject accepts only objects
    return SecurityEvent(
        iss=claims["iss"],
        jti=jti,
        iat=iat,
        aud=aud,
        txn=txn,
        toe=toe,
        sub_id=sub_id,
        subject=subject,
        event_type=event_type,
        payload=payload,
        claims=claims,
    )


def _audiences(aud: object) -> tuple[str, ...]:
    if aud is None:
        raise SetError("invalid_audience", "`aud` is required")
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return tuple(aud)
    raise SetError("invalid_request", "`aud` must be a string or a non-empty array of strings")


def _numeric_date(claims: Mapping[str, Any], name: str) -> datetime | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SetError("invalid_request", f"`{name}` must be a NumericDate")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise SetError("invalid_request", f"`{name}` must be a NumericDate") from None


def _json(data: bytes) -> object:
    return json.loads(data, object_pairs_hook=_no_repeats, parse_constant=_no_constant)


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a JSON object repeats a key")
    return out


def _no_constant(name: str) -> object:
    raise ValueError(f"`{name}` is not JSON")


def _b64(part: str) -> bytes:
    """Decode base64url without padding; refuse any other spelling of the same bytes."""
    return b64decode(part, canonical=True)


def _clip(text: str) -> str:
    return text if len(text) <= 32 else text[:29] + "..."


# -- issuing -------------------------------------------------------------------------------


class SetSigner:
    """Issues compact SETs with one private key (``kid`` and ``alg`` go in every header)."""

    def __init__(
        self, key: Mapping[str, Any] | PrivateKey, kid: str | None = None, alg: str = "RS256"
    ) -> None:
        jwk = signing_key(key, alg)
        self._key = jwk
        self.alg = alg
        self.kid = kid or jwk.kid or jwk.thumbprint()

    def public_jwk(self) -> dict[str, Any]:
        """The public half, as a JWK with ``kid``, ``alg`` and ``use: sig``."""
        public = dict(self._key.as_dict(private=False))
        public.update(kid=self.kid, alg=self.alg, use="sig")
        return public

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Sign claims as they are; `issue` is the checked way to build them."""
        header = {"typ": TYP, "alg": self.alg, "kid": self.kid}
        return sign_compact(header, claims, self._key, self.alg)

    def issue(
        self,
        *,
        issuer: str,
        audience: str | tuple[str, ...],
        event_type: str,
        payload: Mapping[str, Any],
        subject: Subject | Mapping[str, Any],
        now: datetime,
        jti: str | None = None,
        txn: str | None = None,
        toe: datetime | None = None,
    ) -> str:
        """Issue one SET: one event, its subject in ``sub_id``, never ``exp`` or ``sub``.

        ``txn`` defaults to the ``jti`` (SSF "The txn claim" asks for one; pass the same value
        for SETs of one cause). A subject given as a mapping is parsed first, so a malformed one
        raises `SubjectError`.
        """
        if now.tzinfo is None or (toe is not None and toe.tzinfo is None):
            raise ValueError("`now` and `toe` must be aware datetimes")
        if not issuer or not event_type or not audience:
            raise ValueError("`issuer`, `audience` and `event_type` are required")
        if isinstance(subject, Mapping):
            subject = parse_subject(subject)
        jti = jti or secrets.token_urlsafe(16)
        claims: dict[str, Any] = {
            "iss": issuer,
            "jti": jti,
            "iat": int(now.timestamp()),
            "aud": audience if isinstance(audience, str) else list(audience),
            "txn": txn or jti,
            "sub_id": dump(subject),
            "events": {event_type: dict(payload)},
        }
        if isinstance(claims["aud"], list) and len(claims["aud"]) == 1:
            claims["aud"] = claims["aud"][0]
        if toe is not None:
            claims["toe"] = int(toe.timestamp())
        return self.sign(claims)


def public_jwks(*signers: SetSigner) -> dict[str, Any]:
    """The JWK Set to publish at ``jwks_uri``: the public key of every signer given (the
    current one and any still being rotated out)."""
    return {"keys": [signer.public_jwk() for signer in signers]}
