"""Policy versions (which one is active) and the usage a publish weighs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from juncture.records import PolicyVersion, Usage, VersionInfo
from juncture.store.protocols import NotFound
from juncture.store.sqlite.connection import SqliteConnections
from juncture.store.sqlite.rows import VersionHead, decode, encode, from_micros, to_micros


class SqlitePolicyVersions(SqliteConnections):
    """`PolicyStore` over the ``versions`` table (usage reads ``decisions`` and ``sessions``)."""

    def put_version(self, version: PolicyVersion) -> bool:
        row = (version.id, to_micros(version.created_at), encode(version))
        with self._transaction() as conn:
            inserted: int = conn.execute(
                "INSERT INTO versions (id, created_at, body) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING", row,
            ).rowcount  # fmt: skip
        return inserted == 1

    def get_version(self, version_id: str) -> PolicyVersion | None:
        row = self._one("SELECT body FROM versions WHERE id = ?", (version_id,))
        return None if row is None else decode(PolicyVersion, row[0])

    def list_versions(self) -> Sequence[VersionInfo]:
        rows = self._all("SELECT body, active, activated_at, activated_by, shadow FROM versions"
                         " ORDER BY created_at DESC, seq DESC", ())  # fmt: skip
        infos = []
        for body, active, activated_at, activated_by, shadow in rows:
            head = decode(VersionHead, body)
            infos.append(VersionInfo(
                id=head.id, author=head.author, created_at=head.created_at, comment=head.comment,
                active=bool(active), activated_by=activated_by,
                activated_at=None if activated_at is None else from_micros(activated_at),
                shadow=bool(shadow),
            ))  # fmt: skip
        return infos

    def activate(self, version_id: str, *, by: str, at: datetime) -> None:
        when = to_micros(at)
        with self._transaction() as conn:
            found = conn.execute("SELECT 1 FROM versions WHERE id = ?", (version_id,)).fetchone()
            if found is None:
                raise NotFound(f"no policy version `{version_id}`")
            conn.execute("UPDATE versions SET active = 0 WHERE active = 1")
            conn.execute("UPDATE versions SET active = 1, activated_at = ?, activated_by = ?,"
                         " shadow = 0 WHERE id = ?", (when, by, version_id))  # fmt: skip

    def active_version_id(self) -> str | None:
        row = self._one("SELECT id FROM versions WHERE active = 1", ())
        return None if row is None else str(row[0])

    def set_shadow(self, version_id: str | None) -> None:
        with self._transaction() as conn:
            if version_id is not None:
                found = conn.execute("SELECT 1 FROM versions WHERE id = ?", (version_id,))
                if found.fetchone() is None:
                    raise NotFound(f"no policy version `{version_id}`")
            conn.execute("UPDATE versions SET shadow = 0 WHERE shadow = 1")
            if version_id is not None:
                conn.execute("UPDATE versions SET shadow = 1 WHERE id = ?", (version_id,))

    def shadow_version_id(self) -> str | None:
        row = self._one("SELECT id FROM versions WHERE shadow = 1", ())
        return None if row is None else str(row[0])

    def version_ids(self, prefix: str, *, limit: int = 2) -> list[str]:
        """The ids of stored versions that start with ``prefix`` (at most ``limit``)."""
        rows = self._all("SELECT id FROM versions WHERE substr(id, 1, ?) = ? ORDER BY id"
                         " LIMIT ?", (len(prefix), prefix, max(limit, 0)))  # fmt: skip
        return [str(row[0]) for row in rows]

    def usage_since(self, since: datetime) -> list[Usage]:
        """Decisions logged since ``since`` by app, subject type, journey and checkpoint; live
        sessions by app and subject type. One pass over the day's records (a publish asks)."""
        rows = self._all(
            "SELECT app, json_extract(CAST(body AS TEXT), '$.subject_type') AS st,"
            " json_extract(CAST(body AS TEXT), '$.decision.journey') AS journey,"
            " json_extract(CAST(body AS TEXT), '$.decision.checkpoint') AS checkpoint,"
            " count(*) FROM decisions WHERE at >= ? GROUP BY app, st, journey, checkpoint",
            (to_micros(since),),
        )
        found = [
            Usage(app=app, subject_type=st, journey=journey, checkpoint=point, decisions=count)
            for app, st, journey, point, count in rows
        ]
        rows = self._all(
            "SELECT app, json_extract(CAST(body AS TEXT), '$.subject_type') AS st, count(*)"
            " FROM sessions WHERE status IN ('active', 'pending') GROUP BY app, st",
            (),
        )
        found += [Usage(app=app, subject_type=st, sessions=count) for app, st, count in rows]
        return found
