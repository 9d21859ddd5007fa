"""Sessions as apps see them: started (the `login` checkpoint decided at once, a credential
checked for services and agents), read, ended or revoked, given new context or a new task.

A session starts `pending` and is `active` once its login allows; a login that denies makes
no session (the answer is the decision alone).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from juncture.engine import Facts, evaluate
from juncture.errors import RequestError
from juncture.records import App, ReceivedEvent, Session, StoredProof
from juncture.service.agents import Agents, Credential
from juncture.service.decision_log import DecisionLog
from juncture.service.decisions import Decisions
from juncture.service.effects import Effects
from juncture.service.emitter import Emitter
from juncture.service.facts import REPORTED_KEYS, STORED_KEYS, FactsAssembly, check_signals
from juncture.service.ids import new_id, new_secret
from juncture.service.observe import Connection
from juncture.service.outcome import (
    Outcome,
    ServiceError,
    check_assertable,
    require_active,
    unavailable,
)
from juncture.service.policies import NoActiveVersion, PolicyRegistry
from juncture.service.session_changes import CONTEXT_UPDATE, SessionChanges
from juncture.service.sweep import Sweeper
from juncture.store.protocols import Store

#: The sessions read at most to filter by what was observed (IP, device): the newest first.
OBSERVED_SCAN = 2000
#: Sessions a "log out everywhere" ends per page it reads.
EVERYWHERE_PAGE = 500
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def network_of(text: str) -> Network:
    """An address (as a network of one) or a CIDR network (host bits allowed: 10.1.2.3/8 is
    10.0.0.0/8). Raises RequestError 400 ``request.invalid`` for anything else."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise RequestError(
            f"`{text[:64]}` is neither an IP address nor a CIDR network "
            "(203.0.113.7, 10.0.0.0/8, 2001:db8::/32)"
        ) from None


