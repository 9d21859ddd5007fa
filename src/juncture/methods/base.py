"""The common shape of authentication methods: options, results, proofs, errors, the registry.

A method is stateless logic over explicit state. Enrollment returns the credential
record to store and what to show the user once; verification takes the stored record,
the submitted proof, ``now`` (an aware datetime) and a `Context`, and returns a `Result`:
success or failure, the record to store in place of the old one, and the `Proof` to
record in the session. Nothing here reads a clock, a store or the network.

Failures are results, not exceptions. Each carries a stable ``method.failed.*`` code for
internal counting and the one public message `PUBLIC_FAILURE`, which never says what was
wrong or whether a code was once valid (STYLE §10). Exceptions (`MethodError`) are kept
for what is not a verification outcome: malformed input, bad configuration, an
unreadable stored record, a key source or mail server that is down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, Self, TypeVar

import msgspec

from juncture.methods.errors import (
    CODES,
    ConfigError,
    EnrollmentError,
    MethodError,
    MethodUnavailable,
    ProofError,
    StateError,
)
from juncture.outbound import Fetcher
from juncture.policy import kinds
from juncture.policy.duration import parse_duration
from juncture.policy.kinds import Kind
from juncture.policy.model import Method as MethodDeclaration
from juncture.records import Posture

if TYPE_CHECKING:
    from juncture.methods.delivery import Message, Sender
    from juncture.methods.secretbox import SecretBox

#: The one message a failed verification shows, whatever failed.
PUBLIC_FAILURE = "the verification did not succeed"

__all__ = [
    "CODES",
    "ConfigError",
    "EnrollmentError",
    "MethodError",
    "MethodUnavailable",
    "ProofError",
    "StateError",
]  # the errors are methods/errors.py's; imported from here as well


class Proof(msgspec.Struct, frozen=True, kw_only=True):
    """What a successful verification proves, to record in the session.

    ``aal`` is the journey's level for the method (NIST SP 800-63B), lowered when the
    verification itself shows less (WebAuthn without user verification, an external token
    whose ``acr``/``amr`` say less). ``amr`` holds RFC 8176 values.
    """

    method: str
    kind: str
    aal: int
    amr: tuple[str, ...]
    at: datetime
    acr: str | None = None


R = TypeVar("R")
S = TypeVar("S")


class Result(msgspec.Struct, Generic[R], frozen=True, kw_only=True):
    """The outcome of a verification (or of confirming an enrollment).

    ``record`` is the credential record to store in place of the old one, or None when
    nothing changed. ``state`` is the new challenge state to keep, or None. ``proof`` is set
    on a successful verification, not on an enrollment confirmation.
    """

    ok: bool
    code: str
    message: str = ""
    record: R | None = None
    state: bytes | None = None
    proof: Proof | None = None
    posture: Posture | None = None
    claims: dict[str, Any] = {}


def failure(code: str, *, record: Any = None, state: bytes | None = None) -> Result[Any]:
    """A failed result: the stable code, the public message and nothing to prove."""
    if code not in CODES or not code.startswith("method.failed."):
        raise ValueError(f"not a failure code: `{code}`")
    return Result(ok=False, code=code, message=PUBLIC_FAILURE, record=record, state=state)


class Enrollment(msgspec.Struct, Generic[R, S], frozen=True, kw_only=True):
    """A new credential: the record to store, and what to show the user once (or None)."""

    record: R
    shown: S


class Issued(msgspec.Struct, frozen=True, kw_only=True):
    """A started ceremony: what to send to the client and what to keep with the challenge."""

    public: dict[str, Any]
    state: bytes
    expires_at: datetime


class Context(msgspec.Struct, frozen=True, kw_only=True):
    """What the verification is about, beyond the record and the proof.

    ``subject`` is who the challenge is for (a token's subject and a credential's owner must
    match it); ``challenge_id`` binds one-time codes to their challenge; ``state`` is what
    the method's start step returned (`Issued.state`); ``nonce`` is the expected token nonce.
    """

    subject: str | None = None
    challenge_id: str | None = None
    state: bytes | None = None
    nonce: str | None = None


NO_CONTEXT = Context()


@dataclass(frozen=True, slots=True)
class Environment:
    """Server-side things methods need that never sit in a journey file.

    ``defaults`` holds per-kind options from the server configuration (a WebAuthn `rp_id`,
    say); a journey's own options win over them.
    """

    secretbox: SecretBox | None = None
    code_key: bytes | None = None
    sender: Sender | None = None
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: How key sets are fetched from a ``jwks_uri``: the server's SSRF guard
    #: (`juncture.outbound.guarded_fetcher`); None: the guard with private addresses refused.
    fetch: Fetcher | None = None


class Options(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options every method takes: ``amr`` replaces the kind's RFC 8176 values."""

    amr: tuple[str, ...] | None = None


