"""Apps and administrators as callers: their keys looked up and checked, apps made and their
keys rotated. The API authenticates callers through here, never against the store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import msgspec

from juncture.errors import NotFoundError, StateConflict
from juncture.records import AdminCredential, App, AppKey
from juncture.service.ids import new_id, new_key, secret_matches
from juncture.store.protocols import ConflictError, Store


class Apps:
    """The apps and admin credentials of one store."""

    def __init__(self, store: Store, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now

    def _live(self, key: AppKey, secret: str) -> bool:
        if not secret_matches(secret, key.hash):
            return False
        return key.expires_at is None or self._now() < key.expires_at

    def app_for_key(self, prefix: str, secret: str) -> App | None:
        """The enabled app whose live key this is, or None (never saying what failed)."""
        app = self._store.find_app_by_key_prefix(prefix) if prefix.startswith("jct_app_") else None
        key = next((k for k in app.keys if k.prefix == prefix), None) if app else None
        if app is None or key is None or app.disabled or not self._live(key, secret):
            return None
        return app

    def admin_for_key(self, prefix: str, secret: str) -> AdminCredential | None:
        """The administrator whose live key this is, or None."""
        admin = (
            self._store.find_admin_by_key_prefix(prefix) if prefix.startswith("jct_adm_") else None
        )
        if admin is None or admin.key.prefix != prefix or not self._live(admin.key, secret):
            return None
        return admin

    def admin_now(self, admin_id: str, prefix: str) -> AdminCredential | None:
        """The administrator as stored now, if the key of ``prefix`` is still theirs and live
        (a console login checks it on every request: a key removed or expired ends it)."""
        admin = self._store.find_admin_by_key_prefix(prefix)
        if admin is None or admin.id != admin_id or admin.key.prefix != prefix:
            return None
        if admin.key.expires_at is not None and self._now() >= admin.key.expires_at:
            return None
        return admin

    def create(
        self, name: str, journeys: Sequence[str], assertable_methods: Sequence[str]
    ) -> tuple[App, str]:
        """A new app and its first key (the key is returned this once).

        Raises:
            StateConflict: 409 ``state.conflict``, the new id was taken meanwhile.
        """
        key, prefix, digest = new_key("app")
        now = self._now()
        app = App(
            id=new_id("app"),
            name=name,
            created_at=now,
            journeys=tuple(journeys),
            assertable_methods=tuple(assertable_methods),
            keys=(AppKey(prefix=prefix, hash=digest, created_at=now),),
        )
        try:
            self._store.put_app(app)
        except ConflictError:
            raise StateConflict("try again") from None
        return app, key

    def list(self) -> Sequence[App]:
        return self._store.list_apps()

    def rotate_key(self, app_id: str, overlap: timedelta) -> tuple[App, str]:
        """A new key for the app; its live keys work on for ``overlap``, then end.

        Raises:
            NotFoundError: 404 ``app.not_found``.
        """
        app = self._store.get_app(app_id)
        if app is None:
            raise NotFoundError("no such app", code="app.not_found")
        now = self._now()
        until = now + overlap
        old = tuple(
            msgspec.structs.replace(k, expires_at=min(k.expires_at or until, until))
            for k in app.keys
            if k.expires_at is None or k.expires_at > now
        )
        key, prefix, digest = new_key("app")
        app = msgspec.structs.replace(
            app, keys=(*old, AppKey(prefix=prefix, hash=digest, created_at=now))
        )
        self._store.put_app(app)
        return app, key
