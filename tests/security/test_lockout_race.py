"""Password guessing raced across worker processes must not get past the lockout limit."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from service.server import Server
from service.test_http import admin

PASSWORD = "correct horse battery staple"
AFTER = 3
JOURNEY = f"""\
journey: acct
applies_to: [web]
methods:
  password: {{kind: password, min_length: 12}}
lockout:
  password: {{after: {AFTER}, within: 15m, lock: 15m, backoff: 0s}}
checkpoints:
  login:
    - require: {{any: [password]}}
    - allow: {{}}
  "*": [{{deny: unknown_action}}]
"""


def test_concurrent_wrong_guesses_never_exceed_the_lockout_limit(tmp_path: Path):
    """Wrong passwords sent at once by several clients to two worker processes: at most
    `after` of them are checked (401), every other one is refused as locked (429) before its
    password is looked at. Checking the lock and counting the attempt is one store step."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "acct.yaml").write_text(JOURNEY)
    server = Server(tmp_path / "j.db", bundle, args=("--workers", "2")).start()
    try:
        with admin(server) as root:
            made = root.post("/admin/v1/apps", json={"name": "web"})
            assert made.status_code == 201, made.text
            key = made.json()["key"]
            assert root.post("/admin/v1/subjects", json={"id": "alice"}).status_code == 201
            enrolled = root.post(
                "/admin/v1/subjects/alice/authenticators",
                json={"method": "password", "password": PASSWORD},
            )
            assert enrolled.status_code == 201, enrolled.text
        app = server.client(key)
        guesses = 16
        challenges = []
        for _ in range(guesses):
            started = app.post("/v1/sessions", json={"subject": {"type": "user", "id": "alice"}})
            assert started.status_code == 201, started.text
            challenges.append(started.json()["decision"]["challenge"]["id"])
        barrier = threading.Barrier(guesses)
        statuses: list[int] = []
        lock = threading.Lock()

        def guess(challenge: str, n: int) -> None:
            # each thread its own connection, so the two workers share the load
            with httpx.Client(
                base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {key}"}
            ) as client:
                barrier.wait()
                answer = client.post(
                    f"/v1/challenges/{challenge}/verify",
                    json={"method": "password", "proof": f"wrong guess number {n:04d}"},
                )
            with lock:
                statuses.append(answer.status_code)

        threads = [threading.Thread(target=guess, args=(c, n)) for n, c in enumerate(challenges)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(set(statuses)) <= [401, 429], statuses
        assert statuses.count(401) <= AFTER, statuses
        assert statuses.count(401) >= 1, statuses
        # and locked afterwards, the right password included
        started = app.post("/v1/sessions", json={"subject": {"type": "user", "id": "alice"}})
        challenge = started.json()["decision"]["challenge"]["id"]
        right = app.post(
            f"/v1/challenges/{challenge}/verify", json={"method": "password", "proof": PASSWORD}
        )
        assert (right.status_code, right.json()["code"]) == (429, "auth.locked")
    finally:
        server.stop()
