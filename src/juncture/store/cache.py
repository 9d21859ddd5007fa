"""A node's caches of what every decision reads: read through, dropped exactly when it changes.

A decision reads three things before anything else: the app by its key's prefix, the id of the
active version, and the session. On a database server each is a round trip; kept in memory
they cost nothing, but only as long as the node hears of every change to them. So a cache here
is trusted only while its `Feed` vouches for it (`Feed.trusted`): a backend whose feed cannot
say (SQLite, or a PostgreSQL node that lost its notification connection, or whose
notifications lag) reads every time, as if there were no cache. Nothing is ever served from
a cache that is not trusted: a node that is not sure fails closed to the store itself.

Fills race with invalidations: a value read from the store just before a change commits may
arrive after the change's notification dropped the entry. Each cache counts its
invalidations (its *epoch*): a value is kept only if no invalidation happened between the
start of its read and its arrival. Absence is never cached (an unknown key prefix flooding in
costs a read each, not memory).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from contextlib import AbstractContextManager
from typing import Generic, Protocol, TypeVar

from juncture.records import CacheState

__all__ = ["Feed", "NoFeed", "OnChange", "ReadCache", "Source"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


#: What a feed calls when something changed: a table's short name (``session``, ``app``,
#: ``version``) and the ids it names (None: any).
OnChange = Callable[[str, list[str] | None], None]


class Feed(Protocol):
    """What tells a node that its caches still hold: every change committed before now
    (within the feed's bound) has reached them."""

    def trusted(self) -> bool: ...


class Source(Feed, Protocol):
    """A backend's feed: it also says how it stands (`/healthz`) and closes with the store."""

    def looked_once(self) -> AbstractContextManager[None]:
        """Within this block (this task or thread), the feed is looked at once, by the first
        `trusted` call, whose answer the block's later calls get (where a look costs more
        than a memory read: SQLite)."""
        ...

    def state(self) -> CacheState: ...

    def close(self) -> None: ...


class NoFeed:
    """A feed that never vouches: every read goes to the store."""

    def trusted(self) -> bool:
        return False


class ReadCache(Generic[K, V]):
    """One cache (by key), at most ``capacity`` entries; the oldest filled goes first."""

    def __init__(self, name: str, feed: Feed, *, capacity: int) -> None:
        self.name = name
        self._feed = feed
        self._capacity = max(1, capacity)
        self._entries: dict[K, V] = {}
        self._epoch = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def follow(self, feed: Feed) -> None:
        """Be trusted as ``feed`` says from now on (what was kept before is dropped)."""
        self.clear()
        self._feed = feed

    def get(self, key: K, load: Callable[[], V | None]) -> V | None:
        """The cached value of ``key`` if the feed vouches for it, else ``load()`` (kept when
        it is not None, the feed still vouches, and nothing was invalidated meanwhile)."""
        if not self._feed.trusted():
            return load()
        value = self._entries.get(key)
        if value is not None:
            self.hits += 1
            return value
        self.misses += 1
        epoch = self._epoch
        value = load()
        # The feed is asked before the lock is taken: catching up, it may invalidate this very
        # cache (which takes the lock); whatever it invalidates moves the epoch on.
        if value is not None and self._feed.trusted():
            with self._lock:
                if epoch == self._epoch:
                    if len(self._entries) >= self._capacity:
                        del self._entries[next(iter(self._entries))]
                    self._entries[key] = value
        return value

    def invalidate(self, keys: Iterable[K]) -> None:
        """Drop these keys (a change to them committed)."""
        with self._lock:
            self._epoch += 1
            for key in keys:
                self._entries.pop(key, None)

    def clear(self) -> None:
        """Drop everything (a change to unknown keys, or changes that may have been missed)."""
        with self._lock:
            self._epoch += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
