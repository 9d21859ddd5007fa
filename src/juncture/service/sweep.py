"""The sweep: a journey change (or a signal) reaches idle sessions too.

A decision is made afresh at every request, so a session that keeps asking follows a new
journey version at once. A session that holds a *standing* outcome does not have to ask: an
allow with a ttl, a reroute to a limited path, acted on by the app until it expires. When a
version is published, the sweep re-checks every active session that holds one, against the
active version: the guard, then each standing checkpoint, with the session's remembered facts.
A session that lost access is revoked (the guard revokes) or downgraded (the standing allow is
withdrawn, a reroute is moved), and the events are sent (service/transmit.py).

A run goes through the sessions in id order, a batch at a time, and keeps its cursor in the
store after each batch: it runs beside live traffic (one batch, then the next), resumes where
it stopped after a restart, and reports its progress (`processed` of `total`).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import msgspec

from juncture.engine import Decision
from juncture.policy import Plan
from juncture.service.ids import new_id
from juncture.store.models import App, Session, SweepRun
from juncture.store.protocols import ConflictError, StoreError

if TYPE_CHECKING:
    from juncture.service.runtime import Runtime

log = logging.getLogger("juncture.sweep")
#: Sessions per batch (one read, then the decisions, then the writes of what changed).
BATCH = 500


class Sweeper:
    """Runs sweeps over the runtime's sessions."""

    def __init__(self, runtime: Runtime, *, batch: int = BATCH) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.batch = batch
        self._lock = threading.Lock()

    def start(self, reason: str) -> SweepRun:
        """A new run against the active version (its progress starts at 0)."""
        plan = self.runtime.policies.active()
        now = self.runtime.now()
        run = SweepRun(
            id=new_id("sw"),
            reason=reason,
            version=plan.version,
            started_at=now,
            updated_at=now,
            total=self.store.count_active_sessions(),
        )
        return self.store.put_sweep(run, expected_revision=0)

    def running(self) -> list[SweepRun]:
        return list(self.store.list_sweeps(status="running", limit=100))

    def step(self, run: SweepRun) -> SweepRun:
        """Sweep the next batch of a run; the run as stored after it (``done`` at the end)."""
        with self._lock:  # one batch at a time in this process
            sessions = self.store.sessions_after(run.cursor, limit=self.batch)
            plan = self.runtime.policies.active()
            apps: dict[str, App | None] = {}
            changed = 0
            for session in sessions:
                if not session.standing:
                    continue
                if session.app not in apps:
                    apps[session.app] = self.store.get_app(session.app)
                app = apps[session.app]
                if app is None:
                    continue
                try:
                    changed += self.recheck(plan, app, session)
                except ConflictError:  # it changed meanwhile: its own next decision decides
                    continue
            now = self.runtime.now()
            done = len(sessions) < self.batch
            updated = msgspec.structs.replace(
                run,
                cursor=sessions[-1].id if sessions else run.cursor,
                processed=run.processed + len(sessions),
                changed=run.changed + changed,
                updated_at=now,
                status="done" if done else "running",
                finished_at=now if done else None,
            )
            return self.store.put_sweep(updated, expected_revision=run.revision)

    def run(self, run: SweepRun) -> SweepRun:
        """Sweep a run to its end (used by tests, the CLI and the background worker)."""
        while run.status == "running":
            run = self.step(run)
        return run

    def recheck(self, plan: Plan, app: App, session: Session) -> int:
        """Re-decide a session's guard and standing checkpoints; 1 when anything changed."""
        now = self.runtime.now()
        guard = self.runtime.recheck(plan, app, session, None, now)
        if guard.outcome == "revoke":
            self.runtime.revoke(session, guard, now)
            return 1
        withdrawn: list[str] = []
        moved: dict[str, Decision] = {}
        for action, standing in session.standing.items():
            if standing.expires_at is not None and standing.expires_at <= now:
                continue  # lapsed: nothing stands any more
            decision = self.runtime.recheck(plan, app, session, action, now)
            if decision.outcome == "revoke":
                self.runtime.revoke(session, decision, now)
                return 1
            if (
                decision.outcome == standing.outcome
                and decision.scopes == standing.scopes
                and (decision.path == standing.path)
            ):
                continue
            if decision.outcome in ("allow", "reroute"):
                moved[action] = decision
            else:
                withdrawn.append(action)
        if not withdrawn and not moved:
            return 0
        self.runtime.restand(session, withdrawn, moved, now)
        return 1


class SweepWorker:
    """Runs the store's running sweeps in a background thread, a batch at a time."""

    def __init__(self, sweeper: Sweeper, *, interval: float = 0.5) -> None:
        self.sweeper = sweeper
        self.interval = interval
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
            try:
                for run in self.sweeper.running():
                    while run.status == "running" and not self._stop.is_set():
                        run = self.sweeper.step(run)
            except (StoreError, ConflictError):  # another worker holds it, or the store is down
                log.warning("sweep: a batch did not complete; it will be tried again")
            except Exception:  # never let the worker die silently
                log.exception("sweep: unexpected error")


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
    }
