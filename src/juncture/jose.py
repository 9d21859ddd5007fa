"""JOSE for Juncture: JSON Web Keys and key sets, compact JWS verification and signing.

The one room for what authentication methods (`juncture.methods`: external tokens, device
attestations, client assertions) and Shared Signals (`juncture.events`: Security Event
Tokens in and out) share about JOSE, so that neither imports the other:

- `ALGORITHMS`: the asymmetric algorithms that may be pinned, with the key type and curve each
  needs (never ``none`` or HMAC); RSA keys under `MIN_RSA_BITS` are never used.
- Issuers (`IssuerOptions`, `build_issuer`): who signs, with which pinned algorithms and key
  set, as a journey's method options (or a receiver's transmitter) give them.
- Key sets (`KeySource`): from a ``jwks_uri`` fetched through the SSRF guard
  (`juncture.outbound`, at most `MAX_JWKS`), a file or inline JSON; cached for a TTL; an
  unknown ``kid`` refetches at most once a minute (key rotation); a failed fetch keeps the last
  good keys. `parse_key_set` keeps only public signing keys (no ``oct``, no weak RSA).
- Verification: `candidates` picks the keys a header's ``alg`` and ``kid`` may use,
  `verify_compact` checks a compact JWS against them; keys named in a token (``jwk``, ``jku``,
  ``x5c``, ``x5u``) are never used; `REFUSED_HEADERS` (``crit``, ``b64``) are refused by both
  callers. `json_segment` and `too_deep` decode a part of a compact JWS without letting deep
  nesting exhaust the parser; `b64decode` is strict base64url.
- Signing: `signing_key` checks a private key for an algorithm, `new_signing_key` makes one,
  `sign_compact` signs.

What each caller makes of a failure (a ``method.failed.*`` result, an RFC 8935 ``err``) is
the caller's: this module raises `ConfigError` for bad configuration, `ProofError` for a
malformed part, and `MethodUnavailable` (``method.unavailable.keys``, 503) when a key set
cannot be had (the error classes live in `juncture.errors`).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from juncture.errors import ConfigError, MethodUnavailable, ProofError
from juncture.outbound import Fetcher, guarded_fetcher
from juncture.policy.duration import parse_duration

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
MAX_JWKS = 1024 * 1024
#: RSA keys shorter than this are never used (RFC 7518 §3.3 asks for 2048 bits or more).
MIN_RSA_BITS = 2048
#: How deep a token's header or payload may nest (real ones nest two or three levels).
MAX_NESTING = 32
#: Headers whose presence refuses a token: ``crit`` (extensions we do not understand) and
#: ``b64`` (an unencoded payload).
REFUSED_HEADERS = ("crit", "b64")
PublicKey = RSAKey | ECKey | OKPKey
#: A private key `signing_key` accepts: a joserfc key or a ``cryptography`` private key.
PrivateKey = (
    RSAKey
    | ECKey
    | OKPKey
    | rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
_EC_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}


# -- issuers and their key sets -----------------------------------------------------------------


class IssuerOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One issuer, as a method's options give it (at the top level or under ``issuers``); a
    Shared Signals transmitter is built from the same options (`juncture.events.set`).
    ``acr_aal``, ``subject_claim`` and ``types`` are read by the methods only."""

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
    """A checked issuer: whom to believe, for which audiences, with which algorithms and keys."""

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
    ``fetch``, the server's guard for outgoing requests; without it, the same guard with
    private addresses refused). Raises `ConfigError` on any problem."""
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
    ttl = _duration_option(name, "jwks_ttl", options.jwks_ttl)
    if options.jwks_uri is not None:
        keys = KeySource(uri=check_jwks_uri(where, options.jwks_uri), ttl=ttl, fetch=fetch)
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


def _duration_option(name: str, option: str, value: int | str) -> int:
    """A duration option in seconds, positive (as `juncture.methods.base.duration_option`)."""
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        raise ConfigError(f"method `{name}`: option `{option}`: {error}") from None
    if seconds <= 0:
        raise ConfigError(f"method `{name}`: option `{option}` must be more than 0s")
    return seconds


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
        return parse_key_set(document)


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


def parse_key_set(document: object) -> tuple[PublicKey, ...]:
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
                if _n_bits(jwk.get("n")) < MIN_RSA_BITS:  # checked before joserfc, which warns
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


def _n_bits(modulus: object) -> int:
    """The size of an RSA modulus given as base64url (0 when it is not one)."""
    if not isinstance(modulus, str) or len(modulus) > 4096:
        return 0
    try:
        return int.from_bytes(b64decode(modulus), "big").bit_length()
    except (ValueError, binascii.Error):
        return 0


def check_jwks_uri(where: str, uri: str) -> str:
    """``uri`` when it is https (plain http only for loopback), else `ConfigError`."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ConfigError(f"{where}: `jwks_uri` must be https (plain http only for loopback)")
    return uri


# -- verifying ----------------------------------------------------------------------------------


