"""The one tree of Juncture errors and the registry of their stable codes.

Every error Juncture reports carries a dotted ``code`` that never changes meaning
once released (``docs/errors.md`` lists them all), a lowercase ``message`` and,
for policy errors, the location in the journey file it is about.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import msgspec

Severity = Literal["error", "warning"]


class Location(msgspec.Struct, frozen=True, kw_only=True):
    """Where a problem is: file, 1-based line and column, and the `$.path` inside the document."""

    file: str = ""
    line: int = 0
    col: int = 0
    path: str = "$"

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line:
            where += f":{self.line}:{self.col}"
        return where


#: Every code Juncture may report, with a one-line meaning. ``docs/errors.md`` mirrors it.
CODES: dict[str, str] = {
    # -- reading files
    "policy.file.too_large": "a journey or data file is larger than the size limit",
    "policy.file.encoding": "a file is not valid UTF-8",
    "policy.file.unreadable": "a file or directory could not be read",
    "policy.bundle.empty": "a bundle directory holds no journey file",
    "policy.bundle.too_many_files": "a bundle holds more files than the limit",
    "policy.bundle.duplicate_journey": "two journey files declare the same journey name",
    "policy.bundle.overlap": "two journeys govern the same app and subject type",
    "policy.yaml.syntax": "a file is not well-formed YAML or JSON",
    "policy.yaml.alias": "YAML anchors and aliases are not accepted",
    "policy.yaml.duplicate_key": "a mapping repeats a key",
    "policy.yaml.key_type": "a mapping key is not a string",
    "policy.yaml.too_deep": "a document nests deeper than the limit",
    "policy.yaml.tag": "a YAML tag or scalar type that journeys do not use",
    "policy.yaml.multiple_documents": "a file holds more than one YAML document",
    # -- the shape of a journey
    "policy.schema.unknown_key": "a key that the journey language does not define",
    "policy.schema.missing_key": "a required key is absent",
    "policy.schema.type": "a value has the wrong type",
    "policy.schema.value": "a value is out of range or malformed",
    "policy.schema.step": "a step that is not exactly one of the step kinds",
    "policy.schema.duration": "a duration that cannot be parsed",
    "policy.schema.cidr": "a network range that is not a valid IPv4 or IPv6 CIDR",
    "policy.schema.name": "a name that is not a valid identifier",
    # -- references and static checks
    "policy.ref.unknown_method": "a step names a method the journey does not declare",
    "policy.ref.unknown_fragment": "a `use` names a fragment the journey does not declare",
    "policy.ref.fragment_cycle": "fragments use each other in a cycle",
    "policy.ref.unused_fragment": "a fragment that no checkpoint uses",
    "policy.ref.unknown_network": "a condition names a network the journey does not declare",
    "policy.ref.unknown_checkpoint": (
        "a condition compares `action.name` with a name no action reaching it can have"
    ),
    "policy.ref.unknown_journey": "a bundle's invariant names a journey the bundle does not hold",
    "policy.ref.unknown_name": (
        "a condition compares a risk level or reason with a name the journey does not declare"
    ),
    "policy.route.pattern": "a route's path pattern, host or method is malformed",
    "policy.route.unknown_checkpoint": "a route names a checkpoint the journey does not declare",
    "policy.route.unknown_parameter": "a route's resource names a parameter its path lacks",
    "policy.route.unknown_app": "a journey gives routes to an app it does not apply to",
    "policy.route.ambiguous": "two routes of an app are equally specific for the same request",
    "policy.check.unreachable_step": "a step can never run because a terminal step precedes it",
    "policy.check.duplicate_checkpoint": "a checkpoint is declared twice",
    "policy.check.missing_require": (
        "a checkpoint reaches allow with no require while others require one"
    ),
    "policy.check.no_checkpoints": "a journey declares no checkpoint",
    "policy.invariant.violated": (
        "a decision breaks a journey's invariant (the error carries the path and the facts)"
    ),
    "policy.invariant.unknown": "an invariant could be neither proved nor broken by the checker",
    "policy.cel.syntax": "a condition is not valid CEL",
    "policy.cel.unknown_variable": "a condition reads a variable that does not exist",
    "policy.cel.unknown_field": "a condition reads a field that the fact does not have",
    "policy.cel.unknown_function": "a condition calls a function that does not exist",
    "policy.cel.too_complex": "a condition is longer or deeper than the limit",
    "policy.cel.type": "a condition cannot produce a bool, or applies an operator to wrong types",
    # -- policy tests and facts
    "policy.test.failed": "a policy test's decision differs from what it expects",
    "policy.test.invalid": "a policy test file is malformed",
    "facts.invalid": "a facts document has the wrong shape",
    "facts.owned": "an app tried to set a fact only Juncture sets (observed, computed, recorded)",
    # -- decisions (reasons of denials the engine itself produces)
    "decision.no_checkpoint": "no checkpoint matches the action and the journey has no `*`",
    "decision.no_rule_matched": "the checkpoint's steps ended without an outcome",
    "decision.evaluation_error": "evaluating a condition failed, so the decision is deny",
    "decision.no_journey": "no journey of the bundle governs this app and subject",
    "decision.ambiguous_journey": "more than one journey governs this app and subject",
    # -- the HTTP API (RFC 9457 problem details)
    "request.malformed": "the body is not JSON, or is empty where one is required",
    "request.content_type": "a body was sent without `Content-Type: application/json`",
    "request.invalid": "a member is missing or has the wrong type (the detail names its JSON path)",
    "request.too_large": "the body is larger than 1 MiB (a bundle upload: 64 MiB)",
    "request.uri_too_long": "the request target is longer than `--max-request-line` bytes",
    "request.headers_too_large": "more header lines, or bytes of them, than `juncture serve` takes",
    "request.too_deep": "the body nests deeper than 32 levels",
    "request.not_found": "no such endpoint",
    "request.method": "the endpoint does not take this method",
    "auth.missing": "no `Authorization: Bearer` key was sent (forward auth: no `X-Juncture-Key`)",
    "auth.invalid": "the key is not valid (unknown, wrong, expired or disabled: never which)",
    "auth.forbidden": "the admin key lacks the scope the endpoint needs",
    "auth.console_login": "no console login, or it expired (idle or too old) or its key went",
    "auth.csrf": (
        "a console or hosted-page write without its CSRF token, with a wrong one, or from elsewhere"
    ),
    "auth.method_not_assertable": "the app may not assert this method as proven",
    "session.not_found": "no such session for this app",
    "session.subject_mismatch": "the request's subject is not the session's subject",
    "challenge.not_found": "no such challenge for this app",
    "challenge.not_live": "the challenge is expired, already used or out of attempts",
    "challenge.method_not_accepted": "the method does not answer this challenge (attempt spent)",
    "challenge.failed": "the proof did not verify (one message whatever failed; counted)",
    "challenge.proof_malformed": "the proof does not have the method's shape (nothing spent)",
    "challenge.no_start": "the method has no start step (only WebAuthn and email codes do)",
    "challenge.no_credential": "the subject has no confirmed credential of this method",
    "challenge.not_started": "the method needs its start step before a proof (nothing spent)",
    "challenge.send_limited": "a code went to the subject too recently or too often (Retry-After)",
    "auth.locked": "too many failed verifications: locked or backing off (see Retry-After)",
    "auth.busy": "too many password hashes wait on this node (see Retry-After; nothing spent)",
    "subject.not_found": "no such subject in the directory",
    "subject.exists": "a subject with this type and id exists already",
    "subject.disabled": "the subject is disabled",
    "subject.busy": "the subject kept changing concurrently; try again",
    "session.not_active": "the session is ended or revoked",
    "journey.not_found": "no (single) active journey for this request; name `journey`",
    "authenticator.unknown_method": "the journey declares no method of this name",
    "authenticator.not_verifiable": "Juncture does not verify this method's kind itself",
    "authenticator.not_enrollable": "the method has nothing to enroll (a token or an approval)",
    "enrollment.invalid": "an enrollment input has the wrong shape",
    "authenticator.not_found": "no such authenticator for this subject",
    "authenticator.confirmed": "the authenticator is confirmed already",
    # -- services and agents: credentials, delegation, tasks, approvals
    "credential.invalid": "a credential was not accepted (one answer whatever was wrong)",
    "credential.not_in_journey": "the journey has no (or several) methods of the credential's kind",
    "credential.not_for_users": "API keys and client assertions are for services and agents",
    "credential.not_rotatable": "only API keys are rotated",
    "credential.expired": "the credential has expired already",
    "credential.busy": "the credential kept changing concurrently; try again",
    "credential.invalid_keys": "assertion keys refused: private, symmetric or weak, bad kid or alg",
    "delegation.required": "an agent's session names the user session it acts for",
    "delegation.invalid": "the delegating session is not a live user session of this app",
    "task.invalid": "a task with the wrong shape, no expiry or one past 24 hours",
    "approval.not_found": "no such approval for this user (or none waits for this challenge)",
    "approval.pending": "the person has not answered yet (nothing spent: try again)",
    "approval.rejected": "the person did not approve",
    "approval.expired": "the approval expired before it was answered or used",
    "approval.answered": "the approval was answered already",
    "sweep.not_found": "no such sweep run",
    "identity.not_found": "no service or agent of this type and id (the inventory)",
    "stream.not_found": "no such event stream for this app",
    "stream.unsafe_endpoint": "a push endpoint not https, or resolving to a non-public address",
    "policy.invalid": "an uploaded bundle has errors; `problems` lists every one",
    "version.not_found": "no such policy version",
    "version.ambiguous": "more than one policy version starts with the id prefix given",
    "version.removes_used": "activating the version would remove journeys, checkpoints or app"
    " routes in use (decisions in the last 24 hours, live sessions)",
    "version.rehearsal_failed": "the deployment's publish gate: replaying the recorded decisions"
    " with the version broke a rule (nothing changed)",
    "shadow.is_active": "the version is the active one: it cannot also be the shadow",
    "shadow.none": "no shadow version is installed",
    "shadow.not_found": "no shadow record of that decision (the page's `before`)",
    "replay.rule_invalid": "a `--fail-on` rule of a replay is malformed (`allow->deny>1%`)",
    "replay.window_invalid": "a replay's window (`since`, `until`) is not a duration or timestamp",
    "replay.not_found": "no such replay job",
    "app.not_found": "no such app",
    "app.theme_invalid": "an app's `theme` has a field unknown or malformed (a colour not "
    "`#rgb`/`#rrggbb`, a logo not an https URL or a path); nothing changed",
    "app.theme_contrast": "an app's `theme` puts a text on its background below WCAG AA's "
    "4.5:1; nothing changed",
    "proxy.request": "forward auth: a header the proxy must send is missing or repeated",
    "hosted.return_to": "a hosted page's return address is not one of the app's origins",
    "hosted.not_allowed": "a hosted page's checkpoint (adding an authenticator app) did not "
    "allow now (the page names its outcome and reason)",
    "state.conflict": "a concurrent change won; try again",
    "unavailable.store": "the store is unavailable (decisions: deny with this reason)",
    "unavailable.corrupt": "a stored record cannot be read (decisions: deny with this reason)",
    "unavailable.no_version": "no policy version is active yet (decisions: deny with this reason)",
    "unavailable.decision_log": "durable decision log: the record could not be committed, so "
    "no answer is given",
    "transmitter.exists": "a trusted transmitter of this name exists already",
    "transmitter.not_found": "no trusted transmitter of this name",
    "transmitter.file_invalid": "the transmitters file cannot be read as it is (fix it first), "
    "or the server has none",
    "dev.disabled": "the endpoint exists only on a development server (`juncture serve --dev`)",
    "unavailable.clock_skew": "this node's clock is off the store's by more than "
    "`--max-clock-skew`: it decides nothing until it is set right (see /healthz `clock`)",
    "internal.error": "a bug; logged with the request id, never shown in detail",
    "decision.journey_not_allowed": "the chosen journey is not one the calling app is bound to",
    # -- authentication methods (juncture.methods; docs/methods.md)
    # -- raised: configuration (a journey's `methods:` entry or the server configuration)
    "method.config.unknown_kind": "no implementation for the method's kind",
    "method.config.unknown_option": "a method option that the kind does not define",
    "method.config.missing_option": "a required method option is absent",
    "method.config.type": "a method option has the wrong type",
    "method.config.value": "a method option is out of range or malformed",
    "method.config.environment": "the server configuration lacks what the method needs",
    # -- raised: input and stored state
    "method.proof.malformed": "the submitted proof does not have the method's shape",
    "method.state.invalid": "the challenge state is missing or not this method's",
    "method.record.invalid": "a stored credential record cannot be read or is not this method's",
    "method.secret.undecryptable": "a sealed secret does not open: wrong key, owner or tampered",
    "method.enrollment.too_short": "the new password is shorter than the minimum",
    "method.enrollment.too_long": "the new password is longer than the maximum",
    "method.enrollment.breached": "the new password is on the list of breached passwords",
    "method.enrollment.context": "the new password is a word of the context (name, service)",
    "method.enrollment.invalid": "an enrollment input is malformed (an email address, a name)",
    "method.unavailable.keys": "the issuer's keys could not be fetched and none are cached",
    "method.unavailable.delivery": "a message could not be handed to the mail server",
    # -- results: the verification failed (always shown as PUBLIC_FAILURE)
    "method.failed.mismatch": "the password or code is wrong",
    "method.failed.replay": "the code was already used (same time step, used code)",
    "method.failed.expired": "the code, challenge or token is past its lifetime",
    "method.failed.not_yet_valid": "the token is not valid yet (nbf or iat in the future)",
    "method.failed.stale": "the device statement was observed longer ago than `max_age`",
    "method.failed.unconfirmed": "the credential's enrollment was never confirmed",
    "method.failed.binding": "the code was issued for another challenge",
    "method.failed.challenge": "the WebAuthn response answers another challenge or ceremony",
    "method.failed.origin": "the WebAuthn response comes from an origin not configured",
    "method.failed.rp_id": "the WebAuthn response is for another relying party id",
    "method.failed.user_presence": "the authenticator did not test user presence",
    "method.failed.user_verification": "user verification was required and not performed",
    "method.failed.credential": "the response is for another credential or user handle",
    "method.failed.signature": "a signature does not verify",
    "method.failed.sign_count": "the signature counter did not increase: a cloned authenticator?",
    "method.failed.attestation": "the WebAuthn registration's attestation does not verify",
    "method.failed.algorithm": "the token alg is not pinned for the issuer, or a header is refused",
    "method.failed.key": "no key of the issuer matches the token's kid and alg",
    "method.failed.issuer": "the token's issuer is not configured",
    "method.failed.audience": "the token is not for a configured audience",
    "method.failed.subject": "the credential or token is for another subject",
    "method.failed.nonce": "the token's nonce is absent or not the expected one",
    "method.failed.claims": "a required claim is absent or has the wrong type",
    "method.failed.posture": "the device is not managed or not compliant as the method requires",
    "method.failed.lifetime": "the client assertion's exp - iat is negative or over `max_lifetime`",
    "method.failed.cache_full": "the credential's replay cache holds too many unexpired jti values",
}


class JunctureError(Exception):
    """Base of every error Juncture raises on purpose.

    Each carries its registered ``code`` (in `CODES`), an HTTP ``status``, a ``message`` and
    optional extra members of the problem document (``extra``) and a ``retry_after`` in
    seconds. The API answers any of them the same way, as an RFC 9457 problem
    (`juncture.api.problems.problem_of`): a handler raises, it never translates.

    A `Refusal` is an answer to the caller: the families below say what kind (request,
    auth, not found, conflict, rate limited, unavailable), each with its status, and
    `CodedRefusal` carries a status chosen where it is raised, for the services whose codes
    span several families. The other branches (`MethodError`, `PolicyError`, `BundleError`,
    `FactsError`) are what callers inside Juncture catch and make sense of: one that reaches
    the API's error guard unhandled is a bug there (500 ``internal.error``).
    """

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        extra: Mapping[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            if code not in CODES:
                raise ValueError(f"unregistered error code `{code}`")
            self.code = code  # type: ignore[misc]
        self.status: int = status if status is not None else self.http_status
        self.extra: dict[str, Any] = dict(extra) if extra else {}
        self.retry_after = retry_after

    @property
    def detail(self) -> str:
        """What the caller is told: the message, unless it may hold what a caller must not
        see (a store's own error text)."""
        return self.message


# -- refusals: answered to the caller as they are, by what the caller did or what went wrong --


class Refusal(JunctureError):
    """An error the API answers as it is (`juncture.api.problems.problem_of`): its status,
    code, detail, extra members and Retry-After."""


class RequestError(Refusal):
    """The request is malformed or asks for something that cannot be (400)."""

    code = "request.invalid"
    http_status = 400


class AuthError(Refusal):
    """The caller is not authenticated (401) or not allowed (403)."""

    code = "auth.invalid"
    http_status = 401


class NotFoundError(Refusal):
    """What the request names does not exist, for this caller (404)."""

    code = "request.not_found"
    http_status = 404


class StateConflict(Refusal):
    """The request does not fit the current state, or lost a race (409)."""

    code = "state.conflict"
    http_status = 409


class RateLimited(Refusal):
    """Too many attempts or too much waiting work: try again later (429, Retry-After)."""

    code = "auth.busy"
    http_status = 429


class Unavailable(Refusal):
    """Something Juncture needs is not there: the store, a version, a key source (503)."""

    code = "unavailable.store"
    http_status = 503


class CodedRefusal(Refusal):
    """A refusal whose code and status the raiser picks from the registry, for services
    whose refusals span the families (authentication, sessions, the inventory)."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int,
        *,
        extra: Mapping[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status, extra=extra, retry_after=retry_after)


# -- the store's errors (raised by every backend; `juncture.store.protocols` re-exports them)

#: Seconds a caller is told to wait (``Retry-After``) after a 503 ``unavailable.store``.
STORE_RETRY_AFTER = 1


class StoreError(Unavailable):
    """The store failed (unavailable, corrupt). Decisions made without it are deny.

    Its message is the backend's own text: logged, never shown (``detail`` is fixed). Its
    answer says when to try again (``Retry-After``, `STORE_RETRY_AFTER` seconds): a database
    restarting or a pool with no free connection is a matter of seconds."""

    code = "unavailable.store"
    #: The answer's ``Retry-After`` (None: none, trying again would not help).
    retry_seconds: ClassVar[int | None] = STORE_RETRY_AFTER

    def __init__(self, *args: object) -> None:
        super().__init__(" ".join(str(a) for a in args), retry_after=self.retry_seconds)
        self.args = args

    @property
    def detail(self) -> str:
        return "the store is unavailable; try again"


class CorruptError(StoreError):
    """A stored record cannot be read (not its kind's shape): what needs it fails closed."""

    code = "unavailable.corrupt"
    retry_seconds = None  # the record stays corrupt: no point trying again soon

    @property
    def detail(self) -> str:
        return "a stored record cannot be read"


class ConflictError(StoreError):
    """An optimistic update lost a race (the record changed since it was read). Callers
    catch it and retry or refuse; one that escapes is a store failure (503)."""


class NotFound(StoreError):
    """The record does not exist. Callers catch it and answer their own ``*.not_found``; one
    that escapes is a store failure (503)."""


# The errors of authentication methods (re-exported by `juncture.methods.base`), here because
# `juncture.jose` raises them too, for key sets and tokens that methods and Shared Signals share.


class MethodError(JunctureError):
    """An error of an authentication method, with a stable ``method.*`` code."""

    code = "method.proof.malformed"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            if code not in CODES or not code.startswith("method."):
                raise ValueError(f"unregistered method error code `{code}`")
            self.code = code  # type: ignore[misc]


class ConfigError(MethodError):
    """A method's options or the server configuration it needs are wrong."""

    code = "method.config.value"
    http_status = 400


class ProofError(MethodError):
    """The submitted proof is malformed: the message says which shape was expected."""

    code = "method.proof.malformed"
    http_status = 400


class MethodUnavailable(MethodError):
    """Something outside the method (a key source, a mail server) does not answer."""

    code = "method.unavailable.keys"
    http_status = 503


class PolicyError(JunctureError):
    """A problem in a policy bundle, found while loading, checking or compiling it."""

    code = "policy.schema.value"
    http_status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str,
        location: Location | None = None,
        severity: Severity = "error",
        suggestion: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, extra=extra)
        self.location = location or Location()
        self.severity: Severity = severity
        self.suggestion = suggestion

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.location.file, self.location.line, self.location.col, self.code)

    def __str__(self) -> str:
        text = f"{self.location}: {self.severity} {self.code}: {self.message}"
        if self.suggestion:
            text += f" ({self.suggestion})"
        return text

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "suggestion": self.suggestion,
            "file": self.location.file,
            "line": self.location.line,
            "col": self.location.col,
            "path": self.location.path,
        }
        if self.extra:  # an invariant's counterexample: the decision's path and its facts
            out["counterexample"] = self.extra
        return out


class BundleError(JunctureError):
    """Raised with every problem of a bundle that could not be loaded or compiled."""

    code = "policy.schema.value"
    http_status = 400

    def __init__(self, errors: list[PolicyError]) -> None:
        ordered = sorted(errors, key=PolicyError.sort_key)
        first = ordered[0] if ordered else None
        summary = f"{len(ordered)} problem(s) in the policy bundle"
        super().__init__(summary, code=first.code if first else None)
        self.errors = ordered


class FactsError(JunctureError):
    """A facts document that does not have the shape the engine expects."""

    code = "facts.invalid"
    http_status = 400
