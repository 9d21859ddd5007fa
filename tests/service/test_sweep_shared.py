"""Many nodes share a sweep run (service/sweep.py): each takes batches under a lease stored in
the run, no batch is taken twice, a batch whose node died is taken over after its lease, and
every session is re-checked and told once. Real stores, SQLite and PostgreSQL, in process:
each "node" is its own runtime over the same data."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace

from juncture.records import StoredProof, SweepLease, SweepRun
from juncture.service.runtime import Runtime
from juncture.service.setup import open_store
from juncture.service.sweep import TAIL, Sweeper

from .test_sweep_http import V1, V2
from .test_sweep_resume import APP, NOW, publish


class Clock:
    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "j.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


class Nodes:
    """Runtimes over one database, each with its own sweeper (its own node name)."""

    def __init__(self, db: str, clock: Clock) -> None:
        self.db, self.clock = db, clock
        self.runtimes: list[Runtime] = []
        self.told: list[str] = []
        self._lock = threading.Lock()

    def node(self, *, batch: int, lease: timedelta = timedelta(seconds=30)) -> Sweeper:
        runtime = Runtime(open_store(self.db), now=self.clock, log_interval=0.01)
        runtime.emitter.listen(self._tell)
        self.runtimes.append(runtime)
        return Sweeper(runtime.store, runtime.now, runtime.policies, runtime.decisions,
                       runtime.changes, runtime.emitter, batch=batch, lease=lease)  # fmt: skip

    def _tell(self, kind: str, session: Any, details: Any) -> None:
        with self._lock:
            self.told.append(session.subject_id)

    def close(self) -> None:
        for runtime in self.runtimes:
            runtime.close()
            runtime.store.close()


@pytest.fixture
def nodes(database: str) -> Iterator[Nodes]:
    made = Nodes(database, Clock())
    yield made
    made.close()


def prepare(nodes: Nodes, count: int) -> tuple[Runtime, set[str]]:
    """V1 published, ``count`` sessions with a standing dashboard allow (every other one off
    the corporate network), then V2 (off the network: no dashboard); the first runtime, and
    the subjects V2 takes the dashboard from."""
    nodes.node(batch=1)
    runtime = nodes.runtimes[0]
    publish(runtime, V1)
    runtime.store.put_app(APP)
    off = set()
    for i in range(count):
        ip = "10.1.1.1" if i % 2 else "198.51.100.1"
        outcome = runtime.sessions.start(
            APP, {"id": f"user{i}"}, {"network": {"ip": ip}},
            [StoredProof(method="password", at=NOW, asserted_by=APP.id)],
        )  # fmt: skip
        assert outcome.session is not None
        runtime.decisions.decide(APP, "dashboard", {}, session_id=outcome.session.id)
        if not i % 2:
            off.add(f"user{i}")
    publish(runtime, V2)
    return runtime, off


def dashboards_left(runtime: Runtime) -> set[str]:
    return {
        s.subject_id for s in runtime.store.list_sessions(limit=1000) if "dashboard" in s.standing
    }


def test_two_nodes_taking_turns_share_the_batches(nodes: Nodes) -> None:
    runtime, off = prepare(nodes, 9)
    a, b = nodes.node(batch=2), nodes.node(batch=2)
    run = a.start("recheck", "test")
    steps: list[str] = []
    while run.status == "running":
        for name, sweeper in (("a", a), ("b", b)):
            before = run.revision
            run = sweeper.step(run)
            if run.revision != before:
                steps.append(name)
    assert (run.status, run.processed, run.changed, run.leases) == ("done", 9, len(off), ())
    assert "a" in steps and "b" in steps  # both took batches
    assert sorted(nodes.told) == sorted(off)  # each changed session told once
    assert dashboards_left(runtime) == {f"user{i}" for i in range(9)} - off


def test_nodes_running_at_once_recheck_every_session_once(nodes: Nodes) -> None:
    runtime, off = prepare(nodes, 40)
    sweepers = [nodes.node(batch=3) for _ in range(3)]
    run = sweepers[0].start("recheck", "test")
    done: list[Any] = []
    errors: list[BaseException] = []

    def work(sweeper: Sweeper) -> None:
        try:
            done.append(sweeper.run(run))
        except BaseException as exc:  # the test fails on it below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in sweepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    final = runtime.store.get_sweep(run.id)
    assert final is not None
    assert (final.status, final.processed, final.changed, final.leases) == (
        "done", 40, len(off), ()
    )  # fmt: skip
    assert sorted(nodes.told) == sorted(off)
    assert dashboards_left(runtime) == {f"user{i}" for i in range(40)} - off


def test_a_batch_whose_node_died_is_taken_over_after_its_lease(nodes: Nodes) -> None:
    runtime, off = prepare(nodes, 6)
    dead = nodes.node(batch=4, lease=timedelta(seconds=30))
    alive = nodes.node(batch=4)
    run = dead.start("recheck", "test")
    run, lease, page = dead.take(run)  # took the first batch, then died
    assert lease is not None and page is not None and lease.rows == 4
    run = alive.step(run)  # the second (last) batch: the dead node's lease still runs
    assert (run.status, run.processed, len(run.leases)) == ("running", 2, 1)
    assert alive.step(run).revision == run.revision  # nothing free: the lease runs on
    nodes.clock.at = NOW + timedelta(seconds=31)
    run = alive.step(run)  # taken over, decided, finished
    assert (run.status, run.processed, run.changed, run.leases) == ("done", 6, len(off), ())
    assert sorted(nodes.told) == sorted(off)
    assert dashboards_left(runtime) == {f"user{i}" for i in range(6)} - off


def test_a_late_node_finishing_a_batch_taken_over_counts_nothing_twice(nodes: Nodes) -> None:
    runtime, off = prepare(nodes, 4)
    slow = nodes.node(batch=10, lease=timedelta(seconds=30))
    other = nodes.node(batch=10)
    run = slow.start("recheck", "test")
    _, lease, page = slow.take(run)
    assert lease is not None and page is not None
    nodes.clock.at = NOW + timedelta(seconds=31)
    stored = runtime.store.get_sweep(run.id)
    assert stored is not None
    run = other.step(stored)  # takes the lapsed batch over and finishes the run
    assert (run.status, run.processed, run.changed) == ("done", 4, len(off))
    # The slow node comes back and finishes what it had: its writes find the sessions
    # changed (nothing written twice) and its lease gone (nothing counted twice).
    changed = slow._sweep(run, page)
    assert changed == 0
    after = slow._finish(run, lease, changed, 0)
    assert (after.processed, after.changed, after.revision) == (4, len(off), run.revision)
    assert sorted(nodes.told) == sorted(off)




def test_near_the_end_a_batch_is_half_of_what_is_left(nodes: Nodes) -> None:
    sweeper = nodes.node(batch=2000)
    run = SweepRun(id="sw", reason="test", version="v", started_at=NOW, updated_at=NOW,
                   total=10_000)  # fmt: skip
    assert sweeper.size(run) == 2000
    held = SweepLease(start=None, end="s", rows=6000, node="n", until=NOW)
    assert sweeper.size(replace(run, processed=2000, leases=(held,))) == 1000  # 2,000 left
    assert sweeper.size(replace(run, processed=9700)) == TAIL  # 300 left: never under TAIL
    assert sweeper.size(replace(run, processed=10_500)) == TAIL  # more than counted at start
    assert nodes.node(batch=3).size(replace(run, processed=9999)) == 3  # never over the batch