class Method(Protocol[R]):
    """The seam every method implements. Start and enrollment steps are per kind."""

    kind: ClassVar[str]
    name: str
    aal: int
    amr: tuple[str, ...]

    @classmethod
    def configure(
        cls, *, name: str, aal: int, options: Mapping[str, Any], env: Environment
    ) -> Self: ...

    def verify(
        self, record: R, proof: object, *, now: datetime, context: Context = NO_CONTEXT
    ) -> Result[R]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class NewCredential:
    """What a kind's enrol step made: the record to store (a pending one when the kind
    confirms later), what to show once, and a message to send (an email code's first)."""

    record: msgspec.Struct
    shown: Any = None
    message: Message | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EnrolRequest:
    """What the directory knows when a subject enrols a credential of a method."""

    subject: str
    #: The caller's fields (a password, an address, an account or user name).
    given: Mapping[str, Any]
    now: datetime
    #: The new authenticator's id (one-time codes are bound to it until confirmed).
    authenticator_id: str
    #: The subject's confirmed records of this method, decoded (a passkey's siblings).
    existing: Sequence[Any] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Confirmation:
    """A pending credential's first proof checked: the result, the record to keep, and the
    lookup key the directory finds the credential by (a passkey's credential id)."""

    result: Result[Any]
    record: Any = None
    lookup: str | None = None


#: enrol(method, request): a new credential, or raises ProofError / EnrollmentError.
Enrol = Callable[[Any, EnrolRequest], NewCredential]
#: confirm(method, stored record bytes, proof, now, context): the first proof of a pending
#: credential. Raises ProofError for a malformed proof; msgspec errors for an unreadable record.
Confirm = Callable[[Any, bytes, object, datetime, Context], Confirmation]
#: start(method, the subject's confirmed records decoded, challenge id, now): what the client
#: gets and the message to send, or None when the subject has nothing to start with.
Start = Callable[[Any, Sequence[Any], str, datetime], "tuple[Issued, Message | None] | None"]
#: lookup(proof): the key of the one credential a proof names (checked against no other).
Lookup = Callable[[object], str]


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodKind(Kind):
    """A method kind, declared by its module and registered with `register_kind`.

    The journey language reads the `Kind` part (name, default AAL, AMR values); the directory
    and the challenges read the rest. A built-in kind's module makes it with `of` from the
    language's descriptor (`juncture.policy.kinds.BUILT_IN`); a plug-in gives every field. A
    kind without ``implementation`` is known to journeys but not verified by Juncture
    (``approval``: a person answers). ``record`` None: the proof is a signed statement checked
    against an issuer's keys, nothing is stored per subject.
    """

    #: The class that verifies proofs (configured per journey method).
    implementation: type[Method[Any]] | None = None
    #: The record type a confirmed authenticator of this kind stores.
    record: type[msgspec.Struct] | None = None
    #: Credentials an administrator issues (keys of services and agents), never enrolled.
    issued_by_admin: bool = False
    #: Usable as soon as enrolled (the enrollment itself is the knowledge); a new one
    #: replaces the subject's old ones of the same method.
    confirmed_at_enrollment: bool = False
    enrol: Enrol | None = None
    confirm: Confirm | None = None
    start: Start | None = None
    lookup: Lookup | None = None

    @classmethod
    def of(cls, kind: Kind, **behaviour: Any) -> MethodKind:
        """The behaviour bound to a kind the journey language knows (a built-in one: its name,
        AAL and AMR are `juncture.policy.kinds.BUILT_IN`'s)."""
        return cls(name=kind.name, aal=kind.aal, amr=kind.amr, counter=kind.counter, **behaviour)


