"""Signed tokens from configured issuers: key sets, pinned algorithms, claim checks.

Shared by `external_jwt` and `device_attestation`. The rules (RFC 8725, JWT BCP):

- Only compact JWS (three parts); a JWE or an unencoded payload (``b64``) is malformed.
- The issuer (``iss``, read before the signature to pick the issuer's keys) must be
  configured; its keys alone are tried.
- ``alg`` must be one the issuer pins. Only asymmetric algorithms can be pinned, so
  ``none`` and HMAC (an RSA or EC public key used as an HMAC secret) never verify; a key
  whose JWK names an ``alg`` verifies only that alg, and a key is used only for the key
  type and curve its algorithm needs; RSA keys under 2048 bits are never used. Keys
  embedded in the token (``jwk``, ``jku``, ``x5c``, ``x5u``) are never used. A ``crit``
  header is refused.
- ``exp`` (when required), ``nbf`` and ``iat`` are checked against the ``now`` passed in,
  with a leeway; ``aud`` must name a configured audience when audiences are configured.

Key sets come from a file, inline JSON, or a URL fetched through the SSRF guard
(`juncture.outbound`) and cached for a TTL.
An unknown ``kid`` refetches at most once a minute (key rotation); a failed fetch keeps
the last good keys.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from juncture.methods.base import (
    ConfigError,
    MethodUnavailable,
    ProofError,
    duration_option,
)
from juncture.outbound import Fetcher, guarded_fetcher

#: Algorithm -> the key type (and curve) it needs. Symmetric algorithms are absent on purpose.
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "Ed25519": ("OKP", "Ed25519"),
    "Ed448": ("OKP", "Ed448"),
}
MAX_TOKEN = 16 * 1024
MAX_JWKS = 1024 * 1024
#: RSA keys shorter than this are never used (RFC 7518 §3.3 asks for 2048 bits or more).
MIN_RSA_BITS = 2048
#: How deep a token's header or payload may nest (real ones nest two or three levels).
MAX_NESTING = 32
_REFUSED_HEADERS = ("crit", "b64")
PublicKey = RSAKey | ECKey | OKPKey


class Refused(Exception):
    """A token that does not verify; ``code`` is the ``method.failed.*`` code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class IssuerOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One issuer, as a method's options give it (at the top level or under ``issuers``)."""

    issuer: str
    audience: str | tuple[str, ...] | None = None
    algorithms: tuple[str, ...] = ("RS256",)
    jwks_uri: str | None = None
    jwks_file: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_ttl: int | str = "1h"
    acr_aal: dict[str, int] = {}
    subject_claim: str = "sub"
    types: tuple[str, ...] = ()


ISSUER_KEYS = frozenset(IssuerOptions.__struct_fields__)


@dataclass(frozen=True, slots=True)
class Issuer:
    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    keys: KeySource
    acr_aal: Mapping[str, int]
    subject_claim: str
    types: tuple[str, ...]


