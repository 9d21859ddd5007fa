"""`POST /admin/v1/replays` over real HTTP: a replay of the recorded workforce history
(tests/replay_history.py) with v2 uploaded as a stored version runs as a job; its progress and
report are read back, the same report `juncture replay` prints; bad requests get their codes
and start nothing."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from juncture.service.setup import tree_files
from replay_history import V2, workforce_history
from service.server import Server

SINCE = "2026-11-30T00:00:00Z"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    """The server on the recorded history, an admin key, and v2 stored (not active)."""
    db = tmp_path_factory.mktemp("replays") / "j.db"
    workforce_history(db)
    server = Server(db, None).start()
    try:
        key = Path(f"{db}.admin-token").read_text().strip()
        files = {n: base64.b64encode(c).decode() for n, c in tree_files(V2).items()}
        with server.client(key) as client:
            stored = client.post("/admin/v1/versions", json={"files_base64": files})
            assert stored.status_code == 201, stored.text
        yield server, key, stored.json()["id"]
    finally:
        server.stop()


def wait(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while job["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
        job = client.get(f"/admin/v1/replays/{job['id']}").json()
    return job


def test_a_replay_job_reports_what_v2_changes(served: tuple[Server, str, str]) -> None:
    server, key, v2 = served
    with server.client(key) as client:
        started = client.post("/admin/v1/replays", json={
            "candidate": v2[:15], "since": SINCE, "fail_on": ["allow->deny>10%", "changed>100"],
        })  # fmt: skip
        assert started.status_code == 202, started.text
        job = started.json()
        assert (job["status"], job["candidate"], job["by"]) == ("running", v2, "bootstrap")
        job = wait(client, job)
        assert job["status"] == "done", job
        report = job["report"]
        assert (report["total"], report["replayed"], report["changed"], report["kept"]) == (
            44, 43, 17, 1)  # fmt: skip
        cells = {(c["checkpoint"], c["old"], c["new"]): c["count"] for c in report["table"]}
        assert cells[("expenses:approve", "allow", "deny")] == 9
        assert job["processed"] == 44 and job["finished_at"] is not None
        assert job["broken"] == ["allow->deny>10%: 9 of 42 (21.43%)"]
        listed = client.get("/admin/v1/replays").json()["replays"]
        assert listed[0]["id"] == job["id"]


def test_the_version_against_itself_changes_nothing(served: tuple[Server, str, str]) -> None:
    server, key, v2 = served
    with server.client(key) as client:
        body = {"candidate": v2, "against": v2, "since": SINCE, "checkpoint": "expenses:approve"}
        job = wait(client, client.post("/admin/v1/replays", json=body).json())
        assert job["status"] == "done" and job["against"] == v2
        assert job["report"]["changed"] == 0 and job["report"]["total"] == 19  # the revoked one too


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"candidate": "sha256:ffff"}, 404, "version.not_found"),
        ({"candidate": "sha", "fail_on": ["allow->deny"]}, 400, "replay.rule_invalid"),
        ({"candidate": "sha", "since": "yesterday"}, 400, "replay.window_invalid"),
        ({"candidate": "sha", "colour": "red"}, 400, "request.invalid"),
        ({}, 400, "request.invalid"),
    ],
)
def test_bad_requests_start_nothing(
    served: tuple[Server, str, str], body: dict[str, Any], status: int, code: str
) -> None:
    server, key, _ = served
    with server.client(key) as client:
        before = client.get("/admin/v1/replays").json()["replays"]
        answer = client.post("/admin/v1/replays", json=body)
        assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
        assert client.get("/admin/v1/replays").json()["replays"] == before


def test_unknown_jobs_and_keys(served: tuple[Server, str, str]) -> None:
    server, key, _ = served
    with server.client(key) as client:
        missing = client.get("/admin/v1/replays/rp_nothing")
        assert (missing.status_code, missing.json()["code"]) == (404, "replay.not_found")
    anonymous = httpx.post(f"{server.url}/admin/v1/replays", json={"candidate": "sha"})
    assert anonymous.status_code == 401


def test_an_app_rebound_now_is_replayed_with_the_journeys_of_then(
    served: tuple[Server, str, str],
) -> None:
    """`PATCH /admin/v1/apps/{id} {"journeys"}` rebinds the app from now on: a replay of the
    version that decided the history still reproduces it (its records were decided with the
    app bound to every journey), where the new binding would deny them all."""
    server, key, _ = served
    with server.client(key) as client:
        versions = client.get("/admin/v1/versions").json()["versions"]
        active = next(v["id"] for v in versions if v["active"])
        rebound = client.patch("/admin/v1/apps/app_expenses", json={"journeys": ["elsewhere"]})
        assert rebound.status_code == 200, rebound.text
        assert rebound.json()["app"]["journeys"] == ["elsewhere"]
        # its sessions' standing outcomes are re-checked under the new binding: a sweep
        sweep = client.get(f"/admin/v1/sweeps/{rebound.json()['sweep']}")
        assert sweep.status_code == 200, sweep.text
        assert sweep.json()["reason"].endswith("app expenses rebound"), sweep.text
        same = client.patch("/admin/v1/apps/app_expenses", json={"journeys": ["elsewhere"]})
        assert same.status_code == 200 and "sweep" not in same.json()  # nothing rebound
        try:
            job = wait(client, client.post("/admin/v1/replays", json={
                "candidate": active, "since": SINCE}).json())  # fmt: skip
            assert job["status"] == "done", job
            report = job["report"]
            assert (report["total"], report["changed"], report["bindings_assumed"]) == (44, 0, 0)
        finally:
            client.patch("/admin/v1/apps/app_expenses", json={"journeys": []})
