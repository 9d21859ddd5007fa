"""Node heartbeats: each node's clock beside the store's."""

from __future__ import annotations

from datetime import datetime, timedelta

from juncture.records import Heartbeat
from juncture.store.sqlite.connection import SqliteConnections
from juncture.store.sqlite.rows import MICROSECOND, from_micros, to_micros


class SqliteClocks(SqliteConnections):
    """`ClockStore` over the ``heartbeats`` table."""

    def beat(self, node: str, clock: datetime) -> Heartbeat:
        """Write the node's heartbeat with the host's clock as SQLite reads it in the same
        statement (``julianday('now')``: µs since the epoch, millisecond resolution); drop
        heartbeats more than a day old."""
        micros = to_micros(clock)
        with self._transaction() as conn:
            (store_at,) = conn.execute(
                "INSERT INTO heartbeats (node, clock, store_at) VALUES (?, ?,"
                " CAST(round((julianday('now') - 2440587.5) * 86400000.0) * 1000 AS INTEGER))"
                " ON CONFLICT (node) DO UPDATE SET clock = excluded.clock,"
                " store_at = excluded.store_at RETURNING store_at", (node, micros),
            ).fetchone()  # fmt: skip
            conn.execute("DELETE FROM heartbeats WHERE store_at < ?",
                         (store_at - 86_400_000_000,))  # fmt: skip
        return Heartbeat(node=node, clock=clock, store_at=from_micros(store_at))

    def heartbeats(self, *, within: timedelta) -> list[Heartbeat]:
        rows = self._all(
            "SELECT node, clock, store_at FROM heartbeats WHERE store_at >="
            " CAST(round((julianday('now') - 2440587.5) * 86400000.0) * 1000 AS INTEGER) - ?"
            " ORDER BY node", (within // MICROSECOND,),
        )  # fmt: skip
        return [Heartbeat(node=node, clock=from_micros(clock), store_at=from_micros(at))
                for node, clock, at in rows]  # fmt: skip
