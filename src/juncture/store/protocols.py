"""What the runtime needs from storage. Backends: `sqlite.SqliteStore` (PostgreSQL and Redis
later), all held to one contract test suite (tests/store/).

Every method that changes state is one transaction, committed before it returns: a caller
may acknowledge the change as soon as the call returns (durability rule of DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from juncture.store.models import (
    AdminCredential,
    App,
    Challenge,
    DecisionQuery,
    DecisionRecord,
    PolicyVersion,
    Session,
    SubjectSeen,
    VersionInfo,
)


class StoreError(Exception):
    """The store failed (unavailable, corrupt). Decisions made without it are deny."""


class ConflictError(StoreError):
    """An optimistic update lost a race (the record changed since it was read)."""


class NotFound(StoreError):
    """The record does not exist."""


class SessionStore(Protocol):
    def create_session(self, session: Session) -> None:
        """Insert a new session (id and handle unique). Raises ConflictError on a duplicate."""

    def get_session(self, session_id: str) -> Session | None: ...

    def update_session(self, session: Session, *, expected_revision: int) -> Session:
        """Replace the session if its stored revision is ``expected_revision``.

        Returns the stored session (revision + 1). Raises ConflictError otherwise (or when the
        new handle belongs to another session), NotFound when there is no such session.
        """

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


class PolicyStore(Protocol):
    def put_version(self, version: PolicyVersion) -> bool:
        """Store an immutable version; False when that id already exists (nothing changes)."""

    def get_version(self, version_id: str) -> PolicyVersion | None: ...

    def list_versions(self) -> Sequence[VersionInfo]:
        """Every version, newest first, with which one is active."""

    def activate(self, version_id: str, *, by: str, at: datetime) -> None:
        """Make ``version_id`` the one active version (atomically). Raises NotFound."""

    def active_version_id(self) -> str | None: ...


class DecisionLog(Protocol):
    def record(self, records: Sequence[DecisionRecord]) -> None:
        """Append decision records in one transaction (may be batched by the caller).

        A record whose id is already logged is skipped, so retrying a batch is harmless.
        """

    def prepare_record(self, record: DecisionRecord) -> bytes:
        """The record encoded for `record_prepared` (encode on the deciding thread, write on
        another). Raises StoreError for a record the store cannot take (a naive time)."""

    def record_prepared(self, prepared: Sequence[bytes]) -> None:
        """Append records made by `prepare_record`, as `record` does."""

    def query(self, query: DecisionQuery) -> Sequence[DecisionRecord]:
        """Newest first (ties by id, descending), filtered, at most ``query.limit``.

        ``since`` is inclusive, ``until`` exclusive; ``before`` returns the records that sort
        after that decision. Raises NotFound when ``before`` names no logged decision.
        """

    def get_decision(self, decision_id: str) -> DecisionRecord | None: ...

    def purge_before(self, at: datetime) -> int:
        """Delete records strictly older than ``at`` (retention); returns how many."""


class AppStore(Protocol):
    def put_app(self, app: App) -> None:
        """Insert or replace an app (its keys included).

        A key prefix is unique across all apps and admins: ConflictError (nothing changes)
        when one is held by another app or an admin.
        """

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


class SubjectSeenStore(Protocol):
    def get_subject_seen(self, subject_type: str, subject_id: str) -> SubjectSeen | None: ...

    def put_subject_seen(self, seen: SubjectSeen, *, expected_revision: int) -> SubjectSeen:
        """Store what was observed of a subject if its stored revision is ``expected_revision``
        (0: there is none yet). Returns it at revision + 1; ConflictError otherwise."""


class Store(
    SessionStore, PolicyStore, DecisionLog, AppStore, ChallengeStore, SubjectSeenStore, Protocol
):
    """Everything the runtime needs, from one backend."""

    def close(self) -> None: ...
