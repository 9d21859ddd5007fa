"""The sweep over real HTTP: a stricter journey is published while sessions hold standing
outcomes; the sweep withdraws exactly what no longer holds and revokes what the guard now
revokes, beside live traffic, and reports its progress."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .server import Server
from .test_http import admin
from .test_ssf_http import CAEP, Inbox

V1 = """\
journey: desk
applies_to: [desk]
methods:
  password: {kind: password}
networks:
  corporate: [10.0.0.0/8]
checkpoints:
  login: [{require: {any: [password]}}, {allow: {scopes: [desk], ttl: 8h}}]
  dashboard: [{require: {aal: 1}}, {allow: {scopes: ["dashboard:read"], ttl: 1h}}]
  reports:
    - if: "network.segment != 'corporate'"
      reroute: {path: /reports/summary, scopes: ["reports:summary"], ttl: 1h}
    - allow: {scopes: ["reports:full"], ttl: 1h}
  "*": [{deny: unknown_action}]
"""

# Version 2: dashboards only from the corporate network; mallory is banned everywhere.
V2 = V1.replace(
    """  dashboard: [{require: {aal: 1}}, {allow: {scopes: ["dashboard:read"], ttl: 1h}}]""",
    """  dashboard:
    - if: "network.segment != 'corporate'"
      deny: off_network
    - allow: {scopes: ["dashboard:read"], ttl: 1h}""",
).replace(
    "checkpoints:\n",
    "guard:\n  - {if: \"subject.id == 'mallory'\", revoke: banned}\ncheckpoints:\n",
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "desk.yaml").write_text(V1)
    running = Server(tmp_path / "j.db", bundle, args=("--ssf-allow-private",)).start()
    yield running
    running.stop()


def ask(client: httpx.Client, session: str, subject: str, action: str) -> dict[str, Any]:
    answer = client.post(
        "/access/v1/evaluation",
        json={
            "subject": {"type": "user", "id": subject},
            "action": {"name": action},
            "resource": {"type": "page", "id": action},
            "context": {"session_id": session},
        },
    )
    assert answer.status_code == 200, answer.text
    context: dict[str, Any] = answer.json()["context"]
    return context


def test_a_stricter_journey_is_swept_into_idle_sessions(server: Server):
    with admin(server) as client:
        made = client.post(
            "/admin/v1/apps", json={"name": "desk", "assertable_methods": ["password"]}
        )
    desk = server.client(made.json()["key"])
    inbox = Inbox()
    stream = desk.post(
        "/ssf/streams",
        json={
            "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": inbox.url},
            "events_requested": [CAEP + "session-revoked", CAEP + "token-claims-change"],
        },
    )
    assert stream.status_code == 201, stream.text
    people = {
        "ana": "10.1.2.3",
        "bo": "10.9.9.9",
        "cy": "198.51.100.4",
        "di": "203.0.113.9",
        "mallory": "10.6.6.6",
    }
    sessions: dict[str, str] = {}
    for name, ip in people.items():
        started = desk.post(
            "/v1/sessions",
            json={
                "subject": {"id": name},
                "proofs": [{"method": "password"}],
                "context": {"network": {"ip": ip}},
            },
        )
        assert started.status_code == 201, started.text
        sessions[name] = started.json()["session"]["id"]
        assert ask(desk, sessions[name], name, "dashboard")["outcome"] == "allow"
    assert ask(desk, sessions["cy"], "cy", "reports")["outcome"] == "reroute"
    idle = desk.post("/v1/sessions", json={"subject": {"id": "eve"}, "context": {}})
    assert idle.status_code == 201  # nothing proven: no standing outcome at all
    assert idle.json()["session"]["status"] == "pending"  # its login is not done: not swept
    before = desk.get(f"/v1/sessions/{sessions['cy']}").json()["standing"]
    assert set(before) == {"login", "dashboard", "reports"}

    with admin(server) as client:
        published = client.post(
            "/admin/v1/versions", json={"files": {"desk.yaml": V2}, "activate": True}
        )
        assert published.status_code == 201, published.text
        sweep_id = published.json()["sweep"]
        deadline = time.monotonic() + 30
        run = client.get(f"/admin/v1/sweeps/{sweep_id}").json()
        while run["status"] == "running" and time.monotonic() < deadline:
            assert ask(desk, sessions["ana"], "ana", "dashboard")["outcome"] == "allow"  # traffic
            time.sleep(0.05)
            run = client.get(f"/admin/v1/sweeps/{sweep_id}").json()
    assert run["status"] == "done", run
    assert run["processed"] == run["total"] == 5
    assert run["changed"] == 3  # cy and di lose the dashboard; mallory is revoked

    def read(name: str) -> dict[str, Any]:
        return dict(desk.get(f"/v1/sessions/{sessions[name]}").json())

    for name in ("ana", "bo"):
        assert "dashboard" in read(name)["standing"] and read(name)["status"] == "active"
    for name in ("cy", "di"):
        session = read(name)
        assert session["status"] == "active" and "dashboard" not in session["standing"]
        assert "login" in session["standing"]
    assert read("cy")["path"] == "/reports/summary"  # the reroute still holds as it was
    mallory = read("mallory")
    assert (mallory["status"], mallory["status_reason"]) == ("revoked", "banned")
    # the app was told: one event per changed session, each naming it
    told: dict[str, str] = {}
    for _, token in inbox.wait(3):
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        [(event_type, _)] = claims["events"].items()
        told[claims["sub_id"]["session"]["id"]] = event_type.rsplit("/", 1)[1]
    inbox.close()
    assert told == {
        sessions["cy"]: "token-claims-change",
        sessions["di"]: "token-claims-change",
        sessions["mallory"]: "session-revoked",
    }


def test_sweeps_can_be_started_listed_and_watched_from_the_cli(server: Server):
    from typer.testing import CliRunner

    from juncture.cli import app

    env = {"JUNCTURE_ADMIN_TOKEN": server.admin_token()}
    result = CliRunner().invoke(app, ["sweep", "--server", server.url, "--start"], env=env)
    assert result.exit_code == 0, result.output
    assert "done: 0 sessions checked, 0 changed" in result.output
    listed = CliRunner().invoke(app, ["sweep", "--server", server.url, "--no-wait"], env=env)
    assert listed.exit_code == 0 and "manual by bootstrap" in listed.output
