"""Replay jobs on two real `juncture serve` nodes of one SQLite file: a job started on one is
read, progress and report, from the other; a second start anywhere while it runs is refused;
a job whose node was killed is reported `lost` (its heartbeat, pushed back through the store
as if `LOST_AFTER` had passed) and no longer holds the other node back.

The history is the recorded workforce morning (tests/replay_history.py), copied until a replay
of it takes seconds, long enough to be seen running."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from juncture.records import DecisionQuery
from juncture.replay_jobs import ReplayJob
from juncture.service.rehearsals import LOST_AFTER
from juncture.service.setup import tree_files
from juncture.store.sqlite import SqliteStore
from replay_history import V2, workforce_history
from service.server import Server

SINCE = "2026-11-30T00:00:00Z"
#: Copies of the 44 recorded decisions: about 30,000 records, a replay of seconds.
COPIES = 700


class Nodes(msgspec.Struct, kw_only=True):
    db: Path
    a: Server
    b: Server
    key: str
    v2: str


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    db = tmp_path_factory.mktemp("replay-nodes") / "j.db"
    workforce_history(db)
    with SqliteStore(db) as store:
        recorded = list(store.query(DecisionQuery(limit=1000)))
        copies = [msgspec.structs.replace(r, id=f"{r.id}-{n}")
                  for n in range(1, COPIES) for r in recorded]  # fmt: skip
        for start in range(0, len(copies), 5000):
            store.record(copies[start:start + 5000])
    a = Server(db, None).start()
    b = Server(db, None).start()
    try:
        key = Path(f"{db}.admin-token").read_text().strip()
        files = {n: base64.b64encode(c).decode() for n, c in tree_files(V2).items()}
        with a.client(key) as client:
            stored = client.post("/admin/v1/versions", json={"files_base64": files})
            assert stored.status_code == 201, stored.text
        yield Nodes(db=db, a=a, b=b, key=key, v2=stored.json()["id"])
    finally:
        a.stop()
        b.stop()


def node_of(server: Server) -> str:
    """A node's name in its jobs: its host and process id (service/clock.py)."""
    assert server.process is not None
    return f"{os.uname().nodename}:{server.process.pid}"


def until(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "never came"
        time.sleep(0.05)
    return found


def test_a_job_started_on_one_node_is_read_and_held_on_the_other(nodes: Nodes) -> None:
    on_a, on_b = nodes.a.client(nodes.key), nodes.b.client(nodes.key)
    started = on_a.post("/admin/v1/replays", json={"candidate": nodes.v2, "since": SINCE,
                                                   "fail_on": ["changed>0"]})  # fmt: skip
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["node"] == node_of(nodes.a)
    refused = on_b.post("/admin/v1/replays", json={"candidate": nodes.v2, "since": SINCE})
    assert (refused.status_code, refused.json()["code"]) == (409, "state.conflict")
    moving = until(lambda: (j := on_b.get(f"/admin/v1/replays/{job['id']}").json())[
        "processed"] > 0 and j)  # fmt: skip
    assert moving["status"] == "running", moving  # its progress, seen from the other node
    done = until(lambda: (j := on_b.get(f"/admin/v1/replays/{job['id']}").json())[
        "status"] != "running" and j)  # fmt: skip
    assert done["status"] == "done", done
    assert done["report"]["total"] == done["processed"] == 44 * COPIES
    assert done["report"]["changed"] == 17 * COPIES
    assert done["broken"] == [f"changed>0: {17 * COPIES}"]
    assert on_a.get(f"/admin/v1/replays/{job['id']}").json() == done  # the same everywhere
    listed = on_b.get("/admin/v1/replays").json()["replays"]
    assert listed[0]["id"] == job["id"] and listed[0]["report"] is None  # lists stay light


def test_a_node_whose_job_was_marked_lost_stops_it(nodes: Nodes) -> None:
    """A node that was silent too long (its job marked lost when another started) is refused
    its next write and stops: its job stays lost, never done behind the new one's back."""
    on_a = nodes.a.client(nodes.key)
    started = on_a.post("/admin/v1/replays", json={"candidate": nodes.v2, "since": SINCE})
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    other = ReplayJob(id="rp_other", by="ops", candidate=nodes.v2, against=None,
                      status="running", started_at=datetime.now(UTC), node="elsewhere:1",
                      updated_at=datetime.now(UTC))  # fmt: skip
    with SqliteStore(nodes.db) as store:  # as if A had not beaten for `LOST_AFTER`
        store.start_replay(other, lost_before=datetime.now(UTC) + timedelta(hours=1), keep=20)
    time.sleep(1.5)  # past A's next page and next beat
    lost = on_a.get(f"/admin/v1/replays/{job_id}").json()
    assert lost["status"] == "lost" and lost["report"] is None, lost
    assert "marked lost" in nodes.a.output.decode(errors="replace")
    with SqliteStore(nodes.db) as store:  # the other one ends: nothing runs any more
        assert store.update_replay(msgspec.structs.replace(other, status="done"))


def test_a_job_whose_node_was_killed_is_lost_and_holds_nothing(nodes: Nodes) -> None:
    on_a, on_b = nodes.a.client(nodes.key), nodes.b.client(nodes.key)
    started = on_a.post("/admin/v1/replays", json={"candidate": nodes.v2, "since": SINCE})
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    nodes.a.kill()  # mid-replay: it never writes again
    running = on_b.get(f"/admin/v1/replays/{job_id}").json()
    assert running["status"] == "running"  # its last heartbeat is fresh yet
    assert on_b.post("/admin/v1/replays", json={"candidate": nodes.v2}).status_code == 409
    with SqliteStore(nodes.db) as store:  # LOST_AFTER passes: the heartbeat is that old now
        job = store.get_replay(job_id)
        assert job is not None and job.updated_at is not None
        stale = job.updated_at - LOST_AFTER - timedelta(seconds=1)
        assert store.update_replay(msgspec.structs.replace(job, updated_at=stale))
    lost = on_b.get(f"/admin/v1/replays/{job_id}").json()
    assert lost["status"] == "lost" and lost["finished_at"] is None, lost
    assert [j["status"] for j in on_b.get("/admin/v1/replays").json()["replays"]
            if j["id"] == job_id] == ["lost"]  # fmt: skip
    again = on_b.post("/admin/v1/replays", json={"candidate": nodes.v2, "since": SINCE,
                                                 "checkpoint": "expenses:approve"})  # fmt: skip
    assert again.status_code == 202, again.text
    with SqliteStore(nodes.db) as store:
        marked = store.get_replay(job_id)
        assert marked is not None and marked.status == "lost"  # marked by the start
    done = until(lambda: (j := on_b.get(f"/admin/v1/replays/{again.json()['id']}").json())[
        "status"] != "running" and j)  # fmt: skip
    assert (done["status"], done["node"]) == ("done", node_of(nodes.b))
