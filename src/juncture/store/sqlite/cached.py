"""A SQLite store's caches: `juncture.store.cached.CachedReads` fed by the file's change log
(`changes.py`), exact across the processes that share the file."""

from __future__ import annotations

from collections.abc import Callable

from juncture.store.cache import OnChange
from juncture.store.cached import SESSIONS, CachedReads
from juncture.store.sqlite.changes import ChangeLog
from juncture.store.sqlite.connection import SqliteConnections

__all__ = ["SqliteCaches"]


class SqliteCaches(CachedReads, SqliteConnections):
    """`start_caches`: the caches, fed by the file's change log; the log's connection closed
    when the store reopens the file."""

    _log: ChangeLog | None = None

    def start_caches(self, *, sessions: int = SESSIONS) -> None:
        """Serve the hot reads from caches kept exact by the change log; without it (one-off
        commands, tests of the store itself) every read goes to the file. ``sessions``:
        sessions kept at most (0: none). Raises StoreError when the log cannot be read."""

        def open_log(changed: OnChange, reset: Callable[[], None]) -> ChangeLog:
            self._log = ChangeLog(lambda: self._connect(readonly=True), changed, reset)
            return self._log

        self.start_read_caches(open_log, sessions=sessions)

    def _close_others(self) -> None:
        if self._log is not None:
            self._log.detach()
