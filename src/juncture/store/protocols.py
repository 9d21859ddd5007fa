"""What the runtime needs from storage. Backends: `sqlite.SqliteStore` and
`postgres.PostgresStore` (Redis later), all held to one contract test suite (tests/store/).

Every method that changes state is one transaction, committed before it returns: a caller
may acknowledge the change as soon as the call returns (durability rule of DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

# The store's errors live in the one error tree (`juncture.errors`), so that the API can
# answer them without importing the store; backends and services import them from here too.
from juncture.errors import ConflictError as ConflictError
from juncture.errors import CorruptError as CorruptError
from juncture.errors import NotFound as NotFound
from juncture.errors import StoreError as StoreError
from juncture.records import (
    AdminCredential,
    App,
    AppBinding,
    Approval,
    Authenticator,
    CacheState,
    Challenge,
    DecisionQuery,
    DecisionRecord,
    Failures,
    Heartbeat,
    OutboxItem,
    PolicyVersion,
    ReceivedEvent,
    Session,
    SessionPage,
    ShadowRecord,
    Stream,
    StreamDelivery,
    StreamSubject,
    Subject,
    SubjectSeen,
    SweepRun,
    Usage,
    VersionInfo,
)
from juncture.replay_jobs import ReplayJob


class SessionStore(Protocol):
    def create_session(self, session: Session) -> None:
        """Insert a new session (id and handle unique). Raises ConflictError on a duplicate."""

    def get_session(self, session_id: str) -> Session | None: ...

    def delete_session(self, session_id: str) -> bool:
        """Remove a session that never began (its login was denied); whether one was there."""

    def update_session(self, session: Session, *, expected_revision: int) -> Session:
        """Replace the session if its stored revision is ``expected_revision``.

        Returns the stored session (revision + 1). Raises ConflictError otherwise (or when the
        new handle belongs to another session), NotFound when there is no such session.
        """

    def update_sessions(self, sessions: Sequence[Session]) -> list[Session]:
        """Replace many sessions in one transaction, each only if its stored revision is still
        its ``revision``; those that changed meanwhile (or are gone) are skipped. Returns the
        stored ones (revision + 1). A handle taken by another session raises ConflictError and
        changes nothing."""

    def list_sessions(
        self,
        *,
        app: str | None = None,
        subject_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> Sequence[Session]:
        """Sessions matching every filter given, most recently started first."""

    def count_active_sessions(self) -> int: ...

    def sessions_by_email(self, email: str, *, limit: int = 10_000) -> list[Session]:
        """The active sessions whose ``subject_properties.email`` is this address, compared
        without case (set when each started), by id."""

    def delegated_sessions(self, session_id: str) -> list[Session]:
        """The active sessions whose `delegation` names this session (set at their start)."""

    def get_sessions(self, session_ids: Sequence[str]) -> dict[str, Session]:
        """The stored sessions of these ids, by id, read in one query (for batches); an id
        with no session is left out."""


class PolicyStore(Protocol):
    def put_version(self, version: PolicyVersion) -> bool:
        """Store an immutable version; False when that id already exists (nothing changes)."""

    def get_version(self, version_id: str) -> PolicyVersion | None: ...

    def list_versions(self) -> Sequence[VersionInfo]:
        """Every version, newest first, with which one is active."""

    def activate(self, version_id: str, *, by: str, at: datetime) -> None:
        """Make ``version_id`` the one active version (atomically). Raises NotFound."""

    def active_version_id(self) -> str | None: ...

    def set_shadow(self, version_id: str | None) -> None:
        """Make ``version_id`` the one shadow version (None: no shadow), atomically.
        Activating a version ends its being the shadow. Raises NotFound."""

    def shadow_version_id(self) -> str | None: ...

    def version_ids(self, prefix: str, *, limit: int = 2) -> list[str]:
        """The ids of stored versions that start with ``prefix`` (at most ``limit``)."""

    def usage_since(self, since: datetime) -> list[Usage]:
        """What the decision log holds since ``since``, by app, subject type, journey and
        checkpoint; and the live sessions by app and subject type (journey and checkpoint
        None)."""

    def check_writable(self) -> None:
        """Raise StoreError when a write would fail now (nothing is changed)."""
        ...


class DecisionLog(Protocol):
    def record(self, records: Sequence[DecisionRecord]) -> None:
        """Append decision records in one transaction (may be batched by the caller).

        A record whose id is already logged is skipped, so retrying a batch is harmless.
        """

    def prepare_record(self, record: DecisionRecord) -> Any:
        """The record made ready for `record_prepared` (encoded on the deciding thread, written
        on another), in whatever form this store writes fastest. Raises StoreError for a
        record the store cannot take (a naive time)."""

    def record_prepared(self, prepared: Sequence[Any]) -> None:
        """Append records made by this store's `prepare_record`, as `record` does."""

    def count_decisions(self, subject_id: str, *, since: datetime) -> int:
        """How many decisions about ``subject_id`` were logged at or after ``since``."""

    def query(self, query: DecisionQuery) -> Sequence[DecisionRecord]:
        """Newest first (ties by id, descending), filtered, at most ``query.limit``.

        ``since`` is inclusive, ``until`` exclusive; ``before`` returns the records that sort
        after that decision. Raises NotFound when ``before`` names no logged decision.
        """

    def get_decision(self, decision_id: str) -> DecisionRecord | None: ...

    def purge_before(self, at: datetime) -> int:
        """Delete decision records strictly older than ``at`` (retention), the shadow records
        of those decisions, and approvals made more than a day before it; returns how many
        decision records."""


