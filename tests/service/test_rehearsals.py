"""A rehearsal reads what this node has answered, its buffered decision records included: the
publish gate and a replay job write the decision log out first (service/rehearsals.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from juncture.errors import StateConflict
from juncture.records import App, StoredProof
from juncture.service.rehearsals import PublishGate, ReplayRequest
from juncture.service.runtime import Runtime
from juncture.store.postgres import PostgresStore
from juncture.store.sqlite import SqliteStore

from .test_shadow_http import ACTIVE, CANDIDATE

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
WEB = App(id="app_web", name="web", created_at=NOW, assertable_methods=("password",))


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime whose decision log is written once a minute: nothing in this test's time but
    what a rehearsal writes out itself."""
    made = Runtime(
        SqliteStore(tmp_path / "j.db"), now=lambda: NOW, log_interval=60,
        publish_gate=PublishGate(rules=["changed>0"]),
    )  # fmt: skip
    try:
        yield made
    finally:
        made.shutdown()


def upload(runtime: Runtime, text: str) -> str:
    version, problems, _ = runtime.policies.upload({"acct.yaml": text.encode()}, author="ops")
    assert version is not None, problems
    return version


def answered_reads(runtime: Runtime, count: int) -> None:
    runtime.policies.activate(upload(runtime, ACTIVE), by="ops")
    runtime.store.put_app(WEB)
    started = runtime.sessions.start(
        WEB, {"id": "alice"}, {}, [StoredProof(method="password", at=NOW, asserted_by=WEB.id)]
    )
    assert started.session is not None, started.decision
    for _ in range(count):
        answer = runtime.decisions.decide(WEB, "read", {}, session_id=started.session.id)
        assert answer.decision.outcome == "allow", answer.decision


def test_the_publish_gate_replays_the_decisions_answered_a_moment_ago(runtime: Runtime):
    answered_reads(runtime, 3)
    candidate = upload(runtime, CANDIDATE)  # `read` revokes
    with pytest.raises(StateConflict) as refused:
        runtime.versions.publish(candidate, "ops")
    assert refused.value.code == "version.rehearsal_failed"
    assert refused.value.extra["broken"] == ["changed>0: 3"]
    assert runtime.store.active_version_id() != candidate


def test_a_replay_job_replays_the_decisions_answered_a_moment_ago(runtime: Runtime):
    answered_reads(runtime, 2)
    candidate = upload(runtime, CANDIDATE)
    job = runtime.replays.start(ReplayRequest(candidate=candidate), by="ops")
    deadline = time.monotonic() + 10
    while (job := runtime.replays.get(job.id)).status == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.01)
    assert job.status == "done" and job.report is not None, job
    assert (job.report["total"], job.report["changed"]) == (3, 2)  # the login, two reads


def test_two_runtimes_of_one_postgresql_database_share_their_replay_jobs(postgres_server: Any):
    """Two nodes of one database: a job started on one is read on the other, which is
    refused a second while it runs; its end is read everywhere (the store holds it)."""
    url = postgres_server.create_database()
    nodes = [Runtime(PostgresStore(url), now=lambda: NOW, log_interval=60) for _ in range(2)]
    first, second = nodes
    first.replays.node, second.replays.node = "node-a", "node-b"  # one process here: named
    try:
        answered_reads(first, 2)
        candidate = upload(first, CANDIDATE)
        job = first.replays.start(ReplayRequest(candidate=candidate), by="ops")
        assert second.replays.get(job.id).node == "node-a"
        with pytest.raises(StateConflict):
            second.replays.start(ReplayRequest(candidate=candidate), by="ops")
        deadline = time.monotonic() + 10
        while (seen := second.replays.get(job.id)).status == "running":
            assert time.monotonic() < deadline, seen
            time.sleep(0.01)
        assert seen.status == "done" and seen.report is not None, seen
        assert (seen.report["total"], seen.report["changed"]) == (3, 2)
        assert [j.id for j in second.replays.list()] == [job.id]
        again = second.replays.start(ReplayRequest(candidate=candidate), by="ops")
        while (seen := first.replays.get(again.id)).status == "running":
            assert time.monotonic() < deadline, seen
            time.sleep(0.01)
        assert (seen.node, seen.status) == ("node-b", "done")
    finally:
        for node in nodes:
            node.shutdown()
