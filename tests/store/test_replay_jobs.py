"""Replay jobs and app binding histories in the store (`ReplayJobStore`, `AppStore`), on
every backend: one job running at a time whatever the handle (a unique index), a stale one
marked lost when the next starts, the finished ones beyond those kept deleted, a lost job's
node refused its writes, lists without reports; an app's journeys kept over time."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from juncture.replay_jobs import ReplayJob
from juncture.store.protocols import ConflictError, Store

from .conftest import Backend
from .test_contract import at, make_app, make_key

SAMPLE = {"id": "d1", "facts": {"x": 1}}
REPORT = {"total": 3, "table": [{"checkpoint": "read", "old": "allow", "new": "deny",
                                 "count": 3, "samples": [SAMPLE]}]}  # fmt: skip


def make_job(n: int, **changes: Any) -> ReplayJob:
    job = ReplayJob(id=f"rp{n:03d}", by="ops", candidate="sha256:v2", against=None,
                    status="running", started_at=at(n), node="node-a", updated_at=at(n),
                    since=at(-86400), rules=["changed>0"])  # fmt: skip
    return msgspec.structs.replace(job, **changes)


def finish(store: Store, job: ReplayJob, seconds: float) -> ReplayJob:
    done = msgspec.structs.replace(job, status="done", updated_at=at(seconds),
                                   finished_at=at(seconds), processed=3, report=REPORT,
                                   broken=["changed>0: 3"])  # fmt: skip
    assert store.update_replay(done)
    return done


def test_a_job_round_trips_its_progress_and_report(store: Store):
    job = make_job(1)
    store.start_replay(job, lost_before=at(-30), keep=20)
    assert store.get_replay(job.id) == job
    moving = msgspec.structs.replace(job, processed=1000, updated_at=at(3))
    assert store.update_replay(moving)
    assert store.get_replay(job.id) == moving
    done = finish(store, moving, 5)
    assert store.get_replay(job.id) == done
    assert store.list_replays() == [msgspec.structs.replace(done, report=None)]  # light
    assert not store.update_replay(done)  # finished: no more writes
    assert store.get_replay("rp404") is None


def test_one_job_runs_at_a_time_and_a_stale_one_is_marked_lost(store: Store):
    store.start_replay(make_job(1), lost_before=at(-30), keep=20)
    with pytest.raises(ConflictError):  # its heartbeat (at 1) is not older than at(0)
        store.start_replay(make_job(2), lost_before=at(0), keep=20)
    assert store.get_replay("rp002") is None  # nothing stored
    store.start_replay(make_job(40), lost_before=at(10), keep=20)  # rp001's node died
    assert store.get_replay("rp001").status == "lost"
    assert not store.update_replay(make_job(1, processed=5))  # its node is refused
    assert [(j.id, j.status) for j in store.list_replays()] == [
        ("rp040", "running"), ("rp001", "lost")]  # fmt: skip


def test_two_handles_starting_at_once_run_one(backend: Backend):
    stores = [backend.open() for _ in range(2)]
    try:
        results: list[str] = []
        barrier = threading.Barrier(len(stores) * 4)

        def start(store: Store, n: int) -> None:
            barrier.wait()
            try:
                store.start_replay(make_job(n), lost_before=at(-30), keep=20)
                results.append("started")
            except ConflictError:
                results.append("refused")

        threads = [threading.Thread(target=start, args=(stores[n % 2], n)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == ["refused"] * 7 + ["started"]
        assert [j.status for j in stores[0].list_replays()] == ["running"]
    finally:
        for store in stores:
            store.close()


def test_the_newest_finished_jobs_are_kept(store: Store):
    for n in range(1, 6):
        store.start_replay(make_job(n), lost_before=at(-30), keep=3)
        finish(store, make_job(n), n + 0.5)
    running = make_job(6)
    store.start_replay(running, lost_before=at(-30), keep=3)
    assert [j.id for j in store.list_replays()] == ["rp006", "rp005", "rp004", "rp003"]
    assert [j.id for j in store.list_replays(limit=2)] == ["rp006", "rp005"]


def test_an_apps_journeys_are_kept_over_time(store: Store):
    app = make_app("shop", "jct_app_1")
    store.put_app(app)
    store.put_app(msgspec.structs.replace(app, keys=(make_key("jct_app_2"),)), at=at(5))
    rebound = msgspec.structs.replace(app, journeys=("shop", "admin"))
    store.put_app(rebound, at=at(10))
    store.put_app(rebound, at=at(20))  # the same journeys: no new binding
    store.put_app(msgspec.structs.replace(app, journeys=()), at=at(30))
    history = [(b.journeys, b.since) for b in store.app_bindings("shop")]
    assert history == [(("shop",), app.created_at), (("shop", "admin"), at(10)), ((), at(30))]
    assert all(b.app == "shop" for b in store.app_bindings("shop"))
    assert store.app_bindings("nothing") == []


def test_a_change_without_a_time_is_bound_from_the_write(store: Store):
    app = make_app("shop")
    store.put_app(app)
    store.put_app(msgspec.structs.replace(app, journeys=("other",)))
    first, second = store.app_bindings("shop")
    assert first.since == app.created_at and second.journeys == ("other",)
    assert second.since > at(0) + timedelta(days=1)  # now, not the app's creation
