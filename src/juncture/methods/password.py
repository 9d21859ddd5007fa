"""Passwords (NIST SP 800-63B-4 §3.1.1), hashed with argon2id (RFC 9106).

Enrollment normalizes the password (Unicode NFKC), checks its length and refuses it when
it is on the operator's list of breached passwords or equal to a context word (the
service's or the user's name). The list file holds one entry a line: a password, or the
40-hex SHA-1 of one (upper or lower case, optionally followed by ``:count`` as in the
Have I Been Pwned downloads). A line of exactly 40 hex digits is taken as a SHA-1.

The argon2id parameters default to OWASP's minimum (Password Storage Cheat Sheet: 19 MiB,
two passes, one lane; about 18 ms of CPU a hash), not argon2-cffi's own defaults (64 MiB,
t=3, p=4: about 150 ms of CPU over four threads), so that a core verifies some 50 passwords
a second; a journey raises them per method. Verification rehashes when the stored hash's
parameters differ from the configured ones (`argon2.PasswordHasher.check_needs_rehash`): a
stored hash takes the method's parameters at its next successful verification.
`Password.verify_unknown` spends the same work, with the same parameters, against a dummy
hash when no such subject exists, so the response time does not say whether the account
exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import argon2
import msgspec
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from juncture.methods.base import (
    NO_CONTEXT,
    ConfigError,
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
    StateError,
    check_range,
    default_amr,
    failure,
    parse_options,
    require_aware,
)
from juncture.policy.kinds import built_in

_SHA1_LINE = re.compile(r"^([0-9a-fA-F]{40})(:\d+)?$")

#: argon2id passes: OWASP's minimum with 19 MiB.
DEFAULT_TIME_COST = 2
#: argon2id memory in KiB: 19 MiB, OWASP's minimum.
DEFAULT_MEMORY_COST = 19 * 1024
#: argon2id lanes: one (a hash takes one core; concurrency comes from concurrent logins).
DEFAULT_PARALLELISM = 1


class PasswordOptions(Options, frozen=True, kw_only=True, forbid_unknown_fields=True):
    min_length: int = 15
    max_length: int = 256
    breached_list: str | None = None
    time_cost: int = DEFAULT_TIME_COST
    memory_cost: int = DEFAULT_MEMORY_COST
    parallelism: int = DEFAULT_PARALLELISM


class PasswordRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The stored credential: an argon2id hash in PHC string form."""

    hash: str
    created_at: datetime


def load_breached(path: Path) -> frozenset[bytes]:
    """The SHA-1 digests of a breached-password list file (see the module docstring)."""
    digests = set()
    try:
        with path.open(encoding="utf-8", errors="strict") as file:
            for raw in file:
                line = raw.rstrip("\r\n")
                if not line:
                    continue
                match = _SHA1_LINE.match(line)
                if match:
                    digests.add(bytes.fromhex(match.group(1)))
                else:
                    digests.add(_sha1(normalize(line)))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"the breached password list `{path}` cannot be read ({type(error).__name__})",
            code="method.config.value",
        ) from None
    return frozenset(digests)


def normalize(password: str) -> str:
    """NFKC, as SP 800-63B-4 §3.1.1.2 asks before hashing and comparing."""
    return unicodedata.normalize("NFKC", password)


def _sha1(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).digest()


