"""Development mode's test clock over HTTP: `juncture serve --dev` lets `/admin/v1/clock` move
decision time (a `within` window runs out without waiting); without `--dev` it is refused."""

from __future__ import annotations

import time
from pathlib import Path

from .server import Server
from .test_http import admin, bundle, evaluation, new_app, start


def test_the_test_clock_makes_a_within_window_run_out(tmp_path: Path) -> None:
    server = Server(tmp_path / "j.db", bundle(tmp_path / "v1", "10m"), args=("--dev",)).start()
    try:
        health = server.client("-").get("/healthz").json()
        assert health["dev"] is True and health["dev_clock"]["offset_seconds"] == 0
        _, web = new_app(server)
        session = start(web)["session"]
        stepped = evaluation(web, session["id"])
        assert stepped["context"]["outcome"] == "step_up"
        challenge = stepped["context"]["challenge_id"]
        verified = web.post(f"/v1/challenges/{challenge}/verify", json={"method": "totp"})
        assert verified.status_code == 200, verified.text
        assert evaluation(web, session["id"])["decision"] is True  # within 10 minutes

        with admin(server) as client:
            moved = client.post("/admin/v1/clock", json={"offset": "+11m"})
            assert moved.status_code == 200, moved.text
            assert moved.json()["offset_seconds"] == 660
            assert client.get("/admin/v1/clock").json()["offset_seconds"] == 660
        later = evaluation(web, session["id"])
        assert later["decision"] is False and later["context"]["outcome"] == "step_up"

        # Only decision time moved: the clock check (real clock against the store's) is fine.
        time.sleep(2.5)  # a heartbeat after the move
        health = server.client("-").get("/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["clock"]["status"] == "ok"
        assert health.json()["dev_clock"]["offset_seconds"] == 660

        with admin(server) as client:
            for bad in ({"offset": "soon"}, {"offset": "+1m", "at": "2026-01-01T00:00:00Z"},
                        {}, {"at": "yesterday"}, {"offset": "+4000d"}):  # fmt: skip
                refused = client.post("/admin/v1/clock", json=bad)
                assert (refused.status_code, refused.json()["code"]) == (400, "request.invalid")
            assert client.get("/admin/v1/clock").json()["offset_seconds"] == 660  # unchanged
            reset = client.delete("/admin/v1/clock")
            assert reset.status_code == 200 and reset.json()["offset_seconds"] == 0
            at = client.post("/admin/v1/clock", json={"at": "2030-01-01T00:00:00Z"})
            assert at.status_code == 200 and at.json()["now"].startswith("2030-01-01T00:00:0")
        assert (
            server.client("jct_adm_x_y").post("/admin/v1/clock", json={"offset": "1m"}).status_code
            == 401
        )
    finally:
        server.stop()


def test_the_test_clock_is_refused_without_dev_mode(tmp_path: Path) -> None:
    server = Server(tmp_path / "j.db", bundle(tmp_path / "v1", "10m")).start()
    try:
        health = server.client("-").get("/healthz").json()
        assert health["dev"] is False
        assert health["caches"] == {"state": "live"}  # SQLite: kept exact by the change log
        with admin(server) as client:
            for method, body in (("GET", None), ("POST", {"offset": "+11m"}), ("DELETE", None)):
                refused = client.request(method, "/admin/v1/clock", json=body)
                assert (refused.status_code, refused.json()["code"]) == (404, "dev.disabled")
    finally:
        server.stop()


def test_dev_mode_runs_one_worker(tmp_path: Path) -> None:
    import subprocess

    from .server import JUNCTURE

    done = subprocess.run(
        [str(JUNCTURE), "serve", "--dev", "--workers", "2", "--db", str(tmp_path / "j.db")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "--dev runs one worker" in done.stderr
    assert not (tmp_path / "j.db").exists()
