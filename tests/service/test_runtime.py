"""The runtime without HTTP: what happens when the store is gone or nothing is published."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec

from juncture.records import App
from juncture.service.ids import new_id, new_key, secret_matches, split_key
from juncture.service.runtime import Runtime
from juncture.store.sqlite import SqliteStore

NOW = datetime(2026, 11, 29, 10, tzinfo=UTC)
APP = App(id="app_1", name="web", created_at=NOW)


def test_no_published_version_denies(tmp_path: Path):
    runtime = Runtime(SqliteStore(tmp_path / "r.db"), now=lambda: NOW, log_interval=0.01)
    try:
        decision = runtime.decisions.decide(APP, "login", {}).decision
        assert (decision.outcome, decision.reason) == ("deny", "unavailable.no_version")
    finally:
        runtime.close()
        runtime.store.close()


def test_an_unavailable_store_denies_never_allows(tmp_path: Path):
    store = SqliteStore(tmp_path / "r.db")
    runtime = Runtime(store, now=lambda: NOW, log_interval=0.01)
    version, _, _ = runtime.policies.upload(
        {"j.yaml": b"journey: j\ncheckpoints: {a: [{allow: {}}]}\n"}, author="t"
    )
    assert version is not None
    runtime.policies.activate(version, by="t")
    assert runtime.decisions.decide(APP, "a", {}).decision.outcome == "allow"
    store.close()  # the store is gone: every later call fails
    decision = runtime.decisions.decide(APP, "a", {}).decision
    assert (decision.outcome, decision.reason) == ("deny", "unavailable.store")
    runtime.close()


def test_keys_and_ids():
    key, prefix, digest = new_key("app")
    parts = split_key(key)
    assert parts is not None and parts[0] == prefix
    assert secret_matches(parts[1], digest)
    assert not secret_matches(parts[1] + "x", digest)
    assert split_key("nope") is None and split_key("jct_app_x.") is None
    assert len({new_id("d") for _ in range(1000)}) == 1000


def test_retention_purges_old_decision_records(tmp_path: Path):
    from datetime import timedelta

    from juncture.records import DecisionQuery

    clock = [NOW]
    store = SqliteStore(tmp_path / "r.db")
    runtime = Runtime(store, now=lambda: clock[0], log_interval=3600, retention=timedelta(days=1))
    try:
        version, _, _ = runtime.policies.upload(
            {"j.yaml": b"journey: j\ncheckpoints: {a: [{allow: {}}]}\n"}, author="t"
        )
        assert version is not None
        runtime.policies.activate(version, by="t")
        runtime.decisions.decide(APP, "a", {})
        runtime.log.writer.flush()
        assert runtime.log.writer.purge() == 0  # nothing old yet
        clock[0] = NOW + timedelta(seconds=30)
        assert runtime.log.writer.purge() == 0  # at most once a minute
        clock[0] = NOW + timedelta(days=2)
        assert runtime.log.writer.purge() == 1
        assert store.query(DecisionQuery()) == []
    finally:
        runtime.close()
        store.close()


def test_records_pending_for_an_unavailable_store_are_bounded(tmp_path: Path, monkeypatch):
    from juncture.records import DecisionRecord
    from juncture.service import decision_log as runtime_module
    from juncture.service.decision_log import DecisionLogWriter

    monkeypatch.setattr(runtime_module, "MAX_PENDING_RECORDS", 3)
    store = SqliteStore(tmp_path / "r.db")
    writer = DecisionLogWriter(store, interval=3600)
    store.close()  # every write now fails
    try:
        for i in range(5):
            writer.add(
                DecisionRecord(
                    id=f"d{i}",
                    at=NOW,
                    app=None,
                    subject_type=None,
                    subject_id=None,
                    session_id=None,
                    action="a",
                    resource=None,
                    outcome="deny",
                    reason=None,
                    version="v",
                    latency_us=1,
                    decision={},
                )
            )
        writer.flush()
        kept = [msgspec.json.decode(head)[0] for head, _ in writer._buffer]
        assert kept == ["d2", "d3", "d4"]  # the newest kept
    finally:
        writer._stop = True
        writer._wake.set()
        writer._thread.join(5)


def test_a_reader_flushing_while_the_writer_writes_waits_for_that_write(tmp_path: Path):
    """The writer's thread has taken the buffer and is writing it when a reader flushes: the
    reader's flush finds the buffer empty, and must still return only once the write is
    done, or its query misses the decisions answered before it asked."""
    import threading

    from juncture.records import DecisionQuery, DecisionRecord
    from juncture.service.decision_log import DecisionLogWriter

    writing, release = threading.Event(), threading.Event()

    class SlowStore(SqliteStore):
        def record_prepared(self, batch):  # type: ignore[no-untyped-def]
            writing.set()
            assert release.wait(10)
            super().record_prepared(batch)

    store = SlowStore(tmp_path / "r.db")
    writer = DecisionLogWriter(store, interval=3600, max_batch=1)  # one record wakes it
    record = DecisionRecord(
        id="d1", at=NOW, app=None, subject_type=None, subject_id=None, session_id=None,
        action="a", resource=None, outcome="deny", reason=None, version="v", latency_us=1,
        decision={},
    )  # fmt: skip
    found: list[list[str]] = []
    try:
        writer.add(record)
        assert writing.wait(10)  # the writer's thread holds the record, mid-write
        reader = threading.Thread(
            target=lambda: found.append([r.id for r in writer.query(DecisionQuery())])
        )
        reader.start()
        reader.join(0.3)
        assert reader.is_alive() and found == []  # waits for the write under way
        release.set()
        reader.join(10)
        assert found == [["d1"]]
    finally:
        release.set()
        writer.close()
        store.close()
