"""Housekeeping: logins nobody finished are forgotten once they cannot go on.

Anyone may start a login: the hosted page's "Other ways to log in" takes any user name and
starts a `pending` session with its `login` challenge before anything is proved, and an
app's key starts as many as its caller asks. A pending session moves on only through its
login's challenge; once every challenge of it has expired, it never will. Without this,
those sessions and spent challenges stay in the store forever: a script that starts logins
grows the database without bound.

`Housekeeping.tidy` deletes, through `Store.purge_abandoned`, pending sessions started more
than `KEEP` ago none of whose challenges expires later than that, and challenges that
expired more than `KEEP` ago (used or not), in batches so that no write holds the store for
long. `KEEP` leaves a day to look at them. The decision log keeps its own records of those
logins (under its retention). Sessions that were active are never deleted here: ended and
revoked ones are kept (what happened to them stays readable). Every node runs it; deleting
what another node deleted already deletes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec

from juncture.store.protocols import Store, StoreError

log = logging.getLogger("juncture.housekeeping")

#: How long an abandoned login and an expired challenge are kept before they are deleted.
KEEP = timedelta(days=1)
#: Rows deleted in one transaction (of each kind), and the batches of one run at most.
BATCH = 1000
BATCHES = 100


class Tidied(msgspec.Struct, frozen=True, kw_only=True):
    """What one run deleted."""

    sessions: int = 0
    challenges: int = 0
    more: bool = False  # stopped at BATCHES: the next run goes on


class Housekeeping:
    """Deletes abandoned logins and old challenges, now (`tidy`) or every ``interval``
    seconds in a daemon thread (`start`)."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        *,
        keep: timedelta = KEEP,
        interval: float = 60.0,
        batch: int = BATCH,
    ) -> None:
        self.store = store
        self.now = now
        self.keep = keep
        self.interval = interval
        self.batch = batch
        self.last: Tidied | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._paused: Callable[[], bool] = lambda: False

    def tidy(self) -> Tidied:
        """One run: batches until none is full, or `BATCHES` of them.

        Raises StoreError when the store fails (what earlier batches deleted stays deleted).
        """
        before = self.now() - self.keep
        sessions = challenges = 0
        for _ in range(BATCHES):
            deleted = self.store.purge_abandoned(before, limit=self.batch)
            sessions, challenges = sessions + deleted[0], challenges + deleted[1]
            if max(deleted) < self.batch:
                self.last = Tidied(sessions=sessions, challenges=challenges)
                break
        else:
            self.last = Tidied(sessions=sessions, challenges=challenges, more=True)
        if sessions or challenges:
            log.info("housekeeping: deleted %d abandoned login(s) and %d old challenge(s)",
                     sessions, challenges)  # fmt: skip
        return self.last

    def start(self, paused: Callable[[], bool] = lambda: False) -> None:
        """Run now, then every ``interval`` seconds, in a daemon thread, until `stop`; not
        while ``paused()`` (this node's clock is off: its "a day ago" cannot be trusted)."""
        if self._thread is not None:
            return
        self._paused = paused
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while True:
            try:
                if not self._paused():
                    self.tidy()
            except StoreError as error:  # the store is down: the next run tries again
                log.warning("housekeeping: the store failed: %s", error)
            if self._stop.wait(self.interval):
                return