def candidates(keys: Iterable[PublicKey], alg: str, kid: object) -> list[PublicKey]:
    """The keys that may verify a signature by ``alg`` (pinned by the caller) named ``kid``
    (None: any): the algorithm's key type and curve, no other ``alg`` in the JWK, no RSA key
    under `MIN_RSA_BITS`."""
    kty, curve = ALGORITHMS[alg]
    found = []
    for key in keys:
        if key.key_type != kty or (kid is not None and key.kid != kid):
            continue
        if curve is not None and getattr(key, "curve_name", None) != curve:
            continue
        if key.get("alg") not in (None, alg):
            continue
        if isinstance(key, RSAKey) and rsa_bits(key) < MIN_RSA_BITS:
            continue
        found.append(key)
    return found


def verify_compact(token: str, keys: Iterable[PublicKey], alg: str) -> bytes | None:
    """The payload of compact JWS ``token`` when one of ``keys`` verifies its signature by
    ``alg`` (and by nothing else), None when none does."""
    for key in keys:
        try:
            return jws.deserialize_compact(token, key, algorithms=[alg]).payload
        except (JoseError, ValueError):
            continue
    return None


def rsa_bits(key: RSAKey) -> int:
    """The size of an RSA key's modulus in bits."""
    raw = key.raw_value
    return raw.key_size if isinstance(raw, rsa.RSAPublicKey | rsa.RSAPrivateKey) else 0


# -- decoding -----------------------------------------------------------------------------------


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
        data = b64decode(part)
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


def b64decode(part: str, *, canonical: bool = False) -> bytes:
    """Decode base64url without padding (``=``, ``+`` and ``/`` refused). ``canonical``: also
    refuse any other spelling of the same bytes (trailing bits set), one token, one spelling.

    Raises:
        ValueError: (``binascii.Error`` among them) not base64url.
    """
    if "=" in part or "+" in part or "/" in part:
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    if canonical and base64.urlsafe_b64encode(data).rstrip(b"=").decode() != part:
        raise ValueError("not canonical base64url")
    return data


# -- signing ------------------------------------------------------------------------------------


def signing_key(key: Mapping[str, Any] | PrivateKey, alg: str) -> RSAKey | ECKey | OKPKey:
    """``key`` (a private JWK or key) checked for signing with ``alg``.

    Raises:
        ConfigError: ``alg`` is not accepted, or the key is not private, does not fit ``alg``,
            or is an RSA key under `MIN_RSA_BITS`.
    """
    if alg not in ALGORITHMS:
        raise ConfigError(
            f"signing algorithm `{alg}` is not accepted (asymmetric only: {', '.join(ALGORITHMS)})"
        )
    jwk = _import_private(key)
    kty, curve = ALGORITHMS[alg]
    if jwk.key_type != kty or (curve is not None and getattr(jwk, "curve_name", None) != curve):
        raise ConfigError(f"the signing key does not fit algorithm `{alg}`")
    if not jwk.is_private:
        raise ConfigError("the signing key must be a private key")
    if isinstance(jwk, RSAKey) and rsa_bits(jwk) < MIN_RSA_BITS:
        raise ConfigError(f"an RSA signing key needs at least {MIN_RSA_BITS} bits")
    return jwk


def sign_compact(
    header: Mapping[str, Any], claims: Mapping[str, Any], key: RSAKey | ECKey | OKPKey, alg: str
) -> str:
    """A compact JWS of ``claims`` (compact JSON) under ``header``, signed by ``alg``."""
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    return jws.serialize_compact(dict(header), payload, key, algorithms=[alg])


def _import_private(key: Mapping[str, Any] | PrivateKey) -> RSAKey | ECKey | OKPKey:
    if isinstance(key, RSAKey | ECKey | OKPKey):
        return key
    try:
        if isinstance(key, Mapping):
            kty = key.get("kty")
            if kty == "RSA":
                return RSAKey.import_key(dict(key))
            if kty == "EC":
                return ECKey.import_key(dict(key))
            if kty == "OKP":
                return OKPKey.import_key(dict(key))
            raise ConfigError("a signing key must be an RSA, EC or OKP private JWK")
        if isinstance(key, rsa.RSAPrivateKey):
            return RSAKey.import_key(key)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return ECKey.import_key(key)
        return OKPKey.import_key(key)
    except (JoseError, ValueError, TypeError):
        raise ConfigError("the signing key cannot be read as a private key") from None


def new_signing_key(alg: str = "RS256", *, kid: str | None = None) -> dict[str, Any]:
    """A new private JWK for signing with ``alg``: RSA 2048 for ``RS*``/``PS*``, the matching
    curve for ``ES*``, Ed25519/Ed448 for those; ``kid`` defaults to the RFC 7638 thumbprint.
    Keep it secret; publish its public half."""
    if alg not in ALGORITHMS:
        raise ConfigError(f"signing algorithm `{alg}` is not accepted")
    kty, curve = ALGORITHMS[alg]
    jwk: RSAKey | ECKey | OKPKey
    if kty == "RSA":
        jwk = RSAKey.import_key(rsa.generate_private_key(65537, MIN_RSA_BITS))
    elif kty == "EC":
        assert curve is not None
        jwk = ECKey.import_key(ec.generate_private_key(_EC_CURVES[curve]))
    elif curve == "Ed25519":
        jwk = OKPKey.import_key(ed25519.Ed25519PrivateKey.generate())
    else:
        jwk = OKPKey.import_key(ed448.Ed448PrivateKey.generate())
    private = dict(jwk.as_dict(private=True))
    private.update(kid=kid or jwk.thumbprint(), alg=alg, use="sig")
    return private
