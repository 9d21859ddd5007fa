"""The decision log: append, count, query and purge."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from juncture.records import DecisionQuery, DecisionRecord
from juncture.store.postgres.connection import PostgresConnections
from juncture.store.postgres.rows import decode, encode, filters, to_micros, where
from juncture.store.protocols import NotFound

#: How much longer than decision records approvals are kept (the longest one may wait).
_APPROVALS_OUTLIVE = timedelta(days=1)


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
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO decisions (id, at, app, subject_id, session_id, action, outcome,"
                " body) SELECT v ->> 0, (v ->> 1)::bigint, v ->> 2, v ->> 3,"
                " v ->> 4, v ->> 5, v ->> 6, convert_to((v -> 7)::text, 'UTF8')"
                " FROM json_array_elements(%s::json) AS v ON CONFLICT (id) DO NOTHING",
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
        with self._transaction() as conn:
            deleted: int = conn.execute("DELETE FROM decisions WHERE at < %s", (when,)).rowcount
            conn.execute("DELETE FROM approvals WHERE created_at < %s",
                         (to_micros(at - _APPROVALS_OUTLIVE),))  # fmt: skip
        return deleted
