"""The sweep: a journey change (or a signal) reaches idle sessions too.

A decision is made afresh at every request, so a session that keeps asking follows a new
journey version at once. A session that holds a *standing* outcome does not have to ask: an
allow with a ttl, a reroute to a limited path, acted on by the app until it expires. When a
version is published, the sweep re-checks every active session that holds one, against the
active version: the guard, then each standing checkpoint, with the session's remembered facts.
A session that lost access is revoked (the guard revokes) or downgraded (the standing allow is
withdrawn, a reroute is moved), and the events are sent (service/transmit.py).

A run goes through the sessions in id order, a batch at a time, and keeps its cursor in the
store: it runs beside live traffic (one batch, then the next), resumes where it stopped after a
restart, and reports its progress (`processed` of `total`).

Many nodes (or worker processes) share a run. A node *takes* its next batch by storing a lease
on it in the run (the range of session ids after the cursor, its node, until when), under the
run's optimistic revision: two nodes never take the same range. It then decides the batch,
writes what changed (each session at the revision it read, so a session is never changed twice
by two nodes), and *finishes* the lease, adding its counts. A node that dies with a lease leaves
it to whichever node comes next after the lease's time (`LEASE`); that node decides the range
again, and only what still differs is written. A run is done when every batch was handed out
and no lease is left. Near the end the batches shrink to half of what is left (`Sweeper.size`),
so the nodes finish together instead of all but one waiting out a last full batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec

from juncture.engine import Decision
from juncture.policy import Plan
from juncture.records import App, Session, SessionPage, SweepKind, SweepLease, SweepRun
from juncture.service.decisions import Decisions
from juncture.service.emitter import Emitter
from juncture.service.ids import new_id
from juncture.service.policies import PolicyRegistry, decides_alike
from juncture.service.session_changes import SessionChanges
from juncture.store.protocols import ConflictError, NotFound, Store, StoreError

log = logging.getLogger("juncture.sweep")
#: Sessions per batch (one read, then the decisions, then the writes of what changed).
BATCH = 2000
#: How long a node holds a batch it took; a batch takes well under a second.
LEASE = timedelta(seconds=30)
#: Near a run's end a batch is half of what is left, down to this many sessions (`Sweeper.size`).
TAIL = 250
#: How often `Sweeper.run` looks again when other nodes hold every batch left.
WAIT = 0.02


class Sweeper:
    """Runs sweeps over the stored sessions."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        policies: PolicyRegistry,
        decisions: Decisions,
        changes: SessionChanges,
        emitter: Emitter,
        *,
        batch: int = BATCH,
        lease: timedelta = LEASE,
    ) -> None:
        self.store = store
        self.now = now
        self.policies = policies
        self.decisions = decisions
        self.changes = changes
        self.emitter = emitter
        self.batch = batch
        self.lease = lease
        #: This sweeper's name in the leases it takes (one per process and store).
        self.node = new_id("node")
        self._lock = threading.Lock()
        #: (old version, new version, app, subject type, action) -> decides the same in both.
        self._unchanged: dict[tuple[str, str, str, str, str], bool] = {}
        #: The background worker running this sweeper's runs (set by `SweepWorker`).
        self.worker: SweepWorker | None = None

    def start(self, kind: SweepKind, reason: str) -> SweepRun:
        """A new run against the active version (its progress starts at 0); ``reason`` is
        shown, ``kind`` says what it re-checks."""
        plan = self.policies.active()
        now = self.now()
        run = SweepRun(
            id=new_id("sw"),
            kind=kind,
            reason=reason,
            version=plan.version,
            started_at=now,
            updated_at=now,
            total=self.store.count_active_sessions(),
        )
        return self.store.put_sweep(run, expected_revision=0)

    def begin(self, kind: SweepKind, reason: str) -> SweepRun:
        """Start a run and wake the background worker, if one runs here, to go through it."""
        run = self.start(kind, reason)
        if self.worker is not None:
            self.worker.wake()
        return run

    def _may_differ(self, plan: Plan, app: App, session: Session, action: str) -> bool:
        standing = session.standing[action]
        if standing.version == plan.version:
            return False  # decided by this very version already
        key = (standing.version, plan.version, app.id, session.subject_type, action)
        known = self._unchanged.get(key)
        if known is None:
            try:
                old = self.policies.plan(standing.version)
            except (NotFound, StoreError):
                return True
            except Exception:  # a version that no longer compiles: decide again
                return True
            known = decides_alike(old, plan, app.name, session.subject_type, action)
            if len(self._unchanged) > 10_000:
                self._unchanged.clear()
            self._unchanged[key] = known
        return not known

    def running(self) -> list[SweepRun]:
        return list(self.store.list_sweeps(status="running", limit=100))

    def take(self, run: SweepRun) -> tuple[SweepRun, SweepLease | None, SessionPage | None]:
        """This node's next batch of ``run``: the run as stored with the lease taken, the
        lease, and the page read when the batch is new (None for a batch taken over from a
        node whose lease ran out). No lease when every batch is handed out and held by nodes
        whose leases still run (or the run is done).

        Raises StoreError; NotFound when the run is gone.
        """
        while True:
            now = self.now()
            lapsed = next((x for x in run.leases if x.until <= now), None)
            page = None
            if lapsed is not None:
                lease = msgspec.structs.replace(lapsed, node=self.node, until=now + self.lease)
                leases = tuple(lease if x is lapsed else x for x in run.leases)
                taken = msgspec.structs.replace(run, leases=leases, updated_at=now)
            elif run.status == "running" and not run.exhausted:
                limit = self.size(run)
                page = self.store.sessions_after(run.cursor, limit=limit)
                exhausted = page.rows < limit
                if page.last is None:  # nothing after the cursor: every batch is out
                    lease = None
                    taken = msgspec.structs.replace(
                        run, exhausted=True, updated_at=now, **_ended(run.leases, now)
                    )
                else:
                    lease = SweepLease(start=run.cursor, end=page.last, rows=page.rows,
                                       node=self.node, until=now + self.lease)  # fmt: skip
                    taken = msgspec.structs.replace(
                        run, cursor=page.last, exhausted=exhausted,
                        leases=(*run.leases, lease), updated_at=now,
                    )  # fmt: skip
            else:
                return run, None, None
            try:
                return self.store.put_sweep(taken, expected_revision=run.revision), lease, page
            except ConflictError:  # another node took a batch meanwhile: look again
                found = self.store.get_sweep(run.id)
                if found is None:
                    raise NotFound(run.id) from None
                run = found

    def size(self, run: SweepRun) -> int:
        """How many sessions the next new batch of ``run`` takes: the batch size, but near
        the end half of what is left (by the run's total), never under `TAIL`: the nodes
        sharing the run then finish at about the same time, rather than all but one waiting
        out a last full batch."""
        left = run.total - run.processed - sum(x.rows for x in run.leases)
        return min(self.batch, max(TAIL, left // 2))

    def step(self, run: SweepRun) -> SweepRun:
        """Take the next batch of a run, sweep it and finish it; the run as stored after it
        (``done`` at the end). When no batch is free (other nodes hold them), the run as
        stored, unchanged.

        The batch's changes are written in one transaction (a session that changed meanwhile
        is left to its own next decision), then logged and told to the streams.
        """
        with self._lock:  # one batch at a time in this process
            run, lease, page = self.take(run)
            if lease is None:
                return run
            if page is None:  # taken over: read the range again
                page = self.store.sessions_after(lease.start, limit=max(self.batch, lease.rows))
                end = lease.end
                page = msgspec.structs.replace(
                    page,
                    sessions=[s for s in page.sessions if s.id <= end],
                    corrupt=[i for i in page.corrupt if i <= end],
                )
            changed = self._sweep(run, page)
            return self._finish(run, lease, changed, len(page.corrupt))

    def _sweep(self, run: SweepRun, page: SessionPage) -> int:
        """Decide a page of sessions again and store what changed; how many changed."""
        for session_id in page.corrupt:  # told, passed over; it cannot stop the run
            log.error("sweep %s: session %s has a corrupt stored record; skipped", run.id,
                      session_id)  # fmt: skip
        plan = self.policies.active()
        now = self.now()
        apps: dict[str, App | None] = {}
        planned: list[Change] = []
        policy_only = run.kind == "publish"
        for session in page.sessions:
            if not session.standing:
                continue
            if session.app not in apps:
                apps[session.app] = self.store.get_app(session.app)
            app = apps[session.app]
            if app is not None:
                change = self.plan(plan, app, session, now, policy_only=policy_only)
                if change is not None:
                    planned.append(change)
        stored = {s.id: s for s in self.store.update_sessions([c.after for c in planned])}
        for change in planned:
            after = stored.get(change.after.id)
            if after is None:
                continue
            if change.revocation is not None:
                self.changes.after_revoke(after, change.revocation, now)
            else:
                self.emitter.emit("token-claims-change", after, change.claims)
        return len(stored)

    def _finish(self, run: SweepRun, lease: SweepLease, changed: int, skipped: int) -> SweepRun:
        """Give the lease back with its counts (counted only while it is still this node's:
        a node that took it over counts it instead)."""
        while True:
            now = self.now()
            mine = [x for x in run.leases if (x.start, x.end, x.node) ==
                    (lease.start, lease.end, self.node)]  # fmt: skip
            if not mine:
                return run
            leases = tuple(x for x in run.leases if x is not mine[0])
            finished = msgspec.structs.replace(
                run,
                leases=leases,
                processed=run.processed + lease.rows,
                changed=run.changed + changed,
                skipped=run.skipped + skipped,
                updated_at=now,
                **(_ended(leases, now) if run.exhausted else {}),
            )
            try:
                return self.store.put_sweep(finished, expected_revision=run.revision)
            except ConflictError:
                found = self.store.get_sweep(run.id)
                if found is None:
                    raise NotFound(run.id) from None
                run = found

    def run(self, run: SweepRun) -> SweepRun:
        """Sweep a run to its end (used by tests, the CLI and the background worker); while
        other nodes hold the batches left, wait for them (or for their leases to run out)."""
        while run.status == "running":
            after = self.step(run)
            if after.revision == run.revision:  # nothing free here now
                time.sleep(WAIT)
                after = self.store.get_sweep(run.id) or after
            run = after
        return run

    def recheck(self, plan: Plan, app: App, session: Session) -> int:
        """Re-check one session now and store what changed (a signal asked for it); 1 when
        anything changed."""
        now = self.now()
        change = self.plan(plan, app, session, now)
        if change is None:
            return 0
        stored = self.store.update_sessions([change.after])
        if not stored:
            return 0
        after = stored[0]
        if change.revocation is not None:
            self.changes.after_revoke(after, change.revocation, now)
        else:
            self.emitter.emit("token-claims-change", after, change.claims)
        return 1

    def plan(
        self, plan: Plan, app: App, session: Session, now: datetime, *, policy_only: bool = False
    ) -> Change | None:
        """What re-deciding a session's standing checkpoints changes (the guard runs first in
        each: a guard that now revokes shows as a revocation), or None.

        With ``policy_only`` (a sweep after a publish: only the journey changed), a standing
        outcome whose checkpoint decides the same in its version and this one is not decided
        again (`JourneyPlan.fingerprints`)."""
        live = [
            action
            for action, standing in session.standing.items()
            if (standing.expires_at is None or standing.expires_at > now)  # lapsed: nothing stands
            and (not policy_only or self._may_differ(plan, app, session, action))
        ]
        if policy_only and not live:
            return None
        decisions = self.decisions.recheck_many(plan, app, session, live or [None], now)
        withdrawn: list[str] = []
        moved: dict[str, Decision] = {}
        for action, decision in decisions.items():
            if decision.outcome == "revoke":
                return Change(
                    after=self.changes.revoked(session, decision, now), revocation=decision
                )
            if action is None:
                continue
            standing = session.standing[action]
            if (decision.outcome, decision.scopes, decision.path) == (
                standing.outcome,
                standing.scopes,
                standing.path,
            ):
                continue
            if decision.outcome in ("allow", "reroute"):
                moved[action] = decision
            else:
                withdrawn.append(action)
        if not withdrawn and not moved:
            return None
        return Change(
            after=self.changes.restanded(session, withdrawn, moved, now),
            claims=self.changes.claims(withdrawn, moved),
        )


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """A session's change a sweep decided: the session to store, and what to tell."""

    after: Session
    revocation: Decision | None = None
    claims: dict[str, Any] = {}


class SweepWorker:
    """Runs the store's running sweeps in a background thread, a batch at a time."""

    def __init__(
        self,
        sweeper: Sweeper,
        *,
        interval: float = 0.5,
        paused: Callable[[], bool] = lambda: False,
    ) -> None:
        self.sweeper = sweeper
        sweeper.worker = self
        self.interval = interval
        #: While true, no batch runs here (this node's clock is off: another node goes on).
        self.paused = paused
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self.paused():
                continue
            try:
                for run in self.sweeper.running():
                    while run.status == "running" and not self._stop.is_set() and not self.paused():
                        after = self.sweeper.step(run)
                        if after.revision == run.revision:
                            break  # other nodes hold what is left: look again later
                        run = after
            except (StoreError, ConflictError):  # another worker holds it, or the store is down
                log.warning("sweep: a batch did not complete; it will be tried again")
            except Exception:  # never let the worker die silently
                log.exception("sweep: unexpected error")


def _ended(leases: tuple[SweepLease, ...], now: datetime) -> dict[str, Any]:
    """The fields that end a run whose batches are all handed out, once none is held."""
    return {} if leases else {"status": "done", "finished_at": now}


def progress(run: SweepRun) -> dict[str, object]:
    """What the admin API and the CLI show of a run."""
    return {
        "id": run.id,
        "reason": run.reason,
        "version": run.version,
        "status": run.status,
        "started_at": run.started_at,
        "updated_at": run.updated_at,
        "finished_at": run.finished_at,
        "total": run.total,
        "processed": run.processed,
        "changed": run.changed,
        "skipped": run.skipped,
    }