class Password:
    """A memorized secret, AAL1 on its own (``amr`` ``pwd``)."""

    kind: ClassVar[str] = "password"

    def __init__(
        self, *, name: str, aal: int, options: PasswordOptions, breached: frozenset[bytes]
    ) -> None:
        self.name = name
        self.aal = aal
        self.amr = options.amr if options.amr is not None else default_amr(self.kind)
        self.options = options
        self.breached = breached
        self.hasher = argon2.PasswordHasher(
            time_cost=options.time_cost,
            memory_cost=options.memory_cost,
            parallelism=options.parallelism,
            type=argon2.Type.ID,
        )
        self._dummy: str | None = None

    @classmethod
    def configure(
        cls, *, name: str, aal: int, options: Mapping[str, Any], env: Environment
    ) -> Self:
        opts = parse_options(name, cls.kind, options, PasswordOptions)
        check_range(name, "min_length", opts.min_length, 1, 1024)
        check_range(name, "max_length", opts.max_length, max(64, opts.min_length), 4096)
        check_range(name, "time_cost", opts.time_cost, 1, 100)
        check_range(name, "parallelism", opts.parallelism, 1, 64)
        check_range(name, "memory_cost", opts.memory_cost, 8 * opts.parallelism, 4 * 1024 * 1024)
        breached = frozenset[bytes]()
        if opts.breached_list is not None:
            breached = load_breached(Path(opts.breached_list))
        return cls(name=name, aal=aal, options=opts, breached=breached)

    def enroll(
        self, password: object, *, now: datetime, context_words: Sequence[str] = ()
    ) -> Enrollment[PasswordRecord, None]:
        """Hash a new password, after the SP 800-63B-4 checks.

        Raises:
            ProofError: the password is not a string.
            EnrollmentError: ``method.enrollment.too_short``, ``.too_long``, ``.breached`` or
                ``.context``; the message is fit to show the person choosing it.
        """
        require_aware(now)
        if not isinstance(password, str):
            raise ProofError("a password must be a string")
        text = normalize(password)
        if len(text) < self.options.min_length:
            raise EnrollmentError(
                f"a password needs at least {self.options.min_length} characters",
                code="method.enrollment.too_short",
            )
        if len(text) > self.options.max_length:
            raise EnrollmentError(
                f"a password may have at most {self.options.max_length} characters",
                code="method.enrollment.too_long",
            )
        if _sha1(text) in self.breached:
            raise EnrollmentError(
                "this password appears in a list of breached passwords; choose another",
                code="method.enrollment.breached",
            )
        folded = text.casefold()
        if any(word and folded == normalize(word).casefold() for word in context_words):
            raise EnrollmentError(
                "a password may not be your user name or the service's name",
                code="method.enrollment.context",
            )
        record = PasswordRecord(hash=self.hasher.hash(text), created_at=now)
        return Enrollment(record=record, shown=None)

    def verify(
        self, record: PasswordRecord, proof: object, *, now: datetime, context: Context = NO_CONTEXT
    ) -> Result[PasswordRecord]:
        """Check ``proof`` against the stored hash; rehash when the parameters changed."""
        require_aware(now)
        text = self._shape(proof)
        try:
            self.hasher.verify(record.hash, text)
        except VerifyMismatchError:
            return failure("method.failed.mismatch")
        except InvalidHashError:
            raise StateError("the stored password hash cannot be read") from None
        except VerificationError:
            return failure("method.failed.mismatch")
        updated = None
        if self.hasher.check_needs_rehash(record.hash):
            updated = PasswordRecord(hash=self.hasher.hash(text), created_at=record.created_at)
        proof_ = Proof(method=self.name, kind=self.kind, aal=self.aal, amr=self.amr, at=now)
        return Result(ok=True, code="ok", record=updated, proof=proof_)

    def verify_unknown(self, proof: object, *, now: datetime) -> Result[PasswordRecord]:
        """Fail as `verify` would for a wrong password, for a subject that does not exist."""
        require_aware(now)
        text = self._shape(proof)
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(24))
        with contextlib.suppress(VerificationError):  # the same work as a real check
            self.hasher.verify(self._dummy, text)
        return failure("method.failed.mismatch")

    def _shape(self, proof: object) -> str:
        if not isinstance(proof, str) or not proof:
            raise ProofError("a password must be a non-empty string")
        text = normalize(proof)
        if len(text) > self.options.max_length:
            raise ProofError(f"a password has at most {self.options.max_length} characters")
        return text


def _enrol(method: Password, request: EnrolRequest) -> NewCredential:
    done = method.enroll(
        request.given.get("password"), now=request.now, context_words=(request.subject,)
    )
    return NewCredential(record=done.record)


KIND = MethodKind.of(
    built_in("password"),
    implementation=Password,
    record=PasswordRecord,
    confirmed_at_enrollment=True,
    enrol=_enrol,
)
