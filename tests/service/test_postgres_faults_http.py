"""Faults of PostgreSQL under `juncture serve` nodes, over HTTP (issue 15, I5 fail closed):
the database restarted under load, the pool with no free connection, one node cut off from
the database. Each test runs a PostgreSQL server of its own (`PostgresServer`), so that
stopping it leaves the session's shared server alone.

While the store is out of reach a decision is a deny (``unavailable.store``) or a 503
``unavailable.store``: never an allow, never a request left hanging. When it is back the
nodes decide again by themselves, and what they acknowledged before is there.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from postgres import PostgresServer
from tcp_proxy import Cable

from .server import Server
from .test_http import bundle, start
from .test_nodes_http import app_key

#: Seconds any answer may take while the store is out of reach (the pool waits 2 s).
ANSWER_WITHIN = 5.0


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own (stopped and started by the test)."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(RuntimeError):
            server.stop()
        server.remove()


def ask(client: httpx.Client, session: str, action: str = "login") -> tuple[float, str]:
    """One decision over HTTP: (seconds it took, ``allow`` / ``deny:<reason>`` /
    ``<status>:<code>``)."""
    began = time.monotonic()
    response = client.post(
        "/access/v1/evaluation",
        json={
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": action},
            "resource": {"type": "account", "id": "alice"},
            "context": {"session_id": session},
        },
    )
    took = time.monotonic() - began
    if response.status_code != 200:
        return took, f"{response.status_code}:{response.json().get('code')}"
    body = response.json()
    return took, "allow" if body["decision"] else f"deny:{body['context'].get('reason')}"


def healthz(node: Server) -> int:
    return httpx.get(f"{node.url}/healthz", timeout=ANSWER_WITHIN).status_code


def until(check: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait until ``check()`` is true (a node reconnecting by itself)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"not within {seconds} s: {check}")


FAILED_CLOSED = {"deny:unavailable.store", "503:unavailable.store"}


class Load:
    """A thread making decisions on every node in turn, each answer kept with its time."""

    def __init__(self, clients: list[httpx.Client], session: str, pause: float = 0.0) -> None:
        self.clients = clients
        self.session = session
        self.pause = pause  # seconds between two decisions
        self.answers: list[tuple[float, float, str]] = []  # (sent at, took, answer)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                took, answer = ask(self.clients[turn % len(self.clients)], self.session)
            except httpx.HTTPError as error:  # a hang or a dropped connection: recorded
                took, answer = time.monotonic() - sent, f"error:{type(error).__name__}"
            self.answers.append((sent, took, answer))
            turn += 1
            self._stop.wait(self.pause)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def between(self, start: float, end: float) -> list[tuple[float, float, str]]:
        return [a for a in self.answers if start <= a[0] and a[0] + a[1] <= end]


def test_postgres_restarted_under_load_denies_while_down_and_recovers_by_itself(
    own_postgres: PostgresServer, tmp_path: Path
):
    url = own_postgres.create_database()
    a = Server(url, bundle(tmp_path / "v1", "10m"), cwd=tmp_path).start()
    b = Server(url, None, cwd=tmp_path).start()
    try:
        key = app_key(a)
        web = [a.client(key), b.client(key)]
        session = start(web[0])["session"]["id"]
        victim = start(web[1])["session"]["id"]
        ended = web[1].post(f"/v1/sessions/{victim}/end", json={"revoke_reason": "stolen"})
        assert ended.status_code == 200, ended.text  # acknowledged before the stop
        with Load(web, session) as load:
            until(lambda: sum(1 for _, _, x in load.answers if x == "allow") >= 10)
            before = time.monotonic()
            own_postgres.stop()  # pg_ctl stop -m immediate
            down = time.monotonic()
            time.sleep(1.0)  # connections in the pools find the server gone
            settled = time.monotonic()
            assert (healthz(a), healthz(b)) == (503, 503)
            for node in (a, b):
                assert httpx.get(f"{node.url}/healthz", timeout=ANSWER_WITHIN).json()["code"] == (
                    "unavailable.store"
                )
            time.sleep(3.0)  # the load keeps asking while the server is down
            stopped_until = time.monotonic()
            own_postgres.start()
            until(lambda: ask(web[0], session)[1] == "allow" and ask(web[1], session)[1] == "allow")
            time.sleep(0.5)
        answers = load.answers
        assert answers, "no decision was made"
        assert all(took < ANSWER_WITHIN for _, took, _ in answers), max(a[1] for a in answers)
        assert not [x for _, _, x in answers if x.startswith("error:")], answers
        allowed = {x for _, _, x in answers} - FAILED_CLOSED
        assert allowed == {"allow"}, allowed  # nothing but allow or failing closed
        while_down = [x for sent, _, x in answers if settled <= sent and sent < stopped_until]
        assert len(while_down) >= 3, answers
        assert set(while_down) <= FAILED_CLOSED, while_down  # never an allow while down
        assert any(sent < down and x == "allow" for sent, _, x in answers if sent >= before - 5)
        assert answers[-1][2] == "allow"
        # nothing acknowledged is lost: the revocation holds on both nodes, the app key works
        for client in web:
            assert ask(client, victim)[1] == "deny:session_revoked"
            read = client.get(f"/v1/sessions/{victim}").json()
            assert (read["status"], read["status_reason"]) == ("revoked", "stolen")
        assert (healthz(a), healthz(b)) == (200, 200)
    finally:
        a.stop()
        b.stop()


def test_a_pool_with_no_free_connection_answers_503_with_retry_after_never_hangs(
    own_postgres: PostgresServer, tmp_path: Path
):
    url = own_postgres.create_database()
    node = Server(
        url, bundle(tmp_path / "v1", "10m"), cwd=tmp_path, args=("--db-pool-size", "2")
    ).start()
    try:
        key = app_key(node)
        web = node.client(key)
        session = start(web)["session"]["id"]
        assert ask(web, session)[1] == "allow"
        # Sessions not read yet: not in the node's cache, each read goes to the database.
        unread = [start(web)["session"]["id"] for _ in range(8)]

        def read(n: int) -> tuple[float, httpx.Response]:
            began = time.monotonic()
            with httpx.Client(
                base_url=node.url, timeout=30, headers={"Authorization": f"Bearer {key}"}
            ) as client:
                answer = client.get(f"/v1/sessions/{unread[n]}")
            return time.monotonic() - began, answer

        # A transaction of the test's own holds the sessions table: every read of a session
        # waits for it, holding one of the node's two connections; the next find none free.
        hold = 4.0
        with psycopg.connect(url) as locker, ThreadPoolExecutor(8) as pool:
            locker.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
            began = time.monotonic()
            futures = [pool.submit(read, n) for n in range(8)]
            time.sleep(hold)
            locker.rollback()  # the lock goes: the waiting reads finish
            results = [f.result(timeout=30) for f in futures]
        assert time.monotonic() - began < hold + ANSWER_WITHIN
        refused = [(took, r) for took, r in results if r.status_code == 503]
        served = [(took, r) for took, r in results if r.status_code == 200]
        assert len(refused) + len(served) == len(results), [r.text for _, r in results]
        assert refused, "the pool never ran out"
        for took, answer in refused:  # answered within the pool's timeout, not after the lock
            assert took < hold, took
            assert answer.json()["code"] == "unavailable.store", answer.text
            assert int(answer.headers["Retry-After"]) >= 1
        assert all(r.json()["id"] in unread for _, r in served)
        assert ask(web, session)[1] == "allow"  # the pool recovers with the lock gone
    finally:
        node.stop()


def test_a_node_cut_off_from_the_database_fails_closed_the_other_keeps_deciding(
    own_postgres: PostgresServer, tmp_path: Path
):
    url = own_postgres.create_database()
    cable = Cable(own_postgres.port)
    cut_url = url.replace(f":{own_postgres.port}/", f":{cable.port}/")
    a = Server(url, bundle(tmp_path / "v1", "10m"), cwd=tmp_path).start()
    b = Server(cut_url, None, cwd=tmp_path).start()
    try:
        key = app_key(a)
        web_a, web_b = a.client(key), b.client(key)
        session = start(web_b)["session"]["id"]
        assert (ask(web_a, session)[1], ask(web_b, session)[1]) == ("allow", "allow")
        cable.sever()
        for _ in range(5):
            took, answer = ask(web_b, session)
            assert answer in FAILED_CLOSED and took < ANSWER_WITHIN, (took, answer)
            took, answer = ask(web_a, session)  # the other node decides on
            assert answer == "allow" and took < ANSWER_WITHIN, (took, answer)
        assert (healthz(a), healthz(b)) == (200, 503)
        ended = web_a.post(f"/v1/sessions/{session}/end", json={"revoke_reason": "stolen"})
        assert ended.status_code == 200, ended.text  # acknowledged while B is cut off
        cable.mend()
        until(lambda: ask(web_b, session)[1] == "deny:session_revoked")
        assert healthz(b) == 200
    finally:
        a.stop()
        b.stop()
        cable.close()
