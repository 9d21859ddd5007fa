"""A sweep keeps its cursor in the store after every batch: a restart resumes it where it
stopped, and no session is checked twice or skipped (real SQLite, in process)."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from juncture.records import App, StoredProof
from juncture.service.runtime import Runtime
from juncture.service.sweep import Sweeper
from juncture.store.sqlite import SqliteStore

from .test_sweep_http import V1, V2

NOW = datetime(2026, 11, 29, 10, tzinfo=UTC)
APP = App(id="app_desk", name="desk", created_at=NOW, assertable_methods=("password",))


def sweeper_of(runtime: Runtime, *, batch: int) -> Sweeper:
    """A sweeper over the runtime's services, with small batches."""
    return Sweeper(runtime.store, runtime.now, runtime.policies, runtime.decisions,
                   runtime.changes, runtime.emitter, batch=batch)  # fmt: skip


def open_runtime(db: Path) -> Runtime:
    return Runtime(SqliteStore(db), now=lambda: NOW, log_interval=0.01)


def publish(runtime: Runtime, text: str) -> str:
    version, problems, _ = runtime.policies.upload({"desk.yaml": text.encode()}, author="t")
    assert version is not None, problems
    runtime.policies.activate(version, by="t")
    return version


def dashboard_sessions(runtime: Runtime, count: int) -> list[str]:
    """Sessions that hold a standing dashboard allow, every other one off the corporate
    network (those lose it under V2); their ids."""
    ids = []
    for i in range(count):
        ip = "10.1.1.1" if i % 2 else "198.51.100.1"
        outcome = runtime.sessions.start(
            APP,
            {"id": f"user{i}"},
            {"network": {"ip": ip}},
            [StoredProof(method="password", at=NOW, asserted_by=APP.id)],
        )
        assert outcome.session is not None
        decided = runtime.decisions.decide(APP, "dashboard", {}, session_id=outcome.session.id)
        assert decided.decision.outcome == "allow"
        ids.append(outcome.session.id)
    return ids


def test_a_sweep_interrupted_by_a_restart_resumes_where_it_stopped(tmp_path: Path):
    db = tmp_path / "j.db"
    runtime = open_runtime(db)
    publish(runtime, V1)
    runtime.store.put_app(APP)
    dashboard_sessions(runtime, 7)
    publish(runtime, V2)
    told: list[str] = []

    def tell(kind: str, session: object, details: object) -> None:
        told.append(f"{kind} {session.subject_id}")  # type: ignore[attr-defined]

    runtime.emitter.listen(tell)
    first = sweeper_of(runtime, batch=3)
    run = first.start("recheck", "test")
    run = first.step(run)  # one batch of three, then the process "dies"
    assert (run.status, run.processed, run.total) == ("running", 3, 7)
    runtime.close()
    runtime.store.close()

    again = open_runtime(db)
    again.emitter.listen(tell)
    try:
        sweeper = sweeper_of(again, batch=3)
        [resumed] = sweeper.running()
        assert (resumed.id, resumed.cursor, resumed.processed) == (run.id, run.cursor, 3)
        done = sweeper.run(resumed)
        assert (done.status, done.processed) == ("done", 7)
        assert done.changed == 4  # user0, 2, 4, 6 lose the dashboard, each once
        for session in again.store.list_sessions(limit=100):
            off = session.subject_id in {"user0", "user2", "user4", "user6"}
            assert ("dashboard" in session.standing) is not off
        # each changed session was told once, across the restart: none twice, none skipped
        assert sorted(told) == [f"token-claims-change user{i}" for i in (0, 2, 4, 6)]
    finally:
        again.close()
        again.store.close()


RISKY = """\
journey: desk
applies_to: [desk]
methods:
  password: {kind: password}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {scopes: [desk], ttl: 8h}}]
  dashboard:
    - if: "signals.risk_elevated"
      deny: risky
    - allow: {scopes: ["dashboard:read"], ttl: 1h}
  "*": [{deny: unknown_action}]
"""


def test_a_publish_sweep_re_decides_only_the_checkpoints_the_publish_changed(tmp_path: Path):
    runtime = open_runtime(tmp_path / "j.db")
    try:
        publish(runtime, RISKY)
        runtime.store.put_app(APP)
        started = runtime.sessions.start(
            APP, {"id": "ana"}, {}, [StoredProof(method="password", at=NOW, asserted_by=APP.id)]
        )
        assert started.session is not None
        session_id = started.session.id
        decided = runtime.decisions.decide(APP, "dashboard", {}, session_id=session_id)
        assert decided.decision.outcome == "allow"
        stored = runtime.store.get_session(session_id)
        assert stored is not None
        # facts change, nothing re-checks
        runtime.changes.signal(stored, {"risk_elevated": True}, NOW)
        # a publish that changes only `login`: the dashboard decides as before, so it stands
        changed = RISKY.replace("ttl: 8h", "ttl: 4h")
        version, _, _ = runtime.policies.upload({"desk.yaml": changed.encode()}, author="t")
        assert version is not None
        started_run = runtime.versions.publish(version, "t")  # activate + a `publish` sweep
        assert (started_run.kind, started_run.reason) == ("publish", f"publish {version}")
        assert runtime.store.active_version_id() == version
        after_publish = runtime.sweeper.run(started_run)
        assert (after_publish.processed, after_publish.changed) == (1, 0)
        current = runtime.store.get_session(session_id)
        assert current is not None and "dashboard" in current.standing
        # a manual sweep decides everything again: the risky session loses the dashboard
        manual = runtime.sweeper.run(runtime.versions.sweep("t"))
        assert manual.changed == 1
        current = runtime.store.get_session(session_id)
        assert current is not None and "dashboard" not in current.standing
    finally:
        runtime.close()
        runtime.store.close()


def test_a_corrupt_stored_session_is_logged_and_passed_over_not_retried_forever(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    db = tmp_path / "j.db"
    runtime = open_runtime(db)
    try:
        publish(runtime, V1)
        runtime.store.put_app(APP)
        ids = sorted(dashboard_sessions(runtime, 7))
        # the last of the first batch of three, and the very last: both bodies garbage
        broken = {ids[2], ids[6]}
        with closing(sqlite3.connect(db)) as conn, conn:
            conn.executemany(
                "UPDATE sessions SET body = ? WHERE id = ?", [(b"{not json", i) for i in broken]
            )
        publish(runtime, V2)
        sweeper = sweeper_of(runtime, batch=3)
        with caplog.at_level(logging.ERROR, logger="juncture.sweep"):
            done = sweeper.run(sweeper.start("recheck", "manual"))
        assert (done.status, done.processed, done.skipped) == ("done", 7, 2)
        sound = runtime.store.get_sessions([i for i in ids if i not in broken]).values()
        lost = {s.id for s in sound if "dashboard" not in s.standing}
        off = {s.id for s in sound if s.observed.ip == "198.51.100.1"}
        assert len(off) >= 2 and lost == off and done.changed == len(off)
        assert sorted(r.getMessage().split()[3] for r in caplog.records) == sorted(broken)
    finally:
        runtime.close()
        runtime.store.close()
