"""API keys: a long random bearer secret for a service account or an AI agent.

A key reads ``jct_<key id>_<secret>``: the prefix (so secret scanners and people can tell
what leaked), a key id of 16 lowercase base32 characters (10 random bytes, not secret: it
names the stored credential, see `key_id_of`), and the secret, 32 random bytes in
base64url without padding (43 characters). The key is shown once at enrollment.

The record keeps SHA-256 of the whole key text, not an argon2 hash. Stretching is for
secrets people choose, which are guessable; this one carries 256 random bits, so even a
fast hash leaves an offline search of 2**256 for a stolen record, and a slow hash would
only make every request of a busy service pay for it. No salt is needed either: every key
is unique and random, so there is nothing to precompute. Verification compares the digest
in constant time (`hmac.compare_digest`).

A bearer key proves only that the caller holds a copy: it is a single factor, not bound
to any device or key pair, so the kind proves no RFC 8176 ``amr`` value. Prefer
``client_assertion`` (proof of possession of a private key) where the client can sign.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
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
    Environment,
    MethodKind,
    Options,
    Proof,
    ProofError,
    Result,
    default_amr,
    failure,
    parse_options,
    require_aware,
)
from juncture.policy.kinds import built_in

PREFIX = "jct"
KEY_ID_BYTES = 10  # 80 bits: exactly 16 base32 characters, no padding
SECRET_BYTES = 32  # 256 bits: 43 base64url characters, no padding
KEY_LENGTH = len(PREFIX) + 1 + 16 + 1 + 43
# The last of 43 base64url characters carries 4 bits (the low 2 are zero): only one
# spelling of each secret is accepted.
_KEY = re.compile(rf"{PREFIX}_([a-z2-7]{{16}})_[A-Za-z0-9_-]{{42}}[AEIMQUYcgkosw048]")
_SHAPE = f"an API key must be a string like `{PREFIX}_<16 characters>_<43 characters>`"


def key_id_of(text: object) -> str | None:
    """The key id of an API key, or None when ``text`` is not exactly one.

    The service looks the stored credential up by it (``api_key:<key id>``) before
    verifying; nothing about the secret can be learned from it.
    """
    if not isinstance(text, str) or len(text) != KEY_LENGTH:
        return None
    match = _KEY.fullmatch(text)
    return match.group(1) if match is not None else None


class ApiKeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A subject's key: its id and SHA-256 of the whole key text, never the key."""

    subject: str
    key_id: str
    digest: bytes
    created_at: datetime


class ApiKeyShown(msgspec.Struct, frozen=True, kw_only=True):
    """Shown once at enrollment: the key itself and its (non-secret) id."""

    key: str
    key_id: str


class ApiKey:
    """A random bearer key that a service or an agent sends with each request."""

    kind: ClassVar[str] = "api_key"

    def __init__(self, *, name: str, aal: int, options: Options) -> None:
        self.name = name
        self.aal = aal
        self.amr = options.amr if options.amr is not None else default_amr(self.kind)
        self.options = options

    @classmethod
    def configure(
        cls, *, name: str, aal: int, options: Mapping[str, Any], env: Environment
    ) -> Self:
        opts = parse_options(name, cls.kind, options, Options)
        return cls(name=name, aal=aal, options=opts)

    def enroll(self, *, subject: str, now: datetime) -> Enrollment[ApiKeyRecord, ApiKeyShown]:
        """A new key (replacing or adding to earlier keys is the caller's store write)."""
        require_aware(now)
        if not subject:
            raise EnrollmentError("an API key needs a subject")
        key_id = base64.b32encode(secrets.token_bytes(KEY_ID_BYTES)).decode().lower()
        key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
        record = ApiKeyRecord(subject=subject, key_id=key_id, digest=_digest(key), created_at=now)
        return Enrollment(record=record, shown=ApiKeyShown(key=key, key_id=key_id))

    def verify(
        self,
        record: ApiKeyRecord,
        proof: object,
        *,
        now: datetime,
        context: Context = NO_CONTEXT,
    ) -> Result[ApiKeyRecord]:
        """Check the key against the record; nothing changes, so ``record`` is None."""
        require_aware(now)
        key_id = key_id_of(proof)
        if key_id is None:
            raise ProofError(_SHAPE)  # never echo the proof: it may be a real key
        assert isinstance(proof, str)
        if context.subject is not None and context.subject != record.subject:
            return failure("method.failed.subject")
        same_id = hmac.compare_digest(key_id.encode(), record.key_id.encode())
        same_key = hmac.compare_digest(_digest(proof), record.digest)
        if not (same_id and same_key):
            return failure("method.failed.mismatch")
        proof_ = Proof(method=self.name, kind=self.kind, aal=self.aal, amr=self.amr, at=now)
        return Result(ok=True, code="ok", proof=proof_)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


KIND = MethodKind.of(
    built_in("api_key"), implementation=ApiKey, record=ApiKeyRecord, issued_by_admin=True
)
