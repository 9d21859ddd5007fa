"""Node heartbeats: each node's clock beside the store's."""

from __future__ import annotations

from datetime import datetime, timedelta

from juncture.records import Heartbeat
from juncture.store.postgres.connection import PostgresConnections
from juncture.store.postgres.rows import MICROSECOND, from_micros, to_micros


class PostgresClocks(PostgresConnections):
    """`ClockStore` over the ``heartbeats`` table."""

    def beat(self, node: str, clock: datetime) -> Heartbeat:
        """Write the node's heartbeat with the database server's clock read in the same
        statement (``clock_timestamp()``: µs since the epoch); drop heartbeats more than a
        day old."""
        micros = to_micros(clock)
        with self._transaction() as conn:
            row = conn.execute(
                "INSERT INTO heartbeats (node, clock, store_at) VALUES (%s, %s,"
                " (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)"
                " ON CONFLICT (node) DO UPDATE SET clock = excluded.clock,"
                " store_at = excluded.store_at RETURNING store_at", (node, micros),
            ).fetchone()  # fmt: skip
            assert row is not None  # an upsert ... RETURNING of one row returns it
            store_at: int = row[0]
            conn.execute("DELETE FROM heartbeats WHERE store_at < %s",
                         (store_at - 86_400_000_000,))  # fmt: skip
        return Heartbeat(node=node, clock=clock, store_at=from_micros(store_at))

    def heartbeats(self, *, within: timedelta) -> list[Heartbeat]:
        rows = self._all(
            "SELECT node, clock, store_at FROM heartbeats WHERE store_at >="
            " (extract(epoch FROM clock_timestamp()) * 1000000)::bigint - %s"
            " ORDER BY node", (within // MICROSECOND,),
        )  # fmt: skip
        return [Heartbeat(node=node, clock=from_micros(clock), store_at=from_micros(at))
                for node, clock, at in rows]  # fmt: skip
