"""The send limit of email codes (service/sends.py) without HTTP, on SQLite and PostgreSQL:
whoever can name a subject can ask for a code to it (the hosted login takes any user name),
so starting an email code is refused within the method's `resend_after` of the last one and
for `sends_within` after `max_sends` in a row; a refused start draws no code and changes no
challenge; racing starts never pass the limit; another subject's count is its own."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from juncture.errors import CodedRefusal
from juncture.records import App, Challenge
from juncture.service.authn import AuthnSettings
from juncture.service.runtime import Runtime

from .backends import Clock, web_runtime

JOURNEY = b"""\
journey: j
applies_to: [web]
methods:
  email: {kind: email_code, resend_after: 30s, max_sends: 3, sends_within: 10m}
checkpoints:
  login:
    - require: {any: [email]}
    - allow: {}
"""


class World:
    def __init__(self, runtime: Runtime, clock: Clock, app: App) -> None:
        self.runtime, self.clock, self.app = runtime, clock, app

    def advance(self, seconds: float) -> None:
        self.clock.at += timedelta(seconds=seconds)

    def enrolled(self, subject: str) -> None:
        """A subject with a confirmed address (enrollment's own code is not a start)."""
        directory = self.runtime.directory
        made = directory.create_subject("user", subject, attributes={}, status="active")
        plan, journey = directory.journey("web", "user")
        enrolled = directory.enroll(plan, journey, made, "email",
                                    {"address": f"{subject}@example.com"})  # fmt: skip
        code = re.search(r"\b(\d{6})\b", enrolled.message.text)
        assert code is not None
        directory.confirm(plan, journey, enrolled.authenticator, code.group(1))

    def login(self, subject: str) -> Challenge:
        """A pending login of the subject: its challenge, naming the email method."""
        outcome = self.runtime.sessions.start(self.app, {"type": "user", "id": subject}, {}, [])
        assert outcome.decision.outcome == "step_up" and outcome.challenge is not None
        return outcome.challenge

    def send(self, challenge: Challenge) -> str:
        """Start the email code: the message's address (a refusal raises)."""
        public, (message, _) = self.runtime.challenges.start(self.app, challenge.id, "email")
        assert message is not None and public["sent_to"].endswith("@example.com")
        return str(message.to)

    def refused(self, challenge: Challenge) -> int:
        """Start the email code, refused by the limit: its Retry-After; nothing changed."""
        before = self.runtime.store.get_challenge(challenge.id)
        with pytest.raises(CodedRefusal) as raised:
            self.runtime.challenges.start(self.app, challenge.id, "email")
        assert (raised.value.code, raised.value.status) == ("challenge.send_limited", 429)
        assert self.runtime.store.get_challenge(challenge.id) == before  # no code drawn
        assert raised.value.retry_after is not None
        return raised.value.retry_after


@pytest.fixture(params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    settings = AuthnSettings(key_file=str(tmp_path / "keys.json"))
    with web_runtime(request, tmp_path, JOURNEY, authn=settings) as made:
        yield World(*made)


def test_codes_go_no_closer_than_resend_after_and_at_most_max_sends_in_a_row(world: World):
    world.enrolled("ana")
    challenge = world.login("ana")
    assert world.send(challenge) == "ana@example.com"
    first_state = world.runtime.store.get_challenge(challenge.id)
    assert first_state is not None and "email" in first_state.states
    world.advance(10)
    assert world.refused(challenge) == 20  # the rest of the 30 s
    world.advance(20)
    world.send(challenge)  # the second (a new code: the first no longer answers)
    world.advance(30)
    world.send(challenge)  # the third in a row, each less than 10 minutes after the last
    world.advance(30)
    assert world.refused(challenge) == 571  # locked for `sends_within` (and 1 s) after the third
    world.advance(570)
    other = world.login("ana")  # a new login does not reset the count: it is the subject's
    assert world.refused(other) == 1
    world.advance(1)
    world.send(other)
    world.advance(30)
    world.send(other)  # the count started again after the lock


def test_the_count_restarts_after_sends_within_without_one(world: World):
    world.enrolled("ana")
    challenge = world.login("ana")
    for _ in range(2):
        world.send(challenge)
        world.advance(30)
    world.advance(600)  # more than `sends_within` since the last: a new run of three
    challenge = world.login("ana")  # (the first login's challenge has expired)
    for _ in range(3):
        world.send(challenge)
        world.advance(30)
    assert world.refused(challenge) > 500


def test_each_subject_has_its_own_count(world: World):
    world.enrolled("ana")
    world.enrolled("abe")
    ana, abe = world.login("ana"), world.login("abe")
    world.send(ana)
    assert world.send(abe) == "abe@example.com"  # ana's send does not hold abe's
    world.refused(ana)


def test_racing_starts_send_one_code(world: World):
    """Eight threads start the same subject's email code at the same instant: the store
    admits one; the others are refused, and the challenge holds the one code drawn."""
    world.enrolled("ana")
    challenges = [world.login("ana") for _ in range(8)]
    barrier = threading.Barrier(len(challenges))
    results: list[Any] = [None] * len(challenges)

    def start(index: int) -> None:
        barrier.wait()
        try:
            world.runtime.challenges.start(world.app, challenges[index].id, "email")
            results[index] = "sent"
        except CodedRefusal as refusal:
            results[index] = refusal.code

    threads = [threading.Thread(target=start, args=(i,)) for i in range(len(challenges))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["challenge.send_limited"] * 7 + ["sent"]
    stored = [world.runtime.store.get_challenge(c.id) for c in challenges]
    assert sum(1 for c in stored if c is not None and "email" in c.states) == 1
