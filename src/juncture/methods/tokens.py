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

Issuers, key sets, key selection and signature checks are JOSE, shared with Shared Signals:
they live in `juncture.jose`. This module is what is the methods' own: the issuer options
of a method (`split_issuers`), the ``method.failed.*`` codes (`Refused`) and the claim checks.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from juncture.jose import (
    ISSUER_KEYS,
    REFUSED_HEADERS,
    Issuer,
    candidates,
    json_segment,
    verify_compact,
)
from juncture.methods.base import ConfigError, ProofError

MAX_TOKEN = 16 * 1024


class Refused(Exception):
    """A token that does not verify; ``code`` is the ``method.failed.*`` code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


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
    if any(name in header for name in REFUSED_HEADERS):
        raise Refused("method.failed.algorithm")
    if issuer.types:
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower().removeprefix("application/") not in issuer.types:
            raise Refused("method.failed.algorithm")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise Refused("method.failed.key")
    keys = candidates(issuer.keys.keys(now), alg, kid)
    if not keys and kid is not None:
        keys = candidates(issuer.keys.keys(now, refresh=True), alg, kid)
    if not keys:
        raise Refused("method.failed.key")
    payload = verify_compact(token, keys, alg)
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


def _split(token: object) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN or not token.isascii():
        raise ProofError("a token must be a compact JWS string of at most 16 KiB")
    parts = token.split(".")
    if len(parts) != 3:
        raise ProofError("a token must be a compact JWS: three base64url parts")
    return json_segment(parts[0], "a token"), json_segment(parts[1], "a token")
