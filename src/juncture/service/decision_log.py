"""The decision log: every decision's record, written by a background thread, and the
decision counters `/metrics` shows.

``batched`` (the default): records are written in batches within `LOG_INTERVAL` seconds,
after the answer (a crash loses at most that window). ``durable``: the answer waits until its
record is committed (concurrent requests' records share one commit).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from juncture.engine import Decision
from juncture.errors import RequestError
from juncture.records import App, DecisionQuery, DecisionRecord, Session
from juncture.service.ids import new_id
from juncture.store.protocols import NotFound, Store, StoreError

log = logging.getLogger("juncture.runtime")
#: Decision records kept in memory while the store is unavailable, at most.
MAX_PENDING_RECORDS = 100_000
#: The decision log's modes (`juncture serve --decision-log`).
LOG_MODES = ("batched", "durable")
#: Seconds between the batched writer's commits: the records a crash may lose.
LOG_INTERVAL = 0.2
#: The commits a request must wait for before its answer goes (durable mode): set by the
#: API around each request (`DecisionLogWriter.awaited`), read by `Runtime._record`.
_AWAITED: ContextVar[list[Future[None]] | None] = ContextVar("juncture_awaited", default=None)


class DecisionLogWriter:
    """Writes decision records from a background thread.

    ``batched`` (the default): records are buffered and written every ``interval`` seconds
    (or at ``max_batch``), after the answers went: a crash loses at most the records of the
    last interval (and those held while the store is down, at most `MAX_PENDING_RECORDS`).

    ``durable``: each record comes with a future that the writer resolves once the
    transaction holding it is committed; the writer commits whatever arrived while the last
    commit ran (group commit), so concurrent requests share one transaction. A failed commit
    fails the futures of its records (``StoreError``): the caller must not give the answer.
    """

    def __init__(
        self,
        store: Store,
        interval: float = LOG_INTERVAL,
        max_batch: int = 500,
        *,
        retention: timedelta | None = None,
        now: Callable[[], datetime] | None = None,
        mode: str = "batched",
    ) -> None:
        if mode not in LOG_MODES:
            raise ValueError(f"unknown decision log mode `{mode}`")
        self.mode = mode
        self._store = store
        self._retention = retention
        self._now = now
        self._last_purge: datetime | None = None
        self._interval = interval
        self._max = max_batch
        self._buffer: list[Any] = []
        self._waiting: list[Future[None]] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one write at a time; a reader's waits for it
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._thread.start()

    @staticmethod
    @contextlib.contextmanager
    def awaited() -> Iterator[list[Future[None]]]:
        """Collect, for the current request, the commits its answer must wait for (durable
        mode; empty in batched mode)."""
        pending: list[Future[None]] = []
        token = _AWAITED.set(pending)
        try:
            yield pending
        finally:
            _AWAITED.reset(token)

    def add(self, record: DecisionRecord) -> Future[None] | None:
        """Queue a record; in durable mode, the future of its commit (else None)."""
        prepared = self._store.prepare_record(record)
        if self.mode == "durable":
            committed: Future[None] = Future()
            with self._lock:
                self._buffer.append(prepared)
                self._waiting.append(committed)
            self._wake.set()
            return committed
        with self._lock:
            self._buffer.append(prepared)
            full = len(self._buffer) >= self._max
        if full:
            self._wake.set()
        return None

    def flush(self) -> None:
        """Write what is buffered. Returns once every record added before the call is written
        (or kept for the next attempt): a flush meeting another one under way waits for it, so
        a reader that flushes first sees the decisions answered before it asked."""
        with self._flushing:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
            waiting, self._waiting = self._waiting, []
        if waiting:  # durable: every record of the batch has a waiter
            self._commit(batch, waiting)
            return
        if batch:
            try:
                self._store.record_prepared(batch)
            except StoreError:  # keep them for the next attempt, within a bound
                with self._lock:
                    self._buffer[:0] = batch
                    overflow = len(self._buffer) - MAX_PENDING_RECORDS
                    if overflow > 0:  # the store has been down long: drop the oldest, say so
                        del self._buffer[:overflow]
                if overflow > 0:
                    log.error("decision log: store unavailable, %d records dropped", overflow)

    def query(self, query: DecisionQuery) -> Sequence[DecisionRecord]:
        """Logged decisions, newest first, the last ones included (the buffer is flushed).

        Raises:
            RequestError: 400 ``request.invalid``, ``before`` names no logged decision (the
                caller's cursor is wrong, not the store).
        """
        self.flush()
        try:
            return self._store.query(query)
        except NotFound:
            raise RequestError("`before` names no logged decision") from None

    def get(self, decision_id: str) -> DecisionRecord | None:
        """One logged decision by its id (the buffer flushed first), or None."""
        self.flush()
        return self._store.get_decision(decision_id)

    def _commit(self, batch: list[Any], waiting: list[Future[None]]) -> None:
        """Durable mode: one transaction for the batch, then every waiter is told."""
        try:
            self._store.record_prepared(batch)
        except StoreError as error:
            # Not kept for later: their answers are refused (no record, no answer).
            log.error("decision log: commit failed, %d answers refused: %s", len(batch), error)
            for committed in waiting:
                committed.set_exception(error)
            return
        except BaseException as error:  # a waiter must never hang
            for committed in waiting:
                committed.set_exception(StoreError(f"decision log: {error}"))
            raise
        for committed in waiting:
            committed.set_result(None)

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self._interval)
            self._wake.clear()
            self.flush()
            self.purge()

    def purge(self) -> int:
        """Apply the retention setting at most once a minute: delete older records."""
        if self._retention is None or self._now is None:
            return 0
        now = self._now()
        if self._last_purge is not None and now - self._last_purge < timedelta(minutes=1):
            return 0
        self._last_purge = now
        try:
            return self._store.purge_before(now - self._retention)
        except StoreError:
            return 0

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=5)
        self.flush()


class DecisionLog:
    """Records decisions through the writer, and counts them by outcome and checkpoint."""

    def __init__(self, writer: DecisionLogWriter) -> None:
        self.writer = writer
        self.stats: dict[tuple[str, str], int] = {}
        self._stats_lock = threading.Lock()  # decisions run on the loop, the sweep, the hash pool

    def record(
        self,
        app: App,
        action: str,
        request: Mapping[str, Any],
        session: Session | None,
        decision: Decision,
        facts: dict[str, Any],
        started: int,
        now: datetime,
    ) -> None:
        # Counted by the journey's checkpoint, not the caller's action name: labels stay a
        # bounded set whatever names callers send.
        key = (decision.outcome, decision.checkpoint or "-")
        with self._stats_lock:
            self.stats[key] = self.stats.get(key, 0) + 1
        resource = request.get("resource")
        committed = self.writer.add(
            DecisionRecord(
                id=decision.id or new_id("d"),
                at=now,
                app=app.id,
                subject_type=session.subject_type
                if session
                else (request.get("subject") or {}).get("type"),
                subject_id=session.subject_id
                if session
                else (request.get("subject") or {}).get("id"),
                session_id=session.id if session else None,
                action=action,
                resource=resource if isinstance(resource, dict) else None,
                outcome=decision.outcome,
                reason=decision.reason,
                version=decision.version,
                latency_us=(time.perf_counter_ns() - started) // 1000,
                decision=decision,
                facts=facts,
            )
        )
        if committed is None:
            return
        awaited = _AWAITED.get()
        if awaited is not None:  # the API waits (without blocking its loop) before answering
            awaited.append(committed)
            return
        # No answer waits on this one (a background sweep): be durable before going on.
        try:
            committed.result(timeout=30)
        except (StoreError, TimeoutError) as error:
            log.error("decision log: record %s not committed: %s", decision.id, error)
