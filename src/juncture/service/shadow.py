"""The shadow version: every live decision decided a second time, by a version installed beside
the active one, after the answer is sent, never changing it.

A decision made against the active version (`Decisions.decide`) hands its facts here when a
shadow version is installed (the store says which: every node reads it, as it reads the active
one, through its caches). A thread of this node's decides them with the shadow version (risk,
guard and checkpoint: what the active version evaluated, with the same facts, time and app
routes) and compares outcomes and reasons. A decision whose checkpoint is the same in both
versions (the same journey, checkpoint and fingerprint: `policies.decides_alike`) is counted
as equal without being decided again: whatever the facts, it decides the same. What differs
is recorded in the store (both outcomes, reasons, journeys, checkpoints and explanations) for
`juncture shadow diff`; every transition, equal ones too, is counted on this node for
``/metrics``.

The shadow never writes a session, emits an event, creates or spends a challenge: it evaluates
and records, nothing else. Its failures stay here: a version that cannot be compiled or a
decision that cannot be evaluated is counted and recorded as an ``error`` transition; a queue
that is full drops the work and counts it (``dropped``); the store failing loses the batch's
records and counts them (``unrecorded``). None of it reaches the answer.

Differences are recorded at `RECORD_RATE` a second at most on a node (a token bucket holding a
second's worth; ``record_rate=0``: no limit); past it they are counted, by transition as every
other, and as ``over_rate``, not recorded. A shadow that differs on every decision would
otherwise write a second decision log: its records cost the node more than the deciding
(`bench/RESULTS.md`, section http-shadow). A replay lists every difference.

Where the decisions run on an event loop (`juncture serve`: `attach`), the shadow decides
there too, a batch every `INTERVAL` between requests, and only its records are written on a
thread. A thread of its own deciding beside the loop cost the loop more than the shadow's own
evaluation: every socket call of the loop's releases the GIL, and a waiting thread takes it
(`bench/RESULTS.md`, section http-shadow). Elsewhere (the CLI, tests) it has a thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import msgspec

from juncture.engine import Decision, Facts, evaluate
from juncture.policy import Plan
from juncture.records import ShadowRecord
from juncture.service.policies import PolicyRegistry, decides_alike
from juncture.store.protocols import Store, StoreError

__all__ = ["INTERVAL", "QUEUE", "RECORD_RATE", "ShadowJob", "ShadowRunner", "ShadowStats"]

log = logging.getLogger("juncture.shadow")

#: Decisions waiting for the shadow at most; more are dropped (and counted).
QUEUE = 10_000
#: Decisions the thread takes at once (their differences are recorded in one transaction).
_BATCH = 256
#: Seconds between the thread's looks at the queue, at most.
INTERVAL = 0.05
#: Differences recorded a second on a node at most (`juncture serve --shadow-record-rate`).
RECORD_RATE = 200.0


class ShadowJob(msgspec.Struct, frozen=True, kw_only=True):
    """What the shadow needs of one live decision: the evaluation's inputs and its answer."""

    shadow_version: str
    decision: Decision
    facts: Facts
    at: datetime
    app: str | None
    subject_type: str | None
    subject_id: str | None
    session_id: str | None
    allowed_journeys: frozenset[str] | None
    guard_only: bool


class ShadowStats(msgspec.Struct, kw_only=True):
    """This node's shadow work since it started."""

    #: Decisions the shadow decided, by transition (``allow->deny``; ``allow->allow`` too).
    transitions: dict[str, int] = {}
    #: Decisions the shadow could not decide.
    errors: int = 0
    #: Decisions not shadowed: the queue was full.
    dropped: int = 0
    #: Differences decided but not recorded: the store failed.
    unrecorded: int = 0
    #: Differences decided and counted but not recorded: past the record rate.
    over_rate: int = 0
    #: Decisions counted as equal without evaluating them again: the checkpoint deciding
    #: them is the same in both versions (its fingerprint), so is their answer.
    unchanged: int = 0
    #: Decisions queued or being decided (when read).
    waiting: int = 0


def _side(decision: Decision) -> dict[str, Any]:
    return {
        "outcome": decision.outcome,
        "reason": decision.reason,
        "journey": decision.journey,
        "checkpoint": decision.checkpoint,
        "explanation": decision.explanation,  # structs: encoded as they are recorded
    }


