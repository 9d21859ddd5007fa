"""Decisions: a request (bound to a session or not) decided against the active version.

Data flow of one decision (DESIGN.md): the calling app is authenticated (by the API) -> the
session is loaded -> its proofs, signals and context join the request's facts (facts.py) ->
the active plan evaluates the guard then the checkpoint -> the session's effects (effects.py)
and the decision record (decision_log.py) are stored -> the answer goes back. Anything that
cannot be had (the store, an active version) makes the decision deny.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from juncture.engine import Decision, Facts, evaluate
from juncture.errors import FactsError
from juncture.policy import Plan
from juncture.policy.plan import JourneyPlan
from juncture.records import App, Session, StoredProof
from juncture.service.agent_facts import non_human
from juncture.service.agents import Agents
from juncture.service.approval_requests import APPROVE, approval_gate
from juncture.service.decision_log import DecisionLog
from juncture.service.directory import CHECKPOINTS as AUTHENTICATOR_CHECKPOINTS
from juncture.service.directory import Directory
from juncture.service.effects import Effects
from juncture.service.facts import FactsAssembly, proof_fact
from juncture.service.ids import new_id
from juncture.service.observe import Connection, Reported
from juncture.service.outcome import (
    Outcome,
    ServiceError,
    store_failed,
    store_failure,
    unavailable,
)
from juncture.service.policies import NoActiveVersion, PolicyRegistry
from juncture.service.session_changes import CONTEXT_UPDATE, SessionChanges
from juncture.service.shadow import ShadowJob, ShadowRunner
from juncture.store.protocols import Store, StoreError


class Decisions:
    """Decides requests, and re-decides sessions from what they remember (the sweep)."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        policies: PolicyRegistry,
        facts: FactsAssembly,
        changes: SessionChanges,
        effects: Effects,
        log: DecisionLog,
        agents: Agents,
        directory: Directory,
        shadow: ShadowRunner,
    ) -> None:
        self.store = store
        self.now = now
        self.policies = policies
        self.facts = facts
        self.changes = changes
        self.effects = effects
        self.log = log
        self.agents = agents
        self.directory = directory
        self.shadow = shadow

    def decide(
        self,
        app: App,
        action: str,
        request: Mapping[str, Any],
        *,
        session_id: str | None = None,
        connection: Connection | None = None,
        answered: StoredProof | None = None,
        plan: Plan | None = None,
    ) -> Outcome:
        """Decide ``action`` for a request (a facts document), bound to a session if named.

        ``plan``: the version to decide with, read by a caller that used it already (forward
        auth chose the checkpoint by its `routes:`), so that one decision uses one version
        (I7); None: the active version, read here. The decision and its record name it.

        ``answered``: a proof good for this one decision only, never kept in the session (a
        person's approval of what an agent asked).

        The request's ``network`` and ``device`` sections are what the app reports; they are
        observed and enriched (service/observe.py) before the journey reads them.

        Raises ServiceError for a session that is not the app's, or facts that are invalid;
        everything else (store down, no version) is a deny. Its reads stand as of its first
        (`Store.consistent_reads`).
        """
        with self.store.consistent_reads():
            return self._decide(app, action, request, session_id, connection, answered, plan)

    def _decide(
        self,
        app: App,
        action: str,
        request: Mapping[str, Any],
        session_id: str | None,
        connection: Connection | None,
        answered: StoredProof | None,
        given: Plan | None,
    ) -> Outcome:
        started = time.perf_counter_ns()
        decision_id = new_id("d")
        now = self.now()
        try:
            plan = given if given is not None else self.policies.active()
            session = self.changes.load(app, session_id) if session_id else None
        except StoreError as exc:
            why = store_failure(exc)
            return Outcome(decision=unavailable(action, decision_id=decision_id, reason=why))
        except NoActiveVersion:
            return Outcome(
                decision=unavailable(action, decision_id=decision_id, reason="no_version")
            )
        if session is not None and session.status != "active":
            try:
                reason = self._not_active(session, action)
            except StoreError as exc:
                return store_failed(action, plan.version, decision_id, exc)
            if reason is not None:
                decision = Decision(outcome="deny", reason=reason, action=action,
                                    version=plan.version, id=decision_id)  # fmt: skip
                self.log.record(app, action, request, session, decision, {}, started, now)
                return Outcome(decision=decision, session=session)
        delegator: Session | None = None
        if session is not None and non_human(session):
            try:
                delegator = self.changes.delegator(session)  # read once: refusal and facts
                refused = self.agents.refusal(session, action, now, delegator)
                if refused is not None:
                    return self._refuse(app, action, request, session, refused, plan, decision_id,
                                        started, now)  # fmt: skip
            except StoreError as exc:
                return store_failed(action, plan.version, decision_id, exc)
        subject = request.get("subject") or {}
        if session is None:
            try:
                disabled = self.disabled(subject)
            except StoreError as exc:
                return store_failed(action, plan.version, decision_id, exc)
            if disabled:  # disabled means deny on every entry path, sessionless included
                decision = Decision(outcome="deny", reason="subject_disabled", action=action,
                                    version=plan.version, id=decision_id)  # fmt: skip
                self.log.record(app, action, request, None, decision, {}, started, now)
                return Outcome(decision=decision)
        if session is not None and subject.get("id") not in (None, session.subject_id):
            raise ServiceError(
                "session.subject_mismatch",
                "the request's subject is not the session's subject",
                403,
            )
        doc = self.facts.document(app.name, request, session, now, plan, delegator=delegator)
        if answered is not None and session is not None:
            doc["session"]["proofs"].append(proof_fact(answered))
        reported = self.facts.reported(doc)
        try:
            seen = self.facts.observe(reported, session, subject, now, connection)
        except StoreError as exc:
            return store_failed(action, plan.version, decision_id, exc)
        doc.update(seen.sections())
        try:
            facts = Facts.from_document(doc)
        except FactsError as exc:
            raise ServiceError("facts.invalid", exc.message, 400) from None
        built_in = self._built_in_checkpoint(plan, app, session, action)
        allowed = frozenset(app.journeys) or None
        decision = evaluate(
            plan,
            action,
            facts,
            now,
            decision_id=decision_id,
            allowed_journeys=allowed,
            guard_only=built_in is not None,
        )
        shadow_version = self.shadow.installed(plan.version)
        if shadow_version is not None:  # decided again by the shadow, off this path
            subject_id = session.subject_id if session is not None else subject.get("id")
            self.shadow.offer(ShadowJob(
                shadow_version=shadow_version, decision=decision, facts=facts, at=now,
                app=app.name, subject_type=facts.subject_type,
                subject_id=subject_id if isinstance(subject_id, str) else None,
                session_id=session.id if session is not None else None,
                allowed_journeys=allowed, guard_only=built_in is not None,
            ))  # fmt: skip
        if built_in is not None and session is not None and decision.reason == "guard_passed":
            try:
                if action == APPROVE:
                    decision = approval_gate(plan, built_in, facts, now, decision_id)
                else:
                    decision = self.directory.default_gate(
                        plan, built_in, action, facts, session, now, decision_id
                    )
            except StoreError as exc:
                return store_failed(action, plan.version, decision_id, exc)
        try:
            session = self.facts.remember(session, seen, now)
            outcome = self.effects.apply(app, plan, action, request, session, decision, now)
            if outcome.session is not None and outcome.session.status == "pending":
                outcome = msgspec.structs.replace(outcome, session=self.effects.logged_in(
                    outcome.session, outcome.decision, now))  # fmt: skip
        except StoreError as exc:
            outcome = store_failed(action, plan.version, decision_id, exc)
        self.log.record(app, action, request, session, outcome.decision, doc, started, now)
        return outcome

    def _not_active(self, session: Session, action: str) -> str | None:
        """Why a session that is not active gets deny for ``action``; None for the login
        decision of a pending session (whose subject is still enabled): the journey decides."""
        if session.status != "pending":
            return f"session_{session.status}"
        if action != session.login:
            return "login_incomplete"  # only the login's own challenge moves a pending session
        if self.disabled({"type": session.subject_type, "id": session.subject_id}):
            return "subject_disabled"
        return None

    def disabled(self, subject: Mapping[str, Any]) -> bool:
        """Whether a sessionless request's subject is in the directory and not active."""
        subject_id = subject.get("id")
        if not isinstance(subject_id, str):
            return False
        known = self.store.get_subject(str(subject.get("type") or "user"), subject_id)
        return known is not None and known.status != "active"

    def _refuse(
        self,
        app: App,
        action: str,
        request: Mapping[str, Any],
        session: Session,
        refused: tuple[str, bool],
        plan: Plan,
        decision_id: str,
        started: int,
        now: datetime,
    ) -> Outcome:
        """A non-human session that may not go on (agents.py `refusal`): denied, or revoked
        when what it stood on is gone (the user's session, its credential)."""
        reason, ends = refused
        decision = Decision(outcome="revoke" if ends else "deny", reason=reason, action=action,
                            version=plan.version, id=decision_id)  # fmt: skip
        outcome = self.effects.apply(app, plan, action, request, session, decision, now)
        self.log.record(app, action, request, outcome.session, decision, {}, started, now)
        return outcome

    @staticmethod
    def _built_in_checkpoint(
        plan: Plan, app: App, session: Session | None, action: str
    ) -> JourneyPlan | None:
        """The journey whose `authenticator.*` checkpoint the built-in rule decides (the
        journey names none itself), or None."""
        if (action not in AUTHENTICATOR_CHECKPOINTS and action != APPROVE) or session is None:
            return None
        journey, _ = plan.route(app.name, session.subject_type)
        if journey is None or action in journey.exact:
            return None
        return journey

    def recheck(
        self, plan: Plan, app: App, session: Session, action: str | None, now: datetime
    ) -> Decision:
        """Decide ``action`` (None: only the guard) for a session from what it remembers, with
        no request: nothing is stored, nothing is logged (the caller acts on changes)."""
        return self.recheck_many(plan, app, session, (action,), now)[action]

    def recheck_many(
        self,
        plan: Plan,
        app: App,
        session: Session,
        actions: Sequence[str | None],
        now: datetime,
    ) -> dict[str | None, Decision]:
        """`recheck` of several actions over one assembly of the session's facts."""
        doc = self.facts.document(app.name, {}, session, now, plan)
        seen = self.facts.observer.observe(Reported(), session, now)
        doc.update(seen.sections())
        facts = Facts.from_document(doc)
        allowed = frozenset(app.journeys) or None
        return {
            action: evaluate(
                plan,
                action or CONTEXT_UPDATE,
                facts,
                now,
                decision_id=None,  # given one only if it is logged (a revocation)
                guard_only=action is None,
                allowed_journeys=allowed,
            )
            for action in actions
        }
