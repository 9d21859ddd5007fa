"""What a health check and the metrics read of the store: the active version, whether writes
work (probed at most once an interval), how many sessions are active."""

from __future__ import annotations

import time

from juncture.records import CacheState
from juncture.store.protocols import Store, StoreError


class Health:
    """The store's health, as `/healthz` and `/metrics` report it."""

    def __init__(self, store: Store, *, interval: float = 5.0) -> None:
        self._store = store
        self.interval = interval
        self._at: float | None = None
        self._refused: str | None = None

    def active_version(self) -> str | None:
        """The active version's id (None before the first publish). Raises StoreError."""
        return self._store.active_version_id()

    def writes_refused(self) -> str | None:
        """Why the last write probe failed (None: writes work); the store is tried at most
        once every ``interval`` seconds."""
        now = time.monotonic()
        if self._at is None or now - self._at >= self.interval:
            self._at = now
            try:
                self._store.check_writable()
                self._refused = None
            except StoreError as error:
                self._refused = str(error)
        return self._refused

    def active_sessions(self) -> int:
        """Sessions active now. Raises StoreError."""
        return self._store.count_active_sessions()

    def caches(self) -> CacheState:
        """Whether this node serves the hot reads from its caches (live), or reads the store
        for each (bypassed: it cannot tell that every change reached it) or keeps none."""
        return self._store.cache_state()