class ShadowLog(Protocol):
    def record_shadow(self, records: Sequence[ShadowRecord]) -> None:
        """Append what shadow versions decided otherwise, in one transaction; a decision
        already recorded for that shadow version is skipped (retry-safe)."""

    def shadow_records(
        self,
        shadow_version: str,
        *,
        transition: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> Sequence[ShadowRecord]:
        """Newest first (ties by decision id, descending), at most ``limit``; ``before`` (a
        decision id) pages on. Raises NotFound when ``before`` names no record."""

    def shadow_counts(self, shadow_version: str) -> dict[str, int]:
        """The records of a shadow version by transition (``allow->deny``: count)."""


class AppStore(Protocol):
    def put_app(self, app: App, *, at: datetime | None = None) -> None:
        """Insert or replace an app (its keys included).

        A key prefix is unique across all apps and admins: ConflictError (nothing changes)
        when one is held by another app or an admin.
        """

    def app_bindings(self, app_id: str) -> Sequence[AppBinding]:
        """The app's journey bindings over time, oldest first: one from its creation, one
        each time `put_app` changed its journeys (``since``: ``at``, else the time of the write;
        ``app.created_at`` for a new app). Apps stored before this history hold one, since
        the epoch: their journeys were set only when they were made."""

    def get_app(self, app_id: str) -> App | None: ...

    def find_app_by_key_prefix(self, prefix: str) -> App | None: ...

    def list_apps(self) -> Sequence[App]:
        """Every app, by id."""

    def put_admin(self, admin: AdminCredential) -> None:
        """Insert or replace an admin credential (ConflictError as for ``put_app``)."""

    def find_admin_by_key_prefix(self, prefix: str) -> AdminCredential | None: ...

    def count_admins(self) -> int: ...


class ChallengeStore(Protocol):
    def create_challenge(self, challenge: Challenge) -> None:
        """Insert a new challenge. Raises ConflictError when its id is taken."""

    def get_challenge(self, challenge_id: str) -> Challenge | None: ...

    def spend_attempt(self, challenge_id: str, *, at: datetime) -> Challenge:
        """Use one attempt of a live challenge atomically; returns it with attempts_left - 1.

        Raises NotFound, or ConflictError when it is expired (``at >= expires_at``), consumed
        or out of attempts.
        """

    def consume_challenge(self, challenge_id: str, *, at: datetime) -> Challenge:
        """Mark a live challenge used, exactly once; returns it with ``consumed_at``.

        Raises NotFound, or ConflictError when it is expired (``at >= expires_at``) or
        already consumed. Attempts are not checked: the verifying attempt was spent before.
        """

    def set_challenge_state(
        self, challenge_id: str, method: str, state: bytes, *, at: datetime
    ) -> Challenge:
        """Keep a method's ceremony state on a live challenge (replacing that method's earlier
        state); returns the challenge with it in ``states``.

        Raises NotFound, or ConflictError when it is expired (``at >= expires_at``) or
        consumed. Attempts are not checked.
        """

    def purge_abandoned(self, before: datetime, *, limit: int = 1000) -> tuple[int, int]:
        """Forget logins nobody finished, in one transaction: up to ``limit`` sessions still
        ``pending`` that started before ``before`` and have no challenge expiring at or after
        it, then up to ``limit`` challenges that expired before it. Returns how many of each
        (sessions, challenges) were deleted: ``limit`` of either means more may be left."""


class SubjectSeenStore(Protocol):
    def get_subject_seen(self, subject_type: str, subject_id: str) -> SubjectSeen | None: ...

    def put_subject_seen(self, seen: SubjectSeen, *, expected_revision: int) -> SubjectSeen:
        """Store what was observed of a subject if its stored revision is ``expected_revision``
        (0: there is none yet). Returns it at revision + 1; ConflictError otherwise."""


class DirectoryStore(Protocol):
    def put_subject(self, subject: Subject, *, expected_revision: int) -> Subject:
        """Create (``expected_revision`` 0: ConflictError if it exists) or replace the subject
        at that revision (ConflictError if the stored revision differs, NotFound if absent).

        Returns the stored subject, at revision ``expected_revision + 1``.
        """

    def get_subject(self, subject_type: str, subject_id: str) -> Subject | None: ...

    def list_subjects(
        self,
        *,
        subject_type: str | None = None,
        status: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> Sequence[Subject]:
        """Subjects matching every filter given, by (type, id) ascending, at most ``limit``.

        ``after`` is an opaque page token: the ``"{type}:{id}"`` of the last subject of the
        previous page (the page starts after it, whether or not it still exists).
        """

    def create_authenticator(self, authenticator: Authenticator) -> Authenticator:
        """Insert a new authenticator; returns it at revision 1.

        Raises ConflictError when its id or its ``lookup`` is taken (by any subject's).
        """

    def get_authenticator(self, authenticator_id: str) -> Authenticator | None: ...

    def find_authenticator(self, lookup: str) -> Authenticator | None:
        """The one authenticator whose ``lookup`` this is."""

    def list_authenticators(self, subject_type: str, subject_id: str) -> Sequence[Authenticator]:
        """The subject's authenticators, oldest first (``created_at``, then id)."""

    def update_authenticator(
        self, authenticator: Authenticator, *, expected_revision: int
    ) -> Authenticator:
        """Replace the authenticator if its stored revision is ``expected_revision``.

        Returns it at revision ``expected_revision + 1``. Raises ConflictError otherwise (or
        when its new ``lookup`` belongs to another authenticator), NotFound when absent.
        """

    def delete_authenticator(self, authenticator_id: str) -> bool:
        """Delete an authenticator; True when it existed."""


class FailureStore(Protocol):
    def record_failure(
        self,
        subject_type: str,
        subject_id: str,
        counter: str,
        *,
        at: datetime,
        window: timedelta,
        lock_after: int,
        lock_for: timedelta,
        attempt: str | None = None,
    ) -> Failures:
        """Count one failure atomically (concurrent calls never lose a count); returns the
        new state.

        If the last failure is older than ``window`` (``at - last_at > window``) or there is
        none, the count restarts at 1, else it goes up by 1. When the count reaches
        ``lock_after`` (or is past it), ``locked_until`` becomes ``at + lock_for`` (a lock
        still running is never shortened; ``lock_after < 1`` never locks). The reservation
        ``attempt`` (`reserve_attempt`), if any, is settled by the same write.
        """

    def reserve_attempt(
        self,
        subject_type: str,
        subject_id: str,
        counter: str,
        *,
        attempt: str,
        at: datetime,
        hold: timedelta,
        admit: Callable[[Failures | None], int | None],
    ) -> int | None:
        """Admit one verification attempt or refuse it, in one atomic step across threads,
        processes and nodes: no other reservation, failure or clearing of the counter comes
        between the read and the write.

        Reservations older than ``at - hold`` are dropped (their holder died), then
        ``admit`` is called once with the counter (None when there is none; ``pending``
        holds the live reservations). When it returns None the attempt is kept in
        ``pending`` under ``attempt`` (admitted at ``at``) and None is returned; otherwise
        nothing changes and its answer (seconds to wait) is returned. The attempt is settled
        by `record_failure` (``attempt=``), `release_attempt` or `clear_failures`.
        """

    def release_attempt(
        self, subject_type: str, subject_id: str, counter: str, attempt: str
    ) -> None:
        """Drop a reservation without counting anything (nothing happens when it is gone)."""

    def get_failures(self, subject_type: str, subject_id: str, counter: str) -> Failures | None: ...

    def clear_failures(self, subject_type: str, subject_id: str, counter: str) -> None:
        """Forget the counter and its reservations (after a success). Nothing happens when
        there is none."""


class EventStore(Protocol):
    """Security Event Tokens received (SSF receiver), kept once per (issuer, jti)."""

    def receive_event(self, event: ReceivedEvent) -> bool:
        """Keep a received SET atomically; False (nothing stored) when (issuer, jti) is there
        already."""

    def update_received(self, event: ReceivedEvent) -> None:
        """Replace the stored record of (issuer, jti) (its result/detail after applying).
        NotFound if absent."""

    def get_received(self, issuer: str, jti: str) -> ReceivedEvent | None: ...

    def list_received(
        self,
        *,
        subject_id: str | None = None,
        session_id: str | None = None,
        limit: int = 100,
    ) -> Sequence[ReceivedEvent]:
        """Newest first (received_at, then jti; then issuer, all descending), those of
        ``subject_id`` and naming ``session_id`` in ``session_ids`` when given."""

    def last_event_time(self, subject_key: str, signal: str) -> datetime | None: ...

    def set_event_time(self, subject_key: str, signal: str, at: datetime) -> bool:
        """Record the event time applied for (subject_key, signal) if it is newer than the
        stored one (atomically); True when it was newer (the event should be applied), False
        otherwise (an equal time included)."""


class StreamStore(Protocol):
    """Event streams Juncture transmits on (SSF transmitter), and their outbox."""

    def put_stream(self, stream: Stream, *, expected_revision: int) -> Stream:
        """Create (``expected_revision`` 0: ConflictError if the id exists) or replace the
        stream at that revision (ConflictError if the stored revision differs, NotFound if
        absent).

        Returns the stored stream, at revision ``expected_revision + 1``.
        """

    def get_stream(self, stream_id: str) -> Stream | None: ...

    def list_streams(self, *, app: str | None = None) -> Sequence[Stream]:
        """By created_at then id."""

    def delete_stream(self, stream_id: str) -> bool:
        """Delete the stream, its subjects and its undelivered outbox items; True when it
        existed."""

    def add_stream_subject(self, subject: StreamSubject) -> None:
        """Idempotent on (stream_id, the subject's canonical JSON): adding it again changes
        nothing. NotFound for an unknown stream."""

    def remove_stream_subject(self, stream_id: str, subject: dict[str, Any]) -> bool:
        """Remove the subject (matched by its canonical JSON); True when it was there."""

    def list_stream_subjects(self, stream_id: str) -> Sequence[StreamSubject]:
        """The stream's subjects, by added_at (then canonical JSON)."""

    def enqueue(self, items: Sequence[OutboxItem]) -> Sequence[OutboxItem]:
        """Append in one transaction, durably; returns them with their seq (increasing, never
        reused). ConflictError (nothing stored) on a duplicate (stream_id, jti)."""

    def due(self, *, now: datetime, limit: int = 100) -> Sequence[OutboxItem]:
        """Undelivered, not given up, next_attempt_at <= now, of push streams that are
        enabled; by seq."""

    def pending(self, stream_id: str, *, limit: int = 100) -> Sequence[OutboxItem]:
        """Undelivered, not given up items of one stream (poll delivery), by seq."""

    def delivery_status(self, stream_id: str) -> StreamDelivery:
        """Counts of the stream's outbox items by state, its last delivery time and the error
        of its newest undelivered item that failed (all zero and None for an unknown
        stream)."""

    def mark_delivered(self, stream_id: str, jtis: Sequence[str], *, at: datetime) -> int:
        """Mark delivered (push: 202 received; poll: acknowledged); how many changed (an item
        delivered already, or unknown, is not counted)."""

    def mark_failed(
        self, seq: int, *, at: datetime, error: str, next_attempt_at: datetime | None
    ) -> None:
        """Count an attempt; next_attempt_at None gives the item up (given_up_at = at).
        NotFound when there is no item ``seq``."""

    def lease_stream(self, stream_id: str, *, owner: str, now: datetime, until: datetime) -> bool:
        """Take or extend the stream's delivery lease for ``owner`` until ``until``; True when
        ``owner`` holds it, False when another owner's lease has not expired at ``now``."""

    def release_stream(self, stream_id: str, *, owner: str) -> bool:
        """Give up ``owner``'s lease of the stream; True when it was held."""


class ApprovalStore(Protocol):
    """Approvals agents wait for, answered by the delegating user."""

    def put_approval(self, approval: Approval, *, expected_revision: int) -> Approval:
        """Create (``expected_revision`` 0: ConflictError if its id, or its challenge and
        method, exist) or replace at that revision (ConflictError if it moved on, NotFound if
        absent). Returns it at revision ``expected_revision + 1``."""

    def get_approval(self, approval_id: str) -> Approval | None: ...

    def find_approval(self, challenge_id: str, method: str) -> Approval | None: ...

    def list_approvals(
        self, user_id: str, *, status: str | None = None, limit: int = 100
    ) -> Sequence[Approval]:
        """The approvals asked of a user (of ``status`` when given), newest first."""


class ClockStore(Protocol):
    """The nodes' clocks against the store's: what keeps a node with a wrong clock from
    stamping proofs and deciding `within` windows (service/clock.py).

    The store's clock is the reference: SQLite reads the host's clock in the statement that
    writes (``julianday('now')``, millisecond resolution); PostgreSQL reads the server's
    ``clock_timestamp()`` (microseconds).
    """

    def beat(self, node: str, clock: datetime) -> Heartbeat:
        """Write ``node``'s heartbeat: its ``clock`` reading and the store's clock, read in
        the same write; returns it. Heartbeats more than a day old are dropped."""

    def heartbeats(self, *, within: timedelta) -> list[Heartbeat]:
        """The latest heartbeat of each node that wrote one at most ``within`` ago (by the
        store's clock), by node."""


class SweepStore(Protocol):
    """Sweep runs: their cursor and progress, and the sessions they go through."""

    def put_sweep(self, run: SweepRun, *, expected_revision: int) -> SweepRun:
        """Create (``expected_revision`` 0: ConflictError if the id exists) or replace the run
        at that revision (ConflictError if the stored revision differs, NotFound if absent).

        Returns the stored run, at revision ``expected_revision + 1``.
        """

    def get_sweep(self, sweep_id: str) -> SweepRun | None: ...

    def list_sweeps(self, *, status: str | None = None, limit: int = 20) -> Sequence[SweepRun]:
        """Newest first (started_at, then id, descending), of ``status`` when given."""

    def sessions_after(self, cursor: str | None, *, limit: int = 500) -> SessionPage:
        """Active sessions with id > cursor (None: from the start), by id, at most ``limit``
        rows: the sweep's batches. A record that does not decode is named in ``corrupt``, not
        raised: one bad row must not stop every batch that reads it."""


class ReplayJobStore(Protocol):
    """Replay jobs (service/rehearsals.py): every node reads them; one runs at a time across
    all nodes, held by the store (a unique index on the running one)."""

    def start_replay(self, job: ReplayJob, *, lost_before: datetime, keep: int) -> None:
        """In one transaction: mark ``lost`` the running jobs whose heartbeat
        (``updated_at``) is older than ``lost_before``, store ``job`` (running), then delete
        the finished jobs beyond the newest ``keep``. Raises ConflictError (nothing changed)
        when another job is running."""

    def update_replay(self, job: ReplayJob) -> bool:
        """Write a running job's progress and heartbeat, or its end (status, report): only
        while the stored job is running. False when it is not (marked lost, or gone)."""

    def get_replay(self, job_id: str) -> ReplayJob | None:
        """The job, its report included."""

    def list_replays(self, *, limit: int = 100) -> Sequence[ReplayJob]:
        """Newest first (started_at, then id, descending), without their reports."""


class Store(
    SessionStore,
    PolicyStore,
    DecisionLog,
    ShadowLog,
    AppStore,
    ChallengeStore,
    SubjectSeenStore,
    DirectoryStore,
    FailureStore,
    EventStore,
    StreamStore,
    ApprovalStore,
    SweepStore,
    ClockStore,
    ReplayJobStore,
    Protocol,
):
    """Everything the runtime needs, from one backend."""

    #: Whether its calls cross a network (a database server) rather than read a local file:
    #: the API then runs requests off the server's event loop (api/boundary.py says why).
    remote: bool

    def cache_state(self) -> CacheState:
        """Whether the reads every decision makes come from this node's caches now."""
        ...

    def consistent_reads(self) -> AbstractContextManager[None]:
        """A block whose cached reads all stand as of its first one: the caches' feed is
        looked at once, not at every read (a decision's reads: its app, version and session;
        each decision still looks afresh, so a change committed before it began is seen)."""
        ...

    def close(self) -> None: ...
