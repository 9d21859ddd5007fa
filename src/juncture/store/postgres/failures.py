"""Failure counters: failed attempts, lockouts and reserved attempts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec

from juncture.records import Failures
from juncture.store.postgres.connection import PgConnection, PostgresConnections
from juncture.store.postgres.rows import decode, encode, to_micros


class PostgresFailures(PostgresConnections):
    """`FailureStore` over the ``failures`` table."""

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
        """Count one failure (read, count and write in one transaction under the counter's
        lock: concurrent calls queue, none is lost); returns the new state.

        The count restarts at 1 when the last failure is older than ``window``, else goes up
        by 1; from ``lock_after`` failures on, each sets ``locked_until = at + lock_for`` (a
        running lock is never shortened; ``lock_after < 1`` never locks). The reservation
        ``attempt`` is settled by the same write.
        """
        to_micros(at)
        key = (subject_type, subject_id, counter)
        with self._transaction() as conn:
            before = _failures_row(conn, key)
            counted = _count_failure(before, key, at=at, window=window, lock_after=lock_after,
                                     lock_for=lock_for)  # fmt: skip
            if attempt is not None and attempt in counted.pending:
                pending = {k: v for k, v in counted.pending.items() if k != attempt}
                counted = msgspec.structs.replace(counted, pending=pending)
            _write_failures(conn, key, counted)
        return counted

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
        """Admit an attempt or refuse it: ``admit`` runs inside one transaction holding the
        counter's advisory lock, so no other node's reservation or failure comes between its
        read and the reservation written (see the protocol)."""
        to_micros(at)
        key = (subject_type, subject_id, counter)
        with self._transaction() as conn:
            before = _failures_row(conn, key)
            if before is not None and before.pending:
                live = {k: v for k, v in before.pending.items() if v >= at - hold}
                if len(live) != len(before.pending):
                    before = msgspec.structs.replace(before, pending=live)
            wait = admit(before)
            if wait is not None:
                return wait
            if before is None:
                before = Failures(subject_type=subject_type, subject_id=subject_id,
                                  counter=counter)  # fmt: skip
            reserved = msgspec.structs.replace(before, pending={**before.pending, attempt: at})
            _write_failures(conn, key, reserved)
        return None

    def release_attempt(
        self, subject_type: str, subject_id: str, counter: str, attempt: str
    ) -> None:
        """Drop a reservation without counting it; nothing happens when it is gone."""
        key = (subject_type, subject_id, counter)
        with self._transaction() as conn:
            before = _failures_row(conn, key)
            if before is None or attempt not in before.pending:
                return
            pending = {k: v for k, v in before.pending.items() if k != attempt}
            _write_failures(conn, key, msgspec.structs.replace(before, pending=pending))

    def get_failures(self, subject_type: str, subject_id: str, counter: str) -> Failures | None:
        row = self._one("SELECT body FROM failures WHERE subject_type = %s AND subject_id = %s"
                        " AND counter = %s", (subject_type, subject_id, counter))  # fmt: skip
        return None if row is None else decode(Failures, row[0])

    def clear_failures(self, subject_type: str, subject_id: str, counter: str) -> None:
        """Forget the counter (after a success); nothing happens when there is none."""
        with self._transaction() as conn:
            _lock_counter(conn, (subject_type, subject_id, counter))
            conn.execute("DELETE FROM failures WHERE subject_type = %s AND subject_id = %s"
                         " AND counter = %s", (subject_type, subject_id, counter))  # fmt: skip


def _lock_counter(conn: PgConnection, key: tuple[str, str, str]) -> None:
    """Take the counter's transaction-scoped advisory lock: every change of one counter (on
    any node) queues behind the others, a counter not yet written included (a row lock could
    not hold a row that does not exist)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                 ("failures" + encode(list(key)).decode(),))  # fmt: skip


def _failures_row(conn: PgConnection, key: tuple[str, str, str]) -> Failures | None:
    """The counter, read under its lock (`_lock_counter`)."""
    _lock_counter(conn, key)
    row = conn.execute("SELECT body FROM failures WHERE subject_type = %s"
                       " AND subject_id = %s AND counter = %s", key).fetchone()  # fmt: skip
    return None if row is None else decode(Failures, row[0])


def _write_failures(conn: PgConnection, key: tuple[str, str, str], value: Failures) -> None:
    conn.execute("INSERT INTO failures (subject_type, subject_id, counter, body)"
                 " VALUES (%s, %s, %s, %s) ON CONFLICT (subject_type, subject_id, counter)"
                 " DO UPDATE SET body = excluded.body", (*key, encode(value)))  # fmt: skip


def _count_failure(
    before: Failures | None,
    key: tuple[str, str, str],
    *,
    at: datetime,
    window: timedelta,
    lock_after: int,
    lock_for: timedelta,
) -> Failures:
    """The counter after one more failure at ``at`` (see `SqliteStore.record_failure`)."""
    subject_type, subject_id, counter = key
    if before is None or before.last_at is None or at - before.last_at > window:
        count, first_at, last_at = 1, at, at
    else:
        count = before.count + 1
        first_at = before.first_at or at
        last_at = max(before.last_at, at)  # a late arrival does not move the window back
    running = None if before is None else before.locked_until
    locked_until = running if running is not None and running > at else None
    if lock_after >= 1 and count >= lock_after:
        locked_until = at + lock_for if locked_until is None else max(locked_until, at + lock_for)
    return Failures(subject_type=subject_type, subject_id=subject_id, counter=counter,
                    count=count, first_at=first_at, last_at=last_at,
                    locked_until=locked_until,
                    pending={} if before is None else before.pending)  # fmt: skip
