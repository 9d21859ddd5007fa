"""Step-up challenges answered: a proof asserted by the app, verified by Juncture against
the subject's authenticators (directory.py), or a person's approval (approval_requests.py);
then the challenge's checkpoint is decided again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from juncture.records import App, Challenge, Session, StoredProof
from juncture.service.approval_requests import ApprovalRequests
from juncture.service.authn import failed
from juncture.service.decisions import Decisions
from juncture.service.directory import Directory
from juncture.service.emitter import Emitter
from juncture.service.facts import FactsAssembly
from juncture.service.ids import new_secret
from juncture.service.outcome import (
    Outcome,
    ServiceError,
    check_assertable,
    require_active,
)
from juncture.service.policies import NoActiveVersion, PolicyRegistry
from juncture.service.session_changes import SessionChanges
from juncture.store.protocols import ConflictError, Store

#: No proof given: the app asserts the method.
NO_PROOF: Any = object()


class Challenges:
    """Verifies and starts challenges."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        policies: PolicyRegistry,
        decisions: Decisions,
        facts: FactsAssembly,
        changes: SessionChanges,
        directory: Directory,
        approval_requests: ApprovalRequests,
        emitter: Emitter,
    ) -> None:
        self.store = store
        self.now = now
        self.policies = policies
        self.decisions = decisions
        self.facts = facts
        self.changes = changes
        self.directory = directory
        self.approval_requests = approval_requests
        self.emitter = emitter

    def verify(self, app: App, challenge_id: str, method: str, proof: object = NO_PROOF) -> Outcome:
        """Answer a challenge, then decide its checkpoint again.

        Without ``proof`` the app asserts the method (its own IdP did the authentication; it
        must be configured to assert that method). With one, Juncture verifies it against
        the subject's confirmed authenticators (directory.py). Bad input (a method the
        challenge did not name, a malformed proof, a locked counter) changes nothing; a
        wrong proof spends an attempt and counts a failure.
        """
        challenge = self._found(app, challenge_id)
        now = self.now()
        if (
            challenge.consumed_at is not None
            or challenge.attempts_left <= 0
            or (now >= challenge.expires_at)
        ):
            raise ServiceError(
                "challenge.not_live", "the challenge is expired, used or out of attempts", 409
            )
        _accepts(challenge, method)
        session = self.changes.load(app, challenge.session_id)
        # Ended, revoked and disabled are final: no secret is checked, nothing is recorded.
        self._require_live(session)
        checked = None
        approved: StoredProof | None = None
        if self._is_approval(app, session, method):
            if proof is not NO_PROOF:
                raise ServiceError("challenge.proof_malformed", "an approval is verified "
                                   "without a proof: the person answered it", 400)  # fmt: skip
            approved = self.approval_requests.spend(challenge, method, now)
        elif proof is NO_PROOF:
            check_assertable(app, method)
        else:
            checked = self.directory.verify(challenge, session, method, proof)
        try:
            challenge = self.store.spend_attempt(challenge_id, at=now)
        except ConflictError:
            if checked is not None:
                self.directory.release(checked, session)
            raise ServiceError(
                "challenge.not_live", "the challenge is expired, used or out of attempts", 409
            ) from None
        if checked is not None:
            self.directory.settle(checked, challenge, session, method)
            if not checked.ok:
                raise ServiceError.of(failed(), attempts_left=challenge.attempts_left)
        try:
            self.store.consume_challenge(challenge_id, at=now)
        except ConflictError:
            raise ServiceError(
                "challenge.not_live", "the challenge was already used", 409
            ) from None
        if approved is not None:  # a person approved this one request, not the session
            return self.decisions.decide(app, challenge.checkpoint, challenge.request,
                               session_id=challenge.session_id, answered=approved)  # fmt: skip
        session = self.changes.load(app, challenge.session_id)
        before = self.facts.session_aal(session)
        if checked is not None and checked.proof is not None:
            verified = checked.proof
            stored = StoredProof(
                method=method,
                at=verified.at,
                kind=verified.kind,
                aal=verified.aal,
                amr=verified.amr,
            )
        else:
            stored = StoredProof(method=method, at=now, asserted_by=app.id)
        posture = checked.posture if checked is not None else None

        def record(s: Session) -> Session:
            observed = s.observed
            if posture is not None:  # a device attestation: the device's posture, verified
                observed = msgspec.structs.replace(observed, posture=posture)
            return msgspec.structs.replace(
                s, proofs=(*s.proofs, stored), observed=observed, updated_at=now
            )

        session = self.changes.change_live(session, record)
        after = self.facts.session_aal(session)
        if after > before:  # a stronger session gets a new handle
            session = self.changes.change(
                session, lambda s: msgspec.structs.replace(s, handle=new_secret())
            )
            self.emitter.emit(
                "assurance-level-change", session, {"previous": before, "current": after}
            )
        return self.decisions.decide(
            app, challenge.checkpoint, challenge.request, session_id=session.id
        )

    def _is_approval(self, app: App, session: Session, method: str) -> bool:
        """Whether ``method`` is of kind ``approval`` in the session's journey now."""
        try:
            journey, _ = self.policies.active().route(app.name, session.subject_type)
        except NoActiveVersion:
            return False
        info = journey.methods.get(method) if journey is not None else None
        return info is not None and info.kind == "approval"

    def start(self, app: App, challenge_id: str, method: str) -> tuple[Any, Any]:
        """Start a method's ceremony (WebAuthn options, an email code): (public, to send)."""
        challenge = self._found(app, challenge_id)
        _accepts(challenge, method)
        session = self.changes.load(app, challenge.session_id)
        self._require_live(session)
        return self.directory.start(challenge, session, method)

    def of_session(self, app: App, challenge_id: str, session_id: str) -> Challenge:
        """The app's challenge of that id for that session (404 ``challenge.not_found`` for
        any other: a hosted page answers only its own session's challenges)."""
        challenge = self._found(app, challenge_id)
        if challenge.session_id != session_id:
            raise ServiceError("challenge.not_found", "no such challenge", 404)
        return challenge

    def _found(self, app: App, challenge_id: str) -> Challenge:
        """The app's challenge of that id (another app's does not exist for it)."""
        challenge = self.store.get_challenge(challenge_id)
        if challenge is None or challenge.app != app.id:
            raise ServiceError("challenge.not_found", "no such challenge", 404)
        return challenge

    def _require_live(self, session: Session) -> None:
        """409 unless the session is active (or pending) and its subject is not disabled:
        ended, revoked and disabled are final."""
        require_active(session)
        if self.decisions.disabled({"type": session.subject_type, "id": session.subject_id}):
            raise ServiceError("subject.disabled", "the subject is disabled", 409)


def _accepts(challenge: Challenge, method: str) -> None:
    """400 unless ``method`` is one the challenge named."""
    if method not in challenge.methods:
        raise ServiceError(
            "challenge.method_not_accepted", f"method `{method}` does not answer this challenge",
            400,
        )  # fmt: skip
