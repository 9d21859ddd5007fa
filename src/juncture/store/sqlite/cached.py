"""A SQLite store's caches: `juncture.store.cached.CachedReads` fed by the file's change log
(`changes.py`), exact across the processes that share the file."""

from __future__ import annotations

import sqlite3

from juncture.records import CacheState
from juncture.store.cache import NoFeed
from juncture.store.cached import SESSIONS, CachedReads
from juncture.store.protocols import StoreError
from juncture.store.sqlite.changes import ChangeLog
from juncture.store.sqlite.connection import SqliteConnections

__all__ = ["SqliteCaches"]


class SqliteCaches(CachedReads, SqliteConnections):
    """`start_caches`, the caches' state, and the change log closed with the store."""

    _log: ChangeLog | None = None

    def start_caches(self, *, sessions: int = SESSIONS) -> None:
        """Serve the hot reads from caches kept exact by the change log; without it (one-off
        commands, tests of the store itself) every read goes to the file. ``sessions``:
        sessions kept at most (0: none). Raises StoreError when the log cannot be read."""
        if self._log is not None:
            return
        self.start_read_caches(NoFeed(), sessions=sessions)  # what the log's start resets
        try:
            self._log = ChangeLog(lambda: self._connect(readonly=True), self.changed, self.reset)
        except sqlite3.Error as error:
            raise StoreError(f"cannot read the change log: {error}") from error
        self.start_read_caches(self._log, sessions=sessions)

    def _close_others(self) -> None:
        if self._log is not None:
            self._log.detach()

    def cache_state(self) -> CacheState:
        if self._log is None:
            return CacheState(state="off")
        return self._log.state()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
        super().close()
