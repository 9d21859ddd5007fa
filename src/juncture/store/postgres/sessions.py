"""Sessions (their revisions, handles and delegations) and what was observed of subjects."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from juncture.records import Session, SubjectSeen
from juncture.store.postgres.arrays import ByteaArray, Int8Array, TextArray
from juncture.store.postgres.connection import PostgresConnections
from juncture.store.postgres.rows import (
    decode,
    encode,
    filters,
    missed,
    to_micros,
    where,
)
from juncture.store.protocols import ConflictError

#: A session replaced at the revision it was read (optimistic concurrency).
_UPDATE_SESSION = (
    "UPDATE sessions SET handle = %s, app = %s, subject_id = %s, status = %s, started_at = %s,"
    " revision = %s, body = %s WHERE id = %s AND revision = %s"
)

#: Many sessions replaced in one statement, each only at the revision it was read (the rows
#: that matched are returned): one round trip for a sweep's batch, not one a session. The
#: columns go in as arrays packed in binary (arrays.py).
_UPDATE_SESSIONS = (
    "UPDATE sessions AS s SET handle = v.handle, app = v.app, subject_id = v.subject_id,"
    " status = v.status, started_at = v.started_at, revision = v.revision, body = v.body"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[],"
    " %s::bigint[], %s::bytea[]) AS v(id, handle, app, subject_id, status, started_at,"
    " revision, body) WHERE s.id = v.id AND s.revision = v.revision - 1 RETURNING s.id"
)


class PostgresSessions(PostgresConnections):
    """`SessionStore` and `SubjectSeenStore` over the ``sessions`` and ``subjects_seen`` tables."""

    def create_session(self, session: Session) -> None:
        """Insert a new session. Raises ConflictError when its id or handle is taken."""
        parent = session.delegation.session_id if session.delegation is not None else None
        email = session.subject_properties.get("email")
        row = (session.id, session.handle, session.app, session.subject_id, session.status,
               to_micros(session.started_at), session.revision, parent,
               email.lower() if isinstance(email, str) else None, encode(session))  # fmt: skip
        with self._transaction() as conn:
            conn.execute("INSERT INTO sessions (id, handle, app, subject_id, status, started_at,"
                         " revision, parent, email, body)"
                         " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", row)  # fmt: skip

    def get_session(self, session_id: str) -> Session | None:
        row = self._one("SELECT body FROM sessions WHERE id = %s", (session_id,))
        return None if row is None else decode(Session, row[0])

    def delete_session(self, session_id: str) -> bool:
        with self._transaction() as conn:
            return conn.execute("DELETE FROM sessions WHERE id = %s", (session_id,)).rowcount > 0

    def update_session(self, session: Session, *, expected_revision: int) -> Session:
        """Replace the session if its stored revision is ``expected_revision``.

        Returns the stored session (revision ``expected_revision + 1``). Raises NotFound when
        absent, ConflictError when the revision moved on or the new handle is taken.
        """
        stored = msgspec.structs.replace(session, revision=expected_revision + 1)
        row = (stored.handle, stored.app, stored.subject_id, stored.status,
               to_micros(stored.started_at), stored.revision, encode(stored), stored.id,
               expected_revision)  # fmt: skip
        with self._transaction() as conn:
            changed = conn.execute(_UPDATE_SESSION, row).rowcount
            if not changed:
                missed(conn, "sessions", "session", session.id, expected_revision)
        return stored

    def update_sessions(self, sessions: Sequence[Session]) -> list[Session]:
        """Replace many sessions in one transaction, each only if its stored revision is still
        its ``revision`` (a session that changed meanwhile, or is gone, is skipped). Returns
        those stored (at revision + 1)."""
        stored = [msgspec.structs.replace(s, revision=s.revision + 1) for s in sessions]
        if not stored:
            return []
        if len({s.id for s in stored}) == len(stored):  # one statement (ids unique in it)
            columns = (
                TextArray([s.id for s in stored]),
                TextArray([s.handle for s in stored]),
                TextArray([s.app for s in stored]),
                TextArray([s.subject_id for s in stored]),
                TextArray([s.status for s in stored]),
                Int8Array([to_micros(s.started_at) for s in stored]),
                Int8Array([s.revision for s in stored]),
                ByteaArray([encode(s) for s in stored]),
            )
            with self._connection() as conn:  # one statement: a transaction of its own
                matched = {row[0] for row in conn.execute(_UPDATE_SESSIONS, columns).fetchall()}
            return [s for s in stored if s.id in matched]
        done: list[Session] = []
        with self._transaction() as conn:
            for s in stored:
                changed = conn.execute(
                    _UPDATE_SESSION,
                    (s.handle, s.app, s.subject_id, s.status, to_micros(s.started_at), s.revision,
                     encode(s), s.id, s.revision - 1),
                ).rowcount  # fmt: skip
                if changed:
                    done.append(s)
        return done

    # -- what was observed of subjects --------------------------------------------------------
    def get_subject_seen(self, subject_type: str, subject_id: str) -> SubjectSeen | None:
        row = self._one("SELECT body FROM subjects_seen WHERE subject_type = %s"
                        " AND subject_id = %s", (subject_type, subject_id))  # fmt: skip
        return None if row is None else decode(SubjectSeen, row[0])

    def put_subject_seen(self, seen: SubjectSeen, *, expected_revision: int) -> SubjectSeen:
        """Insert (``expected_revision`` 0) or replace at that revision; ConflictError if not."""
        stored = msgspec.structs.replace(seen, revision=expected_revision + 1)
        key = (seen.subject_type, seen.subject_id)
        with self._transaction() as conn:
            if expected_revision == 0:
                changed = conn.execute(
                    "INSERT INTO subjects_seen (subject_type, subject_id, revision, body)"
                    " VALUES (%s, %s, 1, %s) ON CONFLICT DO NOTHING", (*key, encode(stored)),
                ).rowcount  # fmt: skip
            else:
                changed = conn.execute(
                    "UPDATE subjects_seen SET revision = %s, body = %s WHERE subject_type = %s"
                    " AND subject_id = %s AND revision = %s",
                    (stored.revision, encode(stored), *key, expected_revision),
                ).rowcount  # fmt: skip
            if not changed:
                raise ConflictError(f"what was seen of `{seen.subject_id}` changed meanwhile")
        return stored

    def list_sessions(
        self,
        *,
        app: str | None = None,
        subject_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> Sequence[Session]:
        """Sessions matching every filter given, most recently started first."""
        clauses, params = filters(("app", app), ("subject_id", subject_id), ("status", status))
        rows = self._all(f"SELECT body FROM sessions{where(clauses)}"  # noqa: S608 - our names
                         " ORDER BY started_at DESC, id DESC LIMIT %s",
                         (*params, max(limit, 0)))  # fmt: skip
        return [decode(Session, body) for (body,) in rows]

    def count_active_sessions(self) -> int:
        count: int = self._one("SELECT count(*) FROM sessions WHERE status = 'active'", ())[0]
        return count

    def sessions_by_email(self, email: str, *, limit: int = 10_000) -> list[Session]:
        """The active sessions whose subject properties carry this address (any case)."""
        rows = self._all("SELECT body FROM sessions WHERE email = %s AND status = 'active'"
                         " ORDER BY id LIMIT %s", (email.lower(), max(limit, 0)))  # fmt: skip
        return [decode(Session, body) for (body,) in rows]

    def delegated_sessions(self, session_id: str) -> list[Session]:
        """The active sessions that act for this one (agents its user delegated to)."""
        rows = self._all("SELECT body FROM sessions WHERE parent = %s AND status = 'active'"
                         " ORDER BY id", (session_id,))  # fmt: skip
        return [decode(Session, body) for (body,) in rows]

    def get_sessions(self, session_ids: Sequence[str]) -> dict[str, Session]:
        """The stored sessions of these ids, by id (one query: the ids go in as one array,
        whatever their number); an id with no session is left out."""
        if not session_ids:
            return {}
        rows = self._all("SELECT id, body FROM sessions WHERE id = ANY(%s)",
                         (list(session_ids),))  # fmt: skip
        return {session_id: decode(Session, body) for session_id, body in rows}
