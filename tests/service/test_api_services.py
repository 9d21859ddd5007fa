"""The services the API reaches the store through (apps, versions and sweeps, streams, health,
the decision log's reads): their answers and their refusals, in the one error tree."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from juncture.errors import NotFoundError, RequestError, StateConflict
from juncture.records import DecisionQuery, OutboxItem, ReceivedEvent, Stream, StreamDelivery
from juncture.service.ids import split_key
from juncture.service.receive import ReceiveSettings, TransmitterEntry
from juncture.service.runtime import Runtime
from juncture.store.sqlite import SqliteStore

from .test_sweep_resume import RISKY

NOW = datetime(2026, 11, 29, 10, tzinfo=UTC)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    made = Runtime(SqliteStore(tmp_path / "j.db"), now=lambda: NOW, log_interval=0.01)
    yield made
    made.shutdown()


def test_apps_are_found_by_a_live_key_only(runtime: Runtime):
    app, key = runtime.apps.create("desk", ["desk"], [])
    parts = split_key(key)
    assert parts is not None
    prefix, secret = parts
    assert runtime.apps.app_for_key(prefix, secret) == app
    assert runtime.apps.app_for_key(prefix, secret + "x") is None
    assert runtime.apps.admin_for_key(prefix, secret) is None  # an app key is no admin key
    rotated, new_key = runtime.apps.rotate_key(app.id, timedelta(0))
    assert len(rotated.keys) == 2 and new_key != key
    assert [a.id for a in runtime.apps.list()] == [app.id]
    with pytest.raises(NotFoundError) as missing:
        runtime.apps.rotate_key("app_nope", timedelta(0))
    assert (missing.value.status, missing.value.code) == (404, "app.not_found")


def test_publish_is_activate_and_a_publish_sweep_in_one_call(runtime: Runtime):
    version, _, _ = runtime.policies.upload({"desk.yaml": RISKY.encode()}, author="t")
    assert version is not None
    run = runtime.versions.publish(version, "alice")
    assert (run.kind, run.reason, run.version) == ("publish", f"publish {version}", version)
    assert runtime.health.active_version() == version
    assert runtime.versions.resolve(version[len("sha256:") :][:12]) == version
    assert runtime.versions.sweep_run(run.id) == run
    assert [r.id for r in runtime.versions.sweeps()] == [run.id]
    manual = runtime.versions.sweep("alice")
    assert (manual.kind, manual.reason) == ("recheck", "manual by alice")


def test_publish_refuses_to_take_away_what_is_in_use(runtime: Runtime):
    version, _, _ = runtime.policies.upload({"desk.yaml": RISKY.encode()}, author="t")
    assert version is not None
    runtime.versions.publish(version, "t")
    app, _ = runtime.apps.create("desk", ["desk"], [])
    runtime.decisions.decide(app, "dashboard", {"subject": {"id": "ana"}})
    runtime.log.writer.flush()
    smaller = RISKY.replace('    - allow: {scopes: ["dashboard:read"], ttl: 1h}\n', "")
    smaller = smaller.replace("  dashboard:\n    - if", "  portal:\n    - if")
    other, problems, _ = runtime.policies.upload({"desk.yaml": smaller.encode()}, author="t")
    assert other is not None, problems
    with pytest.raises(StateConflict) as refused:
        runtime.versions.publish(other, "t")
    assert (refused.value.status, refused.value.code) == (409, "version.removes_used")
    assert refused.value.extra["removals"]
    assert runtime.health.active_version() == version  # nothing changed
    assert runtime.versions.publish(other, "t", allow_removal=True).kind == "publish"


def test_what_is_not_there_is_a_not_found_with_its_own_code(runtime: Runtime):
    for call, code in [
        (lambda: runtime.versions.resolve("deadbeef"), "version.not_found"),
        (lambda: runtime.versions.get("sha256:nope"), "version.not_found"),
        (lambda: runtime.versions.compare("sha256:a", "sha256:b"), "version.not_found"),
        (lambda: runtime.versions.publish("sha256:nope", "t"), "version.not_found"),
        (lambda: runtime.versions.sweep_run("sw_nope"), "sweep.not_found"),
    ]:
        with pytest.raises(NotFoundError) as missing:
            call()
        assert (missing.value.status, missing.value.code) == (404, code)


def test_a_stream_is_its_apps_alone_and_a_lost_race_is_a_conflict(runtime: Runtime):
    desk, _ = runtime.apps.create("desk", [], [])
    other, _ = runtime.apps.create("other", [], [])
    stream = runtime.streams.create(
        Stream(id="st_1", app=desk.id, iss="https://j", aud=(desk.id,), created_at=NOW,
               updated_at=NOW, delivery_method="urn:ietf:rfc:8936", endpoint_url="https://j/p")
    )  # fmt: skip
    assert runtime.streams.own(desk, "st_1") == stream
    with pytest.raises(NotFoundError) as missing:
        runtime.streams.own(other, "st_1")
    assert missing.value.code == "stream.not_found"
    runtime.streams.update(stream, read=stream)
    with pytest.raises(StateConflict) as lost:
        runtime.streams.update(stream, read=stream)  # the revision read is gone
    assert (lost.value.status, lost.value.code) == (409, "state.conflict")


def test_the_health_reads_and_a_cursor_naming_no_decision(runtime: Runtime):
    assert runtime.health.active_version() is None
    assert runtime.health.writes_refused() is None
    assert runtime.health.active_sessions() == 0
    with pytest.raises(RequestError) as wrong:
        runtime.log.writer.query(DecisionQuery(before="d_nope"))
    assert (wrong.value.status, wrong.value.code) == (400, "request.invalid")


def test_the_console_reads_every_stream_its_delivery_and_what_was_received(runtime: Runtime):
    desk, _ = runtime.apps.create("desk", [], [])
    other, _ = runtime.apps.create("other", [], [])
    made = [
        runtime.streams.create(
            Stream(
                id=f"st_{n}",
                app=app.id,
                iss="https://j",
                aud=(app.id,),
                created_at=NOW,
                updated_at=NOW,
                endpoint_url="https://rp.example/events",
            )
        )
        for n, app in enumerate((desk, other))
    ]
    assert list(runtime.streams.every()) == made
    assert runtime.streams.delivery(made[0]) == StreamDelivery()
    runtime.store.enqueue([OutboxItem(stream_id="st_0", jti="j1", set="a.b.c", event_type="x",
                                      created_at=NOW, next_attempt_at=NOW)])  # fmt: skip
    assert runtime.streams.delivery(made[0]).pending == 1
    receiver = runtime.receiver(ReceiveSettings(transmitters=[TransmitterEntry(
        name="idp", issuer="https://idp.example", audience="https://j", jwks_uri="https://idp.example/jwks",
    )]))  # fmt: skip
    assert receiver.received() == []
    for n, issuer in enumerate(("https://idp.example", "https://gone.example")):
        runtime.store.receive_event(ReceivedEvent(
            issuer=issuer, jti=f"e{n}", received_at=NOW + timedelta(seconds=n),
            event_type="session-revoked",
        ))  # fmt: skip
    assert [(e.jti, name) for e, name in receiver.received()] == [("e1", None), ("e0", "idp")]
    assert [e.jti for e, _ in receiver.received(limit=1)] == ["e1"]
