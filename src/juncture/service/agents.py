"""Non-human identities in sessions: credentials, delegation, tasks and grants.

Services and agents are subjects like users (`type` ``service`` or ``agent``) and go through
the same journeys. What differs is how they prove who they are and what their sessions carry:

- **Credentials.** An administrator issues API keys (shown once, stored as a digest, with
  scopes and an expiry; rotation makes a new key and lets the old one live on for an overlap)
  and registers public keys for signed client assertions (a JWT the service signs, each `jti`
  accepted once). A session is started with one of them (`authenticate`); the session keeps
  which credential it was, so the credential's scopes (the checkpoints it reaches) bound every
  later decision, and a credential removed or run out ends the sessions it started.
- **Delegation.** An agent acts for a person: its session names the delegating user's session
  (of the same app), which must stay live. Ending or revoking the user's session revokes the
  agent sessions that act for it (session_changes.py `end_dependants`, on every end), and a decision
  of an agent session whose user session is gone revokes it (the check does not trust that the
  cascade ran).
- **Tasks.** What the agent is doing now (id, purpose, tools, expiry, details): journeys read it
  as `agent.task`; changing it changes the next decisions; past its expiry every decision of the
  session is denied (`task_expired`) until the platform gives it a new task.
- **Grants.** An allow with a ttl and scopes is a grant: the session's `grants` facts list the
  live ones by scope (with the checkpoint and the decision that made them), an expired one is
  gone at the next decision, and the sweep (a publish, a signal re-running the guard) withdraws
  those that no longer hold. An agent's grant never outlives its task.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import msgspec

from juncture.methods import KINDS, Context
from juncture.methods.api_key import key_id_of
from juncture.methods.base import EnrollmentError, MethodError
from juncture.policy import Plan
from juncture.policy.duration import parse_duration
from juncture.policy.plan import JourneyPlan
from juncture.records import (
    Authenticator,
    Delegation,
    Session,
    StoredProof,
    Subject,
    Task,
)
from juncture.service.authn import AuthnError, MethodTable, decode_record, encode_record
from juncture.service.ids import new_id
from juncture.service.session_changes import SessionChanges
from juncture.store.protocols import ConflictError, Store

#: Subject types that are not people.
NON_HUMAN = ("service", "agent")
#: The longest a task may be given for, and an API key issued for.
MAX_TASK = timedelta(hours=24)
MAX_KEY = timedelta(days=730)
#: The longest overlap a rotated key keeps working for.
MAX_OVERLAP = timedelta(days=30)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")
_PATTERN = re.compile(r"^[A-Za-z0-9_.:*?\[\]/-]{1,256}$")


class NewTask(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A task as the platform gives it (`expires_in`, a duration, or `expires_at`)."""

    id: str
    purpose: str
    tools: tuple[str, ...] = ()
    expires_in: int | str | None = None
    expires_at: datetime | None = None
    details: dict[str, Any] = {}


