"""A reported client IP that is not an address is a missing fact, never the connection's.

With ``--connection-ip`` Juncture reads the client IP from the connection when the app
reports none. An app that reports something (a number, a list, an object, a string that is
no address) reported a value: that value is not an address, so the IP is a missing
fact and conditions reading it deny (I5). It must never be replaced by the connection's
address (the app's own server, here 127.0.0.1), which would satisfy them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.server import Server
from service.test_http import admin

JOURNEY = """\
journey: net
applies_to: [web]
checkpoints:
  login: [{allow: {}}]
  read:
    - if: "network.ip == '127.0.0.1'"
      allow: {}
    - deny: elsewhere
  "*": [{deny: unknown_action}]
"""

NOT_ADDRESSES: list[Any] = [5, 2130706433, 1.5, True, ["127.0.0.1"], {"ip": "127.0.0.1"},
                            "", " ", "not-an-ip", "2130706433"]  # fmt: skip


class World:
    def __init__(self, root: Path) -> None:
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "net.yaml").write_text(JOURNEY)
        self.server = Server(root / "j.db", bundle, args=("--connection-ip",)).start()
        with admin(self.server) as client:
            made = client.post("/admin/v1/apps", json={"name": "web"})
        assert made.status_code == 201, made.text
        self.app = self.server.client(made.json()["key"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("ip"))
    yield made
    made.server.stop()


def evaluate(app: httpx.Client, context: dict[str, Any], **properties: Any) -> httpx.Response:
    return app.post("/access/v1/evaluation", json={
        "subject": {"type": "user", "id": "alice", "properties": properties},
        "action": {"name": "read"}, "resource": {"type": "doc", "id": "1"},
        "context": context})  # fmt: skip


def test_connection_ip_counts_when_nothing_is_reported(world: World):
    """Not reported (absent or null): the connection's address is the client IP."""
    for answer in (evaluate(world.app, {}), evaluate(world.app, {"ip": None}, ip_address=None)):
        assert answer.status_code == 200 and answer.json()["decision"] is True, answer.text


@pytest.mark.parametrize("value", NOT_ADDRESSES, ids=repr)
def test_non_address_authzen_ip_is_missing_not_the_connection(world: World, value: Any):
    """I5: a reported `context.ip` that is not an address denies, never falls back."""
    for answer in (evaluate(world.app, {"ip": value}),
                   evaluate(world.app, {}, ip_address=value),
                   evaluate(world.app, {"ip": value}, ip_address="127.0.0.1")):  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json()["decision"] is False, answer.text
        assert answer.json()["context"]["reason"] == "evaluation_error", answer.text


@pytest.mark.parametrize("value", NOT_ADDRESSES, ids=repr)
def test_non_address_native_ip_is_missing_not_the_connection(world: World, value: Any):
    """I5: a reported `network.ip` that is not an address denies, never falls back."""
    started = world.app.post(
        "/v1/sessions",
        json={"subject": {"type": "user", "id": "alice"}, "context": {"network": {"ip": value}}},
    )
    assert started.status_code in (201, 400), started.text
    if started.status_code == 201:
        assert started.json()["session"]["observed"].get("ip") != "127.0.0.1", started.text
    session = world.app.post("/v1/sessions", json={"subject": {"type": "user", "id": "alice"}})
    assert session.status_code == 201, session.text
    session_id = session.json()["session"]["id"]
    assert session.json()["session"]["observed"]["ip"] == "127.0.0.1"
    updated = world.app.post(f"/v1/sessions/{session_id}/signals",
                             json={"context": {"network": {"ip": value}}})  # fmt: skip
    assert updated.status_code in (200, 400), updated.text
    asked = evaluate(world.app, {"session_id": session_id, "ip": value})
    assert asked.status_code == 200 and asked.json()["decision"] is False, asked.text
