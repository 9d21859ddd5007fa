"""Failure counters: failed attempts, lockouts and reserved attempts."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta

from juncture.records import Failures
from juncture.store.counters import counted, released, reserved
from juncture.store.sqlite.connection import SqliteConnections
from juncture.store.sqlite.rows import decode, encode, to_micros


class SqliteFailures(SqliteConnections):
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
        """Count one failure (read, count and write in one write transaction: concurrent
        calls queue, none is lost); returns the new state.

        The rules (window, lock, the reservation settled): `juncture.store.counters.counted`.
        """
        to_micros(at)
        key = (subject_type, subject_id, counter)
        with self._transaction() as conn:
            after = counted(_failures_row(conn, key), key, at=at, window=window,
                            lock_after=lock_after, lock_for=lock_for, attempt=attempt)
            _write_failures(conn, key, after)
        return after

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
        """Admit an attempt or refuse it: ``admit`` runs inside one ``BEGIN IMMEDIATE``
        transaction, so no other process's reservation or failure comes between its read
        and the reservation written (see the protocol)."""
        to_micros(at)
        key = (subject_type, subject_id, counter)
        with self._transaction() as conn:
            wait, after = reserved(_failures_row(conn, key), key, attempt=attempt, at=at,
                                   hold=hold, admit=admit)
            if after is not None:
                _write_failures(conn, key, after)
        return wait

    def release_attempt(
        self, subject_type: str, subject_id: str, counter: str, attempt: str
    ) -> None:
        """Drop a reservation without counting it; nothing happens when it is gone."""
        key = (subject_type, subject_id, counter)
        with self._transaction() as conn:
            after = released(_failures_row(conn, key), attempt)
            if after is not None:
                _write_failures(conn, key, after)

    def get_failures(self, subject_type: str, subject_id: str, counter: str) -> Failures | None:
        row = self._one("SELECT body FROM failures WHERE subject_type = ? AND subject_id = ?"
                        " AND counter = ?", (subject_type, subject_id, counter))  # fmt: skip
        return None if row is None else decode(Failures, row[0])

    def clear_failures(self, subject_type: str, subject_id: str, counter: str) -> None:
        """Forget the counter (after a success); nothing happens when there is none."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM failures WHERE subject_type = ? AND subject_id = ?"
                         " AND counter = ?", (subject_type, subject_id, counter))  # fmt: skip


def _failures_row(conn: sqlite3.Connection, key: tuple[str, str, str]) -> Failures | None:
    row = conn.execute("SELECT body FROM failures WHERE subject_type = ?"
                       " AND subject_id = ? AND counter = ?", key).fetchone()  # fmt: skip
    return None if row is None else decode(Failures, row[0])


def _write_failures(conn: sqlite3.Connection, key: tuple[str, str, str], value: Failures) -> None:
    conn.execute("INSERT INTO failures (subject_type, subject_id, counter, body)"
                 " VALUES (?, ?, ?, ?) ON CONFLICT (subject_type, subject_id, counter)"
                 " DO UPDATE SET body = excluded.body", (*key, encode(value)))  # fmt: skip

