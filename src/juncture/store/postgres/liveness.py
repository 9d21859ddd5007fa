"""Whether the database still answers this node, and how long a call may wait on it.

A network that drops packets silently gives no error: a query sent on a pooled connection
just gets no answer. The database's own time limits cannot help (the statement never reached
it), and TCP's (keepalives, ``tcp_user_timeout``) fire only when nothing acknowledges the
node's packets; behind a load balancer or a connection pooler something always does. So each
node keeps its own pulse of the database: every answer it gets counts as heard, a heartbeat
asks ``SELECT 1`` on a connection of its own every `HEARTBEAT` seconds, and once the database
has been unheard for `SILENCE` seconds every call waiting on it is cut (its connection
closed: StoreError, 503 ``unavailable.store``) and new calls fail at once, until the
heartbeat hears it again.

A slow statement is not silence: the heartbeat keeps being answered while it runs, so only
the database's ``statement_timeout`` ends it. Only a database that answers nothing, not even
``SELECT 1``, for `SILENCE` seconds is treated as gone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from time import monotonic
from typing import Any

import psycopg
from psycopg import errors
from psycopg.abc import RV, PQGen

__all__ = ["HEARTBEAT", "SILENCE", "BoundedConnection", "Heartbeat", "Pulse"]

log = logging.getLogger(__name__)

#: Seconds the database may go unheard before a node treats it as unreachable.
SILENCE = 3.0
#: Seconds between two heartbeats.
HEARTBEAT = 1.0
#: Seconds between two looks at the pulse while a call waits.
_SLICE = 0.25
#: The interval psycopg's own waits wake up at (to see a Ctrl-C).
_WAIT_INTERVAL = 0.1


class Pulse:
    """When the database last answered this node (any call, or the heartbeat).

    ``deadline``: seconds any one wait may last even while the database is heard (a backstop,
    longer than the database's ``statement_timeout``).
    """

    def __init__(self, *, deadline: float, silence: float = SILENCE) -> None:
        self.deadline = deadline
        self.silence = silence
        self._heard = monotonic()

    def heard(self) -> None:
        self._heard = monotonic()

    def unheard_for(self) -> float:
        """Seconds since the database last answered."""
        return monotonic() - self._heard

    def silent(self) -> bool:
        """Whether the database has been unheard for `silence` seconds or more."""
        return self.unheard_for() >= self.silence

    def gave_up(self, began: float) -> bool:
        """Whether a wait that began at ``began`` (monotonic) must be cut now: nothing heard
        for `silence` seconds since it began or since the last answer, whichever is later
        (a wait begun while the database was silent gets its own `silence`), or past the
        `deadline`."""
        now = monotonic()
        return now - max(self._heard, began) >= self.silence or now - began >= self.deadline


class BoundedConnection(psycopg.Connection[tuple[Any, ...]]):
    """A connection whose every wait on the server ends when its `pulse` says the database
    is gone: the connection is closed (the pool then drops it) and the driver's
    OperationalError raised, as for any connection lost (StoreError to the caller)."""

    pulse: Pulse | None = None

    def wait(
        self, gen: PQGen[RV], interval: float = _WAIT_INTERVAL, timeout: float | None = None
    ) -> RV:
        pulse = self.pulse
        if pulse is None or timeout is not None:
            return super().wait(gen, interval, timeout)
        began = monotonic()
        resumable = _resumable(gen)
        while True:
            try:
                result = super().wait(resumable, interval, _SLICE)
            except errors._WaitTimeout:
                if not pulse.gave_up(began):
                    continue
                self.pgconn.finish()  # what it was doing is lost; the pool drops it
                unheard = pulse.unheard_for()
                message = f"no answer from the database for {unheard:.1f} s"
                raise psycopg.OperationalError(message) from None
            pulse.heard()
            return result


def _resumable(gen: PQGen[RV]) -> PQGen[RV]:
    """``gen``, to be waited on again after a wait timed out: a wait starts with ``next()``,
    which must not push ``gen`` on as if its socket were ready."""
    try:
        state = next(gen)
        while True:
            ready = yield state
            if ready:
                state = gen.send(ready)
    except StopIteration as stop:
        result: RV = stop.value
        return result


class Heartbeat:
    """A thread asking ``SELECT 1`` every `HEARTBEAT` seconds on a connection of its own, so
    that `Pulse` hears the database when no call does (and hears it again after a partition:
    calls fail at once while it is silent). ``connect`` opens a `BoundedConnection` whose
    `pulse` is set."""

    def __init__(self, connect: Callable[[], BoundedConnection], pulse: Pulse) -> None:
        self._connect = connect
        self._pulse = pulse
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="juncture-pg-pulse", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn: BoundedConnection | None = None
        try:
            while not self._stop.wait(HEARTBEAT):
                try:
                    if conn is None or conn.closed:
                        conn = self._connect()
                    conn.execute("SELECT 1")
                    self._pulse.heard()
                except psycopg.Error as error:
                    log.info("postgres: heartbeat: %s", error)
                    if conn is not None:
                        conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        """Stop (the thread ends within a heartbeat or a cut wait, on its own)."""
        self._stop.set()
