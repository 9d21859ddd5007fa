"""Rehearsals the service runs with replay: replays as jobs of the admin API
(`POST /admin/v1/replays`) and the publish gate (`juncture serve --publish-gate`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from juncture.errors import NotFoundError, StateConflict
from juncture.policy import Plan
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
from juncture.store.protocols import NotFound, Store

log = logging.getLogger("juncture.runtime")

# -- replays as jobs (the admin API: POST /admin/v1/replays) ------------------------------------
#: Jobs kept (finished ones beyond this go, oldest first); jobs running at once at most.
KEPT_JOBS = 20
RUNNING_JOBS = 1


class ReplayRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A replay asked of the admin API: a stored version (id or unique prefix) and the window."""

    candidate: str
    against: str | None = None
    since: str = "24h"
    until: str | None = None
    app: str | None = None
    checkpoint: str | None = None
    fail_on: list[str] = []


class ReplayJob(msgspec.Struct, frozen=True, kw_only=True):
    """A replay run in the background: its progress, then its report and the rules broken."""

    id: str
    by: str
    candidate: str
    against: str | None
    status: str  # running | done | failed
    started_at: datetime
    finished_at: datetime | None = None
    #: Records read so far (a page at a time).
    processed: int = 0
    report: dict[str, Any] | None = None
    rules: list[str] = []
    broken: list[str] = []
    error: str | None = None


class ReplayJobs:
    """Replays run on a thread of this node, their jobs kept in memory (the last `KEPT_JOBS`):
    a replay writes nothing, its own state included, so a restart forgets them."""

    def __init__(
        self,
        store: Store,
        policies: PolicyRegistry,
        now: Callable[[], datetime],
        flush_log: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.policies = policies
        self.now = now
        #: Writes this node's buffered decision records: a replay reads what was answered.
        self._flush_log = flush_log
        self._jobs: dict[str, ReplayJob] = {}
        self._lock = threading.Lock()

    def start(self, request: ReplayRequest, by: str) -> ReplayJob:
        """Check the request (rules, window, versions), then run it on a thread.

        Raises:
            ReplayError: 400 ``replay.rule_invalid`` or ``replay.window_invalid``.
            NotFoundError: 404 ``version.not_found``; AmbiguousVersion: 409.
            StateConflict: 409 ``state.conflict``, a replay is running already.
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
            started_at=now, rules=[r.text for r in rules],
        )  # fmt: skip
        with self._lock:
            if sum(j.status == "running" for j in self._jobs.values()) >= RUNNING_JOBS:
                raise StateConflict("a replay is running: wait for it to finish")
            self._jobs[job.id] = job
            for old in [j for j in self._jobs.values() if j.status != "running"][:-KEPT_JOBS]:
                del self._jobs[old.id]
        threading.Thread(
            target=self._run, args=(job, window, rules), name=f"replay-{job.id}", daemon=True
        ).start()
        return job

    def _version(self, prefix: str) -> str:
        try:
            return self.policies.resolve(prefix)
        except NotFound:
            raise NotFoundError(f"no version `{prefix}`", code="version.not_found") from None

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            self._jobs[job_id] = msgspec.structs.replace(self._jobs[job_id], **changes)

    def _run(self, job: ReplayJob, window: ReplayFilter, rules: list[Rule]) -> None:
        try:
            self._flush_log()
            candidate = self.policies.plan(job.candidate)
            against = self.policies.plan(job.against) if job.against is not None else None
            report = Replayer(self.store).run(
                candidate, window, against=against,
                progress=lambda n: self._update(job.id, processed=n),
            )  # fmt: skip
        except Exception as error:  # the job says so; the node goes on
            log.error("replay %s failed: %s", job.id, error)
            self._update(job.id, status="failed", finished_at=self.now(),
                         error=f"{type(error).__name__}: {error}")  # fmt: skip
            return
        broken = [why for rule in rules if (why := rule.broken(report)) is not None]
        self._update(job.id, status="done", finished_at=self.now(), processed=report.total,
                     report=report.to_dict(), broken=broken)  # fmt: skip

    def get(self, job_id: str) -> ReplayJob:
        """Raises NotFoundError 404 ``replay.not_found``."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no replay `{job_id}` on this node", code="replay.not_found")
        return job

    def list(self) -> list[ReplayJob]:
        """The jobs kept, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.started_at, reverse=True)


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
