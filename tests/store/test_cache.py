"""The read caches' rules (store/cache.py): served only while the feed vouches, a fill that
raced an invalidation is not kept, absence is never kept, the size is bounded."""

from __future__ import annotations

import threading

from juncture.store.cache import NoFeed, ReadCache


class Feed:
    def __init__(self, trusted: bool = True) -> None:
        self.vouches = trusted

    def trusted(self) -> bool:
        return self.vouches



def test_a_trusted_cache_reads_once_then_serves_from_memory() -> None:
    reads: list[str] = []
    cache: ReadCache[str, str] = ReadCache("t", Feed(), capacity=10)

    def load() -> str:
        reads.append("a")
        return "A"

    assert [cache.get("a", load) for _ in range(3)] == ["A", "A", "A"]
    assert reads == ["a"]
    assert (cache.hits, cache.misses) == (2, 1)


def test_an_untrusted_cache_reads_every_time_and_keeps_nothing() -> None:
    feed = Feed(trusted=False)
    cache: ReadCache[str, int] = ReadCache("t", feed, capacity=10)
    reads = iter(range(100))
    assert [cache.get("a", lambda: next(reads)) for _ in range(3)] == [0, 1, 2]
    assert len(cache) == 0
    feed.vouches = True
    assert cache.get("a", lambda: next(reads)) == 3
    feed.vouches = False  # what it holds is not served while the feed cannot vouch
    assert cache.get("a", lambda: next(reads)) == 4
    never: ReadCache[str, int] = ReadCache("t", NoFeed(), capacity=10)
    assert [never.get("a", lambda: next(reads)) for _ in range(2)] == [5, 6]


def test_invalidate_and_clear_drop_entries() -> None:
    cache: ReadCache[str, str] = ReadCache("t", Feed(), capacity=10)
    version = {"a": "1", "b": "1"}
    for key in "ab":
        cache.get(key, lambda key=key: version[key])
    version.update(a="2", b="2")
    cache.invalidate(["a"])
    assert cache.get("a", lambda: version["a"]) == "2"
    assert cache.get("b", lambda: version["b"]) == "1"
    cache.clear()
    assert cache.get("b", lambda: version["b"]) == "2"


def test_a_fill_that_raced_an_invalidation_is_not_kept() -> None:
    cache: ReadCache[str, str] = ReadCache("t", Feed(), capacity=10)
    stored = {"a": "old"}

    def load_while_it_changes() -> str:
        value = stored["a"]  # read before the change commits ...
        stored["a"] = "new"
        cache.invalidate(["a"])  # ... whose notification arrives before the read returns
        return value

    assert cache.get("a", load_while_it_changes) == "old"  # this request saw the old value
    assert cache.get("a", lambda: stored["a"]) == "new"  # but it was not kept


def test_a_fill_when_trust_was_lost_during_the_read_is_not_kept() -> None:
    feed = Feed()
    cache: ReadCache[str, str] = ReadCache("t", feed, capacity=10)

    def load() -> str:
        feed.vouches = False
        return "x"

    cache.get("a", load)
    feed.vouches = True
    assert len(cache) == 0


def test_absence_is_never_kept_and_the_size_is_bounded() -> None:
    cache: ReadCache[str, str] = ReadCache("t", Feed(), capacity=3)
    assert cache.get("missing", lambda: None) is None
    assert len(cache) == 0
    for n in range(5):
        cache.get(str(n), lambda n=n: f"v{n}")
    assert len(cache) == 3
    reads: list[int] = []
    cache.get("0", lambda: reads.append(0) or "again")  # the oldest went first
    assert reads == [0]


def test_a_feed_that_catches_up_while_a_fill_is_kept_invalidates_without_deadlock() -> None:
    """SQLite's feed reads the change log when asked, and drops what it names right then."""
    cache: ReadCache[str, str] = ReadCache("t", Feed(), capacity=10)
    stored = {"a": "old"}

    class CatchingUp:
        def trusted(self) -> bool:
            cache.invalidate(["a"])  # a change another process committed meanwhile
            return True

    cache.follow(CatchingUp())
    done = threading.Event()

    def fill() -> None:
        cache.get("a", lambda: stored["a"])
        done.set()

    threading.Thread(target=fill, daemon=True).start()
    assert done.wait(5), "deadlocked"
    assert len(cache) == 0  # the invalidation came after the read began: not kept
