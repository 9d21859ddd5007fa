"""Replay jobs: started one at a time across every node, their progress and report (the
rows are coded as SQLite's: `sqlite.replays`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from juncture.replay_jobs import ReplayJob
from juncture.store.postgres.connection import PostgresConnections
from juncture.store.postgres.rows import to_micros
from juncture.store.protocols import ConflictError
from juncture.store.sqlite.replays import job_columns, job_of


class PostgresReplayJobs(PostgresConnections):
    """`ReplayJobStore` over the ``replay_jobs`` table."""

    def start_replay(self, job: ReplayJob, *, lost_before: datetime, keep: int) -> None:
        started_at, status, updated_at, body, report = job_columns(job)
        with self._transaction() as conn:
            conn.execute("UPDATE replay_jobs SET status = 'lost'"
                         " WHERE status = 'running' AND updated_at < %s",
                         (to_micros(lost_before),))  # fmt: skip
            inserted = conn.execute(
                "INSERT INTO replay_jobs (id, started_at, status, updated_at, body, report)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (job.id, started_at, status, updated_at, body, report),
            ).rowcount
            if not inserted:
                raise ConflictError("a replay is running: wait for it to finish")
            conn.execute("DELETE FROM replay_jobs WHERE status <> 'running' AND id NOT IN"
                         " (SELECT id FROM replay_jobs WHERE status <> 'running'"
                         " ORDER BY started_at DESC, id DESC LIMIT %s)",
                         (max(keep, 0),))  # fmt: skip

    def update_replay(self, job: ReplayJob) -> bool:
        _, status, updated_at, body, report = job_columns(job)
        with self._transaction() as conn:
            changed = conn.execute(
                "UPDATE replay_jobs SET status = %s, updated_at = %s, body = %s, report = %s"
                " WHERE id = %s AND status = 'running'",
                (status, updated_at, body, report, job.id),
            ).rowcount
        return bool(changed)

    def get_replay(self, job_id: str) -> ReplayJob | None:
        row = self._one("SELECT status, body, report FROM replay_jobs WHERE id = %s", (job_id,))
        return None if row is None else job_of(*row)

    def list_replays(self, *, limit: int = 100) -> Sequence[ReplayJob]:
        rows = self._all("SELECT status, body FROM replay_jobs ORDER BY started_at DESC,"
                         " id DESC LIMIT %s", (max(limit, 0),))  # fmt: skip
        return [job_of(status, body, None) for status, body in rows]
