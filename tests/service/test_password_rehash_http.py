"""A stored password hash takes the method's argon2 parameters at its next successful login,
over HTTP against a real `juncture serve`; a failed login leaves it as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import argon2
import httpx
import msgspec
import pytest

from juncture.records import Authenticator
from juncture.store.sqlite import SqliteStore

from .server import Server
from .test_http import admin

PASSWORD = "correct horse battery staple"

#: argon2-cffi's own defaults, Juncture's until the password method took OWASP's minimum.
OLD = "time_cost: 3, memory_cost: 65536, parallelism: 4"

JOURNEY = """\
journey: acct
applies_to: [web]
methods:
  password: {kind: password, min_length: 12PARAMETERS}
lockout:
  password: {after: 3, within: 15m, lock: 15m, backoff: 0s}
checkpoints:
  login:
    - require: {any: [password]}
    - allow: {}
  read: [{require: {any: [password]}}, {allow: {}}]
  "*": [{deny: unknown_action}]
"""


def journey(parameters: str = "") -> str:
    return JOURNEY.replace("PARAMETERS", f", {parameters}" if parameters else "")


class World:
    def __init__(self, root: Path) -> None:
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "acct.yaml").write_text(journey(OLD))
        self.server = Server(root / "j.db", bundle).start()
        self.admin = admin(self.server)
        made = self.admin.post("/admin/v1/apps", json={"name": "web"})
        assert made.status_code == 201, made.text
        self.app = self.server.client(made.json()["key"])

    def stop(self) -> None:
        self.admin.close()
        self.server.stop()

    def stored(self) -> Authenticator:
        """alice's one password authenticator, as the store holds it."""
        store = SqliteStore(self.server.db)
        try:
            (authenticator,) = store.list_authenticators("user", "alice")
        finally:
            store.close()
        return authenticator

    def login(self, password: str) -> httpx.Response:
        started = self.app.post("/v1/sessions", json={"subject": {"type": "user", "id": "alice"}})
        assert started.status_code == 201, started.text
        challenge = started.json()["decision"]["challenge"]["id"]
        self.session = started.json()["session"]["id"]
        return self.app.post(
            f"/v1/challenges/{challenge}/verify", json={"method": "password", "proof": password}
        )


def parameters(authenticator: Authenticator) -> tuple[int, int, int]:
    stored = msgspec.json.decode(authenticator.record)["hash"]
    found = argon2.extract_parameters(stored)
    assert found.type is argon2.Type.ID
    return found.memory_cost, found.time_cost, found.parallelism


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    try:
        yield made
    finally:
        made.stop()


def test_a_hash_enrolled_with_the_old_defaults_is_upgraded_at_the_next_login(world: World):
    assert world.admin.post("/admin/v1/subjects", json={"id": "alice"}).status_code == 201
    enrolled = world.admin.post(
        "/admin/v1/subjects/alice/authenticators",
        json={"method": "password", "password": PASSWORD},
    )
    assert enrolled.status_code == 201, enrolled.text
    before = world.stored()
    assert parameters(before) == (65536, 3, 4)
    published = world.admin.post(  # the method's parameters are now the defaults
        "/admin/v1/versions", json={"files": {"acct.yaml": journey()}, "activate": True}
    )
    assert published.status_code == 201, published.text

    failed = world.login("not the password at all")
    assert failed.status_code == 401, failed.text
    assert world.stored() == before  # a failed login changes nothing of the credential

    upgraded = world.login(PASSWORD)
    assert upgraded.status_code == 200, upgraded.text
    assert upgraded.json()["decision"]["outcome"] == "allow"
    after = world.stored()
    assert parameters(after) == (19456, 2, 1)
    assert after.revision != before.revision and after.last_used_at is not None
    assert after.created_at == before.created_at and after.id == before.id
    stored = msgspec.json.decode(after.record)
    assert argon2.PasswordHasher().verify(stored["hash"], PASSWORD)
    assert stored["created_at"] == msgspec.json.decode(before.record)["created_at"]

    again = world.login(PASSWORD)  # the new hash verifies; it is not made again
    assert again.status_code == 200, again.text
    assert msgspec.json.decode(world.stored().record)["hash"] == stored["hash"]
    decided = world.app.post(
        "/access/v1/evaluation",
        json={
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": "read"},
            "resource": {"type": "account", "id": "alice"},
            "context": {"session_id": world.session},
        },
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["decision"] is True
