"""A signed statement about a device from a device-management issuer (MDM, EDR).

The statement is a JWT, verified like `external_jwt` tokens (`juncture.methods.tokens`):
the issuer's own keys, pinned asymmetric algorithms, ``exp``/``nbf``/``iat`` when present.
Its claims:

| claim | meaning |
|---|---|
| ``device_id`` | the device, a non-empty string |
| ``managed`` | whether the issuer manages the device (bool) |
| ``compliant`` | whether it meets the issuer's compliance policy (bool) |
| ``observed_at`` | when the issuer observed that state (NumericDate) |
| ``sub`` | optional: the user the device is bound to; must match `Context.subject` |
| ``nonce`` | optional: must match `Context.nonce` when one is given |

A statement observed longer ago than ``max_age`` is refused (``method.failed.stale``).
The result carries the `Posture` besides the proof; the proof's time is ``observed_at``.
Options ``require_managed`` / ``require_compliant`` turn an unmanaged or non-compliant
device into a failure (``method.failed.posture``); without them the journey decides from
the posture. Device attestation is not an authenticator: its AAL is the journey's (0 by
default) and it proves no ``amr`` unless the method's ``amr`` option says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self

from juncture.jose import ISSUER_KEYS, Issuer, IssuerOptions, build_issuer
from juncture.methods.base import (
    NO_CONTEXT,
    ConfigError,
    Context,
    Environment,
    MethodKind,
    Options,
    Proof,
    Result,
    duration_option,
    failure,
    parse_options,
    require_aware,
)
from juncture.methods.tokens import Refused, numeric_date, split_issuers, verify_token
from juncture.policy.kinds import built_in
from juncture.records import Posture


class DeviceAttestationOptions(Options, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_age: int | str = "1h"
    leeway: int | str = 60
    require_managed: bool = False
    require_compliant: bool = False


class DeviceAttestation:
    """A device's posture, as its management issuer signed it."""

    kind: ClassVar[str] = "device_attestation"

    def __init__(
        self,
        *,
        name: str,
        aal: int,
        options: DeviceAttestationOptions,
        issuers: dict[str, Issuer],
        max_age: int,
        leeway: int,
    ) -> None:
        self.name = name
        self.aal = aal
        self.options = options
        self.amr: tuple[str, ...] = options.amr or ()
        self.issuers = issuers
        self.max_age = max_age
        self.leeway = leeway

    @classmethod
    def configure(
        cls, *, name: str, aal: int, options: Mapping[str, Any], env: Environment
    ) -> Self:
        own, listed = split_issuers(name, cls.kind, options)
        opts = parse_options(
            name, cls.kind, own, DeviceAttestationOptions, also=(*ISSUER_KEYS, "issuers")
        )
        issuers: dict[str, Issuer] = {}
        for raw in listed:
            parsed = parse_options(name, cls.kind, raw, IssuerOptions)
            if parsed.issuer in issuers:
                raise ConfigError(f"method `{name}`: issuer `{parsed.issuer}` is listed twice")
            issuers[parsed.issuer] = build_issuer(
                name, parsed, need_audience=False, fetch=env.fetch
            )
        leeway = duration_option(name, "leeway", opts.leeway)
        if leeway > 300:
            raise ConfigError(f"method `{name}`: option `leeway` must be at most 5m")
        max_age = duration_option(name, "max_age", opts.max_age)
        return cls(
            name=name, aal=aal, options=opts, issuers=issuers, max_age=max_age, leeway=leeway
        )

    def verify(
        self, record: None, proof: object, *, now: datetime, context: Context = NO_CONTEXT
    ) -> Result[None]:
        """Verify a device statement; ``record`` is None. The result carries the posture."""
        require_aware(now)
        try:
            verified = verify_token(
                proof,
                self.issuers,
                now=now,
                leeway=self.leeway,
                nonce=context.nonce,
                require_exp=False,
            )
            claims = verified.claims
            device_id, managed, compliant = (
                claims.get("device_id"),
                claims.get("managed"),
                claims.get("compliant"),
            )
            observed_at = numeric_date(claims, "observed_at")
            if (
                not isinstance(device_id, str)
                or not device_id
                or not isinstance(managed, bool)
                or not isinstance(compliant, bool)
                or observed_at is None
            ):
                raise Refused("method.failed.claims")
            subject = claims.get("sub")
            if subject is not None and context.subject is not None and subject != context.subject:
                raise Refused("method.failed.subject")
            if observed_at > now + timedelta(seconds=self.leeway):
                raise Refused("method.failed.not_yet_valid")
            if now - observed_at > timedelta(seconds=self.max_age):
                raise Refused("method.failed.stale")
            if (self.options.require_managed and not managed) or (
                self.options.require_compliant and not compliant
            ):
                raise Refused("method.failed.posture")
        except Refused as refused:
            return failure(refused.code)
        posture = Posture(
            device_id=device_id,
            managed=managed,
            compliant=compliant,
            at=observed_at,
            source="attestation",
        )
        at = min(observed_at, now)
        proof_ = Proof(method=self.name, kind=self.kind, aal=self.aal, amr=self.amr, at=at)
        return Result(ok=True, code="ok", proof=proof_, posture=posture, claims=claims)


KIND = MethodKind.of(built_in("device_attestation"), implementation=DeviceAttestation)
