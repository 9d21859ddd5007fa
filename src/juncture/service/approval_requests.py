"""Human approval as a method (kind ``approval``): a person answers for the agent acting for
them. The requests and their spending; the person's side (listing, answering) is approvals.py.

1. An agent's decision steps up, and the challenge names a method of kind ``approval``: an
   approval is made for the user who delegated the task (`requested`), holding what the agent
   asked (the checkpoint, the request, the task). It lives as long as the method's ``ttl``
   option (default 15 minutes; the challenge lives at least as long). An earlier approval
   still pending for the same session and checkpoint is withdrawn: the person sees one
   question, the last.
2. The user lists and answers it from their own live session (`list_for`, `answer`). Approving
   is itself a checkpoint of the user's journey, `approval.approve` (for example: a passkey
   within the last 5 minutes); a journey that does not name it gets the built-in rule, AAL 2
   within 5 minutes. Rejecting needs only the session. An approval addressed to someone else
   does not exist for this user (404), and it is answered once.
3. The agent verifies its challenge with the method (`spend`): approved and not expired, the
   approval is spent once (an optimistic write) and is a proof of the checkpoint's decision
   that follows, and of that one only (it is never kept in the session), dated when the person
   approved (so ``within`` counts from the approval). Pending: try again later, nothing
   spent. Rejected or expired: refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import msgspec

from juncture.engine import Decision, StepUp
from juncture.engine.decision import Trace
from juncture.engine.evaluate import session_view
from juncture.engine.facts import Facts
from juncture.policy import Plan
from juncture.policy.duration import parse_duration
from juncture.policy.plan import JourneyPlan, StepRef, acr_values
from juncture.records import Approval, Challenge, Session, StoredProof
from juncture.service.authn import AuthnError
from juncture.service.ids import new_id
from juncture.store.protocols import ConflictError, Store

#: The user's checkpoint that approving is.
APPROVE = "approval.approve"
#: The built-in rule when a journey does not name `approval.approve`.
DEFAULT_AAL = 2
DEFAULT_WITHIN = timedelta(minutes=5)
#: How long an approval waits when the method sets no ``ttl``, and the bounds of one.
DEFAULT_TTL = timedelta(minutes=15)
MIN_TTL = timedelta(seconds=1)
MAX_TTL = timedelta(hours=24)
_BUILT_IN = "(built-in)"


def approval_view(approval: Approval) -> dict[str, Any]:
    """What the API shows of an approval."""
    return {
        "id": approval.id,
        "status": approval.status,
        "action": approval.action,
        "request": approval.request,
        "agent": {
            "type": approval.agent_type,
            "id": approval.agent_id,
            "session_id": approval.session_id,
        },
        "user_id": approval.user_id,
        "task": msgspec.to_builtins(approval.task) if approval.task is not None else None,
        "created_at": approval.created_at,
        "expires_at": approval.expires_at,
        "answered_at": approval.answered_at,
        "reason": approval.reason,
        "consumed": approval.consumed_at is not None,
    }


def approval_ttl(journey: JourneyPlan, method: str) -> timedelta:
    """The method's ``ttl`` option (a duration), within 1 second .. 24 hours; the default
    when it is absent or unusable (the shorter wait fails closed)."""
    info = journey.methods.get(method)
    value = dict(info.options).get("ttl") if info is not None else None
    if value is None:
        return DEFAULT_TTL
    try:
        ttl = timedelta(seconds=parse_duration(value))
    except ValueError:
        return DEFAULT_TTL
    return min(max(ttl, MIN_TTL), MAX_TTL)


def approval_methods(journey: JourneyPlan, methods: tuple[str, ...]) -> list[str]:
    """The challenge's methods of kind ``approval``."""
    return [m for m in methods if (info := journey.methods.get(m)) is not None
            and info.kind == "approval"]  # fmt: skip


