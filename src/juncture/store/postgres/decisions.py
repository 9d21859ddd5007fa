"""The decision log: append, count, query and purge.

The ``decisions`` table is partitioned by day of ``at`` (range partitions
``decisions_d<days since the epoch>``, and a default partition for anything outside them).
The days from yesterday to three days ahead are made when a node first writes and again once a
day, so records land in their day's partition; retention (`purge_before`) then drops whole days
older than the cut-off, which takes a moment whatever their size, and deletes row by row only
in the day the cut-off falls in and in the default partition. Traffic is never held up by a
long delete.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

import psycopg

from juncture.records import DecisionQuery, DecisionRecord
from juncture.store.postgres.connection import PostgresConnections
from juncture.store.postgres.rows import decode, encode, filters, to_micros, where
from juncture.store.protocols import NotFound, StoreError

#: How much longer than decision records approvals are kept (the longest one may wait).
_APPROVALS_OUTLIVE = timedelta(days=1)
#: A day in the unit of ``at`` (microseconds since the epoch).
DAY = 86_400 * 1_000_000
#: The days made ahead of today.
DAYS_AHEAD = 3
_DAY_NAME = re.compile(r"decisions_d(\d+)")


class PostgresDecisionLog(PostgresConnections):
    """`DecisionLog` over the ``decisions`` table (purging also drops approvals past their time)."""

    def record(self, records: Sequence[DecisionRecord]) -> None:
        """Append records in one transaction; an id already logged is skipped (retry-safe)."""
        self.record_prepared([self.prepare_record(r) for r in records])

    def prepare_record(self, record: DecisionRecord) -> bytes:
        """A record encoded for `record_prepared`: done on the deciding thread, so the thread
        that writes the log later does almost no Python work (it holds the interpreter lock
        that the server needs for as little as possible)."""
        return encode((record.id, to_micros(record.at), record.app, record.subject_id,
                        record.session_id, record.action, record.outcome, record))  # fmt: skip

    def record_prepared(self, prepared: Sequence[bytes]) -> None:
        """Append prepared records in one transaction; an id already logged is skipped.

        The whole batch goes in as one statement over a JSON array (one round trip, parsed by
        the server); ``json`` (not ``jsonb``) keeps each record's bytes as they were encoded.
        """
        if not prepared:
            return
        self._make_days()
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO decisions (id, at, app, subject_id, session_id, action, outcome,"
                " body) SELECT v ->> 0, (v ->> 1)::bigint, v ->> 2, v ->> 3,"
                " v ->> 4, v ->> 5, v ->> 6, convert_to((v -> 7)::text, 'UTF8')"
                " FROM json_array_elements(%s::json) AS v ON CONFLICT (id, at) DO NOTHING",
                ((b"[" + b",".join(prepared) + b"]").decode(),),
            )  # fmt: skip

    def count_decisions(self, subject_id: str, *, since: datetime) -> int:
        """How many decisions about ``subject_id`` were logged at or after ``since``."""
        count: int = self._one("SELECT count(*) FROM decisions WHERE subject_id = %s AND at >= %s",
                               (subject_id, to_micros(since)))[0]  # fmt: skip
        return count

    def query(self, query: DecisionQuery) -> Sequence[DecisionRecord]:
        """Newest first (ties by id, descending), every filter applied, at most ``limit``.

        ``since`` is inclusive, ``until`` exclusive; ``before`` (a decision id) returns the
        records that sort after it. Raises NotFound when ``before`` names no logged decision.
        """
        clauses, params = filters(
            ("app", query.app), ("subject_id", query.subject_id),
            ("session_id", query.session_id), ("action", query.action),
            ("outcome", query.outcome),
        )  # fmt: skip
        if query.since is not None:
            clauses.append("at >= %s")
            params.append(to_micros(query.since))
        if query.until is not None:
            clauses.append("at < %s")
            params.append(to_micros(query.until))
        if query.before is not None:
            row = self._one("SELECT at FROM decisions WHERE id = %s", (query.before,))
            if row is None:
                raise NotFound(f"no decision `{query.before}` to page from")
            clauses.append("(at, id) < (%s, %s)")
            params.extend((row[0], query.before))
        rows = self._all(f"SELECT body FROM decisions{where(clauses)}"  # noqa: S608 - our names
                         " ORDER BY at DESC, id DESC LIMIT %s",
                         (*params, max(query.limit, 0)))  # fmt: skip
        return [decode(DecisionRecord, body) for (body,) in rows]

    def get_decision(self, decision_id: str) -> DecisionRecord | None:
        row = self._one("SELECT body FROM decisions WHERE id = %s", (decision_id,))
        return None if row is None else decode(DecisionRecord, row[0])

    def purge_before(self, at: datetime) -> int:
        """Delete the decision records strictly older than ``at``; returns how many. Approvals
        made more than a day before ``at`` go too (none waits that long: they are records of
        answers by then)."""
        when = to_micros(at)
        self._make_days()
        deleted = 0
        with self._transaction() as conn:
            days = conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'decisions'::regclass"
            ).fetchall()
            for (name,) in days:
                day = _DAY_NAME.fullmatch(name)
                if day is not None and (int(day.group(1)) + 1) * DAY <= when:
                    (rows,) = conn.execute(f"SELECT count(*) FROM {name}").fetchall()[0]  # noqa: S608
                    deleted += int(rows)
                    conn.execute(f"DROP TABLE {name}")
            deleted += conn.execute("DELETE FROM decisions WHERE at < %s", (when,)).rowcount
            conn.execute("DELETE FROM shadow_decisions WHERE at < %s", (when,))
            conn.execute("DELETE FROM approvals WHERE created_at < %s",
                         (to_micros(at - _APPROVALS_OUTLIVE),))  # fmt: skip
        return deleted

    def _make_days(self) -> None:
        """Make the day partitions from yesterday to `DAYS_AHEAD` days ahead, once a day per
        store. A day another node made meanwhile, or one whose records already sit in the
        default partition (a test clock ran ahead), is left as it is."""
        today = int(time.time() * 1_000_000) // DAY
        if getattr(self, "_days_made", None) == today:
            return
        for day in range(today - 1, today + DAYS_AHEAD + 1):
            try:
                with self._transaction() as conn:
                    conn.execute(
                        f"CREATE TABLE IF NOT EXISTS decisions_d{day} PARTITION OF decisions"
                        f" FOR VALUES FROM ({day * DAY}) TO ({(day + 1) * DAY})"
                    )
            except StoreError as error:  # ConflictError too: another node made it meanwhile
                if isinstance(error.__cause__, psycopg.OperationalError):
                    return  # no server: the next write tries again
        self._days_made = today
