"""Recovery codes: a set of single-use look-up secrets (NIST SP 800-63B-4 §3.1.2).

Enrollment draws ``count`` codes of 16 Crockford base32 characters (80 random bits),
shown once as ``XXXX-XXXX-XXXX-XXXX``. Input is forgiving: case, spaces and dashes do not
matter, and ``O``/``I``/``L`` read as ``0``/``1``/``1``.

They are stored as SHA-256 over a per-record random salt and the code, not with
argon2: a code carries 80 random bits, so even a fast hash leaves an offline search of
2**80 per record, and stretching would only multiply the cost of every verification,
which must compare against every unused code. (Passwords are different: they are guessable,
so they get argon2id.) Verification compares with every slot in constant time and
consumes exactly the one that matches; a used code fails with ``method.failed.replay``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Self

import msgspec

from juncture.methods.base import (
    NO_CONTEXT,
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
from juncture.policy.kinds import built_in

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
LENGTH = 16
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})


class RecoveryCodeOptions(Options, frozen=True, kw_only=True, forbid_unknown_fields=True):
    count: int = 10


class RecoverySlot(msgspec.Struct, frozen=True, kw_only=True):
    digest: bytes
    used_at: datetime | None = None


class RecoveryCodesRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A subject's set of codes: salted digests, each used at most once."""

    subject: str
    salt: bytes
    slots: tuple[RecoverySlot, ...]
    created_at: datetime

    @property
    def remaining(self) -> int:
        return sum(slot.used_at is None for slot in self.slots)


class RecoveryCodes(msgspec.Struct, frozen=True, kw_only=True):
    """Shown once at enrollment."""

    codes: tuple[str, ...]


class RecoveryCode:
    """Single-use codes kept on paper or in a password manager."""

    kind: ClassVar[str] = "recovery_code"

    def __init__(self, *, name: str, aal: int, options: RecoveryCodeOptions) -> None:
        self.name = name
        self.aal = aal
        self.amr = options.amr if options.amr is not None else default_amr(self.kind)
        self.options = options

    @classmethod
    def configure(
        cls, *, name: str, aal: int, options: Mapping[str, Any], env: Environment
    ) -> Self:
        opts = parse_options(name, cls.kind, options, RecoveryCodeOptions)
        check_range(name, "count", opts.count, 1, 50)
        return cls(name=name, aal=aal, options=opts)

    def enroll(
        self, *, subject: str, now: datetime
    ) -> Enrollment[RecoveryCodesRecord, RecoveryCodes]:
        """A new set of codes (replacing any earlier set is the caller's store write)."""
        require_aware(now)
        if not subject:
            raise EnrollmentError("recovery codes need a subject")
        salt = secrets.token_bytes(16)
        codes = [
            "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
            for _ in range(self.options.count)
        ]
        record = RecoveryCodesRecord(
            subject=subject,
            salt=salt,
            slots=tuple(RecoverySlot(digest=_digest(salt, code)) for code in codes),
            created_at=now,
        )
        shown = tuple("-".join(code[i : i + 4] for i in range(0, LENGTH, 4)) for code in codes)
        return Enrollment(record=record, shown=RecoveryCodes(codes=shown))

    def verify(
        self,
        record: RecoveryCodesRecord,
        proof: object,
        *,
        now: datetime,
        context: Context = NO_CONTEXT,
    ) -> Result[RecoveryCodesRecord]:
        """Consume the code that matches; the record comes back with it marked used."""
        require_aware(now)
        code = _shape(proof)
        if context.subject is not None and context.subject != record.subject:
            return failure("method.failed.subject")
        digest = _digest(record.salt, code)
        matched = -1
        for index, slot in enumerate(record.slots):
            # compare every slot: the time does not say which one matched
            if hmac.compare_digest(slot.digest, digest):
                matched = index
        if matched < 0:
            return failure("method.failed.mismatch")
        if record.slots[matched].used_at is not None:
            return failure("method.failed.replay")
        slots = list(record.slots)
        slots[matched] = msgspec.structs.replace(slots[matched], used_at=now)
        updated = msgspec.structs.replace(record, slots=tuple(slots))
        proof_ = Proof(method=self.name, kind=self.kind, aal=self.aal, amr=self.amr, at=now)
        return Result(ok=True, code="ok", record=updated, proof=proof_)


def _shape(proof: object) -> str:
    if not isinstance(proof, str):
        raise ProofError("a recovery code must be a string like `ABCD-EFGH-JKMN-PQRS`")
    code = proof.upper().translate(_READ_AS)
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        raise ProofError("a recovery code must be a string like `ABCD-EFGH-JKMN-PQRS`")
    return code


def _digest(salt: bytes, code: str) -> bytes:
    return hashlib.sha256(salt + b"\x00" + code.encode()).digest()


def _enrol(method: RecoveryCode, request: EnrolRequest) -> NewCredential:
    done = method.enroll(subject=request.subject, now=request.now)
    return NewCredential(record=done.record, shown=done.shown)


KIND = MethodKind.of(
    built_in("recovery_code"),
    implementation=RecoveryCode,
    record=RecoveryCodesRecord,
    confirmed_at_enrollment=True,
    enrol=_enrol,
)
