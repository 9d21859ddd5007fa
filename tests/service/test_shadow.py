"""The shadow runner's failures stay its own: a version that does not compile, a full queue, a
store that fails; each is counted, none reaches a caller (service/shadow.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from juncture.engine import Facts, evaluate
from juncture.policy.compile import compile_plan
from juncture.policy.loader import load_sources
from juncture.records import PolicyVersion
from juncture.service.policies import PolicyRegistry
from juncture.service.shadow import ShadowJob, ShadowRunner
from juncture.store.sqlite import SqliteStore

from .test_shadow_http import ACTIVE, CANDIDATE

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "j.db")
    try:
        yield opened
    finally:
        opened.close()


def stored(store: SqliteStore, text: str) -> str:
    files = {"acct.yaml": text.encode()}
    try:
        version_id = compile_plan(load_sources(files)).version
    except Exception:  # a bundle that does not compile: stored under a name of its own
        version_id = "sha256:broken"
    store.put_version(PolicyVersion(id=version_id, files=files, author="t", created_at=NOW))
    return version_id


def job(shadow_version: str, action: str = "read", decision_id: str = "d_1") -> ShadowJob:
    plan = compile_plan(load_sources({"acct.yaml": ACTIVE.encode()}))
    facts = Facts.from_document(
        {"app": "web", "subject": {"type": "user", "id": "alice"}, "action": {"name": action}}
    )
    decision = evaluate(plan, action, facts, NOW, decision_id=decision_id)
    return ShadowJob(
        shadow_version=shadow_version, decision=decision, facts=facts, at=NOW, app="web",
        subject_type="user", subject_id="alice", session_id=None, allowed_journeys=None,
        guard_only=False,
    )  # fmt: skip


def test_a_shadow_version_that_does_not_compile_is_an_error_recorded(store: SqliteStore):
    runner = ShadowRunner(store, PolicyRegistry(store, lambda: NOW))
    broken = stored(store, "journey: [not, a, journey")
    runner.offer(job(broken))
    assert runner.settle()
    assert runner.stats.transitions == {"allow->error": 1} and runner.stats.errors == 1
    (record,) = store.shadow_records(broken)
    assert record.transition == "allow->error" and record.shadow == {"outcome": "error"}
    assert record.error is not None and "cannot be compiled" in record.error
    runner.close()


def test_a_full_queue_drops_and_counts(store: SqliteStore):
    runner = ShadowRunner(store, PolicyRegistry(store, lambda: NOW), queue=0)
    runner.offer(job(stored(store, CANDIDATE)))
    assert runner.stats.dropped == 1 and runner.stats.transitions == {}
    assert runner.waiting() == 0
    runner.close()


def test_a_store_that_fails_loses_the_records_and_counts_them(tmp_path: Path):
    store = SqliteStore(tmp_path / "j.db")
    policies = PolicyRegistry(store, lambda: NOW)
    candidate = stored(store, CANDIDATE)
    policies.plan(candidate)  # compiled while the store was there
    runner = ShadowRunner(store, policies)
    store.close()
    runner.offer(job(candidate))
    assert runner.settle()
    assert runner.stats.transitions == {"allow->revoke": 1} and runner.stats.unrecorded == 1
    assert runner.installed("sha256:active") is None  # a store that cannot say: no shadow
    runner.close()
    runner.offer(job(candidate))  # closed: nothing more is taken
    assert runner.waiting() == 0 and runner.stats.transitions == {"allow->revoke": 1}


def test_on_an_event_loop_the_shadow_decides_between_its_turns_and_records_on_a_thread(
    store: SqliteStore,
):
    """`attach` (the server's loop): decisions queued on the loop and from a thread are decided
    by the loop, no thread of the runner's own is started, the differences are recorded."""
    import asyncio
    import threading

    runner = ShadowRunner(store, PolicyRegistry(store, lambda: NOW), record_rate=0)
    candidate = stored(store, CANDIDATE)
    same = stored(store, ACTIVE.replace("read: [{allow: {}}]", "read: [{allow: {ttl: 1h}}]"))

    async def serve() -> tuple[int, list[str]]:
        runner.attach(asyncio.get_running_loop())
        for n in range(300):  # more than a batch: the rest is decided at the next turn
            runner.offer(job(candidate, decision_id=f"d_{n}"))
        waiting = runner.waiting()
        other = threading.Thread(target=lambda: [runner.offer(job(same)) for _ in range(5)])
        other.start()
        other.join()
        while runner.waiting():
            await asyncio.sleep(0.01)
        return waiting, [t.name for t in threading.enumerate()]

    waiting, threads = asyncio.run(serve())
    assert waiting == 300  # nothing decided on the decision's own turn
    assert runner.stats.transitions == {"allow->revoke": 300, "allow->allow": 5}
    assert len(store.shadow_records(candidate, limit=1000)) == 300
    assert store.shadow_records(same) == []
    assert "juncture-shadow" not in threads
    runner.close()


def test_closed_on_its_loop_the_shadow_decides_what_is_queued_there_and_then(store: SqliteStore):
    import asyncio

    runner = ShadowRunner(store, PolicyRegistry(store, lambda: NOW))
    candidate = stored(store, CANDIDATE)

    async def serve() -> None:
        runner.attach(asyncio.get_running_loop())
        runner.offer(job(candidate, decision_id="d_1"))
        runner.offer(job(candidate, decision_id="d_2"))
        runner.close()  # before the loop's turn: decided here

    asyncio.run(serve())
    assert runner.stats.transitions == {"allow->revoke": 2} and runner.waiting() == 0
    assert len(store.shadow_records(candidate)) == 2
    runner.offer(job(candidate))  # closed: nothing more is taken
    assert runner.waiting() == 0


def test_differences_past_the_record_rate_are_counted_not_recorded(store: SqliteStore):
    """A token bucket of a second's worth: 3 a second records 3 at once, then one a third of
    a second; every decision is counted by its transition all the same."""
    clock = [100.0]
    runner = ShadowRunner(
        store, PolicyRegistry(store, lambda: NOW), record_rate=3, clock=lambda: clock[0]
    )
    candidate = stored(store, CANDIDATE)
    same = stored(store, ACTIVE.replace("read: [{allow: {}}]", "read: [{allow: {ttl: 1h}}]"))
    for n in range(5):
        runner.offer(job(candidate, decision_id=f"d_{n}"))
    runner.offer(job(same))  # equal: neither recorded nor over the rate
    assert runner.settle()
    assert runner.stats.transitions == {"allow->revoke": 5, "allow->allow": 1}
    assert runner.stats.over_rate == 2
    assert [r.decision_id for r in store.shadow_records(candidate)] == ["d_2", "d_1", "d_0"]
    clock[0] += 0.34  # a token again, one only
    for n in range(5, 7):
        runner.offer(job(candidate, decision_id=f"d_{n}"))
    assert runner.settle()
    assert runner.stats.over_rate == 3
    assert len(store.shadow_records(candidate)) == 4
    clock[0] += 60  # never more than a second's worth
    for n in range(7, 12):
        runner.offer(job(candidate, decision_id=f"d_{n}"))
    assert runner.settle()
    assert runner.stats.over_rate == 5 and len(store.shadow_records(candidate)) == 7
    runner.close()


def test_a_record_rate_below_one_still_records_and_a_negative_one_is_refused(
    store: SqliteStore,
):
    clock = [0.0]
    runner = ShadowRunner(
        store, PolicyRegistry(store, lambda: NOW), record_rate=0.5, clock=lambda: clock[0]
    )
    candidate = stored(store, CANDIDATE)
    runner.offer(job(candidate, decision_id="d_1"))
    runner.offer(job(candidate, decision_id="d_2"))
    assert runner.settle()
    assert runner.stats.over_rate == 1
    clock[0] += 2  # one every two seconds
    runner.offer(job(candidate, decision_id="d_3"))
    assert runner.settle()
    assert [r.decision_id for r in store.shadow_records(candidate)] == ["d_3", "d_1"]
    runner.close()
    with pytest.raises(ValueError, match="record rate"):
        ShadowRunner(store, PolicyRegistry(store, lambda: NOW), record_rate=-1)


def test_a_checkpoint_the_shadow_left_as_it_was_is_counted_equal_without_deciding(
    store: SqliteStore,
):
    """The same journey, checkpoint and fingerprint: the same answer whatever the facts, so it
    is counted equal and not evaluated; a checkpoint of its own for the action, or a changed
    guard (part of every checkpoint's fingerprint), is decided again."""
    policies = PolicyRegistry(store, lambda: NOW)
    active = stored(store, ACTIVE)
    login_only = stored(store, ACTIVE.replace(
        "login: [{require: {any: [password]}}, {allow: {}}]",
        "login: [{require: {any: [password]}}, {deny: closed}]",
    ))  # fmt: skip
    own_checkpoint = stored(store, ACTIVE.replace(
        '"*": [{deny: unknown_action}]', 'delete: [{allow: {}}]\n  "*": [{deny: unknown_action}]'
    ))  # fmt: skip
    guarded = stored(store, ACTIVE.replace(
        "checkpoints:", 'guard:\n  - if: "false"\n    then: [{deny: never}]\ncheckpoints:'
    ))  # fmt: skip
    for version in (active, login_only, own_checkpoint, guarded):
        policies.plan(version)  # each compiles
    runner = ShadowRunner(store, policies)
    runner.offer(job(login_only, "read"))
    runner.offer(job(login_only, "delete"))  # the `*` checkpoint, unchanged too
    assert runner.settle()
    assert runner.stats.transitions == {"allow->allow": 1, "deny->deny": 1}
    assert runner.stats.unchanged == 2
    runner.offer(job(own_checkpoint, "delete", decision_id="d_own"))
    runner.offer(job(guarded, "read"))
    assert runner.settle()
    assert runner.stats.unchanged == 2  # both decided again
    assert runner.stats.transitions == {"allow->allow": 2, "deny->deny": 1, "deny->allow": 1}
    (record,) = store.shadow_records(own_checkpoint)
    assert record.decision_id == "d_own" and record.shadow["checkpoint"] == "delete"
    runner.close()
