"""A session's lifecycle over HTTP: a login that denies makes no session, one that steps up
makes a `pending` session only its login challenge moves on, only an active session delegates
to an agent, and an agent's journey reads the delegating session's AAL and age."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .server import Server

PEOPLE = """\
journey: people
applies_to: [ops]
subjects: [user]
methods:
  password: {kind: password, aal: 1}
  totp: {kind: totp, aal: 2}
checkpoints:
  login:
    - if: "has(subject.properties.blocked) && subject.properties.blocked"
      deny: blocked
    - require: {any: [password]}
    - allow: {}
  browse: [{allow: {}}]
  step_up: [{require: {any: [totp]}}, {allow: {}}]
  "*": [{deny: unknown_action}]
"""
AGENTS = """\
journey: agents
applies_to: [ops]
subjects: [agent]
methods:
  agent_key: {kind: api_key, aal: 1}
checkpoints:
  login: [{require: {any: [agent_key]}}, {allow: {}}]
  "tool:transfer":
    - if: "agent.delegation.aal < 2"
      deny: delegator_too_weak
    - if: "agent.delegation.age > duration('1h')"
      deny: delegator_too_old
    - allow: {}
  "*": [{deny: unknown_action}]
"""


class World:
    def __init__(self, root: Path) -> None:
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "people.yaml").write_text(PEOPLE)
        (bundle / "agents.yaml").write_text(AGENTS)
        self.server = Server(root / "j.db", bundle).start()
        self.admin = self.server.client(self.server.admin_token())
        made = self.admin.post("/admin/v1/apps", json={
            "name": "ops", "assertable_methods": ["password", "totp"]})  # fmt: skip
        assert made.status_code == 201, made.text
        self.app = self.server.client(made.json()["key"])

    def start(self, **body: Any) -> httpx.Response:
        return self.app.post("/v1/sessions", json=body)

    def ask(self, session: str, action: str, subject: tuple[str, str] = ("user", "ana")
            ) -> dict[str, Any]:  # fmt: skip
        answer = self.app.post("/access/v1/evaluation", json={
            "subject": {"type": subject[0], "id": subject[1]}, "action": {"name": action},
            "resource": {"type": "r", "id": "1"}, "context": {"session_id": session}})  # fmt: skip
        assert answer.status_code == 200, answer.text
        context: dict[str, Any] = answer.json()["context"]
        return context

    def sessions(self) -> int:
        uri = f"file:{self.server.db}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            (count,) = db.execute("SELECT count(*) FROM sessions").fetchone()
        return int(count)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    try:
        yield made
    finally:
        made.server.stop()


def test_a_login_that_denies_makes_no_session(world: World) -> None:
    answer = world.start(subject={"id": "eve", "properties": {"blocked": True}},
                         proofs=[{"method": "password"}])  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"]["outcome"] == "deny"
    assert answer.json()["decision"]["reason"] == "blocked"
    assert "session" not in answer.json()
    assert world.sessions() == 0


def test_a_login_that_steps_up_is_pending_until_its_challenge_is_answered(world: World) -> None:
    started = world.start(subject={"id": "ana"})
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["decision"]["outcome"] == "step_up"
    assert body["session"]["status"] == "pending"
    session = body["session"]["id"]
    # nothing else is open to a session whose login is not done, not even an open checkpoint
    refused = world.ask(session, "browse")
    assert (refused["outcome"], refused["reason"]) == ("deny", "login_incomplete")
    verified = world.app.post(f"/v1/challenges/{body['decision']['challenge']['id']}/verify",
                              json={"method": "password"})  # fmt: skip
    assert verified.status_code == 200, verified.text
    assert verified.json()["decision"]["outcome"] == "allow"
    assert verified.json()["session"]["status"] == "active"
    assert world.ask(session, "browse")["outcome"] == "allow"


def test_only_an_active_session_delegates_and_agents_read_its_aal(world: World) -> None:
    made = world.admin.post("/admin/v1/subjects", json={"type": "agent", "id": "bot",
                                                        "owner": "user:ana"})  # fmt: skip
    assert made.status_code == 201, made.text
    key = world.admin.post("/admin/v1/subjects/bot/keys", params={"type": "agent"},
                           json={}).json()["key"]  # fmt: skip
    task = {"id": "t", "purpose": "pay", "tools": ["tool:transfer"], "expires_in": "1h"}

    def agent_for(user_session: str) -> httpx.Response:
        return world.start(credential={"api_key": key}, task=task,
                           delegation={"session_id": user_session})  # fmt: skip

    pending = world.start(subject={"id": "ana"}).json()["session"]["id"]
    refused = agent_for(pending)
    assert (refused.status_code, refused.json()["code"]) == (403, "delegation.invalid")
    assert world.sessions() == 1  # no agent session was made for a pending one

    user = world.start(subject={"id": "ana"}, proofs=[{"method": "password"}])
    assert user.json()["session"]["status"] == "active"
    user_session = user.json()["session"]["id"]
    agent = agent_for(user_session)
    assert agent.status_code == 201, agent.text
    agent_session = agent.json()["session"]["id"]
    weak = world.ask(agent_session, "tool:transfer", ("agent", "bot"))
    assert (weak["outcome"], weak["reason"]) == ("deny", "delegator_too_weak")
    # the user steps up: the agent's next decision reads the delegating session's AAL now
    asked = world.ask(user_session, "step_up")
    assert asked["outcome"] == "step_up"
    verified = world.app.post(f"/v1/challenges/{asked['challenge_id']}/verify",
                              json={"method": "totp"})  # fmt: skip
    assert verified.status_code == 200, verified.text
    assert world.ask(agent_session, "tool:transfer", ("agent", "bot"))["outcome"] == "allow"
