"""The reads every decision makes, served from this node's caches while they are trusted.

An app by its key's prefix, the active version's id, a session by its id: read through the
caches of `juncture.store.cache`, fed by the `ChangeListener` (`changes.py`). Every change to
them, on this node or another, is notified by the database's triggers at commit; this node
also drops what it wrote itself as soon as its write commits (its next read must see it, not
wait for the notification), and drops a session whose optimistic update failed (what it read
was stale). Every other read goes to the database as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from juncture.records import App, CacheState, Session
from juncture.store.cache import NoFeed, ReadCache
from juncture.store.postgres.apps import PostgresApps
from juncture.store.postgres.changes import ChangeListener
from juncture.store.postgres.sessions import PostgresSessions
from juncture.store.postgres.versions import PostgresPolicyVersions

__all__ = ["SESSIONS", "CachedReads"]

#: Sessions kept per node at most by default (the most recently filled): about 2 KiB each.
SESSIONS = 20_000
#: App keys kept at most.
APPS = 1_000

_ACTIVE = "active"


class CachedReads(PostgresSessions, PostgresApps, PostgresPolicyVersions):
    """The cached reads of `PostgresStore` and the writes that drop them here."""

    _listener: ChangeListener | None = None

    def start_caches(self, *, sessions: int = SESSIONS, connect: dict[str, Any] | None = None,
                     wait: float = 5.0) -> None:  # fmt: skip
        """Listen for changes and serve the hot reads from caches while every change is
        heard. Without it (one-off commands, tests of the store itself) every read goes to the
        database. ``sessions``: sessions kept at most (0: none). ``wait``: seconds to wait for
        the caches to be trusted first (they are bypassed until then; a database that does not
        answer shows at the first read)."""
        if self._listener is not None:
            return
        self._listener = ChangeListener(self.url, self._changed, self._reset,
                                        connect=connect or self.connect_options())  # fmt: skip
        feed = self._listener
        self._apps: ReadCache[str, App] = ReadCache("apps", feed, capacity=APPS)
        self._active: ReadCache[str, str] = ReadCache("version", feed, capacity=1)
        self._sessions: ReadCache[str, Session] = ReadCache(
            "sessions", feed if sessions > 0 else NoFeed(), capacity=sessions
        )
        feed.wait_trusted(wait)

    def cache_state(self) -> CacheState:
        if self._listener is None:
            return CacheState(state="off")
        return self._listener.state()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        super().close()

    # -- the caches' feed -------------------------------------------------------------------
    def _changed(self, what: str, ids: list[str] | None) -> None:
        caches: dict[str, ReadCache[str, Any]] = {
            "session": self._sessions, "app": self._apps, "version": self._active,
        }  # fmt: skip
        cache = caches.get(what)
        if cache is None:
            return
        if ids is None:
            cache.clear()
        else:
            cache.invalidate(ids)

    def _reset(self) -> None:
        for cache in (self._sessions, self._apps, self._active):
            cache.clear()

    # -- reads ------------------------------------------------------------------------------
    def get_session(self, session_id: str) -> Session | None:
        if self._listener is None:
            return super().get_session(session_id)
        read = super().get_session
        return self._sessions.get(session_id, lambda: read(session_id))

    def find_app_by_key_prefix(self, prefix: str) -> App | None:
        if self._listener is None:
            return super().find_app_by_key_prefix(prefix)
        read = super().find_app_by_key_prefix
        return self._apps.get(prefix, lambda: read(prefix))

    def active_version_id(self) -> str | None:
        if self._listener is None:
            return super().active_version_id()
        return self._active.get(_ACTIVE, super().active_version_id)

    # -- writes that drop what they change here at once --------------------------------------
    def update_session(self, session: Session, *, expected_revision: int) -> Session:
        try:  # stored, or a conflict (what was read was stale): dropped either way
            return super().update_session(session, expected_revision=expected_revision)
        finally:
            if self._listener is not None:
                self._sessions.invalidate((session.id,))

    def update_sessions(self, sessions: Sequence[Session]) -> list[Session]:
        try:
            return super().update_sessions(sessions)
        finally:
            if self._listener is not None:
                self._sessions.invalidate([s.id for s in sessions])

    def delete_session(self, session_id: str) -> bool:
        try:
            return super().delete_session(session_id)
        finally:
            if self._listener is not None:
                self._sessions.invalidate((session_id,))

    def put_app(self, app: App) -> None:
        try:
            super().put_app(app)
        finally:
            if self._listener is not None:
                self._apps.clear()

    def activate(self, version_id: str, *, by: str, at: datetime) -> None:
        try:
            super().activate(version_id, by=by, at=at)
        finally:
            if self._listener is not None:
                self._active.clear()
