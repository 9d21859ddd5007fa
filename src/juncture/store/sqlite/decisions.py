"""The decision log: append, count, query and purge."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from juncture.records import DecisionQuery, DecisionRecord
from juncture.store.protocols import NotFound
from juncture.store.sqlite.connection import SqliteConnections
from juncture.store.sqlite.rows import decode, encode, filters, to_micros, where

#: A decision record made ready for `record_prepared`: its small columns and its body's
#: length as a JSON array, and its body.
Prepared = tuple[bytes, bytes]

#: How much longer than decision records approvals are kept (the longest one may wait).
_APPROVALS_OUTLIVE = timedelta(days=1)


#: Rows per insert statement at most (a batch held while the store was down may be large).
_ROWS_PER_INSERT = 1000

#: The insert of a batch: its rows' small columns and body lengths as a JSON array of arrays
#: (?1), their bodies one after the other in one blob (?2); a row's body starts where the
#: bodies before it end.
_INSERT = (
    "INSERT INTO decisions (id, at, app, subject_id, session_id, action, outcome, body)"
    " SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,"
    " value ->> 6, substr(?2, 1 + coalesce(sum(value ->> 7) OVER (ORDER BY key ROWS BETWEEN"
    " UNBOUNDED PRECEDING AND 1 PRECEDING), 0), value ->> 7)"
    " FROM json_each(?1) WHERE true ON CONFLICT (id) DO NOTHING"
)


class SqliteDecisionLog(SqliteConnections):
    """`DecisionLog` over the ``decisions`` table (purging also drops approvals past their time)."""

    def record(self, records: Sequence[DecisionRecord]) -> None:
        """Append records in one transaction; an id already logged is skipped (retry-safe)."""
        self.record_prepared([self.prepare_record(r) for r in records])

    def prepare_record(self, record: DecisionRecord) -> Prepared:
        """A record made ready to insert, on the deciding thread: the thread that writes the
        log later joins bytes and calls SQLite, and holds the interpreter lock, which the
        server's event loop needs, for little more than that."""
        body = encode(record)
        return encode((record.id, to_micros(record.at), record.app, record.subject_id,
                       record.session_id, record.action, record.outcome,
                       len(body))), body  # fmt: skip

    def record_prepared(self, prepared: Sequence[Prepared]) -> None:
        """Append prepared records in one transaction; an id already logged is skipped.

        A statement takes up to `_ROWS_PER_INSERT` rows in two values (`_INSERT`), and SQLite
        does the rest with the interpreter lock released. (Binding each row's eight values
        made the event loop's thread wait for the lock: a fifth more time a decision; bodies
        inside the JSON cost SQLite twice the CPU, parsing them and rendering them again.
        `bench/RESULTS.md`, the decision log.)
        """
        if not prepared:
            return
        with self._transaction() as conn:
            for start in range(0, len(prepared), _ROWS_PER_INSERT):
                chunk = prepared[start : start + _ROWS_PER_INSERT]
                heads = b"[" + b",".join([head for head, _ in chunk]) + b"]"
                conn.execute(_INSERT, (heads, b"".join([body for _, body in chunk])))

    def count_decisions(self, subject_id: str, *, since: datetime) -> int:
        """How many decisions about ``subject_id`` were logged at or after ``since``."""
        count: int = self._one("SELECT count(*) FROM decisions WHERE subject_id = ? AND at >= ?",
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
            clauses.append("at >= ?")
            params.append(to_micros(query.since))
        if query.until is not None:
            clauses.append("at < ?")
            params.append(to_micros(query.until))
        if query.before is not None:
            row = self._one("SELECT at FROM decisions WHERE id = ?", (query.before,))
            if row is None:
                raise NotFound(f"no decision `{query.before}` to page from")
            clauses.append("(at, id) < (?, ?)")
            params.extend((row[0], query.before))
        rows = self._all(f"SELECT body FROM decisions{where(clauses)}"  # noqa: S608 - our names
                         " ORDER BY at DESC, id DESC LIMIT ?",
                         (*params, max(query.limit, 0)))  # fmt: skip
        return [decode(DecisionRecord, body) for (body,) in rows]

    def get_decision(self, decision_id: str) -> DecisionRecord | None:
        row = self._one("SELECT body FROM decisions WHERE id = ?", (decision_id,))
        return None if row is None else decode(DecisionRecord, row[0])

    def purge_before(self, at: datetime) -> int:
        """Delete the decision records strictly older than ``at``; returns how many. Approvals
        made more than a day before ``at`` go too (none waits that long: they are records of
        answers by then)."""
        when = to_micros(at)
        with self._transaction() as conn:
            deleted: int = conn.execute("DELETE FROM decisions WHERE at < ?", (when,)).rowcount
            conn.execute("DELETE FROM shadow_decisions WHERE at < ?", (when,))
            conn.execute("DELETE FROM approvals WHERE created_at < ?",
                         (to_micros(at - _APPROVALS_OUTLIVE),))  # fmt: skip
        return deleted
