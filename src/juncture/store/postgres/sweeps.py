"""Sweep runs, and the pages of active sessions they walk."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from juncture.records import Session, SessionPage, SweepRun
from juncture.store.postgres.connection import PostgresConnections
from juncture.store.postgres.rows import (
    DECODERS,
    decode,
    encode,
    filters,
    missed,
    require_aware,
    to_micros,
    where,
)
from juncture.store.protocols import ConflictError


class PostgresSweeps(PostgresConnections):
    """`SweepStore` over the ``sweeps`` table (pages read ``sessions``)."""

    def put_sweep(self, run: SweepRun, *, expected_revision: int) -> SweepRun:
        """Create (``expected_revision`` 0) or replace the run at that revision.

        Returns it at revision ``expected_revision + 1``. Raises ConflictError when it exists
        already (creating) or its revision moved on, NotFound when replacing an absent one.
        """
        require_aware(run.updated_at, run.finished_at)
        stored = msgspec.structs.replace(run, revision=expected_revision + 1)
        columns = (to_micros(stored.started_at), stored.status, stored.revision, encode(stored))
        with self._connection() as conn:  # one statement, its own transaction (autocommit)
            if expected_revision == 0:
                changed = conn.execute(
                    "INSERT INTO sweeps (id, started_at, status, revision, body)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", (stored.id, *columns),
                ).rowcount  # fmt: skip
                if not changed:
                    raise ConflictError(f"sweep `{run.id}` exists already")
            else:
                changed = conn.execute(
                    "UPDATE sweeps SET started_at = %s, status = %s, revision = %s, body = %s"
                    " WHERE id = %s AND revision = %s", (*columns, stored.id, expected_revision),
                ).rowcount  # fmt: skip
            if not changed:
                missed(conn, "sweeps", "sweep", run.id, expected_revision)
        return stored

    def get_sweep(self, sweep_id: str) -> SweepRun | None:
        row = self._one("SELECT body FROM sweeps WHERE id = %s", (sweep_id,))
        return None if row is None else decode(SweepRun, row[0])

    def list_sweeps(self, *, status: str | None = None, limit: int = 20) -> Sequence[SweepRun]:
        """Newest first (started_at, then id, descending), of ``status`` when given."""
        clauses, params = filters(("status", status))
        rows = self._all(f"SELECT body FROM sweeps{where(clauses)}"  # noqa: S608 - our names
                         " ORDER BY started_at DESC, id DESC LIMIT %s",
                         (*params, max(limit, 0)))  # fmt: skip
        return [decode(SweepRun, body) for (body,) in rows]

    def sessions_after(self, cursor: str | None, *, limit: int = 500) -> SessionPage:
        """Active sessions with id > cursor (None: from the start), by id, at most ``limit``.

        Walks the primary key from the cursor, the status checked on each row; the rows are
        read in binary (the bodies as they are stored, not hex to decode).
        """
        after, params = ("", ()) if cursor is None else (" AND id > %s", (cursor,))
        with self._connection() as conn:  # in binary: the bodies come as they are, not as hex
            rows = conn.execute(f"SELECT id, body FROM sessions WHERE status = 'active'{after}"  # noqa: S608
                                " ORDER BY id LIMIT %s", (*params, max(limit, 0)),
                                binary=True).fetchall()  # fmt: skip
        sessions: list[Session] = []
        corrupt: list[str] = []
        decode_session = DECODERS[Session].decode
        for session_id, body in rows:
            try:
                sessions.append(decode_session(body))
            except msgspec.DecodeError:
                corrupt.append(session_id)
        return SessionPage(
            sessions=sessions,
            corrupt=corrupt,
            last=rows[-1][0] if rows else None,
            rows=len(rows),
        )
