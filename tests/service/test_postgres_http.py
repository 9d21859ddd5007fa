"""`juncture serve --db postgresql://...` end to end over HTTP, on the test PostgreSQL
server: a login, a decision, a revocation, kept across a restart; and `juncture migrate`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .server import JUNCTURE, Server
from .test_http import bundle, evaluation, new_app, start


def test_a_server_on_postgres_logs_in_decides_and_revokes(postgres_url: str, tmp_path: Path):
    server = Server(postgres_url, bundle(tmp_path / "v1", "10m"), cwd=tmp_path).start()
    try:
        assert server.admin_token()  # named after the database, in the server's directory
        kept = sorted(p.name.rpartition(".")[2] for p in tmp_path.glob("postgres-127.0.0.1-*"))
        assert "admin-token" in kept and "keys" in kept
        _, web = new_app(server)
        started = start(web)
        assert started["decision"]["outcome"] == "allow"
        session = started["session"]["id"]
        assert evaluation(web, session, "login")["decision"] is True
        stepped = evaluation(web, session)
        assert stepped["context"]["outcome"] == "step_up"
        ended = web.post(f"/v1/sessions/{session}/end", json={"revoke_reason": "stolen_device"})
        assert ended.status_code == 200, ended.text
        after = evaluation(web, session, "login")
        assert after["decision"] is False and after["context"]["reason"] == "session_revoked"
        server.kill()
        server.start()  # what was acknowledged is in the database
        read = web.get(f"/v1/sessions/{session}").json()
        assert (read["status"], read["status_reason"]) == ("revoked", "stolen_device")
    finally:
        server.stop()


def test_migrate_check_says_whether_migrations_are_pending(postgres_url: str):
    def migrate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(JUNCTURE), "migrate", "--db", postgres_url, *args],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip

    pending = migrate("--check")
    assert pending.returncode == 1, pending.stderr
    assert "pending" in pending.stdout
    applied = migrate()
    assert applied.returncode == 0, applied.stderr
    assert "migrated" in applied.stdout
    current = migrate("--check")
    assert current.returncode == 0, current.stderr
    assert "current" in current.stdout