def build_issuer(
    name: str, options: IssuerOptions, *, need_audience: bool, fetch: Fetcher | None = None
) -> Issuer:
    """Check one issuer's options and make its key source (a ``jwks_uri`` is fetched with
    ``fetch``, the server's guard for outgoing requests, when given)."""
    where = f"method `{name}`, issuer `{options.issuer}`"
    if not options.issuer:
        raise ConfigError(f"method `{name}`: `issuer` must not be empty")
    audiences = (options.audience,) if isinstance(options.audience, str) else options.audience or ()
    if need_audience and not audiences:
        raise ConfigError(f"{where}: `audience` is required", code="method.config.missing_option")
    if not options.algorithms:
        raise ConfigError(f"{where}: `algorithms` needs at least one algorithm")
    for alg in options.algorithms:
        if alg not in ALGORITHMS:
            raise ConfigError(
                f"{where}: algorithm `{alg}` is not accepted (asymmetric only: "
                f"{', '.join(ALGORITHMS)})"
            )
    for acr, level in options.acr_aal.items():
        if not 0 <= level <= 3:
            raise ConfigError(f"{where}: `acr_aal` for `{acr}` must be 0..3, not {level}")
    sources = [s for s in (options.jwks_uri, options.jwks_file, options.jwks) if s is not None]
    if len(sources) != 1:
        raise ConfigError(
            f"{where}: exactly one of `jwks_uri`, `jwks_file` and `jwks` is needed",
            code="method.config.missing_option" if not sources else "method.config.value",
        )
    ttl = duration_option(name, "jwks_ttl", options.jwks_ttl)
    if options.jwks_uri is not None:
        keys = KeySource(uri=_check_uri(where, options.jwks_uri), ttl=ttl, fetch=fetch)
    elif options.jwks_file is not None:
        keys = KeySource(path=Path(options.jwks_file), ttl=ttl)
        keys.load_now(where)
    else:
        keys = KeySource(inline=options.jwks, ttl=ttl)
        keys.load_now(where)
    return Issuer(
        issuer=options.issuer,
        audiences=audiences,
        algorithms=options.algorithms,
        keys=keys,
        acr_aal=dict(options.acr_aal),
        subject_claim=options.subject_claim,
        types=tuple(t.lower().removeprefix("application/") for t in options.types),
    )


