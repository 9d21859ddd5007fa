"""I11 Juncture's facts are Juncture's: no app input sets or shadows a fact Juncture owns.

The owned facts are enumerated from the fact schema (`schema.OWNED`, with `schema.CLOSED`'s field
types). For each one, a probe checkpoint allows exactly when the fact holds a planted value, and
the planted value is sent through every input path an app has: AuthZEN context and subject
properties (sessionless and bound to a session, single and batch), a session's start (its
context and subject properties, a user's and an agent's), and context and signal updates. No
probe may allow; a path that would store the fact refuses it with `facts.owned` and changes
nothing. Over real HTTP against `juncture serve` on SQLite.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from juncture.policy.schema import CLOSED, OWNED, SIGNAL_DEFAULTS
from service.server import Server

#: A planted value, and a condition true exactly when the fact holds it, per static type.
PLANTS: dict[str | None, tuple[Any, str]] = {
    "string": ("planted", "{fact} == 'planted'"),
    "int": (99, "{fact} == 99"),
    "double": (9999.5, "{fact} == 9999.5"),
    "bool": (True, "{fact} == true"),
    "timestamp": ("2000-01-01T00:00:00Z", "{fact} == timestamp('2000-01-01T00:00:00Z')"),
    "duration": ("999h", "{fact} == duration('999h')"),
    None: ("planted", "{fact} == 'planted'"),
}
#: Fields tried for the open variables Juncture owns whole.
OPEN_FIELDS = {"agent": ("delegated_by", "delegation", "task", "planted"), "grants": ("planted",)}
#: The planted name declared where a fact holds declared names (`policy/literals.py`): a
#: network no request comes from, a risk level and reason no score reaches.
DECLARED = """\
networks:
  planted: [198.51.100.0/24]
risk:
  rules: [{when: "signals.risk_elevated && !signals.risk_elevated", add: 1, reason: planted}]
  levels: {low: 0, planted: 100}