class ShadowRunner:
    """Decides live decisions again with the shadow version, in a thread of its own."""

    def __init__(
        self,
        store: Store,
        policies: PolicyRegistry,
        *,
        queue: int = QUEUE,
        record_rate: float = RECORD_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if record_rate < 0:
            raise ValueError("the shadow's record rate is a number of records a second, >= 0")
        self._store = store
        self._policies = policies
        self._capacity = queue
        self._rate = record_rate
        self._clock = clock
        self._burst = max(record_rate, 1.0)  # a second's worth, one at least
        self._tokens = self._burst
        self._filled = clock()
        self._jobs: deque[ShadowJob] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = 0
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._scheduled = False
        self._writer: ThreadPoolExecutor | None = None  # one: writes in turn, never at once
        self.stats = ShadowStats(transitions={})
        #: (active, shadow, app, subject type, action) -> whether both versions decide alike.
        self._alike: dict[tuple[str, str, str | None, str, str], bool] = {}

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Decide on ``loop`` (the server's, called on it) from now on, not on a thread."""
        with self._wake:
            self._loop, self._loop_thread = loop, threading.get_ident()
            queued = bool(self._jobs)
        if queued:
            self._schedule()

    def _schedule(self) -> None:
        """A drain on the loop `INTERVAL` from now, unless one is due already."""
        loop = self._loop
        if loop is None or self._scheduled:
            return
        self._scheduled = True
        try:
            if threading.get_ident() == self._loop_thread:
                loop.call_later(INTERVAL, self._drain)
            else:  # a decision moved to a thread (a durable log, a store call that waits)
                loop.call_soon_threadsafe(loop.call_later, INTERVAL, self._drain)
        except RuntimeError:  # the loop is closed: `close` decides what is left
            self._scheduled = False

    def _drain(self) -> None:
        """On the loop: decide what has queued (a batch at most; the rest at the next turn);
        their differences are recorded on a thread."""
        with self._wake:
            self._scheduled = False
            batch = [self._jobs.popleft() for _ in range(min(len(self._jobs), _BATCH))]
            self._busy += len(batch)
        try:
            records = self._decide_all(batch)
        except Exception:  # never let it reach the loop; the answers went out already
            log.exception("shadow decisions failed")
            records = []
        if records:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="juncture-shadow-record")
            self._writer.submit(self._record_done, records, len(batch))
        else:
            self._done(len(batch))
        if self._jobs:
            self._schedule()

    def _record_done(self, records: list[ShadowRecord], decided: int) -> None:
        try:
            self._record(records)
        finally:
            self._done(decided)

    def _done(self, decided: int) -> None:
        with self._wake:
            self._busy -= decided
            self._wake.notify_all()

    def installed(self, active_version: str) -> str | None:
        """The shadow version to decide with beside ``active_version`` (None: none; a store
        that cannot say is none: the shadow never stands in a decision's way)."""
        try:
            found = self._store.shadow_version_id()
        except StoreError:
            return None
        return found if found is not None and found != active_version else None

    def offer(self, job: ShadowJob) -> None:
        """Queue a decision for the shadow (returns at once; a full queue drops it).

        The deciding thread is not woken for each: it takes what has queued every
        `INTERVAL`, or at once when a batch is full (a wake-up per decision cost the event
        loop more than the shadow's own evaluation, `bench/RESULTS.md`)."""
        if self._closed:
            return
        if len(self._jobs) >= self._capacity:
            self.stats.dropped += 1
            return
        self._jobs.append(job)  # deque appends are atomic: no lock on the decision's path
        if self._loop is not None:
            if not self._scheduled:
                self._schedule()
            return
        if self._thread is None or len(self._jobs) == _BATCH:
            with self._wake:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="juncture-shadow", daemon=True
                    )
                    self._thread.start()
                self._wake.notify()

    def waiting(self) -> int:
        """Decisions queued or being decided now."""
        with self._wake:
            return len(self._jobs) + self._busy

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued decision is decided and recorded (tests, shutdown)."""
        with self._wake:
            self._wake.notify_all()
            return self._wake.wait_for(lambda: not self._jobs and not self._busy, timeout)

    def close(self) -> None:
        """Decide what is queued, then stop the thread (on the loop: decided here, now)."""
        if self._loop is not None:
            with self._wake:
                self._loop = None
                batch, self._jobs = list(self._jobs), deque()
                self._busy += len(batch)
            try:
                self._record(self._decide_all(batch))
            finally:
                self._done(len(batch))
        self.settle()
        if self._writer is not None:
            self._writer.shutdown()
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._jobs and not self._closed:
                    self._wake.wait(INTERVAL)
                if not self._jobs:
                    if self._closed:
                        return
                    continue
                batch = [self._jobs.popleft() for _ in range(min(len(self._jobs), _BATCH))]
                self._busy += len(batch)
            try:
                self._record(self._decide_all(batch))
            except Exception:  # never let the thread die; the answers went out already
                log.exception("shadow decisions failed")
            finally:
                self._done(len(batch))

    def _decide_all(self, batch: list[ShadowJob]) -> list[ShadowRecord]:
        """The records of the decisions of ``batch`` that differ (each one counted)."""
        return [r for r in map(self._one, batch) if r is not None]

    def _record(self, records: list[ShadowRecord]) -> None:
        if not records:
            return
        try:
            self._store.record_shadow(records)
        except StoreError as exc:
            self.stats.unrecorded += len(records)
            log.warning("shadow differences not recorded: %s", exc)

    def _decides_alike(self, job: ShadowJob, plan: Plan) -> bool:
        """Whether the shadow version decides ``job`` as the active one did, whatever the
        facts (`decides_alike`), known once per versions, app, subject type and action."""
        active = job.decision
        if not active.version or job.subject_type is None:
            return False
        key = (active.version, job.shadow_version, job.app, job.subject_type, active.action)
        known = self._alike.get(key)
        if known is None:
            try:
                before = self._policies.plan(active.version)
            except Exception:  # the active version cannot be read here: decide it again
                return False
            known = decides_alike(before, plan, job.app, job.subject_type, active.action)
            if len(self._alike) > 10_000:
                self._alike.clear()
            self._alike[key] = known
        return known

    def _may_record(self) -> bool:
        """Whether one more difference may be recorded now (and its token taken)."""
        if not self._rate:
            return True
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._filled) * self._rate)
        self._filled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _one(self, job: ShadowJob) -> ShadowRecord | None:
        """The shadow's decision of one job, counted; a record when it differs."""
        active = job.decision
        error: str | None = None
        try:
            plan = self._policies.plan(job.shadow_version)
        except Exception as exc:  # a version that cannot be compiled here
            error = f"the shadow version cannot be compiled: {type(exc).__name__}"
            shadow = None
        else:
            if self._decides_alike(job, plan):  # the same checkpoint: the same answer
                counts = self.stats.transitions
                transition = f"{active.outcome}->{active.outcome}"
                counts[transition] = counts.get(transition, 0) + 1
                self.stats.unchanged += 1
                return None
            shadow = evaluate(
                plan,
                active.action,
                job.facts,
                job.at,
                decision_id=active.id,
                allowed_journeys=job.allowed_journeys,
                guard_only=job.guard_only,
            )
            if shadow.reason == "evaluation_error":
                error = shadow.explanation[-1].detail if shadow.explanation else "evaluation_error"
        outcome = "error" if error is not None or shadow is None else shadow.outcome
        transition = f"{active.outcome}->{outcome}"
        counts = self.stats.transitions
        counts[transition] = counts.get(transition, 0) + 1
        if error is not None:
            self.stats.errors += 1
        elif shadow is not None and (shadow.outcome, shadow.reason) == (
            active.outcome,
            active.reason,
        ):
            return None
        if not self._may_record():
            self.stats.over_rate += 1
            return None
        return ShadowRecord(
            decision_id=active.id or "",
            at=job.at,
            shadow_version=job.shadow_version,
            active_version=active.version,
            app=job.app,
            action=active.action,
            subject_type=job.subject_type,
            subject_id=job.subject_id,
            session_id=job.session_id,
            transition=transition,
            active=_side(active),
            shadow=_side(shadow) if shadow is not None else {"outcome": "error"},
            error=error,
        )
