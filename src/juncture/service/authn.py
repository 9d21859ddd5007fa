"""Authentication by Juncture itself: the directory's authenticators and the proofs that
answer challenges (docs/methods.md).

A journey's `methods:` entry names a kind and its options; `juncture.methods` implements each
kind as stateless logic over explicit records. This module keeps those records (in the
directory: `Authenticator`, the method's record encoded, secrets sealed or hashed), picks the
record a proof is checked against, counts failures (`lockout:` of the journey) and keeps
single use: a record changed by a verification (a TOTP step, a passkey's counter, a used
recovery code) is written with optimistic concurrency, so of two verifications racing on one
credential exactly one succeeds.

Secrets never leave: enrollment shows what must be shown once (a TOTP secret and its QR code,
recovery codes, WebAuthn options) and stores only sealed or hashed forms; a failed
verification answers one message whatever failed.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from juncture.errors import CodedRefusal, Location
from juncture.methods import (
    KINDS,
    METHOD_KINDS,
    Context,
    Environment,
    MethodError,
    MethodKind,
    build,
)
from juncture.methods.base import PUBLIC_FAILURE, ConfigError
from juncture.methods.base import Method as MethodImpl
from juncture.methods.base import Result as MethodResult
from juncture.methods.delivery import Outbox, Sender, SmtpSender, SmtpSettings
from juncture.methods.secretbox import SecretBox
from juncture.outbound import guarded_fetcher
from juncture.policy import Plan
from juncture.policy.model import Method as MethodDeclaration
from juncture.policy.plan import JourneyPlan, LockoutSpec
from juncture.records import Authenticator, Failures
from juncture.store.files import create_once


class AuthnError(CodedRefusal):
    """CodedRefusal: a stable code, a message fit for the caller, an HTTP status (and a
    Retry-After for lockouts)."""


class KeyFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The server's secret keys (a file readable by the server only): AES-256 keys by id for
    sealing secrets at rest (``current`` seals, every one opens: rotation), and the key of
    the one-time codes' digests."""

    keys: dict[str, str]
    current: str
    code_key: str


def load_or_create_keys(path: Path) -> KeyFile:
    """The key file, created (mode 0600) with fresh keys when it does not exist.

    Raises:
        ValueError: a file that is not a valid key file.
    """
    if not path.exists():  # workers starting together: one file wins, all read it
        made = KeyFile(
            keys={"k1": SecretBox.generate_key()},
            current="k1",
            code_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        )
        if create_once(path, msgspec.json.format(msgspec.json.encode(made)) + b"\n"):
            return made
    try:
        return msgspec.json.decode(path.read_bytes(), type=KeyFile)
    except (OSError, msgspec.DecodeError) as exc:
        raise ValueError(f"`{path}` is not a valid key file: {exc}") from None


class AuthnSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the server runs the methods (``juncture serve`` options)."""

    #: The key file (created on first start next to the database).
    key_file: str | None = None
    #: Development mode: messages (email codes) are kept in this file instead of being sent.
    outbox: str | None = None
    smtp: SmtpSettings | None = None
    #: Options per kind that journeys do not set (a WebAuthn ``rp_id`` and ``origins``).
    defaults: dict[str, dict[str, Any]] = {}
    #: Let journeys' ``jwks_uri`` be http, loopback or private (``--ssf-allow-private``).
    allow_private: bool = False


def environment(settings: AuthnSettings) -> Environment:
    """The methods' server-side environment. Raises ValueError for an unusable key file."""
    box = None
    code_key = None
    if settings.key_file is not None:
        keys = load_or_create_keys(Path(settings.key_file))
        try:
            box = SecretBox.from_config(keys.keys, keys.current)
            code_key = base64.b64decode(keys.code_key, validate=True)
        except (MethodError, ValueError) as exc:
            raise ValueError(f"`{settings.key_file}`: {exc}") from None
    sender: Sender | None = None
    if settings.smtp is not None:
        sender = SmtpSender(settings.smtp)
    elif settings.outbox is not None:
        sender = Outbox(Path(settings.outbox))
    return Environment(
        secretbox=box,
        code_key=code_key,
        sender=sender,
        defaults=settings.defaults,
        fetch=guarded_fetcher(allow_private=settings.allow_private),
    )


def encode_record(record: msgspec.Struct) -> bytes:
    return msgspec.json.encode(record)


def method_kind(name: str) -> MethodKind:
    """The registered descriptor of a method kind (a journey's kinds are all registered)."""
    kind = METHOD_KINDS.get(name)
    if kind is None:
        raise AuthnError("internal.error", f"method kind `{name}` is not registered", 500)
    return kind


def decode_record(authenticator: Authenticator) -> Any:
    kind = METHOD_KINDS.get(authenticator.kind)
    record = kind.record if kind is not None else None
    if record is None:
        raise AuthnError("internal.error", "an authenticator of an unknown kind", 500)
    try:
        return msgspec.json.decode(authenticator.record, type=record)
    except msgspec.DecodeError:
        raise AuthnError("internal.error", "a stored authenticator cannot be read", 500) from None


