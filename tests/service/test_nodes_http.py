"""Three `juncture serve` nodes over one PostgreSQL: what one node is told, the others decide
by within the propagation bound. Each node keeps the active version's id, app keys and
sessions in caches that the database's notifications keep exact (store/postgres/cached.py):
a publish, a rollback or a revocation on one node reaches every other node's next decision
within milliseconds (the bound tested here is `FOLLOWS_WITHIN`; `bench/propagation.py`
measures the percentiles), and a node that cannot hear the notifications reads the database
for every decision until it has caught up."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
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


#: Seconds within which every node follows a change made on one (issue 15 asks 100 ms at the
#: 99th percentile; a test on a loaded machine allows more, never an unbounded wait).
FOLLOWS_WITHIN = 1.0


def follows(ask: Callable[[], Any], expected: Any) -> Any:
    """``ask()`` until it answers ``expected``, within `FOLLOWS_WITHIN`."""
    deadline = time.monotonic() + FOLLOWS_WITHIN
    while (answer := ask()) != expected:
        assert time.monotonic() < deadline, f"{answer!r}, not {expected!r}, after the bound"
        time.sleep(0.005)
    return answer


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
    for client in (web[2], web[0]):  # C and A follow
        follows(
            lambda client=client: (
                (answer := evaluation(client, session, "login"))["context"].get("reason"),
                answer["context"]["version"],
            ),
            ("login_closed", v2),
        )

    with admin(c) as client:  # roll back on C
        assert client.post(f"/admin/v1/versions/{v1}/activate").status_code == 200
    follows(lambda: [login_allowed(client, session) for client in web], [True, True, True])

    ended = web[2].post(f"/v1/sessions/{session}/end", json={"revoke_reason": "stolen_device"})
    assert ended.status_code == 200, ended.text  # revoked on C
    for client in (web[0], web[1]):
        follows(
            lambda client=client: evaluation(client, session, "login")["context"].get("reason"),
            "session_revoked",
        )
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
    for client in web:  # the step-up counts everywhere
        follows(lambda client=client: evaluation(client, session)["decision"], True)


def test_healthz_says_the_caches_are_live_and_a_node_deaf_to_changes_reads_the_database(
    nodes: list[Server], postgres_url: str
):
    a, b, _ = nodes
    key = app_key(a)
    web_a, web_b = a.client(key), b.client(key)
    session = start(web_a)["session"]["id"]
    assert login_allowed(web_b, session)  # B has the session in its cache now
    for node in nodes:
        assert httpx.get(f"{node.url}/healthz", timeout=5).json()["caches"]["state"] == "live"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        # Every node's notification connection ends: none hears the revocation below.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'juncture-changes' AND datname = current_database()"
        )

        def health(node: Server) -> tuple[int, str]:
            answer = httpx.get(f"{node.url}/healthz", timeout=5)
            return answer.status_code, answer.json()["caches"]["state"]

        follows(lambda: health(b), (200, "bypassed"))
        ended = web_a.post(f"/v1/sessions/{session}/end", json={"revoke_reason": "stolen"})
        assert ended.status_code == 200, ended.text
    # Deaf to the change, B reads the database for every decision: the revocation holds at once.
    answer = evaluation(web_b, session, "login")
    assert (answer["decision"], answer["context"]["reason"]) == (False, "session_revoked")
    deadline = time.monotonic() + 10  # and B listens again by itself, caches emptied
    while health(b) != (200, "live"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    answer = evaluation(web_b, session, "login")
    assert (answer["decision"], answer["context"]["reason"]) == (False, "session_revoked")