class Credential(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a non-human identity proves itself when its session starts: one of the two, and
    the journey's method name when the journey declares several of that kind."""

    api_key: str | None = None
    client_assertion: str | None = None
    method: str | None = None


def _error(code: str, message: str, status: int) -> AuthnError:
    return AuthnError(code, message, status)


def _credential_refused() -> AuthnError:
    """One answer for every credential that does not let a session start: unknown, wrong,
    expired, removed, replayed, or another subject's (nothing says which)."""
    return AuthnError("credential.invalid", "the credential was not accepted", 401)


def in_scope(patterns: tuple[str, ...], action: str) -> bool:
    """Whether a credential's scopes (checkpoint globs; none: any) reach ``action``."""
    return not patterns or any(fnmatchcase(action, p) for p in patterns)


def parse_scopes(scopes: object) -> tuple[str, ...]:
    """Checkpoint globs (``tool:read_*``), at most 100. Raises AuthnError."""
    if not isinstance(scopes, list | tuple) or len(scopes) > 100:
        raise _error("request.invalid", "`scopes` must be a list of at most 100 patterns", 400)
    for scope in scopes:
        if not isinstance(scope, str) or not _PATTERN.match(scope):
            raise _error(
                "request.invalid", "each scope is a checkpoint name or glob (`tool:read_*`)", 400
            )
    return tuple(dict.fromkeys(scopes))


def _duration(value: int | str, what: str, longest: timedelta) -> timedelta:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise _error("request.invalid", f"`{what}`: {exc}", 400) from None
    if not 0 < seconds <= longest.total_seconds():
        raise _error("request.invalid", f"`{what}` must be more than 0s and at most "
                     f"{int(longest.total_seconds())}s", 400)  # fmt: skip
    return timedelta(seconds=seconds)


def _overlap(value: int | str) -> timedelta | None:
    """How long a rotated key keeps working: None for not at all (``0s``)."""
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise _error("request.invalid", f"`overlap`: {exc}", 400) from None
    if seconds == 0:
        return None
    return _duration(value, "overlap", MAX_OVERLAP)


class Agents:
    """Credentials, delegation and tasks of non-human identities."""

    def __init__(self, store: Store, methods: MethodTable, changes: SessionChanges) -> None:
        self.store = store
        self.methods = methods
        self.changes = changes

    # -- credentials (administrators) ----------------------------------------------------------
    def _method(self, kind: str) -> Any:
        """The kind's implementation for issuing and registering, which read no journey
        option (a client assertion's audience matters when one is verified, and comes then
        from the journey or the server's default)."""
        options = {"audience": "registration"} if kind == "client_assertion" else {}
        return KINDS[kind].configure(name=kind, aal=1, options=options, env=self.methods.env)

    @staticmethod
    def _non_human(subject: Subject) -> None:
        if subject.type not in NON_HUMAN:
            raise _error(
                "credential.not_for_users",
                "API keys and client assertions are for services and agents",
                400,
            )

    def issue_key(
        self,
        subject: Subject,
        *,
        label: str,
        scopes: tuple[str, ...],
        expires_in: int | str | None,
        now: datetime,
    ) -> tuple[Authenticator, str]:
        """A new API key: the stored credential, and the key (shown this once only)."""
        self._non_human(subject)
        expires_at = now + _duration(expires_in, "expires_in", MAX_KEY) if expires_in else None
        return self._store_key(subject, label=label, scopes=scopes, expires_at=expires_at,
                               now=now)  # fmt: skip

    def _store_key(
        self,
        subject: Subject,
        *,
        label: str,
        scopes: tuple[str, ...],
        expires_at: datetime | None,
        now: datetime,
    ) -> tuple[Authenticator, str]:
        enrollment = self._method("api_key").enroll(subject=subject.id, now=now)
        record, shown = enrollment.record, enrollment.shown
        made = self.store.create_authenticator(
            Authenticator(
                id=new_id("cred"),
                subject_type=subject.type,
                subject_id=subject.id,
                method="api_key",
                kind="api_key",
                created_at=now,
                record=encode_record(record),
                label=label,
                confirmed_at=now,
                lookup=f"api_key:{shown.key_id}",
                expires_at=expires_at,
                scopes=scopes,
            )
        )
        return made, shown.key

    def rotate_key(
        self, subject: Subject, authenticator_id: str, *, overlap: int | str, now: datetime
    ) -> tuple[Authenticator, str, Authenticator]:
        """A new key in place of an old one (same label, scopes and lifetime); the old one
        keeps working for ``overlap`` (or until its own expiry, if sooner), then ends."""
        self._non_human(subject)
        grace = _overlap(overlap)
        old = self.store.get_authenticator(authenticator_id)
        if old is None or (old.subject_type, old.subject_id) != (subject.type, subject.id):
            raise _error("authenticator.not_found", "no such authenticator", 404)
        if old.kind != "api_key":
            raise _error("credential.not_rotatable", "only API keys are rotated", 400)
        if old.expires_at is not None and old.expires_at <= now:
            raise _error("credential.expired", "the key has expired already: issue a new one", 409)
        lifetime = old.expires_at - old.created_at if old.expires_at is not None else None
        made, key = self._store_key(
            subject,
            label=old.label,
            scopes=old.scopes,
            expires_at=now + lifetime if lifetime is not None else None,
            now=now,
        )
        ends = now + grace if grace is not None else now
        if old.expires_at is not None:
            ends = min(ends, old.expires_at)
        try:
            retired = self.store.update_authenticator(
                msgspec.structs.replace(old, expires_at=ends), expected_revision=old.revision
            )
        except ConflictError:  # used meanwhile (its last use written): once more
            fresh = self.store.get_authenticator(old.id)
            if fresh is None:
                raise _error("authenticator.not_found", "no such authenticator", 404) from None
            retired = self.store.update_authenticator(
                msgspec.structs.replace(fresh, expires_at=ends), expected_revision=fresh.revision
            )
        if grace is None:
            self.changes.end_credential_sessions(retired, "credential_rotated")
        return made, key, retired

    def register_assertion_keys(
        self,
        subject: Subject,
        jwks: object,
        *,
        label: str,
        scopes: tuple[str, ...],
        expires_in: int | str | None,
        now: datetime,
    ) -> Authenticator:
        """Register public keys the service signs its client assertions with."""
        self._non_human(subject)
        expires_at = now + _duration(expires_in, "expires_in", MAX_KEY) if expires_in else None
        try:
            enrollment = self._method("client_assertion").enroll(
                subject=subject.id, jwks=jwks, now=now
            )
        except EnrollmentError as exc:
            raise _error("credential.invalid_keys", str(exc), 400) from None
        return self.store.create_authenticator(
            Authenticator(
                id=new_id("cred"),
                subject_type=subject.type,
                subject_id=subject.id,
                method="client_assertion",
                kind="client_assertion",
                created_at=now,
                record=encode_record(enrollment.record),
                label=label,
                confirmed_at=now,
                expires_at=expires_at,
                scopes=scopes,
            )
        )

    # -- credentials (a session starts) --------------------------------------------------------
    def authenticate(
        self,
        plan: Plan,
        app_name: str,
        subject: Mapping[str, Any],
        credential: Credential,
        *,
        ip: str | None,
        now: datetime,
    ) -> tuple[Subject, Authenticator, StoredProof]:
        """Check a credential for a session about to start: the subject, the credential used
        (its use recorded), and the proof to record. Raises AuthnError (``credential.invalid``
        for anything about the credential itself)."""
        if (credential.api_key is None) == (credential.client_assertion is None):
            raise _error("request.invalid", "give exactly one of `api_key`, `client_assertion`",
                         400)  # fmt: skip
        kind = "api_key" if credential.api_key is not None else "client_assertion"
        proof = credential.api_key if kind == "api_key" else credential.client_assertion
        subject_type = str(subject.get("type") or "")
        subject_id = subject.get("id")
        if kind == "api_key":
            key_id = key_id_of(proof)
            found = self.store.find_authenticator(f"api_key:{key_id}") if key_id else None
            if found is None or found.kind != "api_key":
                raise _credential_refused()
            named = (subject_type or found.subject_type, subject_id)
            if subject_id is not None and named != (found.subject_type, found.subject_id):
                raise _credential_refused()
            candidates = [found]
            subject_type, subject_id = found.subject_type, found.subject_id
        else:
            if subject_type not in NON_HUMAN or not isinstance(subject_id, str) or not subject_id:
                raise _error("request.invalid", "a client assertion needs `subject.type` "
                             "(service or agent) and `subject.id`", 400)  # fmt: skip
            candidates = [
                a
                for a in self.store.list_authenticators(subject_type, subject_id)
                if a.kind == "client_assertion"
            ]
        if subject_type not in NON_HUMAN:
            raise _credential_refused()
        known = self.store.get_subject(subject_type, subject_id)
        if known is None:
            raise _credential_refused()
        journey, _ = plan.route(app_name, subject_type)
        if journey is None:
            raise _error("journey.not_found", "no journey governs this app and subject type", 400)
        name = self._method_name(journey, kind, credential.method)
        method = self.methods.get(plan, journey, name)
        for authenticator in candidates:
            if authenticator.expires_at is not None and authenticator.expires_at <= now:
                continue
            stored = self._use(method, authenticator, proof, subject_id, ip=ip, now=now)
            if stored is None:
                continue
            used, verified = stored
            # Said only to a caller that proved the credential: nothing to learn otherwise.
            if known.status != "active":
                raise _error("subject.disabled", "the subject is disabled", 403)
            return (
                known,
                used,
                StoredProof(
                    method=name, at=now, kind=verified.kind, aal=verified.aal, amr=verified.amr
                ),
            )
        raise _credential_refused()

    def _use(
        self,
        method: Any,
        authenticator: Authenticator,
        proof: object,
        subject_id: str,
        *,
        ip: str | None,
        now: datetime,
    ) -> tuple[Authenticator, Any] | None:
        """Verify ``proof`` against one credential and write its use (and its new record: a
        spent jti) at the revision read; a lost race reads it again and verifies again, so a
        replay racing its original is caught. None when it does not verify."""
        current: Authenticator | None = authenticator
        for _ in range(5):
            if current is None:
                return None
            try:
                record = decode_record(current)
                result = method.verify(record, proof, now=now, context=Context(subject=subject_id))
            except MethodError:
                raise _credential_refused() from None
            if not result.ok or result.proof is None:
                return None
            new_record = encode_record(result.record) if result.record is not None else None
            used = msgspec.structs.replace(
                current, record=new_record or current.record, last_used_at=now, last_used_from=ip
            )
            try:
                return self.store.update_authenticator(
                    used, expected_revision=current.revision
                ), result.proof
            except ConflictError:
                current = self.store.get_authenticator(current.id)
        raise _error("credential.busy", "the credential kept changing; try again", 409)

    @staticmethod
    def _method_name(journey: JourneyPlan, kind: str, wanted: str | None) -> str:
        names = [n for n, info in journey.methods.items() if info.kind == kind]
        if wanted is not None:
            if wanted not in names:
                raise _error("credential.not_in_journey",
                             f"journey `{journey.name}` has no method `{wanted}` of kind `{kind}`",
                             400)  # fmt: skip
            return wanted
        if len(names) != 1:
            raise _error(
                "credential.not_in_journey",
                f"journey `{journey.name}` declares {len(names)} methods of kind `{kind}`: "
                + ("name one in `credential.method`" if names else "it does not accept this"),
                400,
            )
        return names[0]

    # -- delegation and tasks ------------------------------------------------------------------
    def delegation(self, app_id: str, session_id: object) -> Delegation:
        """The delegation to a user's live session of the same app. Raises AuthnError."""
        user = self.store.get_session(session_id) if isinstance(session_id, str) else None
        if user is None or (user.app, user.subject_type, user.status) != (app_id, "user", "active"):
            raise _error("delegation.invalid", "the delegating session is not a live user "
                         "session of this app", 403)  # fmt: skip
        return Delegation(subject_id=user.subject_id, session_id=user.id)

    @staticmethod
    def task(body: object, now: datetime) -> Task:
        """A task from the platform's JSON. Raises AuthnError (``task.invalid``)."""
        try:
            given = msgspec.convert(body, NewTask, strict=False)
        except msgspec.ValidationError as exc:
            raise _error("task.invalid", f"invalid task: {exc}", 400) from None
        if not _NAME.match(given.id) or not _NAME.match(given.purpose):
            raise _error("task.invalid", "`id` and `purpose` are names of 1 to 128 letters, "
                         "digits and ._:@/-", 400)  # fmt: skip
        if len(given.tools) > 100 or any(not _PATTERN.match(t) for t in given.tools):
            raise _error("task.invalid", "`tools` are at most 100 checkpoint names", 400)
        if (given.expires_in is None) == (given.expires_at is None):
            raise _error("task.invalid", "give one of `expires_in`, `expires_at`", 400)
        if given.expires_at is not None:
            if given.expires_at.tzinfo is None:
                raise _error("task.invalid", "`expires_at` needs a time zone", 400)
            expires_at = given.expires_at
        else:
            assert given.expires_in is not None
            try:
                expires_at = now + _duration(given.expires_in, "expires_in", MAX_TASK)
            except AuthnError as exc:
                raise _error("task.invalid", exc.message, 400) from None
        if not now < expires_at <= now + MAX_TASK:
            raise _error("task.invalid", "a task expires in the future, within 24 hours", 400)
        if len(msgspec.json.encode(given.details)) > 16_384:
            raise _error("task.invalid", "`details` is larger than 16 KiB", 400)
        return Task(
            id=given.id,
            purpose=given.purpose,
            tools=tuple(dict.fromkeys(given.tools)),
            started_at=now,
            expires_at=expires_at,
            details=given.details,
        )

    # -- decisions -----------------------------------------------------------------------------
    def refusal(
        self, session: Session, action: str, now: datetime, user: Session | None
    ) -> tuple[str, bool] | None:
        """Why a non-human session may not go on with ``action``, and whether that ends it;
        None when it may (the journey decides). ``user``: its `delegator`, read by the caller.
        Reads the store: its errors propagate."""
        if session.delegation is not None:
            if user is None or user.status != "active":
                return "delegation_ended", True
        if session.credential is not None:
            credential = self.store.get_authenticator(session.credential)
            if credential is None:
                return "credential_removed", True
            if credential.expires_at is not None and credential.expires_at <= now:
                return "credential_expired", True
        if session.task is not None and session.task.expires_at <= now:
            return "task_expired", False
        if not in_scope(session.credential_scopes, action):
            return "outside_credential_scope", False
        return None
