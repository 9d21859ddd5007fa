"""Time-based one-time passwords (RFC 6238) from an authenticator app.

Enrollment draws a random seed (RFC 4226 §4: at least 128 bits; we use the hash's
block-friendly length: 20, 32 or 64 bytes), seals it in the record with the secret box
(bound to the subject and credential id) and returns, once, the base32 secret, the
``otpauth://`` provisioning URI and a QR code of it as SVG. The record stays unconfirmed
until `Totp.confirm` accepts a first code; `Totp.verify` refuses unconfirmed records.

Verification accepts the code of the current time step or one step either side
(RFC 6238 §5.2, option ``window``), and at most once per credential and step: the record
keeps the last accepted step, and a code for a step at or before it is refused
(RFC 6238 §5.2: "MUST NOT accept the second attempt of the same OTP").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal, Self

import msgspec
import pyotp
import segno

from juncture.methods.base import (
    NO_CONTEXT,
    ConfigError,
    Confirmation,
    Context,
    Enrollment,
    EnrollmentError,
    EnrolRequest,
    Environment,
    MethodKind,
    NewCredential,
    Options,
    Proof,
    ProofError,
    Result,
    check_range,
    default_amr,
    failure,
    parse_options,
    require_aware,
)
from juncture.methods.secretbox import Sealed, SecretBox
from juncture.policy.kinds import built_in

Algorithm = Literal["SHA1", "SHA256", "SHA512"]
_DIGEST = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
_SEED_BYTES = {"SHA1": 20, "SHA256": 32, "SHA512": 64}


class TotpOptions(Options, frozen=True, kw_only=True, forbid_unknown_fields=True):
    issuer: str = "Juncture"
    digits: Literal[6, 8] = 6
    period: int = 30
    algorithm: Algorithm = "SHA1"
    window: int = 1


class TotpRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The stored credential. The seed is sealed; the parameters are those enrolled with."""

    credential_id: str
    subject: str
    seed: Sealed
    algorithm: Algorithm
    digits: int
    period: int
    created_at: datetime
    confirmed: bool = False
    #: The time step of the last accepted code (-1: none yet).
    last_step: int = -1


class TotpSetup(msgspec.Struct, frozen=True, kw_only=True):
    """What the user sees once at enrollment: the secret for manual entry, the URI, a QR code."""

    secret: str
    uri: str
    qr_svg: str


