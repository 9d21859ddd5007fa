"""I1 with every worker's caches (store/cached.py): `juncture serve --workers 2` on one SQLite
file, each worker holding the session, the app key and the active version in memory. What one
worker is told, the other decides by at its next decision: a revocation, a publish, an app's key
rotated. Each request goes on a new connection, so the two workers share the requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .server import Server
from .test_http import admin, bundle, start
from .test_nodes_http import LOCKED

ROUNDS = 12


def decide(server: Server, key: str, session: str, action: str = "login") -> httpx.Response:
    return httpx.post(
        f"{server.url}/access/v1/evaluation",
        headers={"Authorization": f"Bearer {key}"},
        json={"subject": {"type": "user", "id": "alice"}, "action": {"name": action},
              "resource": {"type": "account", "id": "alice"},
              "context": {"session_id": session}},
        timeout=10,
    )  # fmt: skip


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path / "j.db", bundle(tmp_path / "v1", "10m"), args=("--workers", "2"))
    server.start()
    yield server
    server.stop()


def test_what_one_worker_is_told_every_worker_decides_by_at_once(two_workers: Server):
    server = two_workers
    with admin(server) as client:
        made = client.post("/admin/v1/apps", json={"name": "web",
                                                   "assertable_methods": ["password", "totp"]})
        assert made.status_code == 201, made.text
        app_id, key = made.json()["app"]["id"], made.json()["key"]
        web = server.client(key)
        session = start(web)["session"]["id"]
        # Every worker caches the session, the app and the active version.
        assert all(decide(server, key, session).json()["decision"] for _ in range(ROUNDS))

        ended = httpx.post(f"{server.url}/v1/sessions/{session}/end",
                           headers={"Authorization": f"Bearer {key}"},
                           json={"revoke_reason": "stolen"}, timeout=10)  # fmt: skip
        assert ended.status_code == 200, ended.text
        reasons = {decide(server, key, session).json()["context"]["reason"] for _ in range(ROUNDS)}
        assert reasons == {"session_revoked"}

        other = start(web)["session"]["id"]
        assert all(decide(server, key, other).json()["decision"] for _ in range(ROUNDS))
        published = client.post(
            "/admin/v1/versions", json={"files": {"acct.yaml": LOCKED}, "activate": True}
        )
        assert published.status_code == 201, published.text
        reasons = {decide(server, key, other).json()["context"]["reason"] for _ in range(ROUNDS)}
        assert reasons == {"login_closed"}

        rotated = client.post(f"/admin/v1/apps/{app_id}/keys", json={"overlap_seconds": 0})
        assert rotated.status_code == 201, rotated.text  # the old key ends now
        codes = {decide(server, key, other).status_code for _ in range(ROUNDS)}
        assert codes == {401}
        new_key = rotated.json()["key"]
        codes = {decide(server, new_key, other).status_code for _ in range(ROUNDS)}
        assert codes == {200}
