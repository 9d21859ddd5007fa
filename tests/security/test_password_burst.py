"""A burst of password verifications (credential stuffing) against a real `juncture serve`.

Hashing (argon2, ~100 ms of CPU each) runs in a bounded pool of worker threads, not on the
event loop: decisions and health checks are answered during the burst, and verifications
past the pool and its queue get 429 ``auth.busy`` with `Retry-After`, having changed nothing.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.server import Server
from service.test_http import admin

PASSWORD = "correct horse battery staple"
BURST = 32

JOURNEY = """\
journey: acct
applies_to: [web]
methods:
  password: {kind: password, min_length: 12, time_cost: 8}  # ~0.3 s a hash
lockout:
  password: {after: 1000, within: 15m, lock: 15m, backoff: 0s}
checkpoints:
  login:
    - require: {any: [password]}
    - allow: {}
  "*": [{deny: unknown_action}]
"""


class World:
    def __init__(self, root: Path) -> None:
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "acct.yaml").write_text(JOURNEY)
        args = ("--hash-concurrency", "1", "--hash-queue", "3")
        self.server = Server(root / "j.db", bundle, args=args).start()
        self.admin = admin(self.server)
        made = self.admin.post("/admin/v1/apps", json={"name": "web"})
        assert made.status_code == 201, made.text
        self.key = made.json()["key"]
        self.app = self.server.client(self.key)
        assert self.admin.post("/admin/v1/subjects", json={"id": "alice"}).status_code == 201
        enrolled = self.admin.post(
            "/admin/v1/subjects/alice/authenticators",
            json={"method": "password", "password": PASSWORD},
        )
        assert enrolled.status_code == 201, enrolled.text

    def login(self) -> tuple[str, str]:
        """A new session of alice and the challenge of its login."""
        started = self.app.post("/v1/sessions", json={"subject": {"type": "user", "id": "alice"}})
        assert started.status_code == 201, started.text
        body: dict[str, Any] = started.json()
        return body["session"]["id"], body["decision"]["challenge"]["id"]

    def stop(self) -> None:
        self.admin.close()
        self.server.stop()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    try:
        yield made
    finally:
        made.stop()


def test_password_burst_does_not_stall_decisions(world: World):
    """32 concurrent password verifications: /healthz and an AuthZEN decision answer at once
    meanwhile (median under 0.1 s); those past the pool (1) and its queue (3) get 429
    `auth.busy` with Retry-After, spend no attempt and can be retried (I3, I6)."""
    session, _ = world.login()
    challenges = [world.login()[1] for _ in range(BURST)]
    answers: dict[str, httpx.Response] = {}
    ready = threading.Barrier(BURST + 1)

    def verify(challenge: str) -> None:
        with httpx.Client(base_url=world.server.url, timeout=60,
                          headers={"Authorization": f"Bearer {world.key}"}) as client:  # fmt: skip
            ready.wait()
            answers[challenge] = client.post(
                f"/v1/challenges/{challenge}/verify",
                json={"method": "password", "proof": PASSWORD},
            )

    threads = [threading.Thread(target=verify, args=(c,)) for c in challenges]
    for thread in threads:
        thread.start()
    ready.wait()
    time.sleep(0.05)  # the burst is in
    latencies = []
    decision = {
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "read"},
        "resource": {"type": "account", "id": "alice"},
        "context": {"session_id": session},
    }
    while any(thread.is_alive() for thread in threads) or len(latencies) < 4:
        started = time.monotonic()
        assert world.app.get("/healthz").status_code == 200
        latencies.append(time.monotonic() - started)
        started = time.monotonic()
        asked = world.app.post("/access/v1/evaluation", json=decision)
        assert asked.status_code == 200, asked.text
        latencies.append(time.monotonic() - started)
    for thread in threads:
        thread.join()
    # On the event loop, each would wait for about one hash (~0.3 s) at least.
    assert statistics.median(latencies) < 0.1, latencies
    busy = [c for c, answer in answers.items() if answer.status_code == 429]
    assert busy, "no verification was refused past the pool and its queue"
    for challenge, answer in answers.items():
        if challenge in busy:
            assert answer.json()["code"] == "auth.busy"
            assert answer.headers["Retry-After"] == "1"
        else:
            assert answer.status_code == 200, answer.text
            assert answer.json()["decision"]["outcome"] == "allow"
    retried = world.app.post(
        f"/v1/challenges/{busy[0]}/verify", json={"method": "password", "proof": PASSWORD}
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["decision"]["outcome"] == "allow"
