"""A node's clock against the store's: a node whose clock is off refuses to decide.

Proofs are stamped, and `within` windows measured, by the clock of the node that handles
the request. A node whose clock runs behind would take an old proof for a fresh one (a
`within: 10m` window is ten minutes plus the skew wide); one that runs ahead would stamp
proofs in the future. So each node writes a heartbeat every `ClockSettings.interval` seconds
(`ClockStore.beat`: its clock and the store's, read in the same write) and compares: when
its clock is off the store's by more than `ClockSettings.max_skew` (less the uncertainty of
the measure, the time the write took), it refuses the decision and session API (503
``unavailable.clock_skew``) until a later heartbeat finds it back within the bound, and says
so in ``/healthz`` and the log.

The store's clock is the reference (SQLite: the host's clock read by SQLite; PostgreSQL: the
server's). The other nodes' latest heartbeats are reported beside it, with their offsets.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from juncture.records import Heartbeat
from juncture.store.protocols import ClockStore, StoreError

log = logging.getLogger("juncture.clock")

#: Testing aid only: seconds added to this node's clock (`juncture serve` reads it), so the
#: tests can run a node with a wrong clock. Never set it in production.
TEST_OFFSET_ENV = "JUNCTURE_TEST_CLOCK_OFFSET_SECONDS"


class ClockSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`juncture serve --max-clock-skew` and the heartbeat's period."""

    #: The most this node's clock may be off the store's, in seconds.
    max_skew: float = 2.0
    #: Seconds between heartbeats (and checks).
    interval: float = 2.0


class PeerClock(msgspec.Struct, frozen=True, kw_only=True):
    node: str
    offset_seconds: float


class ClockState(msgspec.Struct, frozen=True, kw_only=True):
    """What the last check found (``/healthz`` shows it as ``clock``)."""

    #: ``ok``: within the bound; ``skewed``: off by more, decisions refused; ``unknown``: no
    #: check has succeeded yet (the store is down: its errors refuse decisions already).
    status: Literal["ok", "skewed", "unknown"] = "unknown"
    node: str = ""
    #: This node's clock minus the store's, and how precise that is (seconds).
    offset_seconds: float | None = None
    uncertainty_seconds: float | None = None
    max_skew_seconds: float = 2.0
    checked_at: datetime | None = None
    #: The other nodes' latest heartbeats (offsets to the store's clock).
    peers: tuple[PeerClock, ...] = ()


def testing_offset() -> timedelta:
    """The testing offset of `TEST_OFFSET_ENV` (0 when unset). Raises ValueError."""
    text = os.environ.get(TEST_OFFSET_ENV)
    if not text:
        return timedelta(0)
    try:
        return timedelta(seconds=float(text))
    except ValueError:
        raise ValueError(f"`{TEST_OFFSET_ENV}` must be a number of seconds") from None


def node_id() -> str:
    """This process as a node: host name and process id."""
    return f"{os.uname().nodename}:{os.getpid()}"


class ClockWatch:
    """This node's heartbeat, its comparison with the store's clock and the verdict."""

    def __init__(
        self,
        store: ClockStore,
        now: Callable[[], datetime],
        settings: ClockSettings | None = None,
        node: str | None = None,
    ) -> None:
        self.store = store
        self.now = now
        self.settings = settings or ClockSettings()
        self.node = node or node_id()
        self.state = ClockState(node=self.node, max_skew_seconds=self.settings.max_skew)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def skewed(self) -> bool:
        """Whether decisions must be refused now."""
        return self.state.status == "skewed"

    def check(self) -> ClockState:
        """One heartbeat and the verdict it gives (kept in `state`). A failed write keeps
        the last verdict."""
        before = self.now()
        try:
            beat = self.store.beat(self.node, before)
            others = self.store.heartbeats(within=timedelta(seconds=3 * self.settings.interval + 1))
        except StoreError as error:
            log.warning("clock: heartbeat not written: %s", error)
            return self.state
        after = self.now()
        # The store read its clock between `before` and `after` of this node's clock.
        taken = (after - before).total_seconds()
        offset = (before - beat.store_at).total_seconds() + taken / 2
        uncertainty = taken / 2 + 0.001  # SQLite's clock: millisecond resolution
        limit = self.settings.max_skew
        if abs(offset) - uncertainty > limit:
            status: Literal["ok", "skewed", "unknown"] = "skewed"
        elif abs(offset) + uncertainty <= limit:
            status = "ok"
        else:  # too imprecise to say: keep the last verdict
            status = self.state.status
        self._report(status, offset)
        self.state = ClockState(
            status=status,
            node=self.node,
            offset_seconds=round(offset, 3),
            uncertainty_seconds=round(uncertainty, 3),
            max_skew_seconds=limit,
            checked_at=after,
            peers=tuple(_peer(h) for h in others if h.node != self.node),
        )
        return self.state

    def _report(self, status: str, offset: float) -> None:
        if status == "skewed" and self.state.status != "skewed":
            log.error(
                "clock: this node's clock is %+.3f s off the store's (more than %g s): "
                "decisions refused (unavailable.clock_skew) until it is set right",
                offset,
                self.settings.max_skew,
            )
        elif status == "ok" and self.state.status == "skewed":
            log.warning("clock: back within %g s of the store's (%+.3f s): deciding again",
                        self.settings.max_skew, offset)  # fmt: skip

    def start(self) -> None:
        """Check at once, then every `ClockSettings.interval` seconds in a daemon thread."""
        self.check()
        self._thread = threading.Thread(target=self._run, name="clock-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.interval):
            try:
                self.check()
            except Exception:  # never let the watch die: a dead watch keeps a stale verdict
                log.exception("clock: check failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _peer(heartbeat: Heartbeat) -> PeerClock:
    return PeerClock(node=heartbeat.node, offset_seconds=round(heartbeat.offset.total_seconds(), 3))


#: The furthest the test clock may be moved either way.
MAX_DEV_OFFSET = timedelta(days=3650)


class DevClock:
    """Development mode's test clock (``juncture serve --dev``): the time decisions are made
    at is the real clock plus an offset that ``/admin/v1/clock`` moves, so that time-bound
    rules (`within`, a grant's `ttl`, a lockout) can be tried without waiting.

    Only decision time moves: the heartbeat that compares this node's clock with the store's
    (`ClockWatch`) reads the real clock, so a moved test clock never trips
    ``unavailable.clock_skew``. The offset lives in this process (one worker only)."""

    def __init__(self, real: Callable[[], datetime]) -> None:
        self.real = real
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    @property
    def offset(self) -> timedelta:
        return self._offset

    def now(self) -> datetime:
        return self.real() + self._offset

    def set_offset(self, offset: timedelta) -> None:
        """Decision time is the real clock plus ``offset``. Raises ValueError past the bound."""
        if abs(offset) > MAX_DEV_OFFSET:
            raise ValueError("the test clock moves at most 3650 days either way")
        with self._lock:
            self._offset = offset

    def set_at(self, moment: datetime) -> None:
        """Decision time is ``moment`` now, and runs on from it. Raises ValueError."""
        self.set_offset(moment - self.real())

    def reset(self) -> None:
        with self._lock:
            self._offset = timedelta(0)
