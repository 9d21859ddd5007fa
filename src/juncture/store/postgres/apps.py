"""Applications and admin credentials, found by their key prefix."""

from __future__ import annotations

from collections.abc import Sequence

from juncture.records import AdminCredential, App
from juncture.store.postgres.connection import PostgresConnections
from juncture.store.postgres.rows import decode, encode


class PostgresApps(PostgresConnections):
    """`AppStore` over the ``apps`` and ``admins`` tables."""

    def put_app(self, app: App) -> None:
        """Insert or replace an app and its keys.

        Raises ConflictError (and changes nothing) when a key prefix is held by another app
        or an admin, or appears twice in ``app.keys``.
        """
        body = encode(app)
        with self._transaction() as conn:
            conn.execute("INSERT INTO apps (id, body) VALUES (%s, %s)"
                         " ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                         (app.id, body))  # fmt: skip
            conn.execute("DELETE FROM key_prefixes WHERE app_id = %s", (app.id,))
            conn.cursor().executemany("INSERT INTO key_prefixes (prefix, app_id) VALUES (%s, %s)",
                             [(key.prefix, app.id) for key in app.keys])  # fmt: skip

    def get_app(self, app_id: str) -> App | None:
        row = self._one("SELECT body FROM apps WHERE id = %s", (app_id,))
        return None if row is None else decode(App, row[0])

    def find_app_by_key_prefix(self, prefix: str) -> App | None:
        row = self._one("SELECT apps.body FROM key_prefixes JOIN apps ON apps.id = app_id"
                        " WHERE prefix = %s", (prefix,))  # fmt: skip
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
            conn.execute("INSERT INTO admins (id, body) VALUES (%s, %s)"
                         " ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                         (admin.id, body))  # fmt: skip
            conn.execute("DELETE FROM key_prefixes WHERE admin_id = %s", (admin.id,))
            conn.execute("INSERT INTO key_prefixes (prefix, admin_id) VALUES (%s, %s)",
                         (admin.key.prefix, admin.id))  # fmt: skip

    def find_admin_by_key_prefix(self, prefix: str) -> AdminCredential | None:
        row = self._one("SELECT admins.body FROM key_prefixes JOIN admins ON admins.id = admin_id"
                        " WHERE prefix = %s", (prefix,))  # fmt: skip
        return None if row is None else decode(AdminCredential, row[0])

    def count_admins(self) -> int:
        count: int = self._one("SELECT count(*) FROM admins", ())[0]
        return count