class Totp:
    """A one-time password from a device (``amr`` ``otp``)."""

    kind: ClassVar[str] = "totp"

    def __init__(self, *, name: str, aal: int, options: TotpOptions, box: SecretBox) -> None:
        self.name = name
        self.aal = aal
        self.amr = options.amr if options.amr is not None else default_amr(self.kind)
        self.options = options
        self.box = box

    @classmethod
    def configure(
        cls, *, name: str, aal: int, options: Mapping[str, Any], env: Environment
    ) -> Self:
        opts = parse_options(name, cls.kind, options, TotpOptions)
        check_range(name, "period", opts.period, 15, 120)
        check_range(name, "window", opts.window, 0, 2)
        if not opts.issuer or ":" in opts.issuer:
            raise ConfigError(f"method `{name}`: option `issuer` must be non-empty, without `:`")
        if env.secretbox is None:
            raise ConfigError(
                f"method `{name}`: TOTP seeds need a secret box key in the server configuration",
                code="method.config.environment",
            )
        return cls(name=name, aal=aal, options=opts, box=env.secretbox)

    def enroll(
        self, *, subject: str, account: str, now: datetime, credential_id: str | None = None
    ) -> Enrollment[TotpRecord, TotpSetup]:
        """A new, unconfirmed credential and what the user scans (or types) once.

        ``account`` labels the entry in the user's app (an email address, a user name).
        """
        require_aware(now)
        if not subject or not account or ":" in account:
            raise EnrollmentError("a TOTP account label must be non-empty, without `:`")
        o = self.options
        credential_id = credential_id or f"totp_{secrets.token_hex(10)}"
        seed = secrets.token_bytes(_SEED_BYTES[o.algorithm])
        secret = base64.b32encode(seed).decode().rstrip("=")
        otp = pyotp.TOTP(secret, digits=o.digits, interval=o.period, digest=_DIGEST[o.algorithm])
        uri = otp.provisioning_uri(name=account, issuer_name=o.issuer)
        record = TotpRecord(
            credential_id=credential_id,
            subject=subject,
            seed=self.box.seal(seed, owner=_owner(subject, credential_id)),
            algorithm=o.algorithm,
            digits=o.digits,
            period=o.period,
            created_at=now,
        )
        shown = TotpSetup(secret=secret, uri=uri, qr_svg=segno.make(uri, error="m").svg_inline())
        return Enrollment(record=record, shown=shown)

    def confirm(
        self, record: TotpRecord, proof: object, *, now: datetime, context: Context = NO_CONTEXT
    ) -> Result[TotpRecord]:
        """Accept the first code of a new credential: the record comes back confirmed.

        The result carries no proof: seeing the QR code just now proves nothing of the subject.
        """
        return self._check(record, proof, now=now, context=context, confirming=True)

    def verify(
        self, record: TotpRecord, proof: object, *, now: datetime, context: Context = NO_CONTEXT
    ) -> Result[TotpRecord]:
        """Accept a code of a confirmed credential, once per time step."""
        return self._check(record, proof, now=now, context=context, confirming=False)

    def _check(
        self,
        record: TotpRecord,
        proof: object,
        *,
        now: datetime,
        context: Context,
        confirming: bool,
    ) -> Result[TotpRecord]:
        require_aware(now)
        code = _shape(proof, record.digits)
        if context.subject is not None and context.subject != record.subject:
            return failure("method.failed.subject")
        owner = _owner(record.subject, record.credential_id)
        seed = self.box.open(record.seed, owner=owner)
        otp = pyotp.TOTP(
            base64.b32encode(seed).decode(),
            digits=record.digits,
            interval=record.period,
            digest=_DIGEST[record.algorithm],
        )
        current = int(now.timestamp()) // record.period
        window = self.options.window
        matched = [
            step
            for step in range(current - window, current + window + 1)
            # compare every candidate: no early exit on the first match
            if step >= 0 and hmac.compare_digest(otp.generate_otp(step), code)
        ]
        if not matched:
            return failure("method.failed.mismatch")
        fresh = [step for step in matched if step > record.last_step]
        if not fresh:
            return failure("method.failed.replay")
        if not confirming and not record.confirmed:
            return failure("method.failed.unconfirmed")
        sealed = record.seed
        if self.box.needs_reseal(sealed):
            sealed = self.box.seal(seed, owner=owner)
        updated = msgspec.structs.replace(record, last_step=max(fresh), confirmed=True, seed=sealed)
        if confirming:
            return Result(ok=True, code="ok", record=updated)
        proof_ = Proof(method=self.name, kind=self.kind, aal=self.aal, amr=self.amr, at=now)
        return Result(ok=True, code="ok", record=updated, proof=proof_)


def _owner(subject: str, credential_id: str) -> str:
    return msgspec.json.encode(["totp", subject, credential_id]).decode()


def _shape(proof: object, digits: int) -> str:
    if not isinstance(proof, str):
        raise ProofError(f"a TOTP code must be a string of {digits} digits")
    code = proof.replace(" ", "")
    if len(code) != digits or not code.isascii() or not code.isdigit():
        raise ProofError(f"a TOTP code must be a string of {digits} digits")
    return code


def _enrol(method: Totp, request: EnrolRequest) -> NewCredential:
    account = request.given.get("account") or request.subject
    done = method.enroll(subject=request.subject, account=str(account), now=request.now)
    return NewCredential(record=done.record, shown=done.shown)


def _confirm(
    method: Totp, stored: bytes, proof: object, now: datetime, context: Context
) -> Confirmation:
    result = method.confirm(
        msgspec.json.decode(stored, type=TotpRecord), proof, now=now, context=context
    )
    return Confirmation(result=result, record=result.record)


KIND = MethodKind.of(
    built_in("totp"),
    implementation=Totp,
    record=TotpRecord,
    enrol=_enrol,
    confirm=_confirm,
)
