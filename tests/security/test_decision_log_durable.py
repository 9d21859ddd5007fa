"""The durable decision log: no answer without its record, whatever crashes."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import httpx

from service.server import Server
from service.test_http import admin

JOURNEY = """\
journey: shop
applies_to: [web]
checkpoints:
  browse: [{allow: {}}]
  "*": [{deny: unknown_action}]
"""
BODY = {
    "subject": {"type": "user", "id": "alice"},
    "action": {"name": "browse"},
    "resource": {"type": "page", "id": "home"},
}


def _start(tmp_path: Path, mode: str) -> tuple[Server, str]:
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / "shop.yaml").write_text(JOURNEY)
    server = Server(tmp_path / "j.db", bundle, args=("--decision-log", mode)).start()
    with admin(server) as root:
        made = root.post("/admin/v1/apps", json={"name": "web"})
        assert made.status_code == 201, made.text
    return server, made.json()["key"]


def _logged(server: Server) -> set[str]:
    found: set[str] = set()
    with admin(server) as root:
        cursor = None
        while True:
            params = {"limit": "1000", **({"before": cursor} if cursor else {})}
            page = root.get("/admin/v1/decisions", params=params)
            assert page.status_code == 200, page.text
            found |= {d["id"] for d in page.json()["decisions"]}
            cursor = page.json()["next"]
            if cursor is None:
                return found


def test_answered_decisions_survive_a_kill_in_durable_mode(tmp_path: Path):
    """I4 No record, no answer: under load, SIGKILL the server right after answers arrived;
    after a restart every decision id any client was answered with is in the log."""
    server, key = _start(tmp_path, "durable")
    assert httpx.get(f"{server.url}/healthz").json()["decision_log"] == "durable"
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(
            base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {key}"}
        ) as client:
            while not stop.is_set():
                try:
                    answer = client.post("/access/v1/evaluation", json=BODY)
                except httpx.HTTPError:
                    return  # the server is gone
                if answer.status_code == 200:
                    with lock:
                        answered.append(answer.json()["context"]["id"])

    clients = [threading.Thread(target=load) for _ in range(8)]
    try:
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with lock:
                if len(answered) >= 300:
                    break
            time.sleep(0.01)
        server.kill()  # while the clients are still sending
    finally:
        stop.set()
        for thread in clients:
            thread.join()
        server.stop()
    with lock:
        given = set(answered)
    assert len(given) >= 300
    restarted = Server(tmp_path / "j.db", None).start()
    try:
        missing = given - _logged(restarted)
        assert not missing, f"{len(missing)} of {len(given)} answered decisions not logged"
    finally:
        restarted.stop()


def test_no_answer_when_the_record_cannot_be_committed(tmp_path: Path):
    """I4: in durable mode a decision whose record cannot be committed (the database held
    locked by another process past the busy timeout) is not answered: 503
    `unavailable.decision_log`, never an allow without its record."""
    server, key = _start(tmp_path, "durable")
    app = server.client(key)
    try:
        first = app.post("/access/v1/evaluation", json=BODY)
        assert first.status_code == 200, first.text
        blocker = sqlite3.connect(tmp_path / "j.db", isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # every other writer waits, then gives up
            refused = app.post("/access/v1/evaluation", json=BODY)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "unavailable.decision_log"
        assert "decision" not in refused.json()
        again = app.post("/access/v1/evaluation", json=BODY)
        assert again.status_code == 200, again.text
        assert again.json()["context"]["id"] in _logged(server)
    finally:
        server.stop()


def test_batched_mode_is_the_default_and_says_so(tmp_path: Path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "shop.yaml").write_text(JOURNEY)
    server = Server(tmp_path / "j.db", bundle).start()
    try:
        assert httpx.get(f"{server.url}/healthz").json()["decision_log"] == "batched"
    finally:
        server.stop()