"""


def owned_facts() -> list[tuple[str, str]]:
    """Every (variable, field) Juncture owns, from the schema."""
    found = []
    for variable, fields in OWNED.items():
        if variable == "signals":
            continue  # signals may be raised by an app, never lowered: tested on their own
        names = (
            fields if fields is not None
            else CLOSED[variable] if variable in CLOSED
            else OPEN_FIELDS[variable]
        )  # fmt: skip
        found += [(variable, name) for name in sorted(names)]
    return found


OWNED_FACTS = owned_facts()


def plant(variable: str, field: str) -> tuple[Any, str]:
    value, condition = PLANTS[CLOSED.get(variable, {}).get(field)]
    return value, condition.format(fact=f"{variable}.{field}")


def probe(variable: str, field: str) -> str:
    return f"probe:{variable}.{field}"


def probes() -> str:
    lines = []
    for variable, field in OWNED_FACTS:
        _, condition = plant(variable, field)
        lines.append(f'  "{probe(variable, field)}": [{{if: "{condition}", allow: {{}}}}, '
                     "{deny: not_planted}]")  # fmt: skip
    return "\n".join(lines)


PEOPLE = f"""\
journey: people
applies_to: [probe]
subjects: [user]
methods:
  password: {{kind: password, aal: 1}}
  planted: {{kind: password, aal: 1}}
{DECLARED}checkpoints:
  login: [{{allow: {{}}}}]
  transfer:
    - if: "'payments:transfer' in grants"
      allow: {{}}
    - require: {{any: [password], within: 1s}}
    - allow: {{}}
  compromised: [{{if: "signals.credential_compromised", deny: compromised}}, {{allow: {{}}}}]
{probes()}
"""

AGENTS = f"""\
journey: agents
applies_to: [probe]
subjects: [agent]
methods:
  agent_key: {{kind: api_key, aal: 1}}
  manager_approval: {{kind: approval, ttl: 1m}}
  planted: {{kind: approval, ttl: 1m}}
{DECLARED}checkpoints:
  login: [{{require: {{any: [agent_key]}}}}, {{allow: {{}}}}]
  "tool:transfer_funds":
    - if: "'payments:transfer' in grants"
      allow: {{scopes: ["payments:transfer"], ttl: 2m}}
    - require: {{any: [manager_approval], within: 10m}}
    - allow: {{}}
{probes()}
"""

TASK = {"id": "t-1", "purpose": "pay", "tools": ["tool:transfer_funds"], "expires_in": "1h"}


class World:
    def __init__(self, root: Path) -> None:
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "people.yaml").write_text(PEOPLE)
        (bundle / "agents.yaml").write_text(AGENTS)
        self.server = Server(root / "j.db", bundle).start()
        self.admin = self.server.client(self.server.admin_token())
        made = self.admin.post("/admin/v1/apps", json={
            "name": "probe", "assertable_methods": ["password"]})  # fmt: skip
        assert made.status_code == 201, made.text
        self.app = self.server.client(made.json()["key"])
        made = self.admin.post("/admin/v1/subjects", json={"type": "agent", "id": "bot",
                                                           "owner": "user:ana"})  # fmt: skip
        assert made.status_code == 201, made.text
        issued = self.admin.post("/admin/v1/subjects/bot/keys", params={"type": "agent"},
                                 json={})  # fmt: skip
        assert issued.status_code == 201, issued.text
        self.key = issued.json()["key"]
        self.user = self.start({"subject": {"id": "ana"}}).json()["session"]["id"]
        self.agent = self.start_agent({}).json()["session"]["id"]

    def start(self, body: dict[str, Any]) -> httpx.Response:
        return self.app.post("/v1/sessions", json={"proofs": [{"method": "password"}], **body})

    def start_agent(self, body: dict[str, Any]) -> httpx.Response:
        return self.app.post("/v1/sessions", json={
            "credential": {"api_key": self.key}, "delegation": {"session_id": self.user},
            "task": TASK, **body})  # fmt: skip

    def evaluation(self, action: str, *, subject: tuple[str, str] = ("user", "ana"),
                   context: dict[str, Any] | None = None,
                   properties: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        answer = self.app.post("/access/v1/evaluation", json={
            "subject": {"type": subject[0], "id": subject[1], "properties": properties or {}},
            "action": {"name": action}, "resource": {"type": "r", "id": "1"},
            "context": context or {}})  # fmt: skip
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def sessions(self) -> list[dict[str, Any]]:
        return [self.app.get(f"/v1/sessions/{s}").json() for s in (self.user, self.agent)]

    def count_sessions(self) -> int:
        """Sessions in the store (read from the SQLite file itself)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.server.db}?mode=ro", uri=True)) as db:
            (count,) = db.execute("SELECT count(*) FROM sessions").fetchone()
        return int(count)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("owned"))
    try:
        yield made
    finally:
        made.server.stop()


def _stable(session: dict[str, Any]) -> dict[str, Any]:
    """What an app input could have changed in a session record (not the last decision)."""
    kept = ("status", "proofs", "signals", "context", "observed", "standing", "subject", "path")
    return {k: session[k] for k in kept if k in session}