class MethodTable:
    """Configured methods, per policy version, journey and method name (built when first
    needed: a journey may declare methods its apps assert themselves, with no options)."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self._built: dict[tuple[str, str, str], MethodImpl[Any]] = {}
        self._lock = threading.Lock()

    def get(self, plan: Plan, journey: JourneyPlan, name: str) -> MethodImpl[Any]:
        key = (plan.version, journey.name, name)
        found = self._built.get(key)
        if found is not None:
            return found
        info = journey.methods.get(name)
        if info is None:
            raise AuthnError(
                "authenticator.unknown_method",
                f"journey `{journey.name}` declares no method `{name}`",
                400,
            )
        if info.kind not in KINDS:
            raise AuthnError(
                "authenticator.not_verifiable",
                f"method `{name}` (kind `{info.kind}`) is not verified by Juncture",
                400,
            )
        declaration = MethodDeclaration(
            name=name,
            kind=info.kind,
            aal=info.aal,
            options=dict(info.options),
            location=Location(file=journey.file),
        )
        try:
            method = build(declaration, self.env)
        except ConfigError as exc:
            raise AuthnError(exc.code, str(exc), 503) from None
        with self._lock:
            self._built[key] = method
        return method


def lock_state(
    failures: Failures | None, *, now: datetime, backoff: timedelta, lock: timedelta
) -> int | None:
    """Seconds until the counter may be tried again, or None when it may be now."""
    if failures is None or failures.last_at is None:
        return None
    if failures.locked_until is not None and now < failures.locked_until:
        return max(1, int((failures.locked_until - now).total_seconds() + 0.999))
    if backoff > timedelta(0) and failures.count > 0:
        delay = min(backoff * (2 ** (failures.count - 1)), lock)
        ready = failures.last_at + delay
        if now < ready:
            return max(1, int((ready - now).total_seconds() + 0.999))
    return None


#: How long an admitted attempt may stay unsettled before its reservation is dropped (its
#: worker died between admission and the count): far longer than any verification takes.
ATTEMPT_HOLD = timedelta(minutes=2)


def admission(failures: Failures | None, *, now: datetime, spec: LockoutSpec) -> int | None:
    """Seconds until one more attempt may be admitted, or None to admit it now.

    The stored state decides first (`lock_state`). Then the attempts admitted and not
    settled yet (``pending``) each count as a failure at the time it was admitted: whatever
    they turn out to be, no more than ``after`` wrong guesses in a row are ever checked, and
    the backoff runs from the latest of them. A refusal for attempts in flight waits 1 s.
    """
    backoff = timedelta(seconds=spec.backoff)
    lock = timedelta(seconds=spec.lock)
    wait = lock_state(failures, now=now, backoff=backoff, lock=lock)
    if wait is not None or failures is None or not failures.pending:
        return wait
    # INVARIANT: attempts in flight count as failures, so at most `after` wrong guesses in a
    # row are checked however many workers race (the store admits one attempt at a time).
    recent = failures.last_at is not None and now - failures.last_at <= timedelta(
        seconds=spec.within
    )
    count = (failures.count if recent else 0) + len(failures.pending)
    if spec.after >= 1 and count >= spec.after:
        return 1
    if backoff > timedelta(0):
        ready = max(failures.pending.values()) + min(backoff * (2 ** (count - 1)), lock)
        if now < ready:
            return max(1, int((ready - now).total_seconds() + 0.999))
    return None


def failed() -> AuthnError:
    """The one answer of every failed verification (nothing says what was wrong)."""
    return AuthnError("challenge.failed", PUBLIC_FAILURE, 401)


def check_records(
    method: MethodImpl[Any],
    records: Sequence[Authenticator],
    proof: object,
    *,
    now: datetime,
    context: Context,
) -> tuple[MethodResult[Any], Authenticator | None]:
    """Verify ``proof`` against each candidate record (oldest first); the first success, or
    the last failure. With no record at all, a password is still hashed (equal timing)."""
    result: MethodResult[Any] | None = None
    for authenticator in records:
        result = method.verify(decode_record(authenticator), proof, now=now, context=context)
        if result.ok:
            return result, authenticator
    if result is None:
        unknown: Callable[..., MethodResult[Any]] | None = getattr(method, "verify_unknown", None)
        if unknown is not None:
            return unknown(proof, now=now), None
        return MethodResult(ok=False, code="method.failed.credential"), None
    return result, None


def authenticator_view(authenticator: Authenticator) -> dict[str, Any]:
    """What the API shows of an authenticator: never its record."""
    return {
        "id": authenticator.id,
        "subject": {"type": authenticator.subject_type, "id": authenticator.subject_id},
        "method": authenticator.method,
        "kind": authenticator.kind,
        "label": authenticator.label,
        "created_at": authenticator.created_at,
        "confirmed": authenticator.confirmed_at is not None,
        "confirmed_at": authenticator.confirmed_at,
        "last_used_at": authenticator.last_used_at,
        "last_used_from": authenticator.last_used_from,
        "expires_at": authenticator.expires_at,
        "scopes": list(authenticator.scopes),
    }


def shown_view(shown: Any) -> Any:
    """What enrollment shows once, as JSON builtins."""
    if shown is None:
        return None
    if isinstance(shown, msgspec.Struct):
        return msgspec.to_builtins(shown)
    return shown


def usable(records: Sequence[Authenticator], method: str, kind: str) -> list[Authenticator]:
    """The confirmed authenticators of a method (name and kind), oldest first."""
    return [a for a in records if a.method == method and a.kind == kind and a.confirmed_at]


def best_reachable(records: Sequence[Authenticator], journey: JourneyPlan) -> int:
    """The highest AAL the subject's confirmed authenticators reach in a journey."""
    best = 0
    for authenticator in records:
        info = journey.methods.get(authenticator.method)
        if authenticator.confirmed_at and info is not None and info.kind == authenticator.kind:
            best = max(best, info.aal)
    return best
