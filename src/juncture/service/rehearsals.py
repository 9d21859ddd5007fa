"""Rehearsals the service runs with replay: replays as jobs of the admin API
(`POST /admin/v1/replays`, kept in the store: every node reads them) and the publish gate
(`juncture serve --publish-gate`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from juncture.errors import NotFoundError, StateConflict
from juncture.policy import Plan
from juncture.replay_jobs import ReplayJob
from juncture.service.clock import node_id
from juncture.service.ids import new_id
from juncture.service.policies import PolicyRegistry
from juncture.service.replay import (
    Replayer,
    ReplayError,
    ReplayFilter,
    Rule,
    parse_moment,
    parse_rule,
)
from juncture.store.protocols import ConflictError, NotFound, Store

log = logging.getLogger("juncture.runtime")

# -- replays as jobs (the admin API: POST /admin/v1/replays) ------------------------------------
#: Finished jobs kept (older ones are deleted when a job starts). One job runs at a time across
#: every node of the store: the store holds that (`ReplayJobStore.start_replay`).
KEPT_JOBS = 20
#: Seconds between two writes of a running job's progress: its heartbeat.
BEAT = 1.0
#: A running job whose heartbeat is older than this is `lost`: its node stopped (died) first.
LOST_AFTER = timedelta(seconds=30)


class ReplayRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A replay asked of the admin API: a stored version (id or unique prefix) and the window."""

    candidate: str
    against: str | None = None
    since: str = "24h"
    until: str | None = None
    app: str | None = None
    checkpoint: str | None = None
    fail_on: list[str] = []


class ReplayJobs:
    """Replays run on a thread of this node, their jobs kept in the store: any node reads
    them, one runs at a time across all nodes, and a job whose node died is reported ``lost``
    (its heartbeat, written at every page read and every `BEAT` seconds, older than
    `LOST_AFTER`). The replay itself
    writes nothing but its job."""

    def __init__(
        self,
        store: Store,
        policies: PolicyRegistry,
        now: Callable[[], datetime],
        flush_log: Callable[[], None] = lambda: None,
        *,
        node: str | None = None,
        beat: float = BEAT,
        lost_after: timedelta = LOST_AFTER,
    ) -> None:
        self.store = store
        self.policies = policies
        self.now = now
        #: Writes this node's buffered decision records: a replay reads what was answered.
        self._flush_log = flush_log
        self.node = node or node_id()
        self.beat = beat
        self.lost_after = lost_after

    def start(self, request: ReplayRequest, by: str) -> ReplayJob:
        """Check the request (rules, window, versions), store the job, then run it on a thread.

        Raises:
            ReplayError: 400 ``replay.rule_invalid`` or ``replay.window_invalid``.
            NotFoundError: 404 ``version.not_found``; AmbiguousVersion: 409.
            StateConflict: 409 ``state.conflict``, a replay is running already (on any node).
        """
        rules = [parse_rule(r) for r in request.fail_on]
        now = self.now()
        window = ReplayFilter(
            since=parse_moment(request.since, now),
            until=parse_moment(request.until, now) if request.until is not None else None,
            app=request.app,
            checkpoint=request.checkpoint,
        )
        candidate = self._version(request.candidate)
        against = self._version(request.against) if request.against is not None else None
        job = ReplayJob(
            id=new_id("rp"), by=by, candidate=candidate, against=against, status="running",
            started_at=now, node=self.node, updated_at=now, since=window.since,
            until=window.until, app=window.app, checkpoint=window.checkpoint,
            rules=[r.text for r in rules],
        )  # fmt: skip
        try:
            self.store.start_replay(job, lost_before=now - self.lost_after, keep=KEPT_JOBS)
        except ConflictError:
            raise StateConflict("a replay is running: wait for it to finish") from None
        threading.Thread(
            target=self._run, args=(job, window, rules), name=f"replay-{job.id}", daemon=True
        ).start()
        return job

    def _version(self, prefix: str) -> str:
        try:
            return self.policies.resolve(prefix)
        except NotFound:
            raise NotFoundError(f"no version `{prefix}`", code="version.not_found") from None

    def _run(self, job: ReplayJob, window: ReplayFilter, rules: list[Rule]) -> None:
        beating = _Heartbeat(self, job)
        try:
            self._flush_log()
            candidate = self.policies.plan(job.candidate)
            against = self.policies.plan(job.against) if job.against is not None else None
            report = Replayer(self.store).run(candidate, window, against=against,
                                              progress=beating.progress)  # fmt: skip
        except Exception as error:  # the job says so; the node goes on
            beating.stop()
            log.error("replay %s failed: %s", job.id, error)
            beating.end(status="failed", finished_at=self.now(),
                        error=f"{type(error).__name__}: {error}")  # fmt: skip
            return
        beating.stop()
        broken = [why for rule in rules if (why := rule.broken(report)) is not None]
        beating.end(status="done", finished_at=self.now(), processed=report.total,
                    report=report.to_dict(), broken=broken)  # fmt: skip

    def _seen(self, job: ReplayJob) -> ReplayJob:
        """A running job whose heartbeat is older than `LOST_AFTER` is ``lost``."""
        if job.status == "running" and (job.updated_at or job.started_at) < (
            self.now() - self.lost_after
        ):
            return msgspec.structs.replace(job, status="lost")
        return job

    def get(self, job_id: str) -> ReplayJob:
        """Raises NotFoundError 404 ``replay.not_found``."""
        job = self.store.get_replay(job_id)
        if job is None:
            raise NotFoundError(f"no replay `{job_id}`", code="replay.not_found")
        return self._seen(job)

    def list(self) -> list[ReplayJob]:
        """The jobs kept, newest first, without their reports."""
        return [self._seen(job) for job in self.store.list_replays(limit=KEPT_JOBS + 10)]


