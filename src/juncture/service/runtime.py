"""The runtime: decisions bound to sessions, their effects, challenges and context updates.

Data flow of one decision (DESIGN.md): the calling app is authenticated (by the API) ->
the session is loaded -> its proofs, signals and context join the request's facts -> the
active plan evaluates the guard then the checkpoint -> the session's effects and the
decision record are stored -> the answer goes back. A revocation, a verified step-up and a
publish are committed before they are acknowledged; the decision log is written in batches
(``batched``: after the answer, at most `LOG_INTERVAL` seconds of records lost on a crash) or
committed before the answer (``durable``: concurrent requests' records share one commit).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, TypeVar

import msgspec

from juncture.engine import Decision, Facts, evaluate
from juncture.engine.evaluate import session_view
from juncture.errors import FactsError
from juncture.policy import Plan
from juncture.policy.plan import JourneyPlan
from juncture.policy.schema import OWNED, owned
from juncture.service.agents import Agents, Credential, agent_facts, grant_facts
from juncture.service.approvals import APPROVE, Approvals, approval_methods, approval_ttl
from juncture.service.authn import AuthnError, AuthnSettings, failed
from juncture.service.directory import CHECKPOINTS as AUTHENTICATOR_CHECKPOINTS
from juncture.service.directory import Directory
from juncture.service.ids import new_id, new_secret
from juncture.service.observe import (
    Connection,
    Observer,
    ObserveSettings,
    Reported,
    ReportError,
    Seen,
    remember_subject,
    take_reported,
)
from juncture.service.policies import NoActiveVersion, PolicyRegistry
from juncture.service.sweep import Sweeper, SweepWorker
from juncture.store.models import (
    App,
    Authenticator,
    Challenge,
    DecisionRecord,
    Session,
    Standing,
    StoredProof,
    SubjectSeen,
    SweepRun,
)
from juncture.store.protocols import ConflictError, CorruptError, NotFound, Store, StoreError

log = logging.getLogger("juncture.runtime")
CHALLENGE_TTL = timedelta(minutes=5)
#: Decision records kept in memory while the store is unavailable, at most.
MAX_PENDING_RECORDS = 100_000
#: The action name under which a context update's guard decision is logged.
CONTEXT_UPDATE = "context_update"
CHALLENGE_ATTEMPTS = 5
#: No proof given: the app asserts the method.
NO_PROOF: Any = object()
_T = TypeVar("_T")
#: Context sections an app reports and Juncture observes per request (service/observe.py).
_REPORTED_KEYS = ("network", "device")
#: Context sections a session stores as reported, read when a request lacks them.
_STORED_KEYS = ("context",)
#: Top-level facts sections only Juncture writes (schema.OWNED, those owned whole).
_OWNED_SECTIONS = frozenset(name for name, fields in OWNED.items() if fields is None)


class ServiceError(Exception):
    """A request the runtime refuses: carries a stable code and an HTTP status."""

    def __init__(
        self, code: str, message: str, status: int, *, extra: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra or {}
        self.retry_after = retry_after

    @classmethod
    def of(cls, error: AuthnError, **extra: Any) -> ServiceError:
        return cls(
            error.code, error.message, error.status, extra=extra, retry_after=error.retry_after
        )


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """A decision with what the runtime did about it."""

    decision: Decision
    session: Session | None = None
    challenge: Challenge | None = None


def _unavailable(
    action: str, version: str = "", decision_id: str | None = None, reason: str = "store"
) -> Decision:
    """Deny: the store (or the active version) could not be had, so nothing may be allowed."""
    return Decision(
        outcome="deny",
        reason=f"unavailable.{reason}",
        action=action,
        version=version,
        id=decision_id,
    )


def _why(error: StoreError) -> str:
    """The reason a decision the store failed is deny: ``unavailable.<this>``."""
    if isinstance(error, CorruptError):
        log.error("a stored record is corrupt: %s", error)
        return "corrupt"
    return "store"


#: The decision log's modes (`juncture serve --decision-log`).
LOG_MODES = ("batched", "durable")
#: Seconds between the batched writer's commits: the records a crash may lose.
LOG_INTERVAL = 0.2
#: The commits a request must wait for before its answer goes (durable mode): set by the
#: API around each request (`DecisionLogWriter.awaited`), read by `Runtime._record`.
_AWAITED: ContextVar[list[Future[None]] | None] = ContextVar("juncture_awaited", default=None)


class DecisionLogWriter:
    """Writes decision records from a background thread.

    ``batched`` (the default): records are buffered and written every ``interval`` seconds
    (or at ``max_batch``), after the answers went: a crash loses at most the records of the
    last interval (and those held while the store is down, at most `MAX_PENDING_RECORDS`).

    ``durable``: each record comes with a future that the writer resolves once the
    transaction holding it is committed; the writer commits whatever arrived while the last
    commit ran (group commit), so concurrent requests share one transaction. A failed commit
    fails the futures of its records (``StoreError``): the caller must not give the answer.
    """

    def __init__(
        self,
        store: Store,
        interval: float = LOG_INTERVAL,
        max_batch: int = 500,
        *,
        retention: timedelta | None = None,
        now: Callable[[], datetime] | None = None,
        mode: str = "batched",
    ) -> None:
        if mode not in LOG_MODES:
            raise ValueError(f"unknown decision log mode `{mode}`")
        self.mode = mode
        self._store = store
        self._retention = retention
        self._now = now
        self._last_purge: datetime | None = None
        self._interval = interval
        self._max = max_batch
        self._buffer: list[bytes] = []
        self._waiting: list[Future[None]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._thread.start()

    @staticmethod
    @contextlib.contextmanager
    def awaited() -> Iterator[list[Future[None]]]:
        """Collect, for the current request, the commits its answer must wait for (durable
        mode; empty in batched mode)."""
        pending: list[Future[None]] = []
        token = _AWAITED.set(pending)
        try:
            yield pending
        finally:
            _AWAITED.reset(token)

    def add(self, record: DecisionRecord) -> Future[None] | None:
        """Queue a record; in durable mode, the future of its commit (else None)."""
        prepared = self._store.prepare_record(record)
        if self.mode == "durable":
            committed: Future[None] = Future()
            with self._lock:
                self._buffer.append(prepared)
                self._waiting.append(committed)
            self._wake.set()
            return committed
        with self._lock:
            self._buffer.append(prepared)
            full = len(self._buffer) >= self._max
        if full:
            self._wake.set()
        return None

    def flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
            waiting, self._waiting = self._waiting, []
        if waiting:  # durable: every record of the batch has a waiter
            self._commit(batch, waiting)
            return
        if batch:
            try:
                self._store.record_prepared(batch)
            except StoreError:  # keep them for the next attempt, within a bound
                with self._lock:
                    self._buffer[:0] = batch
                    overflow = len(self._buffer) - MAX_PENDING_RECORDS
                    if overflow > 0:  # the store has been down long: drop the oldest, say so
                        del self._buffer[:overflow]
                if overflow > 0:
                    log.error("decision log: store unavailable, %d records dropped", overflow)

    def _commit(self, batch: list[bytes], waiting: list[Future[None]]) -> None:
        """Durable mode: one transaction for the batch, then every waiter is told."""
        try:
            self._store.record_prepared(batch)
        except StoreError as error:
            # Not kept for later: their answers are refused (no record, no answer).
            log.error("decision log: commit failed, %d answers refused: %s", len(batch), error)
            for committed in waiting:
                committed.set_exception(error)
            return
        except BaseException as error:  # a waiter must never hang
            for committed in waiting:
                committed.set_exception(StoreError(f"decision log: {error}"))
            raise
        for committed in waiting:
            committed.set_result(None)

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self._interval)
            self._wake.clear()
            self.flush()
            self.purge()

    def purge(self) -> int:
        """Apply the retention setting at most once a minute: delete older records."""
        if self._retention is None or self._now is None:
            return 0
        now = self._now()
        if self._last_purge is not None and now - self._last_purge < timedelta(minutes=1):
            return 0
        self._last_purge = now
        try:
            return self._store.purge_before(now - self._retention)
        except StoreError:
            return 0

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=5)
        self.flush()


class Runtime:
    def __init__(
        self,
        store: Store,
        *,
        now: Callable[[], datetime],
        log_interval: float = LOG_INTERVAL,
        retention: timedelta | None = None,
        observer: Observer | None = None,
        authn: AuthnSettings | None = None,
        decision_log: str = "batched",
    ) -> None:
        self.store = store
        self.now = now
        self.observer = observer or Observer(ObserveSettings())
        self.directory = Directory(self, authn or AuthnSettings())
        self.agents = Agents(self)
        self.approvals = Approvals(self)
        self.sweeper = Sweeper(self)
        #: Runs sweeps in the background when the server runs (started by the app's lifespan).
        self.sweep_worker: SweepWorker | None = None
        #: Tells the event streams (service/transmit.py sets it): (event, session, details).
        self.emit: Callable[[str, Session, dict[str, Any]], None] = lambda *_: None
        self.policies = PolicyRegistry(store, now)
        self.log = DecisionLogWriter(
            store, interval=log_interval, retention=retention, now=now, mode=decision_log
        )
        self.stats: dict[tuple[str, str], int] = {}
        self._stats_lock = threading.Lock()  # decisions run on the loop, the sweep, the hash pool
        self._plan_reads: dict[str, frozenset[str]] = {}

    def close(self) -> None:
        if self.sweep_worker is not None:
            self.sweep_worker.stop()
        self.log.close()

    def start_sweep(self, reason: str) -> SweepRun:
        """Begin re-checking every session with a standing outcome (after a publish, or on
        request); the background worker runs it, a batch at a time."""
        run = self.sweeper.start(reason)
        if self.sweep_worker is not None:
            self.sweep_worker.wake()
        return run

    # -- facts ------------------------------------------------------------------------------
    def _facts_document(
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
        for name in doc.keys() & _OWNED_SECTIONS:  # the API layers map none of these
            raise _owned(name)
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
            "proofs": [_proof_fact(p) for p in session.proofs],
        }
        doc["signals"] = {**session.signals, **(doc.get("signals") or {})}
        for key in _STORED_KEYS:
            stored = session.context.get(key)
            if stored is not None and key not in doc:
                doc[key] = stored
        # Juncture's own facts (schema.OWNED; no app input reaches them): who delegated, the
        # task, the grants its own decisions made.
        agent = agent_facts(session)
        if agent is not None:
            if session.delegation is not None:
                agent["delegation"] = {**agent["delegation"],
                                       **self._delegator(session, delegator, now)}
            doc["agent"] = agent
        # A session's grants are known: none is an empty map, not a missing fact.
        if plan is None or "grants" in self._reads(plan):
            doc["grants"] = grant_facts(session, now or self.now()) if session.standing else {}
        return doc

    def _delegator(
        self, session: Session, user: Session | None, now: datetime | None
    ) -> dict[str, Any]:
        """What an agent's journey may require of the user session it acts for (``user``, read
        here when the caller has not): its `aal` now, its `started_at` and `age`. Nothing when
        it cannot be read (a missing fact denies)."""
        if user is None:
            try:
                user = self.agents.delegator(session)
            except StoreError:
                return {}
        if user is None:
            return {}
        return {"aal": self.session_aal(user), "started_at": user.started_at,
                "age": (now or self.now()) - user.started_at}  # fmt: skip

    def _reads(self, plan: Plan) -> frozenset[str]:
        """The variables some journey of a version reads."""
        found = self._plan_reads.get(plan.version)
        if found is None:
            found = frozenset().union(*(j.reads for j in plan.journeys.values()))
            if len(self._plan_reads) > 16:
                self._plan_reads.clear()
            self._plan_reads[plan.version] = found
        return found

    def _load_session(self, app: App, session_id: str) -> Session:
        session = self.store.get_session(session_id)
        if session is None or session.app != app.id:  # another app's session does not exist
            raise ServiceError("session.not_found", "no such session", 404)
        return session

    # -- decisions --------------------------------------------------------------------------
    def decide(
        self,
        app: App,
        action: str,
        request: Mapping[str, Any],
        *,
        session_id: str | None = None,
        connection: Connection | None = None,
        answered: StoredProof | None = None,
    ) -> Outcome:
        """Decide ``action`` for a request (a facts document), bound to a session if named.

        ``answered``: a proof good for this one decision only, never kept in the session (a
        person's approval of what an agent asked).

        The request's ``network`` and ``device`` sections are what the app reports; they are
        observed and enriched (service/observe.py) before the journey reads them.

        Raises ServiceError for a session that is not the app's, or facts that are invalid;
        everything else (store down, no version) is a deny.
        """
        started = time.perf_counter_ns()
        decision_id = new_id("d")
        now = self.now()
        try:
            plan = self.policies.active()
            session = self._load_session(app, session_id) if session_id else None
        except StoreError as exc:
            why = _why(exc)
            return Outcome(decision=_unavailable(action, decision_id=decision_id, reason=why))
        except NoActiveVersion:
            return Outcome(
                decision=_unavailable(action, decision_id=decision_id, reason="no_version")
            )
        if session is not None and session.status != "active":
            try:
                reason = self._not_active(session, action)
            except StoreError as exc:
                return Outcome(decision=_unavailable(action, plan.version, decision_id, _why(exc)))
            if reason is not None:
                decision = Decision(outcome="deny", reason=reason, action=action,
                                    version=plan.version, id=decision_id)  # fmt: skip
                self._record(app, action, request, session, decision, {}, started, now)
                return Outcome(decision=decision, session=session)
        delegator: Session | None = None
        if session is not None and _non_human(session):
            try:
                delegator = self.agents.delegator(session)  # read once: refusal and facts
                refused = self.agents.refusal(session, action, now, delegator)
                if refused is not None:
                    return self._refuse(app, action, request, session, refused, plan, decision_id,
                                        started, now)  # fmt: skip
            except StoreError as exc:
                return Outcome(decision=_unavailable(action, plan.version, decision_id, _why(exc)))
        subject = request.get("subject") or {}
        if session is None:
            try:
                disabled = self._disabled(subject)
            except StoreError as exc:
                return Outcome(decision=_unavailable(action, plan.version, decision_id, _why(exc)))
            if disabled:  # disabled means deny on every entry path, sessionless included
                decision = Decision(outcome="deny", reason="subject_disabled", action=action,
                                    version=plan.version, id=decision_id)  # fmt: skip
                self._record(app, action, request, None, decision, {}, started, now)
                return Outcome(decision=decision)
        if session is not None and subject.get("id") not in (None, session.subject_id):
            raise ServiceError(
                "session.subject_mismatch",
                "the request's subject is not the session's subject",
                403,
            )
        doc = self._facts_document(app.name, request, session, now, plan, delegator=delegator)
        if answered is not None and session is not None:
            doc["session"]["proofs"].append(_proof_fact(answered))
        reported = self._reported(doc)
        try:
            seen = self._observe(reported, session, subject, now, connection)
        except StoreError as exc:
            return Outcome(decision=_unavailable(action, plan.version, decision_id, _why(exc)))
        doc.update(seen.sections())
        try:
            facts = Facts.from_document(doc)
        except FactsError as exc:
            raise ServiceError("facts.invalid", exc.message, 400) from None
        built_in = self._built_in_checkpoint(plan, app, session, action)
        decision = evaluate(
            plan,
            action,
            facts,
            now,
            decision_id=decision_id,
            allowed_journeys=frozenset(app.journeys) or None,
            guard_only=built_in is not None,
        )
        if built_in is not None and session is not None and decision.reason == "guard_passed":
            try:
                if action == APPROVE:
                    decision = Approvals.default_gate(plan, built_in, facts, now, decision_id)
                else:
                    decision = self.directory.default_gate(
                        plan, built_in, action, facts, session, now, decision_id
                    )
            except StoreError as exc:
                return Outcome(decision=_unavailable(action, plan.version, decision_id, _why(exc)))
        try:
            session = self._remember(session, seen, now)
            outcome = self._effects(app, plan, action, request, session, decision, now)
            if outcome.session is not None and outcome.session.status == "pending":
                outcome = msgspec.structs.replace(outcome, session=self._logged_in(
                    outcome.session, outcome.decision, now))  # fmt: skip
        except StoreError as exc:
            outcome = Outcome(decision=_unavailable(action, plan.version, decision_id, _why(exc)))
        self._record(app, action, request, session, outcome.decision, doc, started, now)
        return outcome

    def _not_active(self, session: Session, action: str) -> str | None:
        """Why a session that is not active gets deny for ``action``; None for the login
        decision of a pending session (whose subject is still enabled): the journey decides."""
        if session.status != "pending":
            return f"session_{session.status}"
        if action != session.login:
            return "login_incomplete"  # only the login's own challenge moves a pending session
        if self._disabled({"type": session.subject_type, "id": session.subject_id}):
            return "subject_disabled"
        return None

    def _logged_in(self, session: Session, decision: Decision, now: datetime) -> Session:
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

        return self._change(session, settle)

    def _disabled(self, subject: Mapping[str, Any]) -> bool:
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
        outcome = self._effects(app, plan, action, request, session, decision, now)
        self._record(app, action, request, outcome.session, decision, {}, started, now)
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

    # -- observation ------------------------------------------------------------------------
    @staticmethod
    def _reported(doc: dict[str, Any]) -> Reported:
        try:
            return take_reported(doc)
        except ReportError as exc:
            raise ServiceError("facts.invalid", str(exc), 400) from None

    def _observe(
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

    def _remember(self, session: Session | None, seen: Seen, now: datetime) -> Session | None:
        """Keep what this request showed that is new (no write when nothing is)."""
        if session is None or not seen.changed:
            return session
        observed = seen.observed
        session = self._change(
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

    def _effects(
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
            session = self._change(session, lambda s: self.revoked(s, decision, now))
            self.emit("session-revoked", session, {"reason": decision.reason or "revoked"})
            self.end_dependants(session, now)
            return Outcome(decision=decision, session=session)
        rerouted = decision.outcome == "reroute" and (session.path, session.scopes) != (
            decision.path,
            decision.scopes,
        )
        standing = self._standing(session, action, decision, now)
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

            session = self._change(session, stand)
            if rerouted:
                self.emit(
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
                self.approvals.requested(journey, session, challenge, now)
            return Outcome(decision=decision, session=session, challenge=challenge)
        return Outcome(decision=decision, session=session)

    @staticmethod
    def _standing(
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
                expires_at=Agents.grant_until(session, now + ttl),
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

    def _change(self, session: Session, change: Callable[[Session], Session]) -> Session:
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

    def _change_live(self, session: Session, change: Callable[[Session], Session]) -> Session:
        """`_change` for a session that must still be active: ended and revoked are final, so
        a session that is not (or stops being so in a lost race) gets 409 and no write."""

        def live(s: Session) -> Session:
            _require_active(s)
            return change(s)

        _require_active(session)
        return self._change(session, live)

    def _record(
        self,
        app: App,
        action: str,
        request: Mapping[str, Any],
        session: Session | None,
        decision: Decision,
        facts: dict[str, Any],
        started: int,
        now: datetime,
    ) -> None:
        # Counted by the journey's checkpoint, not the caller's action name: labels stay a
        # bounded set whatever names callers send.
        key = (decision.outcome, decision.checkpoint or "-")
        with self._stats_lock:
            self.stats[key] = self.stats.get(key, 0) + 1
        resource = request.get("resource")
        committed = self.log.add(
            DecisionRecord(
                id=decision.id or new_id("d"),
                at=now,
                app=app.id,
                subject_type=session.subject_type
                if session
                else (request.get("subject") or {}).get("type"),
                subject_id=session.subject_id
                if session
                else (request.get("subject") or {}).get("id"),
                session_id=session.id if session else None,
                action=action,
                resource=resource if isinstance(resource, dict) else None,
                outcome=decision.outcome,
                reason=decision.reason,
                version=decision.version,
                latency_us=(time.perf_counter_ns() - started) // 1000,
                decision=decision,
                facts=facts,
            )
        )
        if committed is None:
            return
        awaited = _AWAITED.get()
        if awaited is not None:  # the API waits (without blocking its loop) before answering
            awaited.append(committed)
            return
        # No answer waits on this one (a background sweep): be durable before going on.
        try:
            committed.result(timeout=30)
        except (StoreError, TimeoutError) as error:
            log.error("decision log: record %s not committed: %s", decision.id, error)

    # -- sessions ---------------------------------------------------------------------------
    def start_session(
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
        self._check_context(context)
        for proof in proofs:
            self._check_assertable(app, proof.method)
        used = None
        if credential is not None:
            try:
                plan = self.policies.active()
            except NoActiveVersion:
                raise ServiceError("unavailable.no_version", "no journey version is active",
                                   503) from None  # fmt: skip
            network = context.get("network")
            ip = network.get("ip") if isinstance(network, dict) else None
            found, used, verified = self._authn(lambda: self.agents.authenticate(
                plan, app.name, subject, credential, ip=ip if isinstance(ip, str) else None,
                now=now,
            ))  # fmt: skip
            subject_type, subject_id = found.type, found.id
            proofs = [*proofs, verified]
        assert isinstance(subject_id, str)
        if subject_type == "agent" and delegation is None:
            raise ServiceError("delegation.required", "an agent's session names the user "
                               "session it acts for (`delegation.session_id`)", 400)  # fmt: skip
        if delegation is not None and subject_type != "agent":
            raise ServiceError("delegation.invalid", "only agents act for a user", 400)
        delegated = self._authn(lambda: self.agents.delegation(app.id, delegation)) if (
            delegation is not None) else None  # fmt: skip
        given_task = self._authn(lambda: self.agents.task(task, now)) if task is not None else None
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
            context={k: v for k, v in context.items() if k in _STORED_KEYS},
            delegation=delegated,
            task=given_task,
            credential=used.id if used is not None else None,
            credential_scopes=used.scopes if used is not None else (),
        )
        self.store.create_session(session)
        reported = {k: v for k, v in context.items() if k in _REPORTED_KEYS}
        outcome = self.decide(app, action, reported, session_id=session.id, connection=connection)
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
        session = self._load_session(app, session_id)
        _require_active(session)
        if session.delegation is None:
            raise ServiceError("task.invalid", "only an agent's session has a task", 400)
        now = self.now()
        given = self._authn(lambda: self.agents.task(task, now))

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

        session = self._change_live(session, retask)
        return self.update_context(app, session.id, context={}, signals={})

    def _check_context(self, context: Mapping[str, Any]) -> None:
        """An app's context (a session's start, a context update): refused whole, with nothing
        stored, when it is not well-typed or would set a fact Juncture owns."""
        for name, section in context.items():
            if owned(name):
                raise _owned(name)
            if name in _REPORTED_KEYS and isinstance(section, Mapping):
                for field in section:
                    if owned(name, field):
                        raise _owned(f"{name}.{field}")
        unknown = sorted(set(context) - {*_REPORTED_KEYS, *_STORED_KEYS})
        if unknown:
            raise ServiceError("request.invalid", f"unknown context section `{unknown[0]}`", 400)
        self._reported({k: v for k, v in context.items() if k in _REPORTED_KEYS})
        try:
            Facts.from_document({k: v for k, v in context.items() if k in _STORED_KEYS})
        except FactsError as exc:
            raise ServiceError("facts.invalid", exc.message, 400) from None

    def _check_assertable(self, app: App, method: str) -> None:
        if method not in app.assertable_methods:
            raise ServiceError(
                "auth.method_not_assertable", f"this app may not assert method `{method}`", 403
            )

    def get_session(self, app: App, session_id: str) -> Session:
        return self._load_session(app, session_id)

    def end_session(self, app: App, session_id: str, *, revoke_reason: str | None) -> Session:
        session = self._load_session(app, session_id)
        now = self.now()
        status = "revoked" if revoke_reason else "ended"
        ended = self._change_live(
            session,
            lambda s: msgspec.structs.replace(
                s, status=status, status_reason=revoke_reason or "logout", updated_at=now
            ),
        )
        if revoke_reason:
            self.emit("session-revoked", ended, {"reason": revoke_reason})
        self.end_dependants(ended, now)
        return ended

    def session_aal(self, session: Session) -> int:
        """The session's AAL now, under the active version (never cached)."""
        try:
            plan = self.policies.active()
        except NoActiveVersion:
            return 0
        facts = Facts.from_document(self._facts_document(None, {}, session, plan=plan))
        best = 0
        for journey in plan.journeys.values():
            best = max(best, session_view(journey, facts, self.now())["aal"])
        return best

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
        self._check_context(context)
        _check_signals(signals)
        session = self._load_session(app, session_id)
        now = self.now()
        stored = {k: v for k, v in context.items() if k in _STORED_KEYS}
        session = self._change_live(
            session,
            lambda s: msgspec.structs.replace(
                s,
                context={**s.context, **stored},
                signals={**s.signals, **signals},
                updated_at=now,
            ),
        )
        reported = {k: v for k, v in context.items() if k in _REPORTED_KEYS}
        try:
            plan = self.policies.active()
        except NoActiveVersion:
            return Outcome(decision=_unavailable("", reason="no_version"), session=session)
        doc = self._facts_document(app.name, reported, session, now, plan)
        seen = self._observe(self._reported(doc), session, {}, now, connection)
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
        remembered = self._remember(session, seen, now)
        session = remembered if remembered is not None else session
        outcome = Outcome(decision=decision, session=session)
        if decision.reason != "guard_passed":
            outcome = self._effects(app, plan, CONTEXT_UPDATE, {}, session, decision, now)
        self._record(app, CONTEXT_UPDATE, {}, outcome.session, decision, doc, started, now)
        current = outcome.session
        if current is not None and current.status == "active" and current.standing:
            # What stands (allows with a ttl, grants, reroutes) is decided again with the new
            # context: those that no longer hold are withdrawn now, not when they lapse.
            if self.sweeper.recheck(plan, app, current):
                fresh = self.store.get_session(current.id)
                outcome = msgspec.structs.replace(outcome, session=fresh or current)
        return outcome

    # -- challenges -------------------------------------------------------------------------
    def verify_challenge(
        self, app: App, challenge_id: str, method: str, proof: object = NO_PROOF
    ) -> Outcome:
        """Answer a challenge, then decide its checkpoint again.

        Without ``proof`` the app asserts the method (its own IdP did the authentication; it
        must be configured to assert that method). With one, Juncture verifies it against
        the subject's confirmed authenticators (directory.py). Bad input (a method the
        challenge did not name, a malformed proof, a locked counter) changes nothing; a
        wrong proof spends an attempt and counts a failure.
        """
        found = self.store.get_challenge(challenge_id)
        if found is None or found.app != app.id:
            raise ServiceError("challenge.not_found", "no such challenge", 404)
        challenge = found
        now = self.now()
        if (
            challenge.consumed_at is not None
            or challenge.attempts_left <= 0
            or (now >= challenge.expires_at)
        ):
            raise ServiceError(
                "challenge.not_live", "the challenge is expired, used or out of attempts", 409
            )
        if method not in challenge.methods:
            raise ServiceError(
                "challenge.method_not_accepted",
                f"method `{method}` does not answer this challenge",
                400,
            )
        session = self._load_session(app, challenge.session_id)
        # Ended, revoked and disabled are final: no secret is checked, nothing is recorded.
        self._require_live(session)
        checked = None
        approved: StoredProof | None = None
        if self._is_approval(app, session, method):
            if proof is not NO_PROOF:
                raise ServiceError("challenge.proof_malformed", "an approval is verified "
                                   "without a proof: the person answered it", 400)  # fmt: skip
            approved = self._authn(lambda: self.approvals.spend(challenge, method, now))
        elif proof is NO_PROOF:
            self._check_assertable(app, method)
        else:
            checked = self._authn(lambda: self.directory.verify(challenge, session, method, proof))
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
            return self.decide(app, challenge.checkpoint, challenge.request,
                               session_id=challenge.session_id, answered=approved)  # fmt: skip
        session = self._load_session(app, challenge.session_id)
        before = self.session_aal(session)
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

        session = self._change_live(session, record)
        after = self.session_aal(session)
        if after > before:  # a stronger session gets a new handle
            session = self._change(
                session, lambda s: msgspec.structs.replace(s, handle=new_secret())
            )
            self.emit("assurance-level-change", session, {"previous": before, "current": after})
        return self.decide(app, challenge.checkpoint, challenge.request, session_id=session.id)

    def _is_approval(self, app: App, session: Session, method: str) -> bool:
        """Whether ``method`` is of kind ``approval`` in the session's journey now."""
        try:
            journey, _ = self.policies.active().route(app.name, session.subject_type)
        except NoActiveVersion:
            return False
        info = journey.methods.get(method) if journey is not None else None
        return info is not None and info.kind == "approval"

    def start_challenge(self, app: App, challenge_id: str, method: str) -> tuple[Any, Any]:
        """Start a method's ceremony (WebAuthn options, an email code): (public, to send)."""
        challenge = self.store.get_challenge(challenge_id)
        if challenge is None or challenge.app != app.id:
            raise ServiceError("challenge.not_found", "no such challenge", 404)
        if method not in challenge.methods:
            raise ServiceError(
                "challenge.method_not_accepted",
                f"method `{method}` does not answer this challenge",
                400,
            )
        session = self._load_session(app, challenge.session_id)
        self._require_live(session)
        return self._authn(lambda: self.directory.start(challenge, session, method))

    def _require_live(self, session: Session) -> None:
        """409 unless the session is active (or pending) and its subject is not disabled:
        ended, revoked and disabled are final."""
        _require_active(session)
        if self._disabled({"type": session.subject_type, "id": session.subject_id}):
            raise ServiceError("subject.disabled", "the subject is disabled", 409)

    def _authn(self, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except AuthnError as exc:
            raise ServiceError.of(exc) from None

    # -- re-checks (the sweep, received signals) ------------------------------------------------
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
        doc = self._facts_document(app.name, {}, session, now, plan)
        seen = self.observer.observe(Reported(), session, now)
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

    def revoke(self, session: Session, decision: Decision, now: datetime) -> Session:
        """Revoke a session (a guard said so outside a request), log it, tell the streams."""
        revoked = self._change(session, lambda s: self.revoked(s, decision, now))
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
            self._record(app, decision.action, {}, revoked, decision, {}, started, now)
        self.emit("session-revoked", revoked, {"reason": decision.reason or "revoked"})
        self.end_dependants(revoked, now)

    def end_dependants(self, session: Session, now: datetime) -> int:
        """Revoke the agent sessions that act for a user session that just ended or was
        revoked (their decisions would revoke them anyway: this tells the apps now)."""
        if session.subject_type != "user" or session.status == "active":
            return 0
        count = 0
        for agent in self.store.delegated_sessions(session.id):
            with contextlib.suppress(NotFound):  # gone meanwhile: nothing left to end
                self.revoke(agent, _ended("delegation_ended"), now)
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
                self.revoke(session, _ended(reason), now)
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
        changed = self._change(session, lambda s: self.restanded(s, withdrawn, moved, now))
        self.emit("token-claims-change", changed, self.claims(withdrawn, moved))
        return changed

    def restanded(
        self, s: Session, withdrawn: list[str], moved: dict[str, Decision], now: datetime
    ) -> Session:
        standing = {k: v for k, v in s.standing.items() if k not in withdrawn}
        path, scopes = s.path, s.scopes
        for action, decision in moved.items():
            stood = self._standing(s, action, decision, now)
            if stood is not None:
                standing[action] = stood
            if decision.outcome == "reroute":
                path, scopes = decision.path, decision.scopes
        return msgspec.structs.replace(
            s, standing=standing, path=path, scopes=scopes, updated_at=now
        )

    def signal(self, session: Session, signals: Mapping[str, Any], now: datetime) -> Session:
        """Set signals on a session (an event from another system), durably."""
        return self._change(
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
            revoked = self._change(
                session,
                lambda s: msgspec.structs.replace(
                    s, status="revoked", status_reason=reason, updated_at=now
                ),
            )
            self.emit("session-revoked", revoked, {"reason": reason})
            self.end_dependants(revoked, now)
            count += 1
        return count


def _owned(name: str) -> ServiceError:
    return ServiceError("facts.owned", f"`{name}` is a fact Juncture owns (observed, computed "
                        "or recorded by Juncture): an app cannot set it", 400)  # fmt: skip


def _check_signals(signals: Mapping[str, Any]) -> None:
    """An app may report any signal, and raise (``true``) the Shared Signals ones Juncture
    keeps, never lower or replace those: an event's `credential_compromised` stays."""
    for name, value in signals.items():
        if owned("signals", name) and value is not True:
            raise ServiceError("facts.owned", f"`signals.{name}` can only be raised (`true`) by "
                               "an app; Shared Signals events set it otherwise", 400)  # fmt: skip


def _require_active(session: Session) -> None:
    """409 for an ended or revoked session (a pending one is still on its way in)."""
    if session.status in ("ended", "revoked"):
        raise ServiceError("session.not_active", f"the session is {session.status}: ended and "
                           "revoked sessions are final", 409)  # fmt: skip


def _non_human(session: Session) -> bool:
    """Whether a session carries what `Agents.refusal` checks (a delegation, a credential, a
    task, scopes); a person's session does not, and costs nothing more."""
    return (
        session.delegation is not None
        or session.credential is not None
        or session.task is not None
        or bool(session.credential_scopes)
    )


def _ended(reason: str) -> Decision:
    """The revocation of a session whose ground went away outside a request (logged)."""
    return Decision(outcome="revoke", reason=reason, action=CONTEXT_UPDATE, id=new_id("d"))


def _proof_fact(proof: StoredProof) -> dict[str, Any]:
    """A stored proof as the facts carry it (who asserted it is not a fact)."""
    fact = msgspec.structs.asdict(proof)
    fact.pop("asserted_by", None)
    for key in ("kind", "aal"):
        if fact[key] is None:
            del fact[key]
    return fact
