"""Applications and admin credentials, found by their key prefix."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from juncture.records import AdminCredential, App, AppBinding
from juncture.store.sqlite.connection import SqliteConnections
from juncture.store.sqlite.rows import decode, encode, from_micros, to_micros


class SqliteApps(SqliteConnections):
    """`AppStore` over the ``apps`` and ``admins`` tables."""

    def put_app(self, app: App, *, at: datetime | None = None) -> None:
        """Insert or replace an app and its keys.

        Raises ConflictError (and changes nothing) when a key prefix is held by another app
        or an admin, or appears twice in ``app.keys``. Appends to the app's binding history
        when its journeys change (`AppStore.app_bindings`).
        """
        body = encode(app)
        with self._transaction() as conn:
            last = conn.execute("SELECT journeys FROM app_bindings WHERE app = ?"
                                " ORDER BY seq DESC LIMIT 1", (app.id,)).fetchone()  # fmt: skip
            if last is None or _journeys(last[0]) != app.journeys:
                since = app.created_at if last is None else at or datetime.now(UTC)
                conn.execute("INSERT INTO app_bindings (app, since, journeys)"
                             " VALUES (?, ?, ?)", (app.id, to_micros(since),
                             encode(list(app.journeys)).decode()))  # fmt: skip
            conn.execute("INSERT INTO apps (id, body) VALUES (?, ?)"
                         " ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                         (app.id, body))  # fmt: skip
            conn.execute("DELETE FROM key_prefixes WHERE app_id = ?", (app.id,))
            conn.executemany("INSERT INTO key_prefixes (prefix, app_id) VALUES (?, ?)",
                             [(key.prefix, app.id) for key in app.keys])  # fmt: skip

    def app_bindings(self, app_id: str) -> Sequence[AppBinding]:
        rows = self._all("SELECT journeys, since FROM app_bindings WHERE app = ?"
                         " ORDER BY since, seq", (app_id,))  # fmt: skip
        return [AppBinding(app=app_id, journeys=_journeys(journeys), since=from_micros(since))
                for journeys, since in rows]  # fmt: skip

    def get_app(self, app_id: str) -> App | None:
        row = self._one("SELECT body FROM apps WHERE id = ?", (app_id,))
        return None if row is None else decode(App, row[0])

    def find_app_by_key_prefix(self, prefix: str) -> App | None:
        row = self._one("SELECT apps.body FROM key_prefixes JOIN apps ON apps.id = app_id"
                        " WHERE prefix = ?", (prefix,))  # fmt: skip
        return None if row is None else decode(App, row[0])

    def list_apps(self) -> Sequence[App]:
        """Every app, by id."""
        rows = self._all("SELECT body FROM apps ORDER BY id", ())
        return [decode(App, body) for (body,) in rows]

    def put_admin(self, admin: AdminCredential) -> None:
        """Insert or replace an admin credential. Raises ConflictError when its key prefix is
        held by an app or another admin."""
        body = encode(admin)
        with self._transaction() as conn:
            conn.execute("INSERT INTO admins (id, body) VALUES (?, ?)"
                         " ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                         (admin.id, body))  # fmt: skip
            conn.execute("DELETE FROM key_prefixes WHERE admin_id = ?", (admin.id,))
            conn.execute("INSERT INTO key_prefixes (prefix, admin_id) VALUES (?, ?)",
                         (admin.key.prefix, admin.id))  # fmt: skip

    def find_admin_by_key_prefix(self, prefix: str) -> AdminCredential | None:
        row = self._one("SELECT admins.body FROM key_prefixes JOIN admins ON admins.id = admin_id"
                        " WHERE prefix = ?", (prefix,))  # fmt: skip
        return None if row is None else decode(AdminCredential, row[0])

    def count_admins(self) -> int:
        count: int = self._one("SELECT count(*) FROM admins", ())[0]
        return count


_JOURNEYS = msgspec.json.Decoder(tuple[str, ...])


def _journeys(text: str) -> tuple[str, ...]:
    return _JOURNEYS.decode(text)
