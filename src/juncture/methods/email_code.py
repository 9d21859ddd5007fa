"""One-time codes sent by email: short-lived, single use, bound to their challenge.

`EmailCode.issue` draws a numeric code (option ``length``), and returns the message to
send and the state to keep with the challenge. The state holds no code, only
HMAC-SHA256(server key, challenge id, code): a leaked store does not give the code
away, and a code answers only the challenge it was issued for. `EmailCode.verify`
compares in constant time, then refuses a used or expired code (option ``ttl``); on
success the result's ``state`` is the state marked used, to store in place of the old.

Six digits are guessed with probability 10**-6 per try: the challenge's attempt limit
(in the service) is what makes that small enough. NIST SP 800-63B does not accept email
as an out-of-band authenticator (it proves no possession of a device): count an email
code as AAL1, for sign-up, recovery or low-risk steps (``amr`` ``otp``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self

import msgspec

from juncture.methods.base import (
    NO_CONTEXT,
    ConfigError,
    Confirmation,
    Context,
    Enrollment,
    EnrollmentError,
    EnrolRequest,
    Environment,
    Issued,
    MethodKind,
    NewCredential,
    Options,
    Proof,
    ProofError,
    Result,
    check_range,
    decode_state,
    default_amr,
    duration_option,
    failure,
    parse_options,
    require_aware,
)
from juncture.methods.delivery import Message, Sender, SendLimit
from juncture.policy.kinds import built_in

_ADDRESS = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$")
_KEY_PREFIX = b"juncture/email_code/v1\x00"


class EmailCodeOptions(Options, frozen=True, kw_only=True, forbid_unknown_fields=True):
    length: int = 6
    ttl: int | str = "10m"
    service: str = "Juncture"
    subject: str = "Your verification code"
    resend_after: int | str = "30s"
    max_sends: int = 5
    sends_within: int | str = "15m"


class EmailRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A subject's address that codes are sent to."""

    address: str
    subject: str
    created_at: datetime


class EmailCodeState(msgspec.Struct, frozen=True, kw_only=True, tag="email_code"):
    """Kept with the challenge: the code's keyed digest, its expiry, whether it was used."""

    challenge_id: str
    digest: bytes
    expires_at: datetime
    used: bool = False


