"""Approvals from the person's side: the approvals asked of a user, listed and answered from
their own live session (approval_requests.py has how agents ask and spend them). Approving is
the user's `approval.approve` checkpoint, decided like any other (decisions.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec

from juncture.records import App, Approval, Session
from juncture.service.approval_requests import APPROVE
from juncture.service.authn import AuthnError
from juncture.service.decisions import Decisions
from juncture.service.outcome import Outcome
from juncture.service.session_changes import SessionChanges
from juncture.store.protocols import ConflictError, Store


class Approvals:
    """Lists and answers approvals for their user."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        changes: SessionChanges,
        decisions: Decisions,
    ) -> None:
        self.store = store
        self.now = now
        self.changes = changes
        self.decisions = decisions

    # -- the user's side -----------------------------------------------------------------------
    def _user_session(self, app: App, session_id: str) -> Session:
        session = self.changes.load(app, session_id)
        if session.status != "active":
            raise AuthnError("session.not_active", "the session is ended or revoked", 409)
        return session

    def _addressed(self, session: Session, approval_id: str) -> Approval:
        approval = self.store.get_approval(approval_id)
        # Another person's approval does not exist for this one.
        if approval is None or session.subject_type != "user" or (
                approval.user_id != session.subject_id):  # fmt: skip
            raise AuthnError("approval.not_found", "no such approval", 404)
        return approval

    def list_for(self, app: App, session_id: str, *, status: str | None) -> list[Approval]:
        """The approvals asked of the session's user (pending and live by default)."""
        session = self._user_session(app, session_id)
        if session.subject_type != "user":
            return []
        now = self.now()
        found = self.store.list_approvals(session.subject_id, status=status or "pending", limit=100)
        if status is None:  # live questions only: not expired, the agent still there
            return [a for a in found if a.expires_at > now and self._agent_live(a)]
        return list(found)

    def _agent_live(self, approval: Approval) -> bool:
        agent = self.store.get_session(approval.session_id)
        return agent is not None and agent.status == "active"

    def get_for(self, app: App, session_id: str, approval_id: str) -> Approval:
        return self._addressed(self._user_session(app, session_id), approval_id)

    def answer(
        self,
        app: App,
        session_id: str,
        approval_id: str,
        *,
        approve: bool,
        reason: str | None,
    ) -> tuple[Outcome | None, Approval | None]:
        """Answer an approval from the user's session: (the `approval.approve` decision when
        approving, the approval as stored when answered). Approving steps up or is denied
        like any checkpoint; then nothing changes. Raises AuthnError."""
        session = self._user_session(app, session_id)
        approval = self._addressed(session, approval_id)
        now = self.now()
        self._answerable(approval, now)
        outcome = None
        if approve:
            resource = {
                "type": "approval",
                "id": approval.id,
                "properties": {
                    "action": approval.action,
                    "agent": approval.agent_id,
                    "request": approval.request,
                    "task": approval.task.purpose if approval.task is not None else None,
                },
            }
            outcome = self.decisions.decide(app, APPROVE, {"resource": resource},
                                          session_id=session.id)  # fmt: skip
            if outcome.decision.outcome != "allow":
                return outcome, None
            approval = self._addressed(session, approval_id)  # as it is after the decision
            self._answerable(approval, self.now())
        answered = msgspec.structs.replace(
            approval,
            status="approved" if approve else "rejected",
            answered_at=now,
            answered_session=session.id,
            answered_app=app.id,
            reason=reason,
        )
        try:
            stored = self.store.put_approval(answered, expected_revision=approval.revision)
        except ConflictError:
            raise AuthnError("approval.answered", "the approval was answered already",
                             409) from None  # fmt: skip
        return outcome, stored

    def _answerable(self, approval: Approval, now: datetime) -> None:
        if approval.status != "pending":
            raise AuthnError("approval.answered", "the approval was answered already", 409)
        if now >= approval.expires_at:
            raise AuthnError("approval.expired", "the approval expired", 409)
        if not self._agent_live(approval):
            raise AuthnError("approval.expired", "the agent's session has ended", 409)
