"""Shared Signals events received, and the last event time per subject and signal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from juncture.records import ReceivedEvent
from juncture.store.postgres.connection import PgConnection, PostgresConnections
from juncture.store.postgres.rows import (
    decode,
    encode,
    filters,
    from_micros,
    require_aware,
    to_micros,
    where,
)
from juncture.store.protocols import NotFound


class PostgresReceivedEvents(PostgresConnections):
    """`EventStore` over the ``received``, ``received_sessions`` and ``event_times`` tables."""

    def receive_event(self, event: ReceivedEvent) -> bool:
        """Keep a received SET (and the sessions it names) in one transaction; False, and
        nothing stored, when its (issuer, jti) is kept already."""
        row = _received_row(event)
        with self._transaction() as conn:
            inserted: int = conn.execute(
                "INSERT INTO received_events (issuer, jti, received_at, subject_id, body)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (issuer, jti) DO NOTHING", row,
            ).rowcount  # fmt: skip
            if inserted:
                _name_sessions(conn, event, row[2])
        return inserted == 1

    def update_received(self, event: ReceivedEvent) -> None:
        """Replace the stored record of (issuer, jti), the sessions it names included. Raises
        NotFound when there is none."""
        issuer, jti, received_at, subject_id, body = _received_row(event)
        with self._transaction() as conn:
            changed = conn.execute(
                "UPDATE received_events SET received_at = %s, subject_id = %s, body = %s"
                " WHERE issuer = %s AND jti = %s", (received_at, subject_id, body, issuer, jti),
            ).rowcount  # fmt: skip
            if not changed:
                raise NotFound(f"no received event `{jti}` of `{issuer}`")
            conn.execute("DELETE FROM received_sessions WHERE issuer = %s AND jti = %s",
                         (issuer, jti))  # fmt: skip
            _name_sessions(conn, event, received_at)

    def get_received(self, issuer: str, jti: str) -> ReceivedEvent | None:
        row = self._one("SELECT body FROM received_events WHERE issuer = %s AND jti = %s",
                        (issuer, jti))  # fmt: skip
        return None if row is None else decode(ReceivedEvent, row[0])

    def list_received(
        self,
        *,
        subject_id: str | None = None,
        session_id: str | None = None,
        limit: int = 100,
    ) -> Sequence[ReceivedEvent]:
        """Newest first (received_at, then jti, then issuer, all descending), filtered.

        A session's events are found through ``received_sessions`` (walked first, in its
        index order).
        """
        if session_id is None:
            clauses, params = filters(("subject_id", subject_id))
            sql = (f"SELECT body FROM received_events{where(clauses)}"  # noqa: S608 - our names
                   " ORDER BY received_at DESC, jti DESC, issuer DESC LIMIT %s")  # fmt: skip
        else:
            clauses, params = filters(("r.session_id", session_id), ("e.subject_id", subject_id))
            sql = ("SELECT e.body FROM received_sessions AS r"  # noqa: S608 - our names
                   " JOIN received_events AS e ON e.issuer = r.issuer AND e.jti = r.jti"
                   f"{where(clauses)}"
                   " ORDER BY r.received_at DESC, r.jti DESC, r.issuer DESC LIMIT %s")  # fmt: skip
        rows = self._all(sql, (*params, max(limit, 0)))
        return [decode(ReceivedEvent, body) for (body,) in rows]

    def last_event_time(self, subject_key: str, signal: str) -> datetime | None:
        row = self._one("SELECT at FROM event_times WHERE subject_key = %s AND signal = %s",
                        (subject_key, signal))  # fmt: skip
        return None if row is None else from_micros(row[0])

    def set_event_time(self, subject_key: str, signal: str, at: datetime) -> bool:
        """Record ``at`` for (subject_key, signal) if it is later than the stored time (one
        upsert: concurrent calls cannot both win with one time); True when it was."""
        row = (subject_key, signal, to_micros(at))
        with self._transaction() as conn:
            changed: int = conn.execute(
                "INSERT INTO event_times (subject_key, signal, at) VALUES (%s, %s, %s)"
                " ON CONFLICT (subject_key, signal) DO UPDATE SET at = excluded.at"
                " WHERE excluded.at > event_times.at", row,
            ).rowcount  # fmt: skip
        return changed == 1


def _received_row(event: ReceivedEvent) -> tuple[str, str, int, str | None, bytes]:
    require_aware(event.event_time)
    return (event.issuer, event.jti, to_micros(event.received_at), event.subject_id,
            encode(event))  # fmt: skip


def _name_sessions(conn: PgConnection, event: ReceivedEvent, received_at: int) -> None:
    """Index the sessions a received event names (a repeated id once)."""
    conn.cursor().executemany(
        "INSERT INTO received_sessions (issuer, jti, session_id, received_at)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        [(event.issuer, event.jti, session_id, received_at) for session_id in event.session_ids],
    )  # fmt: skip