@pytest.mark.parametrize(("variable", "field"), OWNED_FACTS)
def test_app_cannot_set_owned_fact(world: World, variable: str, field: str) -> None:
    """I11: every input path, every owned fact: no probe allows, refusals change nothing."""
    value, _ = plant(variable, field)
    section = {variable: {field: value}}
    action = probe(variable, field)
    before = [_stable(s) for s in world.sessions()]

    # AuthZEN: context and subject properties, sessionless and bound to either session
    for subject, session in ((("user", "ana"), None), (("user", "ana"), world.user),
                             (("agent", "bot"), world.agent)):  # fmt: skip
        bound = {"session_id": session} if session else {}
        for answer in (
            world.evaluation(action, subject=subject, context={**bound, **section}),
            world.evaluation(action, subject=subject, context=bound, properties=section),
            world.evaluation(action, subject=subject, context={**bound, "context": section}),
        ):
            assert answer["decision"] is False, (variable, field, answer)
    batch = world.app.post("/access/v1/evaluations", json={
        "subject": {"type": "user", "id": "ana"}, "resource": {"type": "r", "id": "1"},
        "context": {"session_id": world.user, **section},
        "evaluations": [{"action": {"name": action}}]})  # fmt: skip
    assert batch.status_code == 200 and batch.json()["evaluations"][0]["decision"] is False

    # A session's start: the owned section is refused and no session is made; the same in
    # subject properties or under the app's own `context` is the app's, and changes nothing
    counted = world.count_sessions()
    for refused in (
        world.start({"subject": {"id": "eve"}, "action": action, "context": section}),
        world.start_agent({"action": action, "context": section}),
    ):
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "facts.owned", refused.text
    assert world.count_sessions() == counted
    for started in (
        world.start({"subject": {"id": "eve", "properties": section}, "action": action}),
        world.start({"subject": {"id": "eve"}, "action": action, "context": {"context": section}}),
        world.start_agent({"action": action, "context": {"context": section}}),
    ):
        # the probe denies: no session is made (200), or one that is not let in (201)
        assert started.status_code in (200, 201), started.text
        assert started.json()["decision"]["outcome"] != "allow", (variable, field, started.text)

    # Context updates of a live session: refused, nothing stored
    for session in (world.user, world.agent):
        update = world.app.post(f"/v1/sessions/{session}/signals", json={"context": section})
        assert update.status_code == 400, update.text
        assert update.json()["code"] == "facts.owned"
    assert [_stable(s) for s in world.sessions()] == before


@pytest.mark.parametrize("name", sorted(SIGNAL_DEFAULTS))
def test_app_cannot_lower_a_shared_signal(world: World, name: str) -> None:
    """I11: an app may raise a Shared Signals signal, never lower or replace it."""
    before = [_stable(s) for s in world.sessions()]
    for value in (False, "false", 0, None, {"value": False}):
        for session in (world.user, world.agent):
            lowered = world.app.post(f"/v1/sessions/{session}/signals",
                                     json={"signals": {name: value}})  # fmt: skip
            assert lowered.status_code == 400, lowered.text
            assert lowered.json()["code"] == "facts.owned"
    assert [_stable(s) for s in world.sessions()] == before


def test_app_cannot_clear_a_raised_signal(tmp_path: Path) -> None:
    """I11: once `credential_compromised` is raised, no app input reads it as false again."""
    world = World(tmp_path)
    try:
        raised = world.app.post(f"/v1/sessions/{world.user}/signals",
                                json={"signals": {"credential_compromised": True}})  # fmt: skip
        assert raised.status_code == 200, raised.text
        bound = {"session_id": world.user}
        shadow = {"signals": {"credential_compromised": False}}
        for answer in (
            world.evaluation("compromised", context={**bound, **shadow}),
            world.evaluation("compromised", context=bound, properties=shadow),
        ):
            assert answer["context"]["reason"] == "compromised"
        cleared = world.app.post(f"/v1/sessions/{world.user}/signals", json=shadow)
        assert cleared.status_code == 400 and cleared.json()["code"] == "facts.owned"
        assert world.evaluation("compromised", context=bound)["context"]["reason"] == "compromised"
    finally:
        world.server.stop()


def test_app_cannot_set_owned_fact_grants(tmp_path: Path) -> None:
    """I11: the attack as found: an agent session's context update carrying `grants` skipped
    the approval step-up. Now it is refused, and the transfer still waits for a person."""
    world = World(tmp_path)
    try:
        grants = {"payments:transfer": {"expires_at": "2999-01-01T00:00:00Z"}}
        update = world.app.post(f"/v1/sessions/{world.agent}/signals",
                                json={"context": {"grants": grants}})  # fmt: skip
        assert (update.status_code, update.json()["code"]) == (400, "facts.owned")
        agent = world.start_agent({"context": {"grants": grants}})
        assert (agent.status_code, agent.json()["code"]) == (400, "facts.owned")
        context = {"session_id": world.agent, "grants": grants}
        answer = world.evaluation("tool:transfer_funds", subject=("agent", "bot"), context=context)
        assert answer["context"]["outcome"] == "step_up"
        assert answer["context"]["methods"] == ["manager_approval"]
        session = world.app.get(f"/v1/sessions/{world.agent}").json()
        assert "grants" not in session["context"]
    finally:
        world.server.stop()