class ApprovalRequests:
    """The approvals agents' step-ups ask, and their spending by the agent."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def requested(
        self, journey: JourneyPlan, session: Session, challenge: Challenge, now: datetime
    ) -> list[Approval]:
        """Make the approvals a new challenge of an agent's session waits for."""
        if session.delegation is None:
            return []
        made = []
        for method in approval_methods(journey, challenge.methods):
            self._withdraw_earlier(session, challenge.checkpoint, now)
            approval = Approval(
                id=new_id("apr"),
                challenge_id=challenge.id,
                method=method,
                app=session.app,
                session_id=session.id,
                agent_type=session.subject_type,
                agent_id=session.subject_id,
                user_id=session.delegation.subject_id,
                action=challenge.checkpoint,
                request={k: v for k, v in challenge.request.items() if k in ("action", "resource")},
                task=session.task,
                created_at=now,
                expires_at=min(now + approval_ttl(journey, method), challenge.expires_at),
            )
            made.append(self.store.put_approval(approval, expected_revision=0))
        return made

    def _withdraw_earlier(self, session: Session, action: str, now: datetime) -> None:
        assert session.delegation is not None
        for earlier in self.store.list_approvals(session.delegation.subject_id, status="pending"):
            if earlier.session_id != session.id or earlier.action != action:
                continue
            if earlier.expires_at <= now:
                continue
            withdrawn = msgspec.structs.replace(
                earlier, status="rejected", reason="superseded", answered_at=now
            )
            try:
                self.store.put_approval(withdrawn, expected_revision=earlier.revision)
            except ConflictError:  # answered meanwhile: that answer stands
                continue

    def spend(self, challenge: Challenge, method: str, now: datetime) -> StoredProof:
        """The proof an approved approval gives the agent's session, spent once. Raises
        AuthnError: ``approval.pending`` (nothing spent), ``approval.rejected``,
        ``approval.expired``, ``approval.not_found``."""
        approval = self.store.find_approval(challenge.id, method)
        if approval is None or approval.session_id != challenge.session_id:
            raise AuthnError("approval.not_found", "no approval waits for this challenge", 404)
        if approval.consumed_at is not None:
            raise AuthnError("challenge.not_live", "the approval was used already", 409)
        if approval.status == "rejected":
            raise AuthnError("approval.rejected", "the person did not approve", 403)
        if now >= approval.expires_at:
            raise AuthnError("approval.expired", "the approval expired", 409)
        if approval.status == "pending":
            raise AuthnError("approval.pending", "the person has not answered yet", 409)
        assert approval.answered_at is not None
        try:
            self.store.put_approval(
                msgspec.structs.replace(approval, consumed_at=now),
                expected_revision=approval.revision,
            )
        except ConflictError:
            raise AuthnError("challenge.not_live", "the approval was used already", 409) from None
        return StoredProof(method=method, at=approval.answered_at, kind="approval", amr=())


# -- the built-in rule ----------------------------------------------------------------------
def approval_gate(
    plan: Plan, journey: JourneyPlan, facts: Facts, now: datetime, decision_id: str | None
) -> Decision:
    """`approval.approve` when the journey does not name it: AAL 2 within 5 minutes."""
    view = session_view(journey, facts, now)
    recent = max((m["aal"] for m in view["methods"].values() if m["age"] <= DEFAULT_WITHIN),
                 default=0)  # fmt: skip
    ref = StepRef(kind="require", text="built-in: approving needs AAL 2 within 5 minutes",
                  file=_BUILT_IN, line=0)  # fmt: skip
    common: Mapping[str, Any] = {"action": APPROVE, "journey": journey.name,
                                 "checkpoint": APPROVE, "version": plan.version,
                                 "id": decision_id}  # fmt: skip
    if recent >= DEFAULT_AAL:
        return Decision(outcome="allow", explanation=(Trace(step=ref, result="met"),),
                        **common)  # fmt: skip
    methods = tuple(n for n, info in journey.methods.items() if info.aal >= DEFAULT_AAL)
    if not methods:
        return Decision(outcome="deny", reason="no_method_reaches_aal",
                        explanation=(Trace(step=ref, result="not_met"),), **common)  # fmt: skip
    return Decision(
        outcome="step_up",
        reason="step_up_required",
        step_up=StepUp(
            methods=methods,
            mode="any",
            within=int(DEFAULT_WITHIN.total_seconds()),
            aal=DEFAULT_AAL,
            acr_values=acr_values(DEFAULT_AAL),
            amr_values=tuple(dict.fromkeys(a for m in methods for a in journey.methods[m].amr)),
        ),
        explanation=(Trace(step=ref, result="not_met"),),
        **common,
    )
