"""The directory: subjects, their authenticators, and proofs Juncture verifies itself.

Enrolling or removing an authenticator is a checkpoint of the subject's journey
(`authenticator.enroll`, `authenticator.remove`): a journey that names it decides; otherwise
the built-in rule asks for an AAL as high as the authenticator's, capped at the best the
subject's confirmed authenticators reach (a subject with only a password can add a second
factor; one with a passkey must use a strong method to add or remove anything).

Verification of a challenge (`verify`) is admitted by the lockout first (the journey's
`lockout:` counters, per subject: `password` and `second_factor`; the lock is checked and
the attempt reserved in one store step, so workers racing never check more guesses than the
limit), then checks the proof against the subject's confirmed credentials, counts a failure
(settling the reservation), and keeps single use by writing the changed credential record at
the revision it was read. Starting a challenge's method that sends a message (an email
code) is admitted by the send limit first (service/sends.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from juncture.engine import Decision, StepUp
from juncture.engine.decision import Trace
from juncture.engine.evaluate import session_view
from juncture.engine.facts import Facts
from juncture.methods import Context
from juncture.methods.base import (
    EnrollmentError,
    EnrolRequest,
    MethodError,
    ProofError,
    StateError,
)
from juncture.methods.base import Method as MethodImpl
from juncture.methods.base import Proof as VerifiedProof
from juncture.methods.base import Result as MethodResult
from juncture.methods.delivery import SendLimit
from juncture.policy import Plan
from juncture.policy.plan import JourneyPlan, StepRef, acr_values, counter_for_kind
from juncture.records import Authenticator, Challenge, Session, Subject
from juncture.service.authn import (
    AuthnError,
    MethodTable,
    best_reachable,
    check_records,
    decode_record,
    encode_record,
    failed,
    method_kind,
    usable,
)
from juncture.service.ids import new_id
from juncture.service.lockout import Lockout
from juncture.service.policies import PolicyRegistry
from juncture.service.sends import Sends
from juncture.service.session_changes import SessionChanges
from juncture.store.protocols import ConflictError, Store

#: The checkpoints that guard the directory's own changes.
ENROLL = "authenticator.enroll"
REMOVE = "authenticator.remove"
CHECKPOINTS = (ENROLL, REMOVE)
#: How recent the proofs the built-in enroll/remove rule counts must be.
GATE_WITHIN = timedelta(minutes=10)
_BUILT_IN = "(built-in)"


class Checked(msgspec.Struct, frozen=True, kw_only=True):
    """A proof checked for a challenge, before the attempt is settled."""

    ok: bool
    code: str
    kind: str
    journey: Any
    #: The attempt the lockout admitted (settled by `settle` or `release`).
    attempt: str
    proof: VerifiedProof | None = None
    posture: Any = None
    state: bytes | None = None


class Enrolled(msgspec.Struct, frozen=True, kw_only=True):
    """An enrollment: the authenticator made, what to show once, the message to send."""

    authenticator: Authenticator
    shown: Any = None
    message: Any = None  # an email code's first message (the caller sends it: async)
    method: Any = None


class Directory:
    """Subjects and authenticators over the store and the active journeys."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        policies: PolicyRegistry,
        methods: MethodTable,
        changes: SessionChanges,
        lockout: Lockout,
        sends: Sends,
    ) -> None:
        self.store = store
        self.now = now
        self.policies = policies
        self.methods = methods
        self.changes = changes
        self.lockout = lockout
        self.sends = sends

    # -- subjects ---------------------------------------------------------------------------
    def create_subject(
        self,
        subject_type: str,
        subject_id: str,
        *,
        attributes: Mapping[str, Any],
        status: str,
        owner: str | None = None,
        description: str = "",
    ) -> Subject:
        now = self.now()
        subject = Subject(
            type=subject_type,
            id=subject_id,
            created_at=now,
            updated_at=now,
            attributes=dict(attributes),
            status=status,  # type: ignore[arg-type]
            owner=owner,
            description=description,
        )
        try:
            return self.store.put_subject(subject, expected_revision=0)
        except ConflictError:
            raise AuthnError(
                "subject.exists", f"subject `{subject_id}` exists already", 409
            ) from None

    def subject(self, subject_type: str, subject_id: str) -> Subject:
        found = self.store.get_subject(subject_type, subject_id)
        if found is None:
            raise AuthnError("subject.not_found", "no such subject", 404)
        return found

    def subjects(
        self, *, subject_type: str | None, status: str | None, limit: int, after: str | None
    ) -> Sequence[Subject]:
        """A page of subjects by (type, id); ``after``: the ``type:id`` the page starts after."""
        return self.store.list_subjects(
            subject_type=subject_type, status=status, limit=limit, after=after
        )

    def authenticators(self, subject: Subject) -> Sequence[Authenticator]:
        return self.store.list_authenticators(subject.type, subject.id)

    def authenticator(self, subject: Subject, authenticator_id: str) -> Authenticator:
        """The subject's authenticator. Raises AuthnError 404 ``authenticator.not_found``."""
        found = self.store.get_authenticator(authenticator_id)
        if found is None or (found.subject_type, found.subject_id) != (subject.type, subject.id):
            raise AuthnError("authenticator.not_found", "no such authenticator", 404)
        return found

    def remove(self, authenticator: Authenticator) -> None:
        """Delete an authenticator (its sessions are the caller's to end, or not)."""
        self.store.delete_authenticator(authenticator.id)

    def update_subject(
        self,
        subject_type: str,
        subject_id: str,
        *,
        attributes: Mapping[str, Any] | None,
        status: str | None,
        owner: str | None = None,
        description: str | None = None,
    ) -> Subject:
        """Change attributes, status, owner or description; disabling revokes the subject's
        active sessions (and the agent sessions that act for them)."""
        for _ in range(8):
            current = self.subject(subject_type, subject_id)
            changed = msgspec.structs.replace(
                current,
                attributes=dict(attributes) if attributes is not None else current.attributes,
                status=status or current.status,
                owner=owner if owner is not None else current.owner,
                description=description if description is not None else current.description,
                updated_at=self.now(),
            )
            try:
                stored = self.store.put_subject(changed, expected_revision=current.revision)
                break
            except ConflictError:
                continue
        else:
            raise AuthnError("subject.busy", "the subject kept changing; try again", 409)
        if stored.status == "disabled":
            self.changes.revoke_subject_sessions(subject_type, subject_id, "account_disabled")
        return stored

    # -- which journey ----------------------------------------------------------------------
    def journey(
        self,
        app_name: str | None,
        subject_type: str,
        name: str | None = None,
        *,
        method: str | None = None,
    ) -> tuple[Plan, JourneyPlan]:
        """The journey an app's subject is governed by; for an administrator (no app), the one
        named, or the only one that declares ``method``."""
        plan = self.policies.active()
        if name is None and app_name is None and method is not None:
            declaring = [j for j in plan.journeys.values() if method in j.methods]
            if len(declaring) == 1:
                return plan, declaring[0]
        if name is not None:
            chosen = plan.journeys.get(name)
            if chosen is None:
                raise AuthnError("journey.not_found", f"no journey `{name}` is active", 404)
            return plan, chosen
        found, _ = plan.route(app_name, subject_type)
        if found is None:
            raise AuthnError(
                "journey.not_found",
                "no single journey governs this app and subject type: name `journey`",
                400,
            )
        return plan, found

    # -- enrollment -------------------------------------------------------------------------
    def enroll(
        self,
        plan: Plan,
        journey: JourneyPlan,
        subject: Subject,
        method_name: str,
        given: Mapping[str, Any],
        *,
        label: str = "",
    ) -> Enrolled:
        """Make a new authenticator (the caller has passed the enroll checkpoint)."""
        if subject.status != "active":
            raise AuthnError("subject.disabled", "the subject is disabled", 403)
        method = self.methods.get(plan, journey, method_name)
        kind = method_kind(method.kind)
        if kind.issued_by_admin:
            raise AuthnError(
                "authenticator.not_enrollable",
                f"method `{method_name}`: keys of services and agents are issued by an "
                "administrator (`/admin/v1/subjects/{id}/keys`, `.../assertion-keys`)",
                400,
            )
        if kind.enrol is None:
            raise AuthnError(
                "authenticator.not_enrollable", f"method `{method_name}` has nothing to enroll", 400
            )
        now = self.now()
        authenticator_id = new_id("au")
        existing = self.store.list_authenticators(subject.type, subject.id)
        request = EnrolRequest(
            subject=subject.id,
            given=given,
            now=now,
            authenticator_id=authenticator_id,
            existing=[decode_record(a) for a in usable(existing, method_name, kind.name)],
        )
        try:
            made_now = kind.enrol(method, request)
        except ProofError as exc:
            raise AuthnError("enrollment.invalid", str(exc), 400) from None
        except EnrollmentError as exc:
            raise AuthnError(exc.code, str(exc), 422) from None
        authenticator = Authenticator(
            id=authenticator_id,
            subject_type=subject.type,
            subject_id=subject.id,
            method=method_name,
            kind=kind.name,
            created_at=now,
            record=encode_record(made_now.record),
            label=label,
            confirmed_at=now if kind.confirmed_at_enrollment else None,
        )
        made = self.store.create_authenticator(authenticator)
        if kind.confirmed_at_enrollment:  # a new password or set of codes replaces the old
            for old in existing:
                if old.method == method_name and old.kind == kind.name:
                    self.store.delete_authenticator(old.id)
        return Enrolled(
            authenticator=made, shown=made_now.shown, message=made_now.message, method=method
        )

    def confirm(
        self, plan: Plan, journey: JourneyPlan, authenticator: Authenticator, proof: object
    ) -> Authenticator:
        """The first successful verification of a new authenticator: from now on it counts."""
        if authenticator.confirmed_at is not None:
            raise AuthnError("authenticator.confirmed", "the authenticator is confirmed", 409)
        method = self.methods.get(plan, journey, authenticator.method)
        now = self.now()
        who = (journey, authenticator.subject_type, authenticator.subject_id, authenticator.kind)
        attempt = self.lockout.reserve(*who, now)
        try:
            result, record, lookup = self._confirmation(method, authenticator, proof, now)
        except BaseException:
            self.lockout.release(*who, attempt)
            raise
        if not result.ok or record is None:
            self.lockout.count_failure(*who, now, attempt)
            raise failed()
        self.lockout.release(*who, attempt)
        confirmed = msgspec.structs.replace(
            authenticator, record=encode_record(record), confirmed_at=now, lookup=lookup
        )
        try:
            return self.store.update_authenticator(
                confirmed, expected_revision=authenticator.revision
            )
        except ConflictError:  # a concurrent confirmation won
            raise failed() from None

    def _confirmation(
        self, method: MethodImpl[Any], authenticator: Authenticator, proof: object, now: datetime
    ) -> tuple[MethodResult[Any], Any, str | None]:
        """Check a new authenticator's first proof: (result, record to keep, lookup)."""
        context = Context(subject=authenticator.subject_id, challenge_id=authenticator.id)
        confirm = method_kind(authenticator.kind).confirm
        if confirm is None:  # confirmed at enrollment, or issued confirmed
            raise AuthnError("authenticator.confirmed", "the authenticator is confirmed", 409)
        try:
            done = confirm(method, authenticator.record, proof, now, context)
        except ProofError as exc:
            raise AuthnError("challenge.proof_malformed", str(exc), 400) from None
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise AuthnError(
                "internal.error", "a pending authenticator cannot be read", 500
            ) from None
        return done.result, done.record, done.lookup

    # -- the built-in enroll/remove rule ------------------------------------------------------
    def default_gate(
        self,
        plan: Plan,
        journey: JourneyPlan,
        action: str,
        facts: Facts,
        session: Session,
        now: datetime,
        decision_id: str | None,
    ) -> Decision:
        """The built-in `authenticator.enroll` / `authenticator.remove` checkpoint.

        Adding, replacing or removing any authenticator (recovery codes included) needs the
        AAL of the strongest confirmed authenticator the subject has (at least 1), proven
        within the last 10 minutes: a weaker or older session could otherwise plant a way in
        (replace the codes, add a passkey) that outranks what it proved. Nothing the app sends
        lowers it; a journey that names the checkpoint itself (a recovery journey the team
        wrote) decides instead.
        """
        records = self.store.list_authenticators(session.subject_type, session.subject_id)
        required = max(1, best_reachable(records, journey))
        view = session_view(journey, facts, now)
        current = max((m["aal"] for m in view["methods"].values() if m["age"] <= GATE_WITHIN),
                      default=0)  # fmt: skip
        ref = StepRef(
            kind="require",
            text=f"built-in: {action} needs AAL {required} (the subject's strongest "
            "authenticator's) within 10 minutes",
            file=_BUILT_IN,
            line=0,
        )
        common = {"action": action, "journey": journey.name, "checkpoint": action,
                  "version": plan.version, "id": decision_id}  # fmt: skip
        if current >= required:
            return Decision(
                outcome="allow",
                explanation=(Trace(step=ref, result="met"),),
                **common,  # type: ignore[arg-type]
            )
        own = {a.method for a in records if a.confirmed_at}
        methods = tuple(
            name
            for name, info in journey.methods.items()
            if info.aal >= required and (name in own or not own)
        ) or tuple(name for name, info in journey.methods.items() if info.aal >= required)
        return Decision(
            outcome="step_up",
            reason="step_up_required",
            step_up=StepUp(
                methods=methods,
                mode="any",
                within=int(GATE_WITHIN.total_seconds()),
                aal=required,
                acr_values=acr_values(required),
                amr_values=tuple(dict.fromkeys(a for m in methods for a in journey.methods[m].amr)),
            ),
            explanation=(Trace(step=ref, result="not_met"),),
            **common,  # type: ignore[arg-type]
        )

    # -- challenges ---------------------------------------------------------------------------
    def _session_journey(self, session: Session) -> tuple[Plan, JourneyPlan]:
        app = self.store.get_app(session.app)
        return self.journey(app.name if app is not None else None, session.subject_type)

    def start(self, challenge: Challenge, session: Session, method_name: str) -> tuple[Any, Any]:
        """Start a method's ceremony for a challenge: (what the client gets, a message to
        send or None). Only kinds with a start step have one (WebAuthn, email codes)."""
        plan, journey = self._session_journey(session)
        method = self.methods.get(plan, journey, method_name)
        start = method_kind(method.kind).start
        if start is None:
            raise AuthnError("challenge.no_start", f"method `{method_name}` has no start", 400)
        now = self.now()
        records = usable(
            self.store.list_authenticators(session.subject_type, session.subject_id),
            method_name,
            method.kind,
        )
        started = start(method, [decode_record(a) for a in records], challenge.id, now)
        if started is None:
            raise AuthnError(
                "challenge.no_credential", "no confirmed credential for this method", 409
            )
        issued, message = started
        who = (session.subject_type, session.subject_id, method.kind)
        limit = getattr(method, "send_limit", None)
        limit = limit if isinstance(limit, SendLimit) else SendLimit()  # a plug-in's: ours
        send = self.sends.admit(*who, limit, now) if message is not None else None
        try:
            self.store.set_challenge_state(challenge.id, method_name, issued.state, at=now)
        except BaseException as error:  # nothing drawn: the send is given back uncounted
            if send is not None:
                self.sends.release(*who, send)
            if isinstance(error, ConflictError):
                raise AuthnError(
                    "challenge.not_live", "the challenge is expired, used or out of attempts", 409
                ) from None
            raise
        if send is not None:
            self.sends.count(*who, limit, now, send)
        return issued.public, (message, method)

    def verify(
        self, challenge: Challenge, session: Session, method_name: str, proof: object
    ) -> Checked:
        """Check a proof for a challenge, counting nothing yet: the lockout admits the attempt
        and reserves it first (the caller spends the challenge's attempt, then calls `settle`,
        or `release` when it cannot).

        Raises AuthnError: ``auth.locked`` (429) before anything is checked,
        ``challenge.proof_malformed`` (400), a method's configuration or outage (503).
        """
        plan, journey = self._session_journey(session)
        method: MethodImpl[Any] = self.methods.get(plan, journey, method_name)
        kind = method.kind
        now = self.now()
        who = (journey, session.subject_type, session.subject_id, kind)
        attempt = self.lockout.reserve(*who, now)
        try:
            return self._check(method, challenge, session, method_name, proof, journey, now,
                               attempt)  # fmt: skip
        except BaseException:
            self.lockout.release(*who, attempt)
            raise

    def _check(
        self,
        method: MethodImpl[Any],
        challenge: Challenge,
        session: Session,
        method_name: str,
        proof: object,
        journey: JourneyPlan,
        now: datetime,
        attempt: str,
    ) -> Checked:
        kind = method.kind
        state = challenge.states.get(method_name)
        context = Context(subject=session.subject_id, challenge_id=challenge.id, state=state)
        records = usable(
            self.store.list_authenticators(session.subject_type, session.subject_id),
            method_name,
            kind,
        )
        authenticator: Authenticator | None = None
        described = method_kind(kind)
        try:
            if described.record is None:  # a signed statement: no record of the subject's
                result: MethodResult[Any] = method.verify(None, proof, now=now, context=context)
            elif described.lookup is not None:  # the proof names its credential
                wanted = described.lookup(proof)
                candidates = [a for a in records if a.lookup == wanted]
                result, authenticator = check_records(
                    method, candidates, proof, now=now, context=context
                )
            else:
                result, authenticator = check_records(
                    method, records, proof, now=now, context=context
                )
        except ProofError as exc:
            raise AuthnError("challenge.proof_malformed", str(exc), 400) from None
        except StateError as exc:
            if described.start is not None and state is None:  # the client skipped the start step
                raise AuthnError(
                    "challenge.not_started",
                    f"start the challenge with method `{method_name}` before verifying it",
                    409,
                ) from None
            raise AuthnError(exc.code, str(exc), exc.http_status) from None
        except MethodError as exc:
            raise AuthnError(exc.code, str(exc), exc.http_status) from None
        if result.ok and authenticator is not None:
            changed = msgspec.structs.replace(
                authenticator,
                record=encode_record(result.record) if result.record is not None
                else authenticator.record,
                last_used_at=now,
            )  # fmt: skip
            try:
                self.store.update_authenticator(changed, expected_revision=authenticator.revision)
            except ConflictError:  # the same credential verified concurrently: one wins
                result = MethodResult(ok=False, code="method.failed.replay")
        ok = result.ok and result.proof is not None
        return Checked(
            ok=ok,
            code=result.code,
            kind=kind,
            journey=journey,
            attempt=attempt,
            proof=result.proof if ok else None,
            posture=result.posture if ok else None,
            state=result.state if ok else None,
        )

    def settle(self, checked: Checked, challenge: Challenge, session: Session, method: str) -> None:
        """After the attempt is spent: count a failure, or clear the counter and keep the
        method's new challenge state (an email code marked used)."""
        now = self.now()
        if not checked.ok:
            self.lockout.count_failure(checked.journey, session.subject_type, session.subject_id,
                                      checked.kind, now, checked.attempt)  # fmt: skip
            return
        self.store.clear_failures(
            session.subject_type, session.subject_id, counter_for_kind(checked.kind)
        )
        if checked.state is not None:  # consumed meanwhile: the state no longer matters
            with contextlib.suppress(ConflictError):
                self.store.set_challenge_state(challenge.id, method, checked.state, at=now)

    def release(self, checked: Checked, session: Session) -> None:
        """Give a checked proof's attempt back uncounted: the challenge could not take it
        (used or out of attempts meanwhile), so its result was never told."""
        self.lockout.release(checked.journey, session.subject_type, session.subject_id,
                             checked.kind, checked.attempt)  # fmt: skip
