"""A PostgreSQL node's caches: `juncture.store.cached.CachedReads` fed by the database's
notifications (`changes.py`)."""

from __future__ import annotations

from typing import Any

from juncture.records import CacheState
from juncture.store.cached import SESSIONS, CachedReads
from juncture.store.postgres.changes import ChangeListener
from juncture.store.postgres.connection import PostgresConnections

__all__ = ["PostgresCaches"]


class PostgresCaches(CachedReads, PostgresConnections):
    """`start_caches`, the caches' state, and the listener closed with the store."""

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
        self._listener = ChangeListener(self.url, self.changed, self.reset,
                                        connect=connect or self.connect_options())  # fmt: skip
        self.start_read_caches(self._listener, sessions=sessions)
        self._listener.wait_trusted(wait)

    def cache_state(self) -> CacheState:
        if self._listener is None:
            return CacheState(state="off")
        return self._listener.state()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        super().close()
