"""What shadow versions decided otherwise: append, count by transition, page."""

from __future__ import annotations

from collections.abc import Sequence

from juncture.records import ShadowRecord
from juncture.store.postgres.connection import PostgresConnections
from juncture.store.postgres.rows import decode, encode, to_micros
from juncture.store.protocols import NotFound


class PostgresShadowLog(PostgresConnections):
    """`ShadowLog` over the ``shadow_decisions`` table."""

    def record_shadow(self, records: Sequence[ShadowRecord]) -> None:
        rows = [(r.shadow_version, r.decision_id, to_micros(r.at), r.transition, encode(r))
                for r in records]  # fmt: skip
        if not rows:
            return
        with self._transaction() as conn:
            conn.cursor().executemany(
                "INSERT INTO shadow_decisions (shadow_version, decision_id, at, transition, body)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                rows,
            )

    def shadow_records(
        self,
        shadow_version: str,
        *,
        transition: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> Sequence[ShadowRecord]:
        clauses = ["shadow_version = %s"]
        params_any: list[object] = [shadow_version]
        if transition is not None:
            clauses.append("transition = %s")
            params_any.append(transition)
        if before is not None:
            row = self._one("SELECT at FROM shadow_decisions WHERE shadow_version = %s"
                            " AND decision_id = %s", (shadow_version, before))  # fmt: skip
            if row is None:
                raise NotFound(f"no shadow record of `{before}` to page from")
            clauses.append("(at, decision_id) < (%s, %s)")
            params_any.extend((row[0], before))
        rows = self._all(
            f"SELECT body FROM shadow_decisions WHERE {' AND '.join(clauses)}"  # noqa: S608
            " ORDER BY at DESC, decision_id DESC LIMIT %s",
            (*params_any, max(limit, 0)),
        )
        return [decode(ShadowRecord, body) for (body,) in rows]

    def shadow_counts(self, shadow_version: str) -> dict[str, int]:
        rows = self._all("SELECT transition, count(*) FROM shadow_decisions"
                         " WHERE shadow_version = %s GROUP BY transition ORDER BY transition",
                         (shadow_version,))  # fmt: skip
        return {str(transition): int(count) for transition, count in rows}