def split_issuers(
    name: str, kind: str, options: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Split a method's options: its own, and the issuers (top-level keys or ``issuers``)."""
    top = {k: v for k, v in options.items() if k in ISSUER_KEYS}
    rest = {k: v for k, v in options.items() if k not in ISSUER_KEYS}
    listed = rest.pop("issuers", [])
    if not isinstance(listed, list) or not all(isinstance(i, dict) for i in listed):
        raise ConfigError(
            f"method `{name}` (kind `{kind}`): `issuers` must be a list of mappings",
            code="method.config.type",
        )
    if top and listed:
        raise ConfigError(
            f"method `{name}`: give one issuer at the top level or a list under `issuers`, not both"
        )
    issuers = [top] if top else listed
    if not issuers:
        raise ConfigError(
            f"method `{name}` (kind `{kind}`): an `issuer` (or `issuers`) is required",
            code="method.config.missing_option",
        )
    return rest, issuers


@dataclass(slots=True)
class KeySource:
    """A JSON Web Key Set from a URL, a file or inline JSON, cached for ``ttl`` seconds."""

    uri: str | None = None
    path: Path | None = None
    inline: Mapping[str, Any] | None = None
    ttl: int = 3600
    min_refresh: int = 60
    timeout: float = 5.0
    #: The guarded GET for ``uri`` (`juncture.outbound.Fetcher`); None: the guard with private
    #: addresses refused (`juncture.outbound.guarded_fetcher`).
    fetch: Fetcher | None = None
    _keys: tuple[PublicKey, ...] | None = None
    _loaded_at: datetime | None = None
    _attempted_at: datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def load_now(self, where: str) -> None:
        """Load a file or inline set at configuration time: problems are config errors."""
        try:
            self._keys = self._load()
        except MethodUnavailable as error:
            raise ConfigError(f"{where}: {error.message}") from None

    def keys(self, now: datetime, *, refresh: bool = False) -> tuple[PublicKey, ...]:
        """The usable public keys; refetched when older than ``ttl`` or on ``refresh``.

        ``refresh`` (an unknown ``kid``) refetches at most once every ``min_refresh`` seconds.

        Raises:
            MethodUnavailable: ``method.unavailable.keys`` when no keys were ever loaded.
        """
        with self._lock:
            if self.inline is not None and self._keys is not None:
                return self._keys
            stale = self._loaded_at is None or now - self._loaded_at >= timedelta(seconds=self.ttl)
            recent = self._attempted_at is not None and now - self._attempted_at < timedelta(
                seconds=self.min_refresh
            )
            if (stale or refresh) and not (recent and self._keys is not None):
                self._attempted_at = now
                try:
                    self._keys = self._load()
                    self._loaded_at = now
                except MethodUnavailable:
                    if self._keys is None:
                        raise
            if self._keys is None:
                raise MethodUnavailable("the issuer's keys are not available")
            return self._keys

    def _load(self) -> tuple[PublicKey, ...]:
        if self.inline is not None:
            document: object = self.inline
        elif self.path is not None:
            try:
                document = json.loads(self.path.read_bytes()[: MAX_JWKS + 1])
            except (OSError, ValueError) as error:
                raise MethodUnavailable(
                    f"the key set file `{self.path}` cannot be read ({type(error).__name__})"
                ) from None
        else:
            assert self.uri is not None
            fetch = self.fetch or guarded_fetcher(allow_private=False)
            document = _fetch(fetch, self.uri, self.timeout)
        return _parse_key_set(document)


def _fetch(fetch: Fetcher, uri: str, timeout: float) -> object:
    try:
        status, body = fetch(uri, timeout, MAX_JWKS + 1)
    except ValueError as error:  # the guard refused the URL: a private address, say
        raise MethodUnavailable(f"the key set URL is refused: {error}") from None
    except (httpx.HTTPError, OSError) as error:
        raise MethodUnavailable(
            f"the key set could not be fetched ({type(error).__name__})"
        ) from None
    if status != 200:
        raise MethodUnavailable(f"the key set URL answered {status}")
    if len(body) > MAX_JWKS:
        raise MethodUnavailable("the key set is larger than 1 MiB")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise MethodUnavailable("the key set is not JSON") from None


def _parse_key_set(document: object) -> tuple[PublicKey, ...]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise MethodUnavailable("a key set must be a JSON object with a `keys` list")
    keys: list[PublicKey] = []
    weak = 0
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        kty = jwk.get("kty")
        try:
            if kty == "RSA":
                if _rsa_bits(jwk.get("n")) < MIN_RSA_BITS:  # checked before joserfc, which warns
                    weak += 1
                    continue
                keys.append(RSAKey.import_key(jwk))
            elif kty == "EC":
                keys.append(ECKey.import_key(jwk))
            elif kty == "OKP":
                keys.append(OKPKey.import_key(jwk))
            # symmetric ("oct") and unknown key types are never used
        except (JoseError, ValueError, TypeError):
            continue
    if not keys:
        refused = f" ({weak} RSA key(s) under {MIN_RSA_BITS} bits refused)" if weak else ""
        raise MethodUnavailable(f"the key set holds no usable public key{refused}")
    return tuple(keys)


def _rsa_bits(modulus: object) -> int:
    """The size of an RSA modulus given as base64url (0 when it is not one)."""
    if not isinstance(modulus, str) or len(modulus) > 4096:
        return 0
    try:
        return int.from_bytes(_b64(modulus), "big").bit_length()
    except (ValueError, binascii.Error):
        return 0


def _check_uri(where: str, uri: str) -> str:
    parts = urlsplit(uri)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ConfigError(f"{where}: `jwks_uri` must be https (plain http only for loopback)")
    return uri


# -- verification -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verified:
    header: dict[str, Any]
    claims: dict[str, Any]
    issuer: Issuer


def verify_token(
    token: object,
    issuers: Mapping[str, Issuer],
    *,
    now: datetime,
    leeway: int,
    nonce: str | None = None,
    require_exp: bool = True,
) -> Verified:
    """Verify a compact JWS from one of ``issuers`` (by ``iss``) and its time claims.

    Raises:
        ProofError: the token is not a compact JWS with JSON header and payload.
        Refused: with the ``method.failed.*`` code.
        MethodUnavailable: the issuer's keys cannot be had.
    """
    header, claims = _split(token)
    assert isinstance(token, str)
    iss = claims.get("iss")
    issuer = issuers.get(iss) if isinstance(iss, str) else None
    if issuer is None:
        raise Refused("method.failed.issuer")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in issuer.algorithms:
        raise Refused("method.failed.algorithm")
    if any(name in header for name in _REFUSED_HEADERS):
        raise Refused("method.failed.algorithm")
    if issuer.types:
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower().removeprefix("application/") not in issuer.types:
            raise Refused("method.failed.algorithm")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise Refused("method.failed.key")
    candidates = _candidates(issuer.keys.keys(now), alg, kid)
    if not candidates and kid is not None:
        candidates = _candidates(issuer.keys.keys(now, refresh=True), alg, kid)
    if not candidates:
        raise Refused("method.failed.key")
    payload = None
    for key in candidates:
        try:
            payload = jws.deserialize_compact(token, key, algorithms=[alg]).payload
            break
        except (JoseError, ValueError):
            continue
    if payload is None:
        raise Refused("method.failed.signature")
    claims = json.loads(payload)  # the same bytes _split decoded, now known to be signed
    _check_times(claims, now=now, leeway=leeway, require_exp=require_exp)
    if issuer.audiences:
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(isinstance(a, str) and a in issuer.audiences for a in auds):
            raise Refused("method.failed.audience")
    if nonce is not None:
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
            raise Refused("method.failed.nonce")
    return Verified(header=header, claims=claims, issuer=issuer)


def numeric_date(claims: Mapping[str, Any], name: str) -> datetime | None:
    """A NumericDate claim as an aware datetime, None when absent.

    Raises:
        Refused: ``method.failed.claims`` when it is not a number of seconds.
    """
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Refused("method.failed.claims")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise Refused("method.failed.claims") from None


def _check_times(
    claims: Mapping[str, Any], *, now: datetime, leeway: int, require_exp: bool
) -> None:
    slack = timedelta(seconds=leeway)
    exp = numeric_date(claims, "exp")
    nbf = numeric_date(claims, "nbf")
    iat = numeric_date(claims, "iat")
    if exp is None and require_exp:
        raise Refused("method.failed.claims")
    if exp is not None and now >= exp + slack:
        raise Refused("method.failed.expired")
    if (nbf is not None and nbf > now + slack) or (iat is not None and iat > now + slack):
        raise Refused("method.failed.not_yet_valid")


def _candidates(keys: tuple[PublicKey, ...], alg: str, kid: str | None) -> list[PublicKey]:
    kty, curve = ALGORITHMS[alg]
    found = []
    for key in keys:
        if key.key_type != kty or (kid is not None and key.kid != kid):
            continue
        if curve is not None and getattr(key, "curve_name", None) != curve:
            continue
        if key.get("alg") not in (None, alg):
            continue
        found.append(key)
    return found


def _split(token: object) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN or not token.isascii():
        raise ProofError("a token must be a compact JWS string of at most 16 KiB")
    parts = token.split(".")
    if len(parts) != 3:
        raise ProofError("a token must be a compact JWS: three base64url parts")
    return json_segment(parts[0], "a token"), json_segment(parts[1], "a token")


def json_segment(part: str, what: str) -> dict[str, Any]:
    """One base64url part of a compact JWS (its header or payload) as a JSON object.

    The guard every JOSE parser here shares: the decoded JSON may nest at most
    `MAX_NESTING` levels, checked before parsing, so a part nesting thousands of levels
    is refused instead of exhausting the parser's stack; any parse failure is a
    malformed proof, never an unexpected exception.

    Raises:
        ProofError: the part is not canonical base64url of a JSON object within the limits.
    """
    try:
        data = _b64(part)
    except (ValueError, binascii.Error):
        raise ProofError(f"{what}'s header and payload must be base64url JSON") from None
    if too_deep(data):
        raise ProofError(f"{what}'s header and payload may nest at most {MAX_NESTING} levels")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise ProofError(f"{what}'s header and payload must be base64url JSON") from None
    if not isinstance(value, dict):
        raise ProofError(f"{what}'s header and payload must be JSON objects")
    return value


def too_deep(data: bytes, limit: int = MAX_NESTING) -> bool:
    """Whether the arrays and objects of JSON ``data`` nest deeper than ``limit``.

    A linear scan without recursion (brackets inside strings do not count), cheap when the
    data has few brackets.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def _b64(part: str) -> bytes:
    if "=" in part or "+" in part or "/" in part:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
