"""Replay jobs: started one at a time across every node, their progress and report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from juncture.replay_jobs import ReplayJob
from juncture.store.protocols import ConflictError, CorruptError
from juncture.store.sqlite.connection import SqliteConnections
from juncture.store.sqlite.rows import encode, require_aware, to_micros

_JOB = msgspec.json.Decoder(ReplayJob)
_REPORT = msgspec.json.Decoder(dict[str, Any])


def job_columns(job: ReplayJob) -> tuple[int, str, int, bytes, bytes | None]:
    """(started_at, status, updated_at, body without the report, report)."""
    require_aware(job.finished_at, job.since, job.until)
    heartbeat = job.updated_at or job.started_at
    body = encode(msgspec.structs.replace(job, report=None))
    report = None if job.report is None else encode(job.report)
    return to_micros(job.started_at), job.status, to_micros(heartbeat), body, report


def job_of(status: str, body: bytes, report: bytes | None) -> ReplayJob:
    """The stored job, with the status of its column (``lost`` is marked there alone)."""
    try:
        job = _JOB.decode(body)
        decoded = None if report is None else _REPORT.decode(report)
    except msgspec.DecodeError as error:
        raise CorruptError(f"corrupt replay job: {error}") from error
    return msgspec.structs.replace(job, status=status, report=decoded)


class SqliteReplayJobs(SqliteConnections):
    """`ReplayJobStore` over the ``replay_jobs`` table."""

    def start_replay(self, job: ReplayJob, *, lost_before: datetime, keep: int) -> None:
        started_at, status, updated_at, body, report = job_columns(job)
        with self._transaction() as conn:
            conn.execute("UPDATE replay_jobs SET status = 'lost'"
                         " WHERE status = 'running' AND updated_at < ?",
                         (to_micros(lost_before),))  # fmt: skip
            inserted = conn.execute(
                "INSERT INTO replay_jobs (id, started_at, status, updated_at, body, report)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (job.id, started_at, status, updated_at, body, report),
            ).rowcount
            if not inserted:
                raise ConflictError("a replay is running: wait for it to finish")
            conn.execute("DELETE FROM replay_jobs WHERE status <> 'running' AND id NOT IN"
                         " (SELECT id FROM replay_jobs WHERE status <> 'running'"
                         " ORDER BY started_at DESC, id DESC LIMIT ?)",
                         (max(keep, 0),))  # fmt: skip

    def update_replay(self, job: ReplayJob) -> bool:
        _, status, updated_at, body, report = job_columns(job)
        with self._transaction() as conn:
            changed = conn.execute(
                "UPDATE replay_jobs SET status = ?, updated_at = ?, body = ?, report = ?"
                " WHERE id = ? AND status = 'running'",
                (status, updated_at, body, report, job.id),
            ).rowcount
        return bool(changed)

    def get_replay(self, job_id: str) -> ReplayJob | None:
        row = self._one("SELECT status, body, report FROM replay_jobs WHERE id = ?", (job_id,))
        return None if row is None else job_of(*row)

    def list_replays(self, *, limit: int = 100) -> Sequence[ReplayJob]:
        rows = self._all("SELECT status, body FROM replay_jobs ORDER BY started_at DESC,"
                         " id DESC LIMIT ?", (max(limit, 0),))  # fmt: skip
        return [job_of(status, body, None) for status, body in rows]
