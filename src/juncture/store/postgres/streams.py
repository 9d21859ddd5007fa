"""Shared Signals streams transmitted on, their subjects, their outbox and its lease."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from juncture.records import OutboxItem, Stream, StreamDelivery, StreamSubject
from juncture.store.postgres.connection import PostgresConnections
from juncture.store.postgres.rows import (
    decode,
    encode,
    filters,
    from_micros,
    missed,
    optional_micros,
    optional_time,
    require_aware,
    to_micros,
    where,
)
from juncture.store.protocols import ConflictError, NotFound

#: The SSF delivery methods (RFC 8935 push, RFC 8936 poll): only push streams are ever due.
PUSH = "urn:ietf:rfc:8935"

_OUTBOX_FIELDS = (
    "seq", "stream_id", "jti", "token", "event_type", "created_at", "next_attempt_at",
    "attempts", "delivered_at", "last_error", "given_up_at",
)  # fmt: skip
_OUTBOX_COLUMNS = ", ".join(_OUTBOX_FIELDS)


def _canonical(subject: dict[str, Any]) -> str:
    """A subject identifier's canonical JSON: keys sorted at every depth, no whitespace."""
    return msgspec.json.encode(subject, order="sorted").decode()


class PostgresStreams(PostgresConnections):
    """`StreamStore` over the ``streams``, ``stream_subjects`` and ``outbox`` tables."""

    def put_stream(self, stream: Stream, *, expected_revision: int) -> Stream:
        """Create (``expected_revision`` 0) or replace the stream at that revision.

        Returns it at revision ``expected_revision + 1``. Raises ConflictError when it exists
        already (creating) or its revision moved on, NotFound when replacing an absent one.
        """
        require_aware(stream.updated_at)
        stored = msgspec.structs.replace(stream, revision=expected_revision + 1)
        columns = (stored.app, to_micros(stored.created_at), stored.delivery_method, stored.status,
                   stored.revision, encode(stored))  # fmt: skip
        with self._transaction() as conn:
            if expected_revision == 0:
                changed = conn.execute(
                    "INSERT INTO streams (id, app, created_at, delivery_method, status, revision,"
                    " body) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (stored.id, *columns),
                ).rowcount  # fmt: skip
                if not changed:
                    raise ConflictError(f"stream `{stream.id}` exists already")
            else:
                changed = conn.execute(
                    "UPDATE streams SET app = %s, created_at = %s, delivery_method = %s,"
                    " status = %s, revision = %s, body = %s WHERE id = %s AND revision = %s",
                    (*columns, stored.id, expected_revision),
                ).rowcount  # fmt: skip
            if not changed:
                missed(conn, "streams", "stream", stream.id, expected_revision)
        return stored

    def get_stream(self, stream_id: str) -> Stream | None:
        row = self._one("SELECT body FROM streams WHERE id = %s", (stream_id,))
        return None if row is None else decode(Stream, row[0])

    def list_streams(self, *, app: str | None = None) -> Sequence[Stream]:
        """Every stream (of ``app`` when given), by created_at then id."""
        clauses, params = filters(("app", app))
        rows = self._all(f"SELECT body FROM streams{where(clauses)}"  # noqa: S608 - our names
                         " ORDER BY created_at, id", params)  # fmt: skip
        return [decode(Stream, body) for (body,) in rows]

    def delete_stream(self, stream_id: str) -> bool:
        """Delete the stream, its subjects and its undelivered outbox items (given up ones
        too) in one transaction; True when it existed. Delivered items are kept."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM stream_subjects WHERE stream_id = %s", (stream_id,))
            conn.execute("DELETE FROM outbox WHERE stream_id = %s AND delivered_at IS NULL",
                         (stream_id,))  # fmt: skip
            deleted: int = conn.execute("DELETE FROM streams WHERE id = %s",
                                        (stream_id,)).rowcount  # fmt: skip
        return deleted == 1

    def add_stream_subject(self, subject: StreamSubject) -> None:
        """Add a subject to a stream; adding it again (the same canonical JSON, whatever its
        key order) changes nothing: the first stays. Raises NotFound for an unknown stream."""
        row = (subject.stream_id, _canonical(subject.subject), to_micros(subject.added_at),
               encode(subject))  # fmt: skip
        with self._transaction() as conn:
            found = conn.execute("SELECT 1 FROM streams WHERE id = %s",
                                 (subject.stream_id,)).fetchone()  # fmt: skip
            if found is None:
                raise NotFound(f"no stream `{subject.stream_id}`")
            conn.execute("INSERT INTO stream_subjects (stream_id, subject, added_at, body)"
                         " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", row)  # fmt: skip

    def remove_stream_subject(self, stream_id: str, subject: dict[str, Any]) -> bool:
        """Remove a subject (matched by canonical JSON) from a stream; True when it was on it."""
        with self._transaction() as conn:
            deleted: int = conn.execute(
                "DELETE FROM stream_subjects WHERE stream_id = %s AND subject = %s",
                (stream_id, _canonical(subject)),
            ).rowcount  # fmt: skip
        return deleted == 1

    def list_stream_subjects(self, stream_id: str) -> Sequence[StreamSubject]:
        """The stream's subjects, by added_at then canonical JSON (none for an unknown one)."""
        rows = self._all("SELECT body FROM stream_subjects WHERE stream_id = %s"
                         " ORDER BY added_at, subject", (stream_id,))  # fmt: skip
        return [decode(StreamSubject, body) for (body,) in rows]

    def enqueue(self, items: Sequence[OutboxItem]) -> Sequence[OutboxItem]:
        """Append items in one transaction; returns them with their seq (increasing, never
        reused). Raises ConflictError, storing none, when one's (stream_id, jti) is taken.

        The stream is not checked: an item of a stream that does not exist (deleted
        meanwhile) is kept but never due.
        """
        rows = [_outbox_row(item) for item in items]
        if not rows:
            return []
        stored = []
        with self._transaction() as conn:
            for item, row in zip(items, rows, strict=True):
                returned = conn.execute(
                    "INSERT INTO outbox (stream_id, jti, token, event_type, created_at,"
                    " next_attempt_at, attempts, delivered_at, last_error, given_up_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING seq", row,
                ).fetchone()  # fmt: skip
                assert returned is not None  # an INSERT ... RETURNING of one row returns it
                seq = int(returned[0])
                stored.append(msgspec.structs.replace(item, seq=seq))
        return stored

    def due(self, *, now: datetime, limit: int = 100) -> Sequence[OutboxItem]:
        """Items to push now: undelivered, not given up, ``next_attempt_at <= now``, of
        enabled push streams; by seq.

        Each enabled stream's items are read through the partial index of undelivered items.
        """
        rows = self._all(
            f"SELECT {', '.join(f'o.{name}' for name in _OUTBOX_FIELDS)}"  # noqa: S608
            " FROM streams AS s"
            " JOIN outbox AS o ON o.stream_id = s.id"
            " WHERE s.status = 'enabled' AND s.delivery_method = %s"
            " AND o.delivered_at IS NULL AND o.given_up_at IS NULL AND o.next_attempt_at <= %s"
            " ORDER BY o.seq LIMIT %s", (PUSH, to_micros(now), max(limit, 0)),
        )  # fmt: skip
        return [_outbox_item(row) for row in rows]

    def pending(self, stream_id: str, *, limit: int = 100) -> Sequence[OutboxItem]:
        """Undelivered, not given up items of one stream (what a poll returns), by seq."""
        rows = self._all(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE stream_id = %s"  # noqa: S608 - our names
            " AND delivered_at IS NULL AND given_up_at IS NULL ORDER BY seq LIMIT %s",
            (stream_id, max(limit, 0)),
        )  # fmt: skip
        return [_outbox_item(row) for row in rows]

    def delivery_status(self, stream_id: str) -> StreamDelivery:
        """The stream's outbox counted by state (one scan of its items), its last delivery
        and the error of its newest undelivered item that failed."""
        waiting = "delivered_at IS NULL AND given_up_at IS NULL"
        pending, retrying, failed, delivered, last = self._one(
            f"SELECT coalesce(sum(CASE WHEN {waiting} THEN 1 ELSE 0 END), 0),"  # noqa: S608
            f" coalesce(sum(CASE WHEN {waiting} AND attempts > 0 THEN 1 ELSE 0 END), 0),"
            " coalesce(sum(CASE WHEN delivered_at IS NULL AND given_up_at IS NOT NULL"
            " THEN 1 ELSE 0 END), 0),"
            " coalesce(sum(CASE WHEN delivered_at IS NOT NULL THEN 1 ELSE 0 END), 0),"
            " max(delivered_at) FROM outbox WHERE stream_id = %s", (stream_id,),
        )  # fmt: skip
        error = self._one(
            "SELECT last_error FROM outbox WHERE stream_id = %s AND delivered_at IS NULL"
            " AND last_error IS NOT NULL ORDER BY seq DESC LIMIT 1", (stream_id,),
        )  # fmt: skip
        return StreamDelivery(
            pending=int(pending), retrying=int(retrying), failed=int(failed),
            delivered=int(delivered), last_delivered_at=optional_time(last),
            last_error=error[0] if error is not None else None,
        )  # fmt: skip

    def mark_delivered(self, stream_id: str, jtis: Sequence[str], *, at: datetime) -> int:
        """Mark the stream's items of these jtis delivered at ``at``; how many were not yet
        (an unknown jti, or one delivered already, is not counted)."""
        when = to_micros(at)
        if not jtis:
            return 0
        with self._transaction() as conn:
            changed: int = conn.execute(
                "UPDATE outbox SET delivered_at = %s WHERE stream_id = %s AND delivered_at IS NULL"
                " AND jti = ANY(%s)",
                (when, stream_id, list(jtis)),
            ).rowcount  # fmt: skip
        return changed

    def mark_failed(
        self, seq: int, *, at: datetime, error: str, next_attempt_at: datetime | None
    ) -> None:
        """Count a failed attempt and keep its error; retry at ``next_attempt_at``, or (None)
        give the item up (``given_up_at = at``, kept if it was given up before). Raises
        NotFound when there is no item ``seq``."""
        when = to_micros(at)
        if next_attempt_at is None:
            sql = "given_up_at = coalesce(given_up_at, %s)"
            value = when
        else:
            sql = "next_attempt_at = %s"
            value = to_micros(next_attempt_at)
        with self._transaction() as conn:
            changed = conn.execute(
                f"UPDATE outbox SET attempts = attempts + 1, last_error = %s, {sql}"  # noqa: S608
                " WHERE seq = %s", (error, value, seq),
            ).rowcount  # fmt: skip
            if not changed:
                raise NotFound(f"no outbox item {seq}")


def _outbox_row(item: OutboxItem) -> tuple[object, ...]:
    """The outbox columns of an item, after ``seq`` (which the store assigns)."""
    return (item.stream_id, item.jti, item.set, item.event_type, to_micros(item.created_at),
            to_micros(item.next_attempt_at), item.attempts, optional_micros(item.delivered_at),
            item.last_error, optional_micros(item.given_up_at))  # fmt: skip


def _outbox_item(row: Sequence[Any]) -> OutboxItem:
    """An item from its row (`_OUTBOX_FIELDS`, in order): outbox items are columns only, so
    marking one delivered or failed is one UPDATE, not a read and a rewrite."""
    (seq, stream_id, jti, token, event_type, created_at, next_attempt_at, attempts,
     delivered_at, last_error, given_up_at) = row  # fmt: skip
    return OutboxItem(
        stream_id=stream_id, jti=jti, set=token, event_type=event_type,
        created_at=from_micros(created_at), next_attempt_at=from_micros(next_attempt_at),
        seq=seq, attempts=attempts, delivered_at=optional_time(delivered_at),
        last_error=last_error, given_up_at=optional_time(given_up_at),
    )  # fmt: skip