#: kind -> the class that implements it (every registered kind that has one).
KINDS: dict[str, type[Method[Any]]] = {}
#: kind -> its descriptor (every kind registered through `register_kind`).
METHOD_KINDS: dict[str, MethodKind] = {}


def register_kind(kind: MethodKind) -> MethodKind:
    """Register a method kind: in the journey language (`juncture.policy.kinds`) and here.

    Call it once per kind, at import of the module that declares it, before any journey that
    names the kind is loaded.

    Raises:
        ValueError: the kind is registered already (or its AAL is out of range).
    """
    if kind.name in METHOD_KINDS:
        raise ValueError(f"method kind `{kind.name}` is registered twice")
    if kind.implementation is not None and kind.implementation.kind != kind.name:
        raise ValueError(f"method kind `{kind.name}`: its class says `{kind.implementation.kind}`")
    kinds.register(kind)
    METHOD_KINDS[kind.name] = kind
    if kind.implementation is not None:
        KINDS[kind.name] = kind.implementation
    return kind


def unregister_kind(name: str) -> None:
    """Forget a kind (tests that register their own)."""
    METHOD_KINDS.pop(name, None)
    KINDS.pop(name, None)
    kinds.unregister(name)


def default_amr(kind: str) -> tuple[str, ...]:
    """The RFC 8176 values a method of ``kind`` proves unless its options say otherwise."""
    return kinds.amr(kind)


def build(declaration: MethodDeclaration, env: Environment) -> Method[Any]:
    """Configure the method a journey's `methods:` entry declares.

    Raises:
        ConfigError: ``method.config.unknown_kind`` or the option errors of `parse_options`.
    """
    cls = KINDS.get(declaration.kind)
    if cls is None:
        raise ConfigError(
            f"method `{declaration.name}`: no implementation for kind `{declaration.kind}`",
            code="method.config.unknown_kind",
        )
    options = {**env.defaults.get(declaration.kind, {}), **declaration.options}
    return cls.configure(name=declaration.name, aal=declaration.aal, options=options, env=env)


OptionsT = TypeVar("OptionsT", bound=msgspec.Struct)


def parse_options(
    name: str,
    kind: str,
    options: Mapping[str, Any],
    into: type[OptionsT],
    *,
    also: Iterable[str] = (),
) -> OptionsT:
    """Decode a method's options strictly into its `Options` struct.

    Raises:
        ConfigError: ``method.config.unknown_option``, ``.missing_option``, ``.type`` or
            ``.value``, naming the method and the option's path.
    """
    try:
        return msgspec.convert(dict(options), into, strict=True)
    except msgspec.ValidationError as error:
        text = str(error)
        where = f"method `{name}` (kind `{kind}`)"
        if "unknown field" in text:
            known = ", ".join(f"`{f}`" for f in sorted({*into.__struct_fields__, *also}))
            option = text.split("`")[1]
            raise ConfigError(
                f"{where}: unknown option `{option}` (expected one of {known})",
                code="method.config.unknown_option",
            ) from None
        message = text.replace("`$.", "`").replace("Object missing", "missing")
        message = message[0].lower() + message[1:]
        if "missing required field" in text:
            code = "method.config.missing_option"
        elif text.startswith("Expected `") and "got `" in text:
            code = "method.config.type"
        else:
            code = "method.config.value"
        raise ConfigError(f"{where}: {message}", code=code) from None


def duration_option(name: str, option: str, value: int | str) -> int:
    """A duration option (``90s``, ``10m`` or seconds) in seconds, positive."""
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        raise ConfigError(f"method `{name}`: option `{option}`: {error}") from None
    if seconds <= 0:
        raise ConfigError(f"method `{name}`: option `{option}` must be more than 0s")
    return seconds


def check_range(name: str, option: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ConfigError(f"method `{name}`: option `{option}` must be {low}..{high}, not {value}")
    return value


def require_aware(now: datetime) -> datetime:
    """Refuse a naive ``now``: every time a method compares must say its zone."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("`now` must be a timezone-aware datetime")
    return now


def decode_state(state: bytes | None, into: type[R], what: str) -> R:
    """Decode the challenge state a start step returned; refuse anything else."""
    if state is None:
        raise StateError(f"the {what} state is missing", code="method.state.invalid")
    try:
        return msgspec.json.decode(state, type=into)
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise StateError(f"the {what} state cannot be read", code="method.state.invalid") from None