def observed_matches(session: Session, network: Network | None, device_id: str | None) -> bool:
    """Whether what was last observed of the session is in ``network`` and is ``device_id``
    (each when given)."""
    seen = session.observed
    if device_id is not None and seen.device_id != device_id:
        return False
    if network is None:
        return True
    try:
        address = ipaddress.ip_address(seen.ip or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address in network or (mapped is not None and mapped in network)


class Sessions:
    """Starts, reads, updates and ends sessions."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        policies: PolicyRegistry,
        decisions: Decisions,
        facts: FactsAssembly,
        changes: SessionChanges,
        effects: Effects,
        log: DecisionLog,
        agents: Agents,
        sweeper: Sweeper,
        emitter: Emitter,
    ) -> None:
        self.store = store
        self.now = now
        self.policies = policies
        self.decisions = decisions
        self.facts = facts
        self.changes = changes
        self.effects = effects
        self.log = log
        self.agents = agents
        self.sweeper = sweeper
        self.emitter = emitter

    def start(
        self,
        app: App,
        subject: Mapping[str, Any],
        context: Mapping[str, Any],
        proofs: list[StoredProof],
        action: str = "login",
        connection: Connection | None = None,
        *,
        credential: Credential | None = None,
        delegation: str | None = None,
        task: object = None,
    ) -> Outcome:
        """Start a session and decide its `login` checkpoint (the context's ``network`` and
        ``device`` are that decision's observation; the other sections are stored).

        A service or an agent may start with a ``credential`` Juncture checks (an API key, a
        client assertion: service/agents.py); an agent names the user session it acts for
        (``delegation``, required for subject type ``agent``) and may be given its ``task``.
        """
        now = self.now()
        subject_type = str(subject.get("type") or "user")
        subject_id = subject.get("id")
        if credential is None and (not isinstance(subject_id, str) or not subject_id):
            raise ServiceError("request.invalid", "`subject.id` is required", 400)
        self.facts.check_context(context)
        for proof in proofs:
            check_assertable(app, proof.method)
        used = None
        if credential is not None:
            try:
                plan = self.policies.active()
            except NoActiveVersion:
                raise ServiceError("unavailable.no_version", "no journey version is active",
                                   503) from None  # fmt: skip
            network = context.get("network")
            ip = network.get("ip") if isinstance(network, dict) else None
            found, used, verified = self.agents.authenticate(
                plan, app.name, subject, credential, ip=ip if isinstance(ip, str) else None,
                now=now,
            )  # fmt: skip
            subject_type, subject_id = found.type, found.id
            proofs = [*proofs, verified]
        assert isinstance(subject_id, str)
        if subject_type == "agent" and delegation is None:
            raise ServiceError("delegation.required", "an agent's session names the user "
                               "session it acts for (`delegation.session_id`)", 400)  # fmt: skip
        if delegation is not None and subject_type != "agent":
            raise ServiceError("delegation.invalid", "only agents act for a user", 400)
        delegated = self.agents.delegation(app.id, delegation) if delegation is not None else None
        given_task = self.agents.task(task, now) if task is not None else None
        known = self.store.get_subject(subject_type, subject_id)
        if known is not None and known.status != "active":
            raise ServiceError("subject.disabled", "the subject is disabled", 403)
        session = Session(
            id=new_id("s"),
            app=app.id,
            subject_type=subject_type,
            subject_id=subject_id,
            subject_properties=dict(subject.get("properties") or {}),
            started_at=now,
            updated_at=now,
            handle=new_secret(),
            status="pending",  # until its login allows: only the login's challenge moves it
            login=action,
            proofs=tuple(proofs),
            context={k: v for k, v in context.items() if k in STORED_KEYS},
            delegation=delegated,
            task=given_task,
            credential=used.id if used is not None else None,
            credential_scopes=used.scopes if used is not None else (),
        )
        self.store.create_session(session)
        reported = {k: v for k, v in context.items() if k in REPORTED_KEYS}
        outcome = self.decisions.decide(
            app, action, reported, session_id=session.id, connection=connection
        )
        if outcome.decision.outcome in ("deny", "revoke") and outcome.session is not None:
            # A login that does not go on makes no session: the answer is the decision alone.
            self.store.delete_session(session.id)
            return Outcome(decision=outcome.decision)
        if outcome.session is None:  # the store failed after the session was made: nothing to
            # hand out (its handle is never shown), so no start is acknowledged
            code = outcome.decision.reason
            if code not in ("unavailable.no_version", "unavailable.corrupt"):
                code = "unavailable.store"
            raise ServiceError(code, "the session could not be started; try again", 503)
        return outcome

    def change_task(self, app: App, session_id: str, task: object) -> Outcome:
        """Give an agent session a new task (or the same one changed): the next decisions
        follow it. The guard runs at once, as for a context update."""
        session = self.changes.load(app, session_id)
        require_active(session)
        if session.delegation is None:
            raise ServiceError("task.invalid", "only an agent's session has a task", 400)
        now = self.now()
        given = self.agents.task(task, now)

        def retask(s: Session) -> Session:
            # What the old task granted never outlives the new one.
            standing = {
                action: msgspec.structs.replace(
                    stood, expires_at=min(stood.expires_at, given.expires_at)
                )
                if stood.expires_at is not None
                else stood
                for action, stood in s.standing.items()
            }
            return msgspec.structs.replace(s, task=given, standing=standing, updated_at=now)

        session = self.changes.change_live(session, retask)
        return self.update_context(app, session.id, context={}, signals={})

    def get(self, app: App, session_id: str) -> Session:
        return self.changes.load(app, session_id)

    def of_app(self, app: App, *, limit: int = 1000) -> Sequence[Session]:
        """The app's sessions, most recently started first."""
        return self.store.list_sessions(app=app.id, limit=limit)

    def search(
        self,
        *,
        app: str | None = None,
        subject_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> Sequence[Session]:
        """Every app's sessions matching the filters given, most recently started first (for
        administrators: the console)."""
        return self.store.list_sessions(
            app=app, subject_id=subject_id, status=status, limit=limit
        )

    def find(
        self,
        *,
        app: str | None = None,
        subject_id: str | None = None,
        status: str | None = None,
        ip: str | None = None,
        device_id: str | None = None,
        limit: int = 100,
        scan: int = OBSERVED_SCAN,
    ) -> tuple[list[Session], bool]:
        """`search`, and also by the client IP last observed (``ip``: an address, or a CIDR
        network the address is in) and the device id last observed. The store does not index
        what was observed, so those two filter the newest ``scan`` sessions matching the other
        filters; the flag says whether that scan saw all of them (False: older
        sessions were not searched).

        Raises RequestError 400 ``request.invalid`` when ``ip`` is neither an address nor a
        network."""
        network = network_of(ip) if ip is not None else None
        if network is None and device_id is None:
            return list(self.search(app=app, subject_id=subject_id, status=status,
                                    limit=limit)), True  # fmt: skip
        scanned = self.store.list_sessions(
            app=app, subject_id=subject_id, status=status, limit=scan
        )
        found = [s for s in scanned if observed_matches(s, network, device_id)]
        return found[:limit], len(scanned) < scan

    def read(self, session_id: str) -> Session:
        """Any app's session, for administrators. Raises ServiceError 404 ``session.not_found``."""
        session = self.store.get_session(session_id)
        if session is None:
            raise ServiceError("session.not_found", "no such session", 404)
        return session

    def revoke(self, session_id: str, reason: str) -> Session:
        """An administrator revokes a session: as its app's `end` with a revoke reason.
        Raises ServiceError 404 ``session.not_found``; 409 ``session.not_active``."""
        session = self.read(session_id)
        require_active(session)
        app = self.store.get_app(session.app)
        if app is None:
            raise ServiceError("session.not_found", "no such session", 404)
        return self.end(app, session_id, revoke_reason=reason)

    def received(self, session: Session) -> Sequence[ReceivedEvent]:
        """The Shared Signals events received about the session, newest first."""
        return self.store.list_received(session_id=session.id)

    def end(self, app: App, session_id: str, *, revoke_reason: str | None) -> Session:
        session = self.changes.load(app, session_id)
        now = self.now()
        status = "revoked" if revoke_reason else "ended"
        ended = self.changes.change_live(
            session,
            lambda s: msgspec.structs.replace(
                s, status=status, status_reason=revoke_reason or "logout", updated_at=now
            ),
        )
        if revoke_reason:
            self.emitter.emit("session-revoked", ended, {"reason": revoke_reason})
        self.changes.end_dependants(ended, now)
        return ended

    def end_everywhere(self, app: App, session: Session) -> int:
        """End ``session`` and every other active session of its subject at ``app`` (a
        hosted "log out on every device"); how many were ended. Other apps' sessions stay:
        an app ends only its own. A session ended meanwhile is passed over."""
        ended = 0
        while True:
            page = [s for s in self.store.list_sessions(app=app.id, subject_id=session.subject_id,
                                                        status="active", limit=EVERYWHERE_PAGE)
                    if s.subject_type == session.subject_type]  # fmt: skip
            done = 0
            for other in page:
                try:
                    self.end(app, other.id, revoke_reason=None)
                except ServiceError as error:
                    if error.code != "session.not_active":
                        raise
                    continue
                done += 1
            ended += done
            if not done:  # none left (or none this page could end: not to loop for ever)
                return ended

    def update_context(
        self,
        app: App,
        session_id: str,
        *,
        context: Mapping[str, Any],
        signals: Mapping[str, Any],
        connection: Connection | None = None,
    ) -> Outcome:
        """Store new observations, then run the guard at once (revoke, reroute, or nothing).

        The guard's decision is logged as action `context_update`.
        """
        started = time.perf_counter_ns()
        self.facts.check_context(context)
        check_signals(signals)
        session = self.changes.load(app, session_id)
        now = self.now()
        stored = {k: v for k, v in context.items() if k in STORED_KEYS}
        session = self.changes.change_live(
            session,
            lambda s: msgspec.structs.replace(
                s,
                context={**s.context, **stored},
                signals={**s.signals, **signals},
                updated_at=now,
            ),
        )
        reported = {k: v for k, v in context.items() if k in REPORTED_KEYS}
        try:
            plan = self.policies.active()
        except NoActiveVersion:
            return Outcome(decision=unavailable("", reason="no_version"), session=session)
        doc = self.facts.document(app.name, reported, session, now, plan)
        seen = self.facts.observe(self.facts.reported(doc), session, {}, now, connection)
        doc.update(seen.sections())
        facts = Facts.from_document(doc)
        decision = evaluate(
            plan,
            CONTEXT_UPDATE,
            facts,
            now,
            decision_id=new_id("d"),
            guard_only=True,
            allowed_journeys=frozenset(app.journeys) or None,
        )
        remembered = self.facts.remember(session, seen, now)
        session = remembered if remembered is not None else session
        outcome = Outcome(decision=decision, session=session)
        if decision.reason != "guard_passed":
            outcome = self.effects.apply(app, plan, CONTEXT_UPDATE, {}, session, decision, now)
        self.log.record(app, CONTEXT_UPDATE, {}, outcome.session, decision, doc, started, now)
        current = outcome.session
        if current is not None and current.status == "active" and current.standing:
            # What stands (allows with a ttl, grants, reroutes) is decided again with the new
            # context: those that no longer hold are withdrawn now, not when they lapse.
            if self.sweeper.recheck(plan, app, current):
                fresh = self.store.get_session(current.id)
                outcome = msgspec.structs.replace(outcome, session=fresh or current)
        return outcome
