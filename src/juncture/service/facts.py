"""The facts of a decision, assembled once: the request's, the session's (its proofs,
signals, stored context), Juncture's own (the agent's delegation and task, the grants), and
what observing the request adds (service/observe.py). Also what an app may and may not say
in a context: facts Juncture owns are refused whole."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import msgspec

from juncture.engine import Facts
from juncture.engine.evaluate import session_view
from juncture.errors import FactsError
from juncture.policy import Plan
from juncture.policy.schema import owned, owned_sections
from juncture.records import Session, StoredProof, SubjectSeen
from juncture.service.agent_facts import agent_facts, grant_facts
from juncture.service.observe import (
    Connection,
    Observer,
    Reported,
    Seen,
    remember_subject,
    take_reported,
)
from juncture.service.outcome import ServiceError, owned_error
from juncture.service.policies import NoActiveVersion, PolicyRegistry
from juncture.service.session_changes import SessionChanges
from juncture.store.protocols import ConflictError, Store, StoreError

#: Context sections an app reports and Juncture observes per request (service/observe.py).
REPORTED_KEYS = ("network", "device")
#: Context sections a session stores as reported, read when a request lacks them.
STORED_KEYS = ("context",)


class FactsAssembly:
    """Builds a decision's facts document and observes the request."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        policies: PolicyRegistry,
        observer: Observer,
        changes: SessionChanges,
    ) -> None:
        self.store = store
        self.now = now
        self.policies = policies
        self.observer = observer
        self.changes = changes
        self._plan_reads: dict[str, frozenset[str]] = {}

    def document(
        self,
        app_name: str | None,
        request: Mapping[str, Any],
        session: Session | None,
        now: datetime | None = None,
        plan: Plan | None = None,
        *,
        delegator: Session | None = None,
    ) -> dict[str, Any]:
        """The facts of a request bound to a session (before observation). ``plan``: the
        version deciding, when known; facts none of its journeys reads are not built.
        ``delegator``: an agent's user session when the caller has read it already."""
        doc: dict[str, Any] = {k: v for k, v in request.items() if v is not None}
        for name in doc.keys() & owned_sections():  # the API layers map none of these
            raise owned_error(name)
        if app_name is not None:
            doc["app"] = app_name
        if session is None:
            return doc
        subject = dict(doc.get("subject") or {})
        properties = {**session.subject_properties, **(subject.get("properties") or {})}
        doc["subject"] = {
            "type": session.subject_type,
            "id": session.subject_id,
            "properties": properties,
        }
        doc["session"] = {
            "id": session.id,
            "started_at": session.started_at,
            "proofs": [proof_fact(p) for p in session.proofs],
        }
        doc["signals"] = {**session.signals, **(doc.get("signals") or {})}
        for key in STORED_KEYS:
            stored = session.context.get(key)
            if stored is not None and key not in doc:
                doc[key] = stored
        # Juncture's own facts (schema.OWNED; no app input reaches them): who delegated, the
        # task, the grants its own decisions made.
        agent = agent_facts(session)
        if agent is not None:
            if session.delegation is not None:
                agent["delegation"] = {
                    **agent["delegation"],
                    **self.delegator_facts(session, delegator, now, plan),
                }
            doc["agent"] = agent
        # A session's grants are known: none is an empty map, not a missing fact.
        if plan is None or "grants" in self.reads(plan):
            doc["grants"] = grant_facts(session, now or self.now()) if session.standing else {}
        return doc

    def delegator_facts(
        self,
        session: Session,
        user: Session | None,
        now: datetime | None,
        plan: Plan | None = None,
    ) -> dict[str, Any]:
        """What an agent's journey may require of the user session it acts for (``user``, read
        here when the caller has not): its `aal` now (under ``plan``, the version deciding;
        None: the active one), its `started_at` and `age`. Nothing when it cannot be read (a
        missing fact denies)."""
        if user is None:
            try:
                user = self.changes.delegator(session)
            except StoreError:
                return {}
        if user is None:
            return {}
        return {"aal": self.session_aal(user, plan), "started_at": user.started_at,
                "age": (now or self.now()) - user.started_at}  # fmt: skip

    def reads(self, plan: Plan) -> frozenset[str]:
        """The variables some journey of a version reads."""
        found = self._plan_reads.get(plan.version)
        if found is None:
            found = frozenset().union(*(j.reads for j in plan.journeys.values()))
            if len(self._plan_reads) > 16:
                self._plan_reads.clear()
            self._plan_reads[plan.version] = found
        return found

    def session_aal(self, session: Session, plan: Plan | None = None) -> int:
        """The session's AAL now, under ``plan`` (None: the active version; never cached)."""
        if plan is None:
            try:
                plan = self.policies.active()
            except NoActiveVersion:
                return 0
        facts = Facts.from_document(self.document(None, {}, session, plan=plan))
        best = 0
        for journey in plan.journeys.values():
            best = max(best, session_view(journey, facts, self.now())["aal"])
        return best

    @staticmethod
    def reported(doc: dict[str, Any]) -> Reported:
        return take_reported(doc)  # or ReportError: 400 facts.invalid

    def observe(
        self,
        reported: Reported,
        session: Session | None,
        subject: Mapping[str, Any],
        now: datetime,
        connection: Connection | None,
    ) -> Seen:
        if session is not None:
            key: tuple[str, Any] = (session.subject_type, session.subject_id)
        else:
            key = (str(subject.get("type") or "user"), subject.get("id"))

        def subject_seen() -> SubjectSeen | None:
            kind, ident = key
            return self.store.get_subject_seen(kind, ident) if isinstance(ident, str) else None

        return self.observer.observe(
            reported, session, now, connection=connection, subject_seen=subject_seen
        )

    def remember(self, session: Session | None, seen: Seen, now: datetime) -> Session | None:
        """Keep what this request showed that is new (no write when nothing is)."""
        if session is None or not seen.changed:
            return session
        observed = seen.observed
        session = self.changes.change(
            session, lambda s: msgspec.structs.replace(s, observed=observed, updated_at=now)
        )
        if seen.new_location is not None or seen.new_device is not None:
            for _ in range(8):
                current = self.store.get_subject_seen(session.subject_type, session.subject_id)
                updated = remember_subject(current, seen, session, now)
                if updated is None:
                    break
                try:
                    self.store.put_subject_seen(
                        updated, expected_revision=current.revision if current else 0
                    )
                    break
                except ConflictError:
                    continue
        return session

    def check_context(self, context: Mapping[str, Any]) -> None:
        """An app's context (a session's start, a context update): refused whole, with nothing
        stored, when it is not well-typed or would set a fact Juncture owns."""
        for name, section in context.items():
            if owned(name):
                raise owned_error(name)
            if name in REPORTED_KEYS and isinstance(section, Mapping):
                for field in section:
                    if owned(name, field):
                        raise owned_error(f"{name}.{field}")
        unknown = sorted(set(context) - {*REPORTED_KEYS, *STORED_KEYS})
        if unknown:
            raise ServiceError("request.invalid", f"unknown context section `{unknown[0]}`", 400)
        self.reported({k: v for k, v in context.items() if k in REPORTED_KEYS})
        try:
            Facts.from_document({k: v for k, v in context.items() if k in STORED_KEYS})
        except FactsError as exc:
            raise ServiceError("facts.invalid", exc.message, 400) from None


def check_signals(signals: Mapping[str, Any]) -> None:
    """An app may report any signal, and raise (``true``) the Shared Signals ones Juncture
    keeps, never lower or replace those: an event's `credential_compromised` stays."""
    for name, value in signals.items():
        if owned("signals", name) and value is not True:
            raise ServiceError("facts.owned", f"`signals.{name}` can only be raised (`true`) by "
                               "an app; Shared Signals events set it otherwise", 400)  # fmt: skip


def proof_fact(proof: StoredProof) -> dict[str, Any]:
    """A stored proof as the facts carry it (who asserted it is not a fact)."""
    fact = msgspec.structs.asdict(proof)
    fact.pop("asserted_by", None)
    for key in ("kind", "aal"):
        if fact[key] is None:
            del fact[key]
    return fact
