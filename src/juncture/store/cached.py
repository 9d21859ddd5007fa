"""The reads every decision makes, served from this node's caches while they are trusted.

An app by its key's prefix, the active and shadow versions' ids, a session by its id: read
through the caches of `juncture.store.cache`, which a backend's change feed keeps exact (PostgreSQL:
`postgres/changes.py`, notifications; SQLite: `sqlite/changes.py`, a change log its other
processes write). Every change to them is told by the database itself (triggers); this node
also drops what it wrote itself as soon as its write commits (its next read must see it,
not wait for the feed), and drops a session whose optimistic update failed (what it read was
stale). Every other read goes to the store as before.

`CachedReads` is a mixin: it goes first among a backend's store classes, and its methods call
the backend's through ``super()``. Until `start_read_caches` runs, it passes every call on;
it also says how the caches stand (`cache_state`) and closes the feed with the store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from juncture.records import App, CacheState, Session
from juncture.store.cache import NoFeed, OnChange, ReadCache, Source

if TYPE_CHECKING:
    from juncture.store.protocols import Store

__all__ = ["APPS", "SESSIONS", "CachedReads"]

#: Sessions kept per node at most by default (the most recently filled): about 2 KiB each.
SESSIONS = 20_000
#: App keys kept at most.
APPS = 1_000

_ACTIVE = "active"
_SHADOW = "shadow"


class CachedReads:
    """The cached reads of a store and the writes that drop them here at once."""

    _feed: Source | None = None

    def _backend(self) -> Store:
        """The backend's own methods: the classes after this mixin in the store's MRO."""
        return cast("Store", super())

    def start_read_caches(
        self, open_feed: Callable[[OnChange, Callable[[], None]], Source], *, sessions: int
    ) -> None:
        """Serve the hot reads from caches while the feed vouches for them. ``open_feed`` is
        given what to call on a change and on a reset, and may call them at once: the caches
        exist by then (untrusted until the feed is in place). ``sessions``: sessions kept at
        most (0: none)."""
        if self._feed is not None:
            return
        self._apps: ReadCache[str, App] = ReadCache("apps", NoFeed(), capacity=APPS)
        self._active: ReadCache[str, str] = ReadCache("version", NoFeed(), capacity=2)
        self._sessions: ReadCache[str, Session] = ReadCache(
            "sessions", NoFeed(), capacity=sessions
        )
        feed = open_feed(self.changed, self.reset)
        for cache in (self._apps, self._active):
            cache.follow(feed)
        if sessions > 0:
            self._sessions.follow(feed)
        self._feed = feed

    def cache_state(self) -> CacheState:
        return CacheState(state="off") if self._feed is None else self._feed.state()

    def consistent_reads(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext() if self._feed is None else self._feed.looked_once()

    def close(self) -> None:
        if self._feed is not None:
            self._feed.close()
        self._backend().close()

    # -- what the feed tells ------------------------------------------------------------------
    def changed(self, what: str, ids: list[str] | None) -> None:
        """Drop what a change names: ``what`` is ``session``, ``app`` or ``version``; ``ids``
        the sessions' ids (None: every entry of that cache)."""
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

    def reset(self) -> None:
        """Drop everything: changes may have been missed."""
        for cache in (self._sessions, self._apps, self._active):
            cache.clear()

    # -- reads ------------------------------------------------------------------------------
    def get_session(self, session_id: str) -> Session | None:
        read = self._backend().get_session
        if self._feed is None:
            return read(session_id)
        return self._sessions.get(session_id, lambda: read(session_id))

    def find_app_by_key_prefix(self, prefix: str) -> App | None:
        read = self._backend().find_app_by_key_prefix
        if self._feed is None:
            return read(prefix)
        return self._apps.get(prefix, lambda: read(prefix))

    def active_version_id(self) -> str | None:
        read = self._backend().active_version_id
        if self._feed is None:
            return read()
        return self._active.get(_ACTIVE, read)

    def shadow_version_id(self) -> str | None:
        read = self._backend().shadow_version_id
        if self._feed is None:
            return read()
        # Every decision asks, and there is mostly none: its absence is kept too (as "").
        return self._active.get(_SHADOW, lambda: read() or "") or None

    # -- writes that drop what they change here at once --------------------------------------
    def update_session(self, session: Session, *, expected_revision: int) -> Session:
        try:  # stored, or a conflict (what was read was stale): dropped either way
            return self._backend().update_session(session, expected_revision=expected_revision)
        finally:
            if self._feed is not None:
                self._sessions.invalidate((session.id,))

    def update_sessions(self, sessions: Sequence[Session]) -> list[Session]:
        try:
            return self._backend().update_sessions(sessions)
        finally:
            if self._feed is not None:
                self._sessions.invalidate([s.id for s in sessions])

    def delete_session(self, session_id: str) -> bool:
        try:
            return self._backend().delete_session(session_id)
        finally:
            if self._feed is not None:
                self._sessions.invalidate((session_id,))

    def put_app(self, app: App, *, at: datetime | None = None) -> None:
        try:
            self._backend().put_app(app, at=at)
        finally:
            if self._feed is not None:
                self._apps.clear()

    def activate(self, version_id: str, *, by: str, at: datetime) -> None:
        try:
            self._backend().activate(version_id, by=by, at=at)
        finally:
            if self._feed is not None:
                self._active.clear()

    def set_shadow(self, version_id: str | None) -> None:
        try:
            self._backend().set_shadow(version_id)
        finally:
            if self._feed is not None:
                self._active.clear()
