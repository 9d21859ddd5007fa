"""What shadow versions decided otherwise: append, count by transition, page."""

from __future__ import annotations

from collections.abc import Sequence

from juncture.records import ShadowRecord
from juncture.store.protocols import NotFound
from juncture.store.sqlite.connection import SqliteConnections
from juncture.store.sqlite.rows import decode, encode, to_micros


class SqliteShadowLog(SqliteConnections):
    """`ShadowLog` over the ``shadow_decisions`` table."""

    def record_shadow(self, records: Sequence[ShadowRecord]) -> None:
        rows = [(r.shadow_version, r.decision_id, to_micros(r.at), r.transition, encode(r))
                for r in records]  # fmt: skip
        if not rows:
            return
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO shadow_decisions (shadow_version, decision_id, at, transition, body)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
        clauses = ["shadow_version = ?"]
        params_any: list[object] = [shadow_version]
        if transition is not None:
            clauses.append("transition = ?")
            params_any.append(transition)
        if before is not None:
            row = self._one("SELECT at FROM shadow_decisions WHERE shadow_version = ?"
                            " AND decision_id = ?", (shadow_version, before))  # fmt: skip
            if row is None:
                raise NotFound(f"no shadow record of `{before}` to page from")
            clauses.append("(at, decision_id) < (?, ?)")
            params_any.extend((row[0], before))
        rows = self._all(
            f"SELECT body FROM shadow_decisions WHERE {' AND '.join(clauses)}"  # noqa: S608
            " ORDER BY at DESC, decision_id DESC LIMIT ?",
            (*params_any, max(limit, 0)),
        )
        return [decode(ShadowRecord, body) for (body,) in rows]

    def shadow_counts(self, shadow_version: str) -> dict[str, int]:
        rows = self._all("SELECT transition, count(*) FROM shadow_decisions"
                         " WHERE shadow_version = ? GROUP BY transition ORDER BY transition",
                         (shadow_version,))  # fmt: skip
        return {str(transition): int(count) for transition, count in rows}
