"""Changes to stored sessions: optimistic writes that re-read on a lost race, revocations
(with their record, the event, and the agent sessions that act for the revoked one), and the
standing outcomes a session keeps (an allow with a ttl, a grant, a reroute)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import msgspec

from juncture.engine import Decision
from juncture.records import App, Authenticator, Session, Standing
from juncture.service.agent_facts import grant_until
from juncture.service.decision_log import DecisionLog
from juncture.service.emitter import Emitter
from juncture.service.ids import new_id
from juncture.service.outcome import ServiceError, require_active
from juncture.store.protocols import ConflictError, NotFound, Store

#: The action name under which a context update's guard decision is logged.
CONTEXT_UPDATE = "context_update"


class SessionChanges:
    """Reads and writes sessions for the services above it."""

    def __init__(
        self, store: Store, now: Callable[[], datetime], emitter: Emitter, log: DecisionLog
    ) -> None:
        self.store = store
        self.now = now
        self.emitter = emitter
        self.log = log

    def load(self, app: App, session_id: str) -> Session:
        session = self.store.get_session(session_id)
        if session is None or session.app != app.id:  # another app's session does not exist
            raise ServiceError("session.not_found", "no such session", 404)
        return session

    def delegator(self, session: Session) -> Session | None:
        """The user session an agent's session acts for, as stored now (None: gone, or not
        an agent's). Reads the store: its errors propagate."""
        if session.delegation is None:
            return None
        return self.store.get_session(session.delegation.session_id)

    def change(self, session: Session, change: Callable[[Session], Session]) -> Session:
        """Apply a change with optimistic concurrency, re-reading on a lost race."""
        for _ in range(8):
            try:
                return self.store.update_session(
                    change(session), expected_revision=session.revision
                )
            except ConflictError:
                fresh = self.store.get_session(session.id)
                if fresh is None:
                    raise NotFound(session.id) from None
                session = fresh
        raise ConflictError(session.id)

    def change_live(self, session: Session, change: Callable[[Session], Session]) -> Session:
        """`_change` for a session that must still be active: ended and revoked are final, so
        a session that is not (or stops being so in a lost race) gets 409 and no write."""

        def live(s: Session) -> Session:
            require_active(s)
            return change(s)

        require_active(session)
        return self.change(session, live)

    def revoke(self, session: Session, decision: Decision, now: datetime) -> Session:
        """Revoke a session (a guard said so outside a request), log it, tell the streams."""
        revoked = self.change(session, lambda s: self.revoked(s, decision, now))
        self.after_revoke(revoked, decision, now)
        return revoked

    @staticmethod
    def revoked(session: Session, decision: Decision, now: datetime) -> Session:
        return msgspec.structs.replace(
            session, status="revoked", status_reason=decision.reason, updated_at=now
        )

    def after_revoke(self, revoked: Session, decision: Decision, now: datetime) -> None:
        """What follows a stored revocation: its decision record, the streams told."""
        app = self.store.get_app(revoked.app)
        if app is not None:
            started = time.perf_counter_ns()
            self.log.record(app, decision.action, {}, revoked, decision, {}, started, now)
        self.emitter.emit("session-revoked", revoked, {"reason": decision.reason or "revoked"})
        self.end_dependants(revoked, now)

    def end_dependants(self, session: Session, now: datetime) -> int:
        """Revoke the agent sessions that act for a user session that just ended or was
        revoked (their decisions would revoke them anyway: this tells the apps now)."""
        if session.subject_type != "user" or session.status == "active":
            return 0
        count = 0
        for agent in self.store.delegated_sessions(session.id):
            with contextlib.suppress(NotFound):  # gone meanwhile: nothing left to end
                self.revoke(agent, ended("delegation_ended"), now)
                count += 1
        return count

    def end_credential_sessions(self, credential: Authenticator, reason: str) -> int:
        """Revoke the active sessions a credential started (it was removed or rotated out)."""
        now = self.now()
        count = 0
        for session in self.store.list_sessions(
            subject_id=credential.subject_id, status="active", limit=10_000
        ):
            if session.credential == credential.id:
                self.revoke(session, ended(reason), now)
                count += 1
        return count

    def restand(
        self,
        session: Session,
        withdrawn: list[str],
        moved: dict[str, Decision],
        now: datetime,
    ) -> Session:
        """Withdraw standing allows that no longer hold and move those that changed."""
        changed = self.change(session, lambda s: self.restanded(s, withdrawn, moved, now))
        self.emitter.emit("token-claims-change", changed, self.claims(withdrawn, moved))
        return changed

    def restanded(
        self, s: Session, withdrawn: list[str], moved: dict[str, Decision], now: datetime
    ) -> Session:
        standing = {k: v for k, v in s.standing.items() if k not in withdrawn}
        path, scopes = s.path, s.scopes
        for action, decision in moved.items():
            stood = self.standing(s, action, decision, now)
            if stood is not None:
                standing[action] = stood
            if decision.outcome == "reroute":
                path, scopes = decision.path, decision.scopes
        return msgspec.structs.replace(
            s, standing=standing, path=path, scopes=scopes, updated_at=now
        )

    @staticmethod
    def standing(
        session: Session, action: str, decision: Decision, now: datetime
    ) -> Standing | None:
        """The standing outcome to keep for ``action`` (an allow with a ttl, a reroute), or
        None when there is none or the kept one still says the same (no write)."""
        if decision.outcome == "allow" and decision.ttl:
            ttl = timedelta(seconds=decision.ttl)
            kept = session.standing.get(action)
            if (
                kept is not None
                and kept.outcome == "allow"
                and kept.scopes == decision.scopes
                and kept.version == decision.version
                and kept.expires_at is not None
                and kept.expires_at - now > ttl / 2
            ):
                return None
            return Standing(
                outcome="allow",
                scopes=decision.scopes,
                decided_at=now,
                expires_at=grant_until(session, now + ttl),
                version=decision.version,
                decision=decision.id,
            )
        if decision.outcome == "reroute":
            kept = session.standing.get(action)
            if kept is not None and (kept.outcome, kept.path, kept.scopes, kept.version) == (
                "reroute",
                decision.path,
                decision.scopes,
                decision.version,
            ):
                return None
            return Standing(
                outcome="reroute",
                path=decision.path,
                scopes=decision.scopes,
                decided_at=now,
                expires_at=now + timedelta(seconds=decision.ttl) if decision.ttl else None,
                version=decision.version,
                decision=decision.id,
            )
        return None

    def signal(self, session: Session, signals: Mapping[str, Any], now: datetime) -> Session:
        """Set signals on a session (an event from another system), durably."""
        return self.change(
            session,
            lambda s: msgspec.structs.replace(s, signals={**s.signals, **signals}, updated_at=now),
        )

    @staticmethod
    def claims(withdrawn: list[str], moved: dict[str, Decision]) -> dict[str, Any]:
        """The `token-claims-change` details of a re-stand."""
        return {
            "withdrawn": sorted(withdrawn),
            "changed": {
                action: {"outcome": d.outcome, "scopes": list(d.scopes), "path": d.path}
                for action, d in sorted(moved.items())
            },
        }

    def revoke_subject_sessions(self, subject_type: str, subject_id: str, reason: str) -> int:
        """Revoke every active session of a subject (it was disabled); how many."""
        now = self.now()
        count = 0
        sessions = [s for status in ("active", "pending") for s in self.store.list_sessions(
            subject_id=subject_id, status=status, limit=10_000)]  # fmt: skip
        for session in sessions:
            if session.subject_type != subject_type:
                continue
            revoked = self.change(
                session,
                lambda s: msgspec.structs.replace(
                    s, status="revoked", status_reason=reason, updated_at=now
                ),
            )
            self.emitter.emit("session-revoked", revoked, {"reason": reason})
            self.end_dependants(revoked, now)
            count += 1
        return count


def ended(reason: str) -> Decision:
    """The revocation of a session whose ground went away outside a request (logged)."""
    return Decision(outcome="revoke", reason=reason, action=CONTEXT_UPDATE, id=new_id("d"))
