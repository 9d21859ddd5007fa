"""Three `juncture serve` nodes over one PostgreSQL: what one node is told, the others decide
by at once. Every decision reads the active version and the session from the database (the
nodes keep no copy of either: a compiled plan is cached by version id, and a version never
changes), so a publish, a rollback or a revocation on one node is what the next decision on
any node sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .server import Server
from .test_http import V1, admin, bundle, evaluation, start

LOCKED = V1.replace("WINDOW", "10m").replace(
    "login: [{require: {any: [password]}}, {allow: {scopes: [app], ttl: 1h}}]",
    "login: [{deny: login_closed}]",
)


@pytest.fixture
def nodes(postgres_url: str, tmp_path: Path) -> Iterator[list[Server]]:
    """Three nodes on one database, in one directory (they share its key files); the first
    publishes the journeys."""
    first = Server(postgres_url, bundle(tmp_path / "v1", "10m"), cwd=tmp_path).start()
    made = [first]
    try:
        for _ in range(2):
            made.append(Server(postgres_url, None, cwd=tmp_path).start())
        yield made
    finally:
        for node in made:
            node.stop()


def app_key(node: Server) -> str:
    with admin(node) as client:
        made = client.post(
            "/admin/v1/apps", json={"name": "web", "assertable_methods": ["password", "totp"]}
        )
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


def login_allowed(client: httpx.Client, session: str) -> bool:
    return bool(evaluation(client, session, "login")["decision"])


def test_publish_rollback_and_revocation_on_one_node_reach_the_others(nodes: list[Server]):
    a, b, c = nodes
    key = app_key(a)  # an app made on one node is known to every node
    web = [node.client(key) for node in nodes]
    session = start(web[0])["session"]["id"]
    assert [login_allowed(client, session) for client in web] == [True, True, True]

    with admin(b) as client:  # publish on B
        v1 = client.get("/admin/v1/versions").json()["versions"][0]["id"]
        published = client.post(
            "/admin/v1/versions", json={"files": {"acct.yaml": LOCKED}, "activate": True}
        )
        assert published.status_code == 201, published.text
        v2 = published.json()["id"]
    for client in (web[2], web[0]):  # C and A follow at their next decision
        answer = evaluation(client, session, "login")
        assert answer["decision"] is False
        assert (answer["context"]["reason"], answer["context"]["version"]) == ("login_closed", v2)

    with admin(c) as client:  # roll back on C
        assert client.post(f"/admin/v1/versions/{v1}/activate").status_code == 200
    assert [login_allowed(client, session) for client in web] == [True, True, True]

    ended = web[2].post(f"/v1/sessions/{session}/end", json={"revoke_reason": "stolen_device"})
    assert ended.status_code == 200, ended.text  # revoked on C
    for client in (web[0], web[1]):
        answer = evaluation(client, session, "login")
        assert answer["decision"] is False
        assert answer["context"]["reason"] == "session_revoked"
    for node in nodes:
        assert httpx.get(f"{node.url}/healthz", timeout=5).json()["version"] == v1


def test_a_challenge_answered_on_one_node_is_used_up_on_every_node(nodes: list[Server]):
    key = app_key(nodes[0])
    web = [node.client(key) for node in nodes]
    session = start(web[0])["session"]["id"]
    stepped = evaluation(web[0], session)
    challenge = stepped["context"]["challenge_id"]
    verified = web[1].post(f"/v1/challenges/{challenge}/verify", json={"method": "totp"})
    assert verified.status_code == 200, verified.text
    for client in (web[0], web[2]):  # single use across nodes
        again = client.post(f"/v1/challenges/{challenge}/verify", json={"method": "totp"})
        assert (again.status_code, again.json()["code"]) == (409, "challenge.not_live")
    assert evaluation(web[2], session)["decision"] is True  # the step-up counts everywhere
