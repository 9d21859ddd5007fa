"""What changed in the database, heard by every node: LISTEN on one connection, in a thread.

Triggers (schema version 2, `schema.py`) notify `CHANGES` at the commit of every statement
that updates or deletes sessions, apps, their keys or the active version. This node's
listener hands each notification to the caches (`cached.py`), which drop what it names.

PostgreSQL delivers notifications in the order their transactions committed, on one queue for
every channel. So the listener proves it is caught up by pinging itself: it notifies a
channel of its own and waits for that notification to come back; when it does, every change
committed before the ping was sent has been handed over. The caches are trusted (`trusted`)
only while the last ping that came back was sent less than ``stale_after`` seconds ago. A
connection that breaks, a database that stops answering, a network that goes silent: the
pings stop coming back, and within ``stale_after`` the node reads everything from the
database again (where a database that is gone means deny). A new connection starts over:
LISTEN, then every cache dropped (what changed while no one listened is unknown), then
trusted again at the first ping that comes back.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import psycopg

from juncture.records import CacheState
from juncture.store.cache import OnChange
from juncture.store.postgres.schema import CHANGES

__all__ = ["APPLICATION_NAME", "PING_EVERY", "STALE_AFTER", "ChangeListener"]

log = logging.getLogger(__name__)

#: Seconds between pings (a ping waits for the one before it to come back).
PING_EVERY = 0.1
#: Seconds after which caches not proven caught up are no longer trusted: the longest a node
#: can serve a cached read that a change on another node made stale, whatever fails.
STALE_AFTER = 1.0
#: Seconds between attempts to connect again.
RETRY_EVERY = 0.5
#: How the listener's connection shows in ``pg_stat_activity``.
APPLICATION_NAME = "juncture-changes"



class ChangeListener:
    """Listens for changes on its own connection until `close`; says whether the caches it
    feeds can be trusted now."""

    def __init__(
        self,
        url: str,
        on_change: OnChange,
        on_reset: Callable[[], None],
        *,
        connect: dict[str, Any] | None = None,
        ping_every: float = PING_EVERY,
        stale_after: float = STALE_AFTER,
    ) -> None:
        self._url = url
        self._on_change = on_change
        self._on_reset = on_reset
        self._connect = connect or {}
        self.ping_every = ping_every
        self.stale_after = stale_after
        self._ping_channel = f"juncture_ping_{secrets.token_hex(8)}"
        #: monotonic time the last ping that came back was sent (None: not caught up).
        self._vouched: float | None = None
        self._state = "starting"
        self._reason = "not connected yet"
        self._since = datetime.now(UTC)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="juncture-changes", daemon=True)
        self._thread.start()

    # -- what the caches ask ------------------------------------------------------------
    def trusted(self) -> bool:
        vouched = self._vouched
        return vouched is not None and time.monotonic() - vouched < self.stale_after

    def looked_once(self) -> AbstractContextManager[None]:
        """Nothing to save: a look is a clock read (the pings' listener thread does the rest)."""
        return contextlib.nullcontext()

    def wait_trusted(self, timeout: float) -> bool:
        """Wait until the caches are trusted (at start); False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.trusted():
            if time.monotonic() >= deadline or self._stop.is_set():
                return False
            time.sleep(0.01)
        return True

    def state(self) -> CacheState:
        """What `/healthz` says of the caches."""
        if self.trusted():
            return CacheState(state="live", since=self._since)
        vouched = self._vouched
        if self._state == "listening" and vouched is not None:
            lag = time.monotonic() - vouched
            why = f"notifications lag ({lag:.1f} s): reading the database"
            return CacheState(state="bypassed", since=self._since, reason=why)
        return CacheState(state="bypassed", since=self._since,
                          reason=f"{self._reason}: reading the database")  # fmt: skip

    def close(self) -> None:
        """Stop listening (within ``ping_every``; a thread stuck on a silent network is left
        to end with its connection)."""
        self._stop.set()
        self._vouched = None
        self._thread.join(timeout=3.0)

    # -- the thread -----------------------------------------------------------------------
    def _set(self, state: str, reason: str) -> None:
        if state != self._state:
            self._since = datetime.now(UTC)
            log.log(logging.WARNING if state == "lost" else logging.INFO,
                    "postgres change feed: %s (%s)", state, reason)  # fmt: skip
        self._state, self._reason = state, reason

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except psycopg.Error as error:
                self._vouched = None
                self._set("lost", f"notification connection lost ({type(error).__name__})")
            except Exception:  # a bug must not leave stale caches trusted
                self._vouched = None
                self._set("lost", "notification listener failed")
                log.exception("postgres change feed")
            self._stop.wait(RETRY_EVERY)

    def _listen(self) -> None:
        options = {"application_name": APPLICATION_NAME, **self._connect}
        with psycopg.connect(self._url, autocommit=True, **options) as conn:
            conn.execute(f"LISTEN {CHANGES}")
            conn.execute(f"LISTEN {self._ping_channel}")
            self._on_reset()  # what changed while no one listened is unknown
            self._set("listening", "listening")
            self._pings(conn)

    def _pings(self, conn: psycopg.Connection[Any]) -> None:
        sequence = 0
        outstanding: tuple[str, float] | None = None
        while not self._stop.is_set():
            if outstanding is None:
                sequence += 1
                outstanding = (str(sequence), time.monotonic())
                conn.execute("SELECT pg_notify(%s, %s)", (self._ping_channel, outstanding[0]))
            for notify in conn.notifies(timeout=self.ping_every):
                if notify.channel == self._ping_channel:
                    if outstanding is not None and notify.payload == outstanding[0]:
                        self._vouched = outstanding[1]
                        outstanding = None
                    continue
                what, _, ids = notify.payload.partition(" ")
                self._on_change(what, None if ids in ("*", "") else ids.split(","))
