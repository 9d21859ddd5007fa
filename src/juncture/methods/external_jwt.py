"""An ID token or JWT access token from a configured issuer (federation, workloads).

The token is verified by `juncture.methods.tokens` over `juncture.jose` (pinned algorithms, the
issuer's own keys, ``iss``, ``aud``, ``exp``, ``nbf``, ``iat`` with a leeway, an optional
``nonce``). What it proves comes from its claims (OIDC Core §2, RFC 9068, RFC 9470):

- ``aal``: the issuer's ``acr_aal`` mapping for the token's ``acr`` when it lists it;
  else 2 when ``amr`` holds ``mfa`` or ``hwk``, else 1; never more than the journey's
  ``aal`` for the method.
- ``amr``: the token's own values (or the method's ``amr`` option when given).
- ``at``: ``auth_time`` when present, else ``iat``, else ``now``: never later than ``now``,
  so a freshness limit (``within``) counts from the authentication, not from the token.

The subject (option ``subject_claim``, default ``sub``) must match `Context.subject`
when one is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
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

MAX_AMR = 16


class ExternalJwtOptions(Options, frozen=True, kw_only=True, forbid_unknown_fields=True):
    leeway: int | str = 60
    require_nonce: bool = False


class ExternalJwt:
    """A token an external identity provider or workload platform signed."""

    kind: ClassVar[str] = "external_jwt"

    def __init__(
        self, *, name: str, aal: int, options: ExternalJwtOptions, issuers: dict[str, Issuer]
    ) -> None:
        self.name = name
        self.aal = aal
        self.options = options
        self.amr: tuple[str, ...] = options.amr or ()
        self.issuers = issuers
        self.leeway = duration_option(name, "leeway", options.leeway)

    @classmethod
    def configure(
        cls, *, name: str, aal: int, options: Mapping[str, Any], env: Environment
    ) -> Self:
        own, listed = split_issuers(name, cls.kind, options)
        opts = parse_options(
            name, cls.kind, own, ExternalJwtOptions, also=(*ISSUER_KEYS, "issuers")
        )
        issuers: dict[str, Issuer] = {}
        for raw in listed:
            parsed = parse_options(name, cls.kind, raw, IssuerOptions)
            if parsed.issuer in issuers:
                raise ConfigError(f"method `{name}`: issuer `{parsed.issuer}` is listed twice")
            issuers[parsed.issuer] = build_issuer(name, parsed, need_audience=True, fetch=env.fetch)
        method = cls(name=name, aal=aal, options=opts, issuers=issuers)
        if method.leeway > 300:
            raise ConfigError(f"method `{name}`: option `leeway` must be at most 5m")
        return method

    def verify(
        self, record: None, proof: object, *, now: datetime, context: Context = NO_CONTEXT
    ) -> Result[None]:
        """Verify a token; ``record`` is None (the issuer's keys are the credential).

        ``context.nonce`` is the nonce the token must carry (required with
        ``require_nonce``); ``context.subject`` the subject it must name.
        """
        require_aware(now)
        if self.options.require_nonce and context.nonce is None:
            raise ValueError(f"method `{self.name}` requires the expected nonce in the context")
        try:
            verified = verify_token(
                proof, self.issuers, now=now, leeway=self.leeway, nonce=context.nonce
            )
            claims = verified.claims
            subject = claims.get(verified.issuer.subject_claim)
            if not isinstance(subject, str) or not subject:
                raise Refused("method.failed.claims")
            if context.subject is not None and context.subject != subject:
                raise Refused("method.failed.subject")
            acr = claims.get("acr")
            amr = claims.get("amr", [])
            if (acr is not None and not isinstance(acr, str)) or not _strings(amr):
                raise Refused("method.failed.claims")
            auth_time = numeric_date(claims, "auth_time") or numeric_date(claims, "iat") or now
        except Refused as refused:
            return failure(refused.code)
        assessed = verified.issuer.acr_aal.get(acr) if acr is not None else None
        if assessed is None:
            assessed = 2 if {"mfa", "hwk"} & set(amr) else 1
        proof_ = Proof(
            method=self.name,
            kind=self.kind,
            aal=min(self.aal, assessed),
            amr=self.amr or tuple(amr[:MAX_AMR]),
            at=min(auth_time, now),
            acr=acr,
        )
        return Result(ok=True, code="ok", proof=proof_, claims=claims)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


KIND = MethodKind.of(built_in("external_jwt"), implementation=ExternalJwt)
