"""Housekeeping (service/housekeeping.py) without HTTP, on SQLite and PostgreSQL: a login
nobody finished is deleted a day after its last challenge expired, and so are expired
challenges; a pending login that can still go on, active sessions and ended ones stay."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from juncture.records import App, StoredProof
from juncture.service import housekeeping
from juncture.service.housekeeping import Housekeeping, Tidied
from juncture.service.runtime import Runtime

from .backends import Clock, web_runtime

JOURNEY = b"""\
journey: j
applies_to: [web]
methods:
  password: {kind: password}
checkpoints:
  login:
    - require: {any: [password]}
    - allow: {}
"""


class World:
    def __init__(self, runtime: Runtime, clock: Clock, app: App) -> None:
        self.runtime, self.clock, self.app = runtime, clock, app
        self.housekeeping = Housekeeping(runtime.store, clock, batch=2)

    def pending(self, subject: str) -> tuple[str, str]:
        """A login left at its password challenge: (session, challenge)."""
        started = self.runtime.sessions.start(self.app, {"type": "user", "id": subject}, {}, [])
        assert started.session is not None and started.session.status == "pending"
        assert started.challenge is not None
        return started.session.id, started.challenge.id

    def active(self, subject: str) -> str:
        proof = StoredProof(method="password", at=self.clock.at, asserted_by=self.app.id)
        started = self.runtime.sessions.start(
            self.app, {"type": "user", "id": subject}, {}, [proof]
        )
        assert started.session is not None and started.session.status == "active"
        return started.session.id

    def exists(self, session: str) -> bool:
        return self.runtime.store.get_session(session) is not None

    def challenge_exists(self, challenge: str) -> bool:
        return self.runtime.store.get_challenge(challenge) is not None


@pytest.fixture(params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with web_runtime(request, tmp_path, JOURNEY) as made:
        yield World(*made)


def test_abandoned_logins_go_a_day_after_their_challenge_expired(world: World) -> None:
    abandoned = [world.pending(f"u{n}") for n in range(5)]
    kept_pending, kept_challenge = world.pending("slow")
    # A login that can still go on: its challenge (an approval's, say) expires in three days.
    challenge = world.runtime.store.get_challenge(kept_challenge)
    assert challenge is not None
    world.runtime.store.create_challenge(msgspec.structs.replace(
        challenge, id="ch_long", expires_at=world.clock.at + timedelta(days=3)))  # fmt: skip
    active = world.active("ana")
    ended = world.active("abe")
    world.runtime.sessions.end(world.app, ended, revoke_reason=None)

    assert world.housekeeping.tidy() == Tidied()  # nothing is old enough yet
    world.clock.at += timedelta(days=1)  # the challenges expired 5 minutes after starting
    assert world.housekeeping.tidy() == Tidied()  # kept a day after that
    world.clock.at += timedelta(minutes=6)
    # Six pending logins and six challenges (one kept: ch_long), two a batch
    assert world.housekeeping.tidy() == Tidied(sessions=5, challenges=6)
    for session, challenge_id in abandoned:
        assert not world.exists(session) and not world.challenge_exists(challenge_id)
    assert world.exists(kept_pending) and world.challenge_exists("ch_long")
    assert not world.challenge_exists(kept_challenge)  # expired: the other one keeps the login
    assert world.exists(active) and world.exists(ended)
    assert world.housekeeping.tidy() == Tidied()  # nothing left to do


def test_a_run_stops_after_its_batches_and_the_next_goes_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(5):
        world.pending(f"u{n}")
    world.clock.at += timedelta(days=2)
    monkeypatch.setattr(housekeeping, "BATCHES", 1)  # one batch of two a run
    assert world.housekeeping.tidy() == Tidied(sessions=2, challenges=2, more=True)
    assert world.housekeeping.tidy() == Tidied(sessions=2, challenges=2, more=True)
    assert world.housekeeping.tidy() == Tidied(sessions=1, challenges=1)


def test_the_thread_runs_at_once_then_every_interval(world: World) -> None:
    world.pending("u")
    world.clock.at += timedelta(days=2)
    running = Housekeeping(world.runtime.store, world.clock, interval=0.05)
    running.start()
    try:
        deadline = time.monotonic() + 10
        while running.last != Tidied(sessions=1, challenges=1):
            assert time.monotonic() < deadline, running.last
            time.sleep(0.01)
        world.pending("v")  # started now: not old enough, however often it runs
        time.sleep(0.2)
        assert running.last == Tidied()
    finally:
        running.stop()


def test_a_node_whose_clock_is_off_deletes_nothing(world: World) -> None:
    """Its "a day ago" cannot be trusted: paused, the thread runs no tidy at all."""
    session, _ = world.pending("u")
    world.clock.at += timedelta(days=2)
    running = Housekeeping(world.runtime.store, world.clock, interval=0.01)
    running.start(paused=lambda: True)
    try:
        time.sleep(0.2)
    finally:
        running.stop()
    assert running.last is None and world.exists(session)