class EmailCode:
    """A numeric code mailed to the subject's address."""

    kind: ClassVar[str] = "email_code"

    def __init__(
        self,
        *,
        name: str,
        aal: int,
        options: EmailCodeOptions,
        ttl: int,
        key: bytes,
        sender: Sender | None,
        send_limit: SendLimit | None = None,
    ) -> None:
        self.name = name
        self.aal = aal
        self.amr = options.amr if options.amr is not None else default_amr(self.kind)
        self.options = options
        self.ttl = ttl
        self._key = key
        self.sender = sender
        #: How often codes may be sent to one subject (the service counts: service/sends.py).
        self.send_limit = send_limit or SendLimit()

    @classmethod
    def configure(
        cls, *, name: str, aal: int, options: Mapping[str, Any], env: Environment
    ) -> Self:
        opts = parse_options(name, cls.kind, options, EmailCodeOptions)
        check_range(name, "length", opts.length, 6, 10)
        ttl = duration_option(name, "ttl", opts.ttl)
        if ttl > 3600:
            raise ConfigError(f"method `{name}`: option `ttl` must be at most 1h")
        for option, value in (("service", opts.service), ("subject", opts.subject)):
            if not value or "\r" in value or "\n" in value:
                raise ConfigError(f"method `{name}`: option `{option}` must be one line")
        limit = SendLimit(
            gap=duration_option(name, "resend_after", opts.resend_after),
            at_most=check_range(name, "max_sends", opts.max_sends, 1, 100),
            within=duration_option(name, "sends_within", opts.sends_within),
        )
        if limit.gap > 3600 or limit.within > 86400:
            raise ConfigError(
                f"method `{name}`: option `resend_after` must be at most 1h and "
                "`sends_within` at most 24h"
            )
        if env.code_key is None or len(env.code_key) < 32:
            raise ConfigError(
                f"method `{name}`: email codes need a code key of 32 bytes or more in the "
                "server configuration",
                code="method.config.environment",
            )
        return cls(name=name, aal=aal, options=opts, ttl=ttl, key=env.code_key,
                   sender=env.sender, send_limit=limit)  # fmt: skip

    def enroll(
        self, address: object, *, subject: str, now: datetime
    ) -> Enrollment[EmailRecord, None]:
        """Record the address codes go to (whoever controls it passes this method)."""
        require_aware(now)
        if not isinstance(address, str) or len(address) > 254 or not _ADDRESS.match(address):
            raise EnrollmentError("an email address must look like `name@example.com`")
        return Enrollment(
            record=EmailRecord(address=address, subject=subject, created_at=now), shown=None
        )

    def issue(
        self, record: EmailRecord, *, challenge_id: str, now: datetime
    ) -> tuple[Issued, Message]:
        """A new code for the challenge: the state to keep, and the message to send."""
        require_aware(now)
        if not challenge_id:
            raise ValueError("an email code needs the challenge id it answers")
        length = self.options.length
        code = "".join(secrets.choice("0123456789") for _ in range(length))
        expires_at = now + timedelta(seconds=self.ttl)
        state = EmailCodeState(
            challenge_id=challenge_id,
            digest=self._digest(challenge_id, code),
            expires_at=expires_at,
        )
        minutes = max(1, self.ttl // 60)
        message = Message(
            to=record.address,
            subject=self.options.subject,
            text=(
                f"Your {self.options.service} verification code is {code}\n\n"
                f"It expires in {minutes} minute{'s' if minutes != 1 else ''}. If you did not "
                "ask for it, ignore this message: someone may have typed your address by "
                "mistake.\n"
            ),
        )
        public = {"sent_to": mask(record.address), "length": length}
        return Issued(
            public=public, state=msgspec.json.encode(state), expires_at=expires_at
        ), message

    async def send(self, message: Message) -> None:
        """Hand the message to the configured sender.

        Raises:
            ConfigError: ``method.config.environment`` when no sender is configured.
            MethodUnavailable: ``method.unavailable.delivery`` from the sender.
        """
        if self.sender is None:
            raise ConfigError(
                f"method `{self.name}`: no mail sender is configured",
                code="method.config.environment",
            )
        await self.sender.send(message)

    def verify(
        self, record: EmailRecord, proof: object, *, now: datetime, context: Context = NO_CONTEXT
    ) -> Result[EmailRecord]:
        """Check a code against the challenge's state; the state comes back marked used."""
        require_aware(now)
        state = decode_state(context.state, EmailCodeState, "email code")
        length = self.options.length
        if not isinstance(proof, str):
            raise ProofError(f"an email code must be a string of {length} digits")
        code = proof.strip()
        if len(code) != length or not code.isascii() or not code.isdigit():
            raise ProofError(f"an email code must be a string of {length} digits")
        if context.challenge_id is None or context.challenge_id != state.challenge_id:
            return failure("method.failed.binding")
        if context.subject is not None and context.subject != record.subject:
            return failure("method.failed.subject")
        if not hmac.compare_digest(self._digest(state.challenge_id, code), state.digest):
            return failure("method.failed.mismatch")
        if state.used:
            return failure("method.failed.replay")
        if now >= state.expires_at:
            return failure("method.failed.expired")
        used = msgspec.json.encode(msgspec.structs.replace(state, used=True))
        proof_ = Proof(method=self.name, kind=self.kind, aal=self.aal, amr=self.amr, at=now)
        return Result(ok=True, code="ok", state=used, proof=proof_)

    def _digest(self, challenge_id: str, code: str) -> bytes:
        message = _KEY_PREFIX + challenge_id.encode() + b"\x00" + code.encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()


def mask(address: str) -> str:
    """``ada@example.com`` -> ``a**@example.com``: enough to recognise, not to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}{'*' * max(2, len(local) - 1)}@{domain}"


class PendingEmail(msgspec.Struct, frozen=True, kw_only=True, tag="pending.email_code"):
    """An email address enrolled but not confirmed: the code sent to it."""

    email: EmailRecord
    state: bytes


def _enrol(method: EmailCode, request: EnrolRequest) -> NewCredential:
    email = method.enroll(request.given.get("address"), subject=request.subject, now=request.now)
    issued, message = method.issue(
        email.record, challenge_id=request.authenticator_id, now=request.now
    )
    return NewCredential(
        record=PendingEmail(email=email.record, state=issued.state),
        shown=issued.public,
        message=message,
    )


def _confirm(
    method: EmailCode, stored: bytes, proof: object, now: datetime, context: Context
) -> Confirmation:
    pending = msgspec.json.decode(stored, type=PendingEmail)
    result = method.verify(
        pending.email, proof, now=now, context=msgspec.structs.replace(context, state=pending.state)
    )
    return Confirmation(result=result, record=pending.email)


def _start(
    method: EmailCode, records: Sequence[EmailRecord], challenge_id: str, now: datetime
) -> tuple[Issued, Message | None] | None:
    if not records:
        return None  # no confirmed address
    return method.issue(records[-1], challenge_id=challenge_id, now=now)


KIND = MethodKind.of(
    built_in("email_code"),
    implementation=EmailCode,
    record=EmailRecord,
    enrol=_enrol,
    confirm=_confirm,
    start=_start,
)