class _Heartbeat:
    """A running job's progress and heartbeat: written at every page the replay reads, and
    every `ReplayJobs.beat` seconds by a thread of its own (a slow page does not stop it),
    until `stop`. A write the store refuses (the job was marked lost meanwhile: it is no
    longer this node's) stops the replay at its next page."""

    def __init__(self, jobs: ReplayJobs, job: ReplayJob) -> None:
        self.jobs = jobs
        self.job = job
        self.processed = 0
        self.abandoned = False
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._beat, name=f"{job.id}-beat", daemon=True)
        self._thread.start()

    def progress(self, processed: int) -> None:
        """A page read: its count written (the replay stops here if the job was lost)."""
        self.processed = processed
        self._write_progress()
        if self.abandoned:
            raise StateConflict(f"replay {self.job.id} was marked lost: it stops here")

    def _beat(self) -> None:
        while not self._stopped.wait(self.jobs.beat):
            self._write_progress()

    def _write_progress(self) -> None:
        try:
            self.write(processed=self.processed)
        except Exception as error:  # a heartbeat missed; the next one may pass
            log.warning("replay %s: its heartbeat was not written: %s", self.job.id, error)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def end(self, **changes: Any) -> None:
        """Write the job's end; a store that fails now leaves it running until it is seen
        ``lost`` (its heartbeat stopped)."""
        try:
            self.write(**changes)
        except Exception as error:
            log.error("replay %s: its end was not written: %s", self.job.id, error)

    def write(self, **changes: Any) -> None:
        with self._lock:
            if self.abandoned:
                return
            job = msgspec.structs.replace(self.job, updated_at=self.jobs.now(), **changes)
            if self.jobs.store.update_replay(job):
                self.job = job
            else:
                self.abandoned = True
                log.error("replay %s was marked lost: it stops here", job.id)


# -- the publish gate (`juncture serve --publish-gate`) ----------------------------------------
#: Records a publish gate replays at most by default (the newest of its window): about four
#: seconds of replay on one core here (`bench/replay.py`).
GATE_LIMIT = 100_000


class PublishGate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A deployment's rule for activations: a version not active before is activated only if
    a replay of the recorded decisions of ``since`` (the newest ``limit`` of them) breaks none
    of ``rules``."""

    rules: list[str]
    since: str = "24h"
    limit: int = GATE_LIMIT

    def check(self) -> None:
        """Raises ReplayError for a rule or window that cannot be used (at start-up)."""
        for rule in self.rules:
            parse_rule(rule)
        parse_moment(self.since, datetime.now(UTC))
        if self.limit < 1:
            raise ReplayError("replay.window_invalid", "a publish gate replays one record or more")

    def rehearse(self, store: Store, candidate: Plan, now: datetime) -> None:
        """Replay the window with ``candidate``. Raises StateConflict 409
        ``version.rehearsal_failed`` (with the rules broken and the report's figures) when a
        rule breaks."""
        rules = [parse_rule(r) for r in self.rules]
        window = ReplayFilter(since=parse_moment(self.since, now))
        report = Replayer(store).run(candidate, window, limit=self.limit)
        broken = [why for rule in rules if (why := rule.broken(report)) is not None]
        if broken:
            summary = {k: v for k, v in report.to_dict().items()
                       if k not in ("sessions", "subjects")}  # fmt: skip
            raise StateConflict(
                f"the rehearsal of the recorded decisions broke the publish gate: "
                f"{'; '.join(broken)}",
                code="version.rehearsal_failed",
                extra={"broken": broken, "report": summary},
            )
