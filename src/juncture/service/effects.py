"""What a decision does to its session once made: a revocation is stored, an allow with a
ttl or a reroute stands, a step-up makes its challenge (and an approval request when a person
must answer it), and a pending session's login settles it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import msgspec

from juncture.engine import Decision
from juncture.policy import Plan
from juncture.records import App, Challenge, Session
from juncture.service.approval_requests import ApprovalRequests, approval_methods, approval_ttl
from juncture.service.emitter import Emitter
from juncture.service.ids import new_id
from juncture.service.outcome import Outcome
from juncture.service.session_changes import SessionChanges
from juncture.store.protocols import Store

CHALLENGE_TTL = timedelta(minutes=5)
CHALLENGE_ATTEMPTS = 5


class Effects:
    """Applies a decision's effects to its session."""

    def __init__(
        self,
        store: Store,
        changes: SessionChanges,
        approval_requests: ApprovalRequests,
        emitter: Emitter,
    ) -> None:
        self.store = store
        self.changes = changes
        self.approval_requests = approval_requests
        self.emitter = emitter

    def apply(
        self,
        app: App,
        plan: Plan,
        action: str,
        request: Mapping[str, Any],
        session: Session | None,
        decision: Decision,
        now: datetime,
    ) -> Outcome:
        if session is None:
            return Outcome(decision=decision)
        if decision.outcome == "revoke":
            session = self.changes.change(session, lambda s: self.changes.revoked(s, decision, now))
            self.emitter.emit("session-revoked", session, {"reason": decision.reason or "revoked"})
            self.changes.end_dependants(session, now)
            return Outcome(decision=decision, session=session)
        rerouted = decision.outcome == "reroute" and (session.path, session.scopes) != (
            decision.path,
            decision.scopes,
        )
        standing = self.changes.standing(session, action, decision, now)
        if standing is not None or (
            decision.outcome == "reroute"
            and (session.path, session.scopes) != (decision.path, decision.scopes)
        ):

            def stand(s: Session) -> Session:
                changed = (
                    s
                    if standing is None
                    else msgspec.structs.replace(s, standing={**s.standing, action: standing})
                )
                if decision.outcome == "reroute":
                    changed = msgspec.structs.replace(
                        changed, path=decision.path, scopes=decision.scopes
                    )
                return msgspec.structs.replace(changed, updated_at=now)

            session = self.changes.change(session, stand)
            if rerouted:
                self.emitter.emit(
                    "token-claims-change",
                    session,
                    {"path": decision.path, "scopes": list(decision.scopes)},
                )
        if decision.outcome == "step_up" and decision.step_up is not None:
            step_up = decision.step_up
            journey = None
            waits = CHALLENGE_TTL
            if session.delegation is not None:  # an agent's: a person may have to answer it
                journey, _ = plan.route(app.name, session.subject_type)
            if journey is not None:
                for method in approval_methods(journey, step_up.methods):
                    waits = max(waits, approval_ttl(journey, method))
            challenge = Challenge(
                id=new_id("ch"),
                session_id=session.id,
                app=app.id,
                subject_id=session.subject_id,
                checkpoint=action,
                methods=step_up.methods,
                mode=step_up.mode,
                within=step_up.within,
                aal=step_up.aal,
                created_at=now,
                expires_at=now + waits,
                attempts_left=CHALLENGE_ATTEMPTS,
                request={k: v for k, v in request.items() if k not in ("session",)},
            )
            self.store.create_challenge(challenge)
            if journey is not None:
                self.approval_requests.requested(journey, session, challenge, now)
            return Outcome(decision=decision, session=session, challenge=challenge)
        return Outcome(decision=decision, session=session)

    def logged_in(self, session: Session, decision: Decision, now: datetime) -> Session:
        """A pending session after its login decision: active once it allows (or reroutes),
        ended when it denies, still pending on a step-up (its challenge is the way on)."""
        if decision.outcome in ("allow", "reroute"):
            status, reason = "active", None
        elif decision.outcome == "deny":
            status, reason = "ended", "login_denied"
        else:
            return session

        def settle(s: Session) -> Session:
            if s.status != "pending":  # revoked or ended meanwhile: that stands
                return s
            return msgspec.structs.replace(s, status=status, status_reason=reason, login=None,
                                           updated_at=now)  # fmt: skip

        return self.changes.change(session, settle)
