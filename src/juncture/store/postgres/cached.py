"""A PostgreSQL node's caches: `juncture.store.cached.CachedReads` fed by the database's
notifications (`changes.py`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from juncture.store.cache import OnChange
from juncture.store.cached import SESSIONS, CachedReads
from juncture.store.postgres.changes import ChangeListener
from juncture.store.postgres.connection import PostgresConnections

__all__ = ["PostgresCaches"]


class PostgresCaches(CachedReads, PostgresConnections):
    """`start_caches`: the caches, fed by a listener of this node's own."""

    def start_caches(self, *, sessions: int = SESSIONS, connect: dict[str, Any] | None = None,
                     wait: float = 5.0) -> None:  # fmt: skip
        """Listen for changes and serve the hot reads from caches while every change is
        heard. Without it (one-off commands, tests of the store itself) every read goes to the
        database. ``sessions``: sessions kept at most (0: none). ``wait``: seconds to wait for
        the caches to be trusted first (they are bypassed until then; a database that does not
        answer shows at the first read)."""
        options = connect or self.connect_options()

        def listen(changed: OnChange, reset: Callable[[], None]) -> ChangeListener:
            listener = ChangeListener(self.url, changed, reset, connect=options)
            listener.wait_trusted(wait)
            return listener

        self.start_read_caches(listen, sessions=sessions)
